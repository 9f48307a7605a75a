#!/usr/bin/env bash
# run.sh: is an event loop of our own worth building into the server?
# Measures, side by side in one run with the same load tool (gearflow
# bench), the job router of this folder in three I/O designs over one
# protocol core -- a goroutine per connection on Go's netpoller (the
# server's design), a single-threaded epoll loop (also with 50 µs of
# polling before it sleeps: epoll-spin), and gnet v2 with one event
# loop -- beside gearflow serve itself and gearmand --threads 0 (a
# C event loop, for scale).
#
# Loads: fg64 (foreground echo, 4 clients x 16 in flight, 4 workers,
# 64 B), fg64k (the same with 64 KiB) and lat (1 client, 1 in flight,
# 1 worker, 64 B). For each run:
# jobs/s, the server's CPU per job (gearflow bench --server-pid), its
# system calls per job (perf stat -e raw_syscalls:sys_enter -p PID, all
# threads, over the bench command) and latency p50/p99. ROUNDS rounds,
# the order of the servers rotating each round; medians and every round
# are printed. Only processes this script started are stopped, by pid.
#
# This folder is a module of its own, so nothing of it enters gearflow's
# go.mod; the load tool and gearflow serve are built from the tree around
# it.
#
# Usage: internal/loadgen/evloopbench/run.sh
# Knobs: ROUNDS (3), DURATION (5s), GEARMAND (/usr/sbin/gearmand; empty
# to leave it out), KEEP=1 keeps the raw results.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cd "$repo"
# shellcheck source=../ports.sh
. internal/loadgen/ports.sh
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
GEARMAND=${GEARMAND-/usr/sbin/gearmand}

for tool in jq go perf; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool not found" >&2; exit 1; }
done
perf stat -x, -e raw_syscalls:sys_enter true >/dev/null 2>&1 || {
	echo "run.sh: perf cannot count system calls (kernel.perf_event_paranoid <= 1)" >&2
	exit 1
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/evloopbench.XXXXXX")
declare -A LIVE PORTS SPIDS
stop_pid() {
	local pid=$1 i
	[ -n "${LIVE[$pid]:-}" ] || return 0
	unset "LIVE[$pid]"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	local pid
	for pid in "${!LIVE[@]}"; do stop_pid "$pid"; done
	if [ "${KEEP:-0}" = 1 ]; then echo "run.sh: results kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$WORK/gearflow" ./cmd/gearflow
(cd "$here" && go build -o "$WORK/evloopbench" .)

# start NAME: starts server NAME on a free port, checked by "getpid".
start() {
	local name=$1 port pid i
	port=$(free_port)
	case $name in
	gearflow) "$WORK/gearflow" serve -L 127.0.0.1 -p "$port" -l "$WORK/$name.log" --log-level warn >"$WORK/$name.out" 2>&1 & ;;
	goroutine | epoll | gnet) "$WORK/evloopbench" -mode "$name" -addr "127.0.0.1:$port" >"$WORK/$name.out" 2>&1 & ;;
	epoll-spin) EVL_SPIN_US=50 "$WORK/evloopbench" -mode epoll -addr "127.0.0.1:$port" >"$WORK/$name.out" 2>&1 & ;;
	gearmand-t0)
		local args=(-L 127.0.0.1 -p "$port" -l "$WORK/$name.log" --threads 0)
		[ "$(id -u)" = 0 ] && args+=(-u root)
		"$GEARMAND" "${args[@]}" >"$WORK/$name.out" 2>&1 &
		;;
	esac
	pid=$!
	LIVE[$pid]=1
	for ((i = 0; i < 100; i++)); do
		if [ "$(admin "$port" getpid 2>/dev/null)" = "OK $pid" ]; then
			PORTS[$name]=$port SPIDS[$name]=$pid
			return 0
		fi
		sleep 0.1
	done
	echo "run.sh: $name did not come up: $(tail -n 3 "$WORK/$name.out")" >&2
	exit 1
}

SERVERS=(gearflow goroutine epoll epoll-spin gnet)
[ -n "$GEARMAND" ] && [ -x "$GEARMAND" ] && SERVERS+=(gearmand-t0)
for s in "${SERVERS[@]}"; do start "$s"; done

# bench NAME LOAD ROUND ARGS...: one run; appends a line to $WORK/results:
# server load round jobs/s server-µs/job tool-µs/job syscalls/job p50-µs p99-µs
bench() {
	local name=$1 load=$2 round=$3 out perfpid
	shift 3
	out="$WORK/$name.$load.$round"
	perf stat -x, -e raw_syscalls:sys_enter -p "${SPIDS[$name]}" -o "$out.perf" 2>/dev/null &
	perfpid=$!
	sleep 0.2 # perf attaches before the load starts
	"$WORK/gearflow" bench --server "127.0.0.1:${PORTS[$name]}" --server-pid "${SPIDS[$name]}" \
		--json --timeout 2m --duration "$DURATION" "$@" >"$out.json" 2>"$out.err" ||
		echo "run.sh: bench against $name failed: $(tail -n 3 "$out.err")" >&2
	kill -INT "$perfpid" 2>/dev/null || true
	wait "$perfpid" 2>/dev/null || true
	local sc
	sc=$(awk -F, '/raw_syscalls:sys_enter/ && $1 ~ /^[0-9]+$/ {print $1}' "$out.perf")
	jq -r --arg n "$name" --arg l "$load" --arg r "$round" --arg sc "${sc:-0}" '
		.phases[0] as $p | select($p.jobs > 0) | [$n, $l, $r,
		($p.jobs_per_s | floor),
		($p.server_cpu_s * 1e6 / $p.jobs * 10 | round / 10),
		($p.tool_cpu_s * 1e6 / $p.jobs * 10 | round / 10),
		(($sc | tonumber) / $p.jobs * 100 | round / 100),
		($p.latency.p50_ns / 100 | round / 10),
		($p.latency.p99_ns / 100 | round / 10)] | @tsv' "$out.json" >>"$WORK/results"
}

echo "evloopbench, $(date -u '+%Y-%m-%d %H:%M UTC'): $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), Linux $(uname -r), $(go version | cut -d' ' -f3)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
n=${#SERVERS[@]}
for ((round = 1; round <= ROUNDS; round++)); do
	for ((k = 0; k < n; k++)); do
		s=${SERVERS[$(((k + round - 1) % n))]}
		bench "$s" fg64 "$round" --mode fg --clients 4 --inflight 16 --workers 4 --payload 64
		bench "$s" fg64k "$round" --mode fg --clients 4 --inflight 16 --workers 4 --payload 64KiB
		bench "$s" lat "$round" --mode fg --clients 1 --inflight 1 --workers 1 --payload 64
	done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "Every run (server, load, round, jobs/s, server CPU µs/job, tool CPU µs/job, system calls/job, p50 µs, p99 µs):"
sort -k2,2 -k1,1 -k3,3n "$WORK/results" | column -t
echo
# Medians of the rounds, one table per load.
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
for load in fg64 fg64k lat; do
	echo "Medians, $load:"
	echo
	echo "| server | jobs/s | server CPU µs/job | system calls/job | tool CPU µs/job | p50 µs | p99 µs |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for s in "${SERVERS[@]}"; do
		row="| $s"
		for col in 4 5 7 6 8 9; do
			row+=" | $(awk -v s="$s" -v l="$load" -v c="$col" '$1 == s && $2 == l {print $c}' "$WORK/results" | median)"
		done
		echo "$row |"
	done
	echo
done
