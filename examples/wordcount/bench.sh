#!/usr/bin/env bash
# bench.sh: the flow rows of the benchmarks, measured in one run.
#
#   wordcount    gearflow run of the wordcount example over a generated
#                200 MB text on the embedded default, against the
#                single-process Go program in plain/ counting the same
#                words; runs alternate, the median of ROUNDS is reported
#                with the ratio, and the outputs must be byte-identical.
#                A third row runs the same embedded with byte splits
#                (SPLIT), which the coordinator plans from the file's
#                size without reading it.
#   noop         no-op map tasks per second through the coordinator
#                (BenchmarkRunNoopTasks in package flow), against the
#                foreground jobs/s of "gearflow bench --mode fg --clients 4
#                --inflight 16 --workers 4 --payload 64B" on a "gearflow
#                serve" this script starts, alternating, ROUNDS each.
#   dataplane    a distributed wordcount of SIZE (200 MB): "gearflow
#                serve", WORKERS (2) "gearflow worker" processes and
#                "gearflow run --servers" as the coordinator, with byte
#                splits, --storage on a local folder against --storage
#                none (data through the job server) and the plain
#                program, alternating: the bytes the server reads and
#                writes (/proc/PID/io rchar + wchar) per input byte, and
#                the coordinator's share of the run's CPU time
#                (coordinator + server + workers).
#   distributed  the same over DSIZE (1GB): wall time against the plain
#                program, with --storage on a local folder and, when
#                SeaweedFS's weed binary is found (GEARFLOW_WEED, weed on
#                PATH, or the CI cache; S3=0 skips it), on an S3 store
#                (internal/seaweedtest/weedstore starts it on loopback and puts the input in it).
#
# Usage: examples/wordcount/bench.sh [wordcount|noop|dataplane|distributed|all]
# (default all). Knobs (environment): ROUNDS (3), SIZE (200MB), DSIZE
# (1GB), LINES (50000 lines a map task), SPLIT (16MiB, the byte splits),
# PARTITIONS (8, of the distributed runs), WORKERS (2), SEED (1), DURATION
# (5s, the fg run), S3 (1), TIMEOUT (600s per command), KEEP=1 keeps the
# work directory; BASE=COMMIT adds to wordcount a row for gearflow built
# at that commit (git archive), to compare a change in the same run.
#
# Everything goes in a temporary directory, removed at the end; servers
# listen on free loopback ports; only processes this script started are
# stopped, by pid.
set -euo pipefail

cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/go/bin"
# shellcheck source=../../internal/loadgen/ports.sh
. internal/loadgen/ports.sh
WHAT=${1:-all}
ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-200MB}
DSIZE=${DSIZE:-1GB}
LINES=${LINES:-50000}
SPLIT=${SPLIT:-16MiB}
PARTITIONS=${PARTITIONS:-8}
WORKERS=${WORKERS:-2}
S3=${S3:-1}
BASE=${BASE:-}
SEED=${SEED:-1}
DURATION=${DURATION:-5s}
TIMEOUT=${TIMEOUT:-600}
REPO=$PWD

case $WHAT in wordcount | noop | dataplane | distributed | all) ;; *)
	echo "usage: $0 [wordcount|noop|dataplane|distributed|all]" >&2
	exit 2
	;;
