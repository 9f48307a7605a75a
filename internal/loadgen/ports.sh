# ports.sh: shell functions shared by the benchmark scripts that start
# job servers on loopback (internal/loadgen/compare.sh,
# examples/wordcount/bench.sh). Source it from the repository root.

# free_port prints a loopback port nothing answers on. The server started
# on it proves it is the one listening by answering "getpid" with its pid.
free_port() {
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# admin PORT COMMAND prints the first line of the server's reply.
admin() {
	local line
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf '%s\n' "$2" >&3
	IFS= read -r -t 2 line <&3 || { exec 3>&-; return 1; }
	exec 3>&-
	printf '%s\n' "${line%$'\r'}"
}
