#!/usr/bin/env bash
# bench.sh: the flow rows of the benchmarks, measured in one run.
#
#   wordcount  gearflow run of the wordcount example over a generated
#              200 MB text on the embedded default, against the
#              single-process Go program in plain/ counting the same
#              words; runs alternate, the median of ROUNDS is reported
#              with the ratio, and the two outputs must be byte-identical.
#   noop       no-op map tasks per second through the coordinator
#              (BenchmarkRunNoopTasks in package flow), against the
#              foreground jobs/s of "gearflow bench --mode fg --clients 4
#              --inflight 16 --workers 4 --payload 64B" on a "gearflow
#              serve" this script starts, alternating, ROUNDS each.
#
# Usage: examples/wordcount/bench.sh [wordcount|noop|all]   (default all)
# Knobs (environment): ROUNDS (3), SIZE (200MB), LINES (50000 lines a map
# task), SEED (1), DURATION (5s, the fg run), TIMEOUT (600s per command),
# KEEP=1 keeps the work directory.
#
# Everything goes in a temporary directory, removed at the end; the
# server listens on a free loopback port; only processes this script
# started are stopped, by pid.
set -euo pipefail

cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/go/bin"
# shellcheck source=../../internal/loadgen/ports.sh
. internal/loadgen/ports.sh
WHAT=${1:-all}
ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-200MB}
LINES=${LINES:-50000}
SEED=${SEED:-1}
DURATION=${DURATION:-5s}
TIMEOUT=${TIMEOUT:-600}
REPO=$PWD

case $WHAT in wordcount | noop | all) ;; *)
	echo "usage: $0 [wordcount|noop|all]" >&2
	exit 2
	;;
esac
[ -x /usr/bin/time ] || {
	echo "bench.sh: /usr/bin/time not found (apt-get install time)" >&2
	exit 1
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gearflow-flowbench.XXXXXX")
SERVER_PID=
cleanup() {
	if [ -n "$SERVER_PID" ]; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
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
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); $(go version | cut -d' ' -f3); $(date -u +%Y-%m-%dT%H:%MZ)"
log "building"
go build -o "$WORK/gearflow" ./cmd/gearflow
go build -o "$WORK/plain" ./examples/wordcount/plain
go build -o "$WORK/gen" ./examples/wordcount/gen

# timed NAME CMD...: runs CMD under /usr/bin/time; appends "wall rss_kb
# cpu" (cpu: user + system seconds) to $WORK/NAME.times.
timed() {
	local name=$1
	shift
	if ! /usr/bin/time -f '%e %M %U %S' -o "$WORK/time.out" timeout "$TIMEOUT" "$@" >"$WORK/$name.log" 2>&1; then
		log "$name failed:"
		tail -n 20 "$WORK/$name.log" >&2
		exit 1
	fi
	tail -n 1 "$WORK/time.out" | awk '{printf "%s %s %.2f\n", $1, $2, $3 + $4}' >>"$WORK/$name.times"
}

wordcount() {
	log "generating $SIZE of text (seed $SEED)"
	"$WORK/gen" -size "$SIZE" -seed "$SEED" >"$WORK/input.txt"
	echo "input: $(stat -c %s "$WORK/input.txt") bytes, $(wc -l <"$WORK/input.txt") lines"
	local r
	for ((r = 1; r <= ROUNDS; r++)); do
		local order=(plain flow)
		((r % 2 == 0)) && order=(flow plain)
		for which in "${order[@]}"; do
			log "round $r: $which"
			case $which in
			plain) timed plain "$WORK/plain" "$WORK/input.txt" "$WORK/plain.tsv" ;;
			flow)
				rm -rf "$WORK/state"
				timed flow "$WORK/gearflow" run "$REPO/examples/wordcount/wordcount.yaml" \
					-p input="$WORK/input.txt" -p out="$WORK/flow.tsv" -p lines="$LINES" --state-dir "$WORK/state"
				grep -o '[0-9]* retries, [0-9]* backups' "$WORK/flow.log" >>"$WORK/flow.attempts" || true
				;;
			esac
		done
		if ! cmp -s "$WORK/plain.tsv" "$WORK/flow.tsv"; then
			log "round $r: the outputs differ:"
			cmp "$WORK/plain.tsv" "$WORK/flow.tsv" >&2 || true
			exit 1
		fi
	done
	local pw pr pc fw fr fc
	pw=$(median $(cut -d' ' -f1 "$WORK/plain.times"))
	pr=$(median $(cut -d' ' -f2 "$WORK/plain.times"))
	pc=$(median $(cut -d' ' -f3 "$WORK/plain.times"))
	fw=$(median $(cut -d' ' -f1 "$WORK/flow.times"))
	fr=$(median $(cut -d' ' -f2 "$WORK/flow.times"))
	fc=$(median $(cut -d' ' -f3 "$WORK/flow.times"))
	echo "outputs: byte-identical in every round ($(wc -l <"$WORK/plain.tsv") words)"
	echo
	echo "| wordcount, $SIZE, $LINES lines a task | wall s (median of $ROUNDS) | rounds | CPU s (user+sys, median) | max RSS MiB |"
	echo "|---|---|---|---|---|"
	echo "| plain Go, one process | $pw | $(cut -d' ' -f1 "$WORK/plain.times" | paste -sd' ') | $pc | $(awk -v k="$pr" 'BEGIN {printf "%.0f", k / 1024}') |"
	echo "| gearflow run (embedded default) | $fw | $(cut -d' ' -f1 "$WORK/flow.times" | paste -sd' ') | $fc | $(awk -v k="$fr" 'BEGIN {printf "%.0f", k / 1024}') |"
	echo
	echo "ratio flow/plain: $(awk -v f="$fw" -v p="$pw" 'BEGIN {printf "%.2f", f / p}')x wall (target <= 1.5x), $(awk -v f="$fc" -v p="$pc" 'BEGIN {printf "%.2f", f / p}')x CPU"
	echo "extra attempts of the flow runs, by round: $(paste -sd';' "$WORK/flow.attempts")"
	echo "per round (flow/plain wall): $(paste -d' ' <(cut -d' ' -f1 "$WORK/flow.times") <(cut -d' ' -f1 "$WORK/plain.times") | awk '{printf "%.2f ", $1 / $2}')"
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
}

case $WHAT in
wordcount) wordcount ;;
noop) noop ;;
all)
	wordcount
	noop
	;;
esac