esac
[ -x /usr/bin/time ] || {
	echo "bench.sh: /usr/bin/time not found (apt-get install time)" >&2
	exit 1
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gearflow-flowbench.XXXXXX")
SERVER_PID=
WORKER_PIDS=()
WEED_PID=
cleanup() {
	stop_workers
	local pid
	for pid in $SERVER_PID $WEED_PID; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ "${KEEP:-0}" = 1 ]; then
		echo "bench.sh: work directory kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "bench.sh: $*" >&2; }

# median prints the median of its numeric arguments.
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {printf "%.10g\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); $(go version | cut -d' ' -f3); $(date -u +%Y-%m-%dT%H:%MZ)"
log "building"
go build -o "$WORK/gearflow" ./cmd/gearflow
go build -o "$WORK/plain" ./examples/wordcount/plain
go build -o "$WORK/gen" ./examples/wordcount/gen
go build -o "$WORK/weedstore" ./internal/seaweedtest/weedstore

# The wordcount functions with byte splits, for the dataplane,
# distributed and embedded byte-split runs: the input is a URI (file:PATH
# or s3://...), each map task reads its split of it from storage.
cat >"$WORK/wcbytes.yaml" <<'EOF'
version: 1
name: wcbytes
params:
  input:      { type: string, required: true }
  out:        { type: path, required: true }
  split:      { type: string, default: 16MiB }
  partitions: { type: int, default: 8 }
defaults:
  timeout: 5m
  retry: { max_attempts: 3, backoff: exponential, initial: 200ms, max: 5s }
stages:
  - name: count
    kind: map
    function: wc.map
    input: { from: "${params.input}", split: { bytes: "${params.split}" } }
    combine: wc.sum
    partition: { by: key, count: ${params.partitions} }
  - name: total
    kind: reduce
    needs: [count]
    function: wc.sum
output:
  from: stage:total
  to: file:${params.out}
EOF

# gen_input SIZE: generates SIZE of text once; sets INPUT to its path.
gen_input() {
	INPUT="$WORK/input-$1.txt"
	[ -f "$INPUT" ] && return 0
	log "generating $1 of text (seed $SEED)"
	"$WORK/gen" -size "$1" -seed "$SEED" >"$INPUT"
	echo "input: $1, $(stat -c %s "$INPUT") bytes, $(wc -l <"$INPUT") lines"
}

# load prints the load average, for each run's record.
load() { echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) ($1)"; }

# machine prints the CPU time of the whole machine so far, in clock
# ticks summed over its cores: "busy total" (total adds idle and iowait).
machine() { awk '$1 == "cpu" {b = $2 + $3 + $4 + $7 + $8 + $9; printf "%.0f %.0f\n", b, b + $5 + $6}' /proc/stat; }

# timed NAME CMD...: runs CMD under /usr/bin/time; appends "wall rss_kb
# cpu busy total" to $WORK/NAME.times (cpu: user + system seconds; busy,
# total: the machine's CPU seconds during the run, all processes', and
# what its cores had).
timed() {
	local name=$1 m0 m1
	shift
	m0=$(machine)
	if ! /usr/bin/time -f '%e %M %U %S' -o "$WORK/time.out" timeout "$TIMEOUT" "$@" >"$WORK/$name.log" 2>&1; then
		log "$name failed:"
		tail -n 20 "$WORK/$name.log" >&2
		exit 1
	fi
	m1=$(machine)
	tail -n 1 "$WORK/time.out" | awk -v m0="$m0" -v m1="$m1" -v hz="$(getconf CLK_TCK)" \
		'BEGIN {split(m0, a, " "); split(m1, b, " ")} {printf "%s %s %.2f %.2f %.2f\n", $1, $2, $3 + $4, (b[1] - a[1]) / hz, (b[2] - a[2]) / hz}' >>"$WORK/$name.times"
}

# others NAME...: for each NAME, the share of the machine's CPU that
# other processes took during its runs, in %, round by round: a flow
# run needs both cores, and with sched_autogroup a busy session of
# someone else's leaves this script's one core of two. A distributed
# run's own CPU adds the server's, the workers' and weed's (NAME.dist).
others() {
	local name out=
	for name in "$@"; do
		if [ -f "$WORK/$name.dist" ]; then
			out+="$name $(paste -d' ' "$WORK/$name.times" "$WORK/$name.dist" | awk '{o = $4 - $3 - $7 - $8 - $9; printf "%.0f ", 100 * (o > 0 ? o : 0) / $5}')"
		else
			out+="$name $(awk '{o = $4 - $3; printf "%.0f ", 100 * (o > 0 ? o : 0) / $5}' "$WORK/$name.times")"
		fi
		out="${out% }; "
	done
	echo "${out%; }"
}

# rotate R ITEM...: the items, rotated by R-1, so that over the rounds
# each goes first, second, ... in turn.
rotate() {
	local r=$1
	shift
	local n=$# i
	local items=("$@")
	for ((i = 0; i < n; i++)); do
		echo "${items[(i + r - 1) % n]}"
	done
}

# col NAME K: the K-th field of NAME.times, one a line.
col() { cut -d' ' -f"$2" "$WORK/$1.times"; }

# mib KIB: KiB as whole MiB.
mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }

# check_same NAME...: stops the script unless every NAME.tsv equals plain.tsv.
check_same() {
	local name
	for name in "$@"; do
		if ! cmp -s "$WORK/plain.tsv" "$WORK/$name.tsv"; then
			log "the outputs of plain and $name differ:"
			cmp "$WORK/plain.tsv" "$WORK/$name.tsv" >&2 || true
			exit 1
		fi
	done
}

# attempts NAME: records the retries and backups of the run in NAME.log.
attempts() { grep -o '[0-9]* retries, [0-9]* backups' "$WORK/$1.log" >>"$WORK/$1.attempts" || true; }

wordcount() {
	gen_input "$SIZE"
	rm -f "$WORK"/{plain,flow,flowbytes,flowbase}.{times,attempts}
	local names=(plain flow flowbytes)
	if [ -n "$BASE" ]; then
		log "building gearflow at $BASE"
		rm -rf "$WORK/base"
		mkdir "$WORK/base"
		git archive "$BASE" | tar -x -C "$WORK/base"
		(cd "$WORK/base" && go build -o "$WORK/gearflow-base" ./cmd/gearflow)
		names+=(flowbase)
	fi
	local r which
	for ((r = 1; r <= ROUNDS; r++)); do
		load "round $r"
		for which in $(rotate "$r" "${names[@]}"); do
			log "round $r: $which"
			rm -rf "$WORK/state"
			case $which in
			plain) timed plain "$WORK/plain" "$INPUT" "$WORK/plain.tsv" ;;
			flow)
				timed flow "$WORK/gearflow" run "$REPO/examples/wordcount/wordcount.yaml" \
					-p input="$INPUT" -p out="$WORK/flow.tsv" -p lines="$LINES" --state-dir "$WORK/state"
				attempts flow
				;;
			flowbytes)
				timed flowbytes "$WORK/gearflow" run "$WORK/wcbytes.yaml" -p input="file:$INPUT" \
					-p out="$WORK/flowbytes.tsv" -p split="$SPLIT" -p partitions=4 --state-dir "$WORK/state"
				attempts flowbytes
				;;
			flowbase)
				timed flowbase "$WORK/gearflow-base" run "$WORK/base/examples/wordcount/wordcount.yaml" \
					-p input="$INPUT" -p out="$WORK/flowbase.tsv" -p lines="$LINES" --state-dir "$WORK/state"
				attempts flowbase
				;;
			esac
		done
		check_same "${names[@]:1}"
	done
	rm -rf "$WORK/state"
	local pw pc
	pw=$(median $(col plain 1))
	pc=$(median $(col plain 3))
	echo "outputs: byte-identical in every round ($(wc -l <"$WORK/plain.tsv") words)"
	echo
	echo "| wordcount, $SIZE | wall s (median of $ROUNDS) | rounds | CPU s (user+sys, median) | max RSS MiB | wall / plain (median) | each round |"
	echo "|---|---|---|---|---|---|---|"
	local name label
	for name in "${names[@]}"; do
		case $name in
		plain) label="plain Go, one process" ;;
		flow) label="gearflow run (embedded default), $LINES lines a task" ;;
		flowbytes) label="gearflow run (embedded default), byte splits of $SPLIT" ;;
		flowbase) label="gearflow run (embedded default) at $BASE, $LINES lines a task" ;;
		esac
		echo "| $label | $(median $(col "$name" 1)) | $(col "$name" 1 | paste -sd' ') | $(median $(col "$name" 3)) | $(mib "$(median $(col "$name" 2))") |" \
			"$(ratios "$name" plain) |"
	done
	echo
	echo "target: embedded wall <= 1.5x the plain program's (and no slower than the 0.82-0.88x recorded before storage)"
	echo "other processes' share of the machine's CPU during each run (%, by round): $(others "${names[@]}")"
	echo "CPU flow/plain: $(awk -v f="$(median $(col flow 3))" -v p="$pc" 'BEGIN {printf "%.2f", f / p}')x (lines), $(awk -v f="$(median $(col flowbytes 3))" -v p="$pc" 'BEGIN {printf "%.2f", f / p}')x (bytes); plain wall $pw s"
	[ -n "$BASE" ] && echo "CPU flow/plain at $BASE: $(awk -v f="$(median $(col flowbase 3))" -v p="$pc" 'BEGIN {printf "%.2f", f / p}')x; wall flow/flow at $BASE (lines, median of the rounds): $(ratios flow flowbase | cut -d' ' -f1)x"
	for name in "${names[@]:1}"; do
		echo "extra attempts, $name, by round: $(paste -sd';' "$WORK/$name.attempts")"
	done
}

# ratios NAME BASE: "median | each round" of NAME's wall over BASE's, round by round.
ratios() {
	local rs
	rs=$(paste -d' ' <(col "$1" 1) <(col "$2" 1) | awk '{printf "%.2f ", $1 / $2}')
	echo "$(median $rs | awk '{printf "%.2f", $1}') | ${rs% }"
}

# start_server starts "gearflow serve" on a free port; sets PORT. The
# server proves it is the one listening by answering getpid with its pid.
start_server() {
	local attempt i
	for ((attempt = 0; attempt < 5; attempt++)); do
		PORT=$(free_port)
		"$WORK/gearflow" serve -L 127.0.0.1 -p "$PORT" -l "$WORK/serve.log" --log-level warn >"$WORK/serve.out" 2>&1 &
		SERVER_PID=$!
		for ((i = 0; i < 100; i++)); do
			kill -0 "$SERVER_PID" 2>/dev/null || break
			[ "$(admin "$PORT" getpid 2>/dev/null)" = "OK $SERVER_PID" ] && return 0
			sleep 0.1
		done
		log "gearflow serve on port $PORT did not come up (attempt $attempt)"
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=
	done
	return 1
}

# stop_server stops the server start_server started.
stop_server() {
	[ -n "$SERVER_PID" ] || return 0
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
}

noop() {
	log "building the flow benchmark"
	go test -c -o "$WORK/flow.test" ./flow
	start_server
	local r
	for ((r = 1; r <= ROUNDS; r++)); do
		local order=(fg tasks)
		((r % 2 == 0)) && order=(tasks fg)
		for which in "${order[@]}"; do
			log "round $r: $which"
			case $which in
			fg)
				timeout "$TIMEOUT" "$WORK/gearflow" bench --server "127.0.0.1:$PORT" --mode fg --clients 4 --inflight 16 \
					--workers 4 --payload 64B --duration "$DURATION" --json >"$WORK/fg.json"
				fg=$(grep -o '"jobs_per_s": *[0-9.e+]*' "$WORK/fg.json" | head -n 1 | sed 's/.*: *//')
				echo "$fg" >>"$WORK/fg.rates"
				;;
			tasks)
				(cd "$WORK" && NOOP_FG_DURATION=0 timeout "$TIMEOUT" "$WORK/flow.test" -test.run '^$' \
					-test.bench 'BenchmarkRunNoopTasks' -test.benchtime 4x) >"$WORK/tasks.out"
				awk '/^BenchmarkRunNoopTasks/ {for (i = 2; i < NF; i++) {if ($(i + 1) == "tasks/s") t = $i; if ($(i + 1) == "cpu-µs/task") c = $i}; print $1, t, c}' \
					"$WORK/tasks.out" >"$WORK/tasks.round"
				;;
			esac
		done
		# tasks.rates: config tasks/s cpu-µs/task fg-jobs/s of the same round
		awk -v fg="$fg" '{print $1, $2, $3, fg}' "$WORK/tasks.round" >>"$WORK/tasks.rates"
	done
	echo
	echo "| no-op map tasks (5000 a run) | tasks/s (median of $ROUNDS) | CPU µs/task | % of the same round's server fg (median) | each round |"
	echo "|---|---|---|---|---|"
	local name
	for name in $(cut -d' ' -f1 "$WORK/tasks.rates" | sort -u); do
		local t c ratios
		t=$(median $(awk -v n="$name" '$1 == n {print $2}' "$WORK/tasks.rates"))
		c=$(median $(awk -v n="$name" '$1 == n {print $3}' "$WORK/tasks.rates"))
		ratios=$(awk -v n="$name" '$1 == n {printf "%.0f ", 100 * $2 / $4}' "$WORK/tasks.rates")
		echo "| ${name#BenchmarkRunNoopTasks/} | $t | $c | $(median $ratios)% | ${ratios% } |"
	done
	echo
	echo "server fg jobs/s (gearflow serve, 4 clients x 16 in flight, 4 workers, 64 B, $DURATION): $(median $(cat "$WORK/fg.rates")) (median; rounds: $(awk '{printf "%.0f ", $1}' "$WORK/fg.rates"))"
	echo "target: no-op tasks/s >= 50% of the server's fg jobs/s"
	stop_server
}

# admin_lines PORT COMMAND prints the server's reply up to its "." line.
admin_lines() {
	local line n
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf '%s\n' "$2" >&3
	for ((n = 0; n < 10000; n++)); do
		IFS= read -r -t 2 line <&3 || break
		line=${line%$'\r'}
		[ "$line" = . ] && break
		printf '%s\n' "$line"
	done
	exec 3>&-
}

# start_workers starts WORKERS "gearflow worker" processes on the
# server at PORT and waits until each has registered wc.map.
start_workers() {
	local i
	for ((i = 1; i <= WORKERS; i++)); do
		"$WORK/gearflow" worker --servers "127.0.0.1:$PORT" --id "bench-worker-$i" >"$WORK/worker-$i.log" 2>&1 &
		WORKER_PIDS+=($!)
	done
	for ((i = 0; i < 300; i++)); do
		[ "$(admin_lines "$PORT" status 2>/dev/null | awk -F'\t' '$1 == "wc.map" {print $4}')" = "$WORKERS" ] && return 0
		sleep 0.1
	done
	log "the workers did not register wc.map:"
	tail -n 5 "$WORK"/worker-*.log >&2
	return 1
}

# stop_workers stops the workers this script started (gearflow worker
# finishes on SIGTERM).
stop_workers() {
	local pid
	for pid in "${WORKER_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	WORKER_PIDS=()
}

# ticks PID...: the CPU time (user + system, clock ticks) of the
# processes, summed. The comm field is cut first: it may hold spaces.
ticks() {
	local pid sum=0 t
	for pid in "$@"; do
		t=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')
		sum=$((sum + t))
	done
	echo "$sum"
}

# iochars PID: the bytes the process has read and written through
# read/write system calls (rchar + wchar): for the server, its sockets.
iochars() { awk '$1 == "rchar:" || $1 == "wchar:" {n += $2} END {printf "%.0f\n", n}' "/proc/$1/io"; }

# start_weed starts an S3 store (internal/seaweedtest/weedstore) with INPUT in it as
# input/input.txt and exports what an S3 client needs to reach it; sets
# WEED_PID (the weedstore process), WEED (the weed server's pid) and
# BUCKET (s3://BUCKET). Returns 1 when no weed binary is found.
start_weed() {
	mkdir -p "$WORK/weed"
	"$WORK/weedstore" -dir "$WORK/weed" -put "$INPUT=input/input.txt" >"$WORK/weed.out" 2>"$WORK/weed.err" &
	WEED_PID=$!
	local i
	for ((i = 0; i < TIMEOUT * 10; i++)); do
		grep -qx ready "$WORK/weed.out" && break
		if ! kill -0 "$WEED_PID" 2>/dev/null; then
			wait "$WEED_PID" 2>/dev/null || true
			WEED_PID=
			log "no S3 store: $(tail -c 300 "$WORK/weed.err")"
			return 1
		fi
		sleep 0.1
	done
	grep -qx ready "$WORK/weed.out" || { log "the S3 store did not come up"; return 1; }
	local kv
	while read -r kv; do
		export "${kv?}"
	done < <(sed -n 's/^env //p' "$WORK/weed.out")
	WEED=$(sed -n 's/^pid //p' "$WORK/weed.out")
	BUCKET=$(sed -n 's/^uri //p' "$WORK/weed.out")
	log "S3 store up (weed pid $WEED, $BUCKET), the input uploaded in $((i / 10)) s"
}

# dist_run NAME STORAGE INPUT_URI: one distributed run of wcbytes.yaml
# with "gearflow run --servers" as the coordinator. Appends to NAME.times
# (wall, RSS, coordinator CPU) and to NAME.dist "server_bytes server_cpu
# workers_cpu store_cpu" (CPU in seconds; store_cpu: the weed server's).
dist_run() {
	local name=$1 storage=$2 input=$3 split=$SPLIT
	# without storage a task's input travels in its payload: 4 MiB at most
	[ "$storage" = none ] && split=4MiB
	rm -rf "$WORK/state" "$WORK/store"
	local io0 s0 w0 k0=0 io1 s1 w1 k1=0
	io0=$(iochars "$SERVER_PID")
	s0=$(ticks "$SERVER_PID")
	w0=$(ticks "${WORKER_PIDS[@]}")
	[ "$name" = s3 ] && k0=$(ticks "$WEED")
	timed "$name" "$WORK/gearflow" run "$WORK/wcbytes.yaml" -p input="$input" -p out="$WORK/$name.tsv" \
		-p split="$split" -p partitions="$PARTITIONS" --servers "127.0.0.1:$PORT" --storage "$storage" --state-dir "$WORK/state"
	io1=$(iochars "$SERVER_PID")
	s1=$(ticks "$SERVER_PID")
	w1=$(ticks "${WORKER_PIDS[@]}")
	[ "$name" = s3 ] && k1=$(ticks "$WEED")
	awk -v io=$((io1 - io0)) -v s=$((s1 - s0)) -v w=$((w1 - w0)) -v k=$((k1 - k0)) -v hz="$(getconf CLK_TCK)" \
		'BEGIN {printf "%.0f %.2f %.2f %.2f\n", io, s / hz, w / hz, k / hz}' >>"$WORK/$name.dist"
	attempts "$name"
	rm -rf "$WORK/state" "$WORK/store"
}

# dcol NAME K: the K-th field of NAME.dist, one a line.
dcol() { cut -d' ' -f"$2" "$WORK/$1.dist"; }

# dist_table SIZE NAME...: the table of the distributed runs NAME...
# against plain.
dist_table() {
	local size=$1 bytes name label
	shift
	bytes=$(stat -c %s "$INPUT")
	echo "| wordcount, $size | wall s (median of $ROUNDS) | rounds | wall / plain (median) | each round | CPU s, all processes (median) | coordinator / job server / workers CPU s | job server bytes read + written (median) | per input byte | coordinator share of the CPU (median) | each round |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	echo "| plain Go, one process | $(median $(col plain 1)) | $(col plain 1 | paste -sd' ') | 1 | | $(median $(col plain 3)) | | | | | |"
	for name in "$@"; do
		case $name in
		file) label="gearflow, $WORKERS workers, --storage file://, $SPLIT splits" ;;
		s3) label="gearflow, $WORKERS workers, input and --storage on S3 (SeaweedFS), $SPLIT splits" ;;
		none) label="gearflow, $WORKERS workers, --storage none, 4MiB splits" ;;
		esac
		local shares total
		# coordinator / (coordinator + server + workers), round by round
		shares=$(paste -d' ' <(col "$name" 3) "$WORK/$name.dist" | awk '{printf "%.1f ", 100 * $1 / ($1 + $3 + $4)}')
		total=$(paste -d' ' <(col "$name" 3) "$WORK/$name.dist" | awk '{print $1 + $3 + $4}')
		echo "| $label | $(median $(col "$name" 1)) | $(col "$name" 1 | paste -sd' ') | $(ratios "$name" plain) |" \
			"$(median $total) | $(median $(col "$name" 3)) / $(median $(dcol "$name" 2)) / $(median $(dcol "$name" 3)) |" \
			"$(median $(dcol "$name" 1) | awk '{printf "%.0f", $1}') |" \
			"$(median $(dcol "$name" 1 | awk -v b="$bytes" '{printf "%.6f\n", $1 / b}')) |" \
			"$(median $shares)% | ${shares% } |"
	done
	echo
	echo "input: $bytes bytes; outputs byte-identical to plain's in every round ($(wc -l <"$WORK/plain.tsv") words)"
	echo "other processes' share of the machine's CPU during each run (%, by round): $(others plain "$@")"
	for name in "$@"; do
		echo "extra attempts, $name, by round: $(paste -sd';' "$WORK/$name.attempts")"
	done
	if [ -f "$WORK/s3.dist" ]; then
		echo "the weed server's CPU in the S3 runs: $(median $(dcol s3 4)) s (median); the S3 run's CPU with it" \
			"(coordinator + server + workers + weed): $(median $(paste -d' ' <(col s3 3) "$WORK/s3.dist" | awk '{print $1 + $3 + $4 + $5}')) s"
	fi
	echo "the job server's log: $(stat -c %s "$WORK/serve.log") bytes; its open files other than sockets and pipes:" \
		"$(find "/proc/$SERVER_PID/fd" -mindepth 1 -printf '%l\n' 2>/dev/null | grep -v '^socket:\|^pipe:\|^anon_inode:' | sort -u | paste -sd' ')"
}

# distributed_setup: the server and the workers (and, with S3=1 in
# distributed mode, the S3 store first: the workers need its address).
distributed_setup() {
	start_server
	start_workers
	log "gearflow serve (pid $SERVER_PID) on port $PORT, workers ${WORKER_PIDS[*]}"
}

distributed_teardown() {
	stop_workers
	stop_server
	if [ -n "$WEED_PID" ]; then
		kill -TERM "$WEED_PID" 2>/dev/null || true
		wait "$WEED_PID" 2>/dev/null || true
		WEED_PID=
	fi
}

dataplane() {
	gen_input "$SIZE"
	rm -f "$WORK"/{plain,file,none}.{times,dist,attempts}
	distributed_setup
	local r which
	for ((r = 1; r <= ROUNDS; r++)); do
		load "round $r"
		for which in $(rotate "$r" plain file none); do
			log "round $r: $which"
			case $which in
			plain) timed plain "$WORK/plain" "$INPUT" "$WORK/plain.tsv" ;;
			file) dist_run file "file://$WORK/store" "file:$INPUT" ;;
			none) dist_run none none "file:$INPUT" ;;
			esac
		done
		check_same file none
	done
	load "end"
	echo
	dist_table "$SIZE" file none
	echo
	echo "targets: job server bytes per input byte <= 0.02 with storage (2.27 before it); coordinator CPU <= 5% of the run's"
	distributed_teardown
}

distributed() {
	gen_input "$DSIZE"
	rm -f "$WORK"/{plain,file,s3}.{times,dist,attempts}
	local names=(plain file)
	if [ "$S3" = 1 ] && start_weed; then
		names+=(s3)
	else
		echo "S3 runs skipped (S3=$S3, or no weed binary)"
	fi
	distributed_setup
	local r which
	for ((r = 1; r <= ROUNDS; r++)); do
		load "round $r"
		for which in $(rotate "$r" "${names[@]}"); do
			log "round $r: $which"
			case $which in
			plain) timed plain "$WORK/plain" "$INPUT" "$WORK/plain.tsv" ;;
			file) dist_run file "file://$WORK/store" "file:$INPUT" ;;
			s3) dist_run s3 "$BUCKET/runs" "$BUCKET/input/input.txt" ;;
			esac
		done
		check_same "${names[@]:1}"
	done
	load "end"
	echo
	dist_table "$DSIZE" "${names[@]:1}"
	distributed_teardown
}

case $WHAT in
wordcount) wordcount ;;
noop) noop ;;
dataplane) dataplane ;;
distributed) distributed ;;
all)
	wordcount
	noop
	dataplane
	distributed
	;;
esac
