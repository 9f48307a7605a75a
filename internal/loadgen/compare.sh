#!/usr/bin/env bash
# compare.sh: measure "gearflow serve" and gearmand side by side, in one run,
# on this machine, with the same load tool ("gearflow bench"), and print
# every figure with its ratio as a Markdown table.
#
# The servers run at once on free loopback ports: gearflow serve with its
# default of a thread per core and with --threads 0 (one thread), gearmand
# --threads 0 (its fastest setting on a small machine) and gearmand with its
# default 4 I/O threads. Each load runs against each server in turn, the
# order rotating every round, and the median of ROUNDS rounds is reported.
# Memory per queued background job is measured on fresh processes: VmRSS
# before and after submitting MEM_JOBS background jobs with no worker.
#
# Only processes this script started are stopped, by their pid.
#
# Usage: internal/loadgen/compare.sh            (from anywhere in the repo)
#        QUICK=1 internal/loadgen/compare.sh    (a smoke run of a minute)
# Knobs (environment): ROUNDS (3), DURATION (5s per throughput run),
# BG_JOBS (100000), MEM_JOBS (1000000), GEARMAND (/usr/sbin/gearmand),
# TIMEOUT (5m, per bench run), KEEP=1 keeps the work directory with the raw
# results, PPROF=127.0.0.1:PORT makes the default gearflow serve offer
# net/http/pprof there (for profiling it during the run), PROFILE=1 adds
# one more fg64 and fg64k run per server under "perf record" and a table
# of where each server's CPU per job goes: kernel, the payload copies
# within it, user space.
set -euo pipefail

cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/go/bin"
# shellcheck source=ports.sh
. internal/loadgen/ports.sh

if [ "${QUICK:-0}" = 1 ]; then
	: "${ROUNDS:=1}" "${DURATION:=1s}" "${BG_JOBS:=10000}" "${MEM_JOBS:=50000}"
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
BG_JOBS=${BG_JOBS:-100000}
MEM_JOBS=${MEM_JOBS:-1000000}
GEARMAND=${GEARMAND:-/usr/sbin/gearmand}
TIMEOUT=${TIMEOUT:-5m}

for tool in jq go "$GEARMAND"; do
	command -v "$tool" >/dev/null || {
		echo "compare.sh: $tool not found (apt-get install jq gearman-job-server)" >&2
		exit 1
	}
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gearflow-compare.XXXXXX")
declare -A LIVE # pids of the servers this script started and has not reaped

cleanup() {
	local pid
	for pid in "${!LIVE[@]}"; do
		stop_pid "$pid"
	done
	if [ "${KEEP:-0}" = 1 ]; then
		echo "compare.sh: results kept in $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "compare.sh: $*" >&2; }

# stop_pid ends one process this script started: SIGTERM, then SIGKILL
# after 5 s. Once reaped, its pid is forgotten, so a pid reused by another
# process is never signalled.
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

# start_server NAME: starts the named server on a free port; sets PORT and
# PID. Names: gearflow, gearmand-t0 (--threads 0), gearmand (default).
start_server() {
	local name=$1 attempt pid port i dir="$WORK/$1.$RANDOM"
	mkdir -p "$dir"
	for ((attempt = 0; attempt < 5; attempt++)); do
		port=$(free_port)
		case $name in
		gearflow | gearflow-t0)
			local extra=(--threads -1)
			if [ "$name" = gearflow-t0 ]; then
				extra=(--threads 0)
			elif [ -n "${PPROF:-}" ]; then
				extra+=(--pprof "$PPROF")
			fi
			"$WORK/gearflow" serve -L 127.0.0.1 -p "$port" -l "$dir/log" -P "$dir/pid" --log-level warn \
				"${extra[@]}" >"$dir/out" 2>&1 &
			;;
		gearmand-t0 | gearmand)
			local args=(-L 127.0.0.1 -p "$port" -l "$dir/log" -P "$dir/pid")
			[ "$(id -u)" = 0 ] && args+=(-u root)
			[ "$name" = gearmand-t0 ] && args+=(--threads 0)
			"$GEARMAND" "${args[@]}" >"$dir/out" 2>&1 &
			;;
		esac
		pid=$!
		LIVE[$pid]=1
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			if [ "$(admin "$port" getpid 2>/dev/null)" = "OK $pid" ]; then
				PORT=$port PID=$pid SDIR=$dir
				return 0
			fi
			sleep 0.1
		done
		log "$name on port $port did not come up (attempt $attempt): $(tail -n 3 "$dir/log" 2>/dev/null)"
		stop_pid "$pid"
	done
	return 1
}

# PERF is set when perf can count the servers' system calls; each bench
# run then leaves the count in $out.syscalls.
PERF=
if command -v perf >/dev/null && perf stat -x, -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
	PERF=perf
else
	log "perf cannot count system calls here (apt-get install linux-perf; kernel.perf_event_paranoid <= 1): no system-call figures"
fi

# bench NAME ARGS...: one bench run against server NAME; prints its JSON.
# With perf, the server's system calls during the run are counted (all
# its threads) into the file named by the JSON's sibling $out.syscalls.
bench() {
	local name=$1
	shift
	local out perfpid=
	out=$(mktemp "$WORK/run.$name.XXXXXX")
	LAST_OUT=$out
	if [ -n "$PERF" ]; then
		perf stat -x, -e raw_syscalls:sys_enter -p "${SPIDS[$name]}" -o "$out.perf" 2>/dev/null &
		perfpid=$!
		sleep 0.2 # perf attaches before the load starts
	fi
	if ! "$WORK/gearflow" bench --server "127.0.0.1:${PORTS[$name]}" --server-pid "${SPIDS[$name]}" --json --timeout "$TIMEOUT" "$@" >"$out" 2>"$out.err"; then
		log "bench against $name $* failed: $(tail -n 3 "$out.err")"
	fi
	if [ -n "$perfpid" ]; then
		kill -INT "$perfpid" 2>/dev/null || true
		wait "$perfpid" 2>/dev/null || true
		awk -F, '/raw_syscalls:sys_enter/ && $1 ~ /^[0-9]+$/ {print $1}' "$out.perf" >"$out.syscalls"
	fi
	cat "$out"
}


# check_alive NAME: stops the script, with the server's last output, when
# server NAME has died (a crash under load is a result too).
check_alive() {
	local pid=${SPIDS[$1]}
	kill -0 "$pid" 2>/dev/null && [ -r "/proc/$pid/stat" ] && return 0
	log "server $1 (pid $pid) died during the run; its last output:"
	tail -n 20 "${SDIRS[$1]}/out" "${SDIRS[$1]}/log" >&2 2>/dev/null || true
	exit 1
}

# record SCENARIO SERVER METRIC VALUE; a missing value (a failed run) is
# left out of the medians.
record() {
	case $4 in "" | null) return 0 ;; esac
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$WORK/results.tsv"
}

log "building gearflow"
go build -o "$WORK/gearflow" ./cmd/gearflow

SERVERS=(gearflow gearflow-t0 gearmand-t0 gearmand)
declare -A PORTS SPIDS SDIRS
for s in "${SERVERS[@]}"; do
	start_server "$s"
	PORTS[$s]=$PORT SPIDS[$s]=$PID SDIRS[$s]=$SDIR
	log "$s: pid $PID, port $PORT"
done

# The load matrix: scenario name, then bench flags.
SCENARIOS=(
	"fg64|--mode fg --clients 4 --inflight 16 --workers 4 --payload 64 --duration $DURATION"
	"fg64k|--mode fg --clients 4 --inflight 16 --workers 4 --payload 64KiB --duration $DURATION"
	"lat|--mode fg --clients 1 --inflight 1 --workers 1 --payload 64 --duration $DURATION"
	"bg|--mode bg --clients 4 --inflight 16 --workers 4 --payload 64 --jobs $BG_JOBS"
)

: >"$WORK/results.tsv"
for ((round = 0; round < ROUNDS; round++)); do
	for sc in "${SCENARIOS[@]}"; do
		name=${sc%%|*} flags=${sc#*|}
		for ((k = 0; k < ${#SERVERS[@]}; k++)); do
			s=${SERVERS[$(((k + round) % ${#SERVERS[@]}))]}
			# shellcheck disable=SC2086 # flags are words
			bench "$s" $flags >"$WORK/last.json"
			json=$(cat "$WORK/last.json")
			check_alive "$s"
			[ -n "$json" ] || continue
			errs=$(jq '[.phases[].errors] | add' <<<"$json")
			[ "$errs" = 0 ] || log "round $round $name $s: $errs errors"
			# The server's CPU time per job: the steadiest figure on a
			# shared machine. A background job counts once (submit+drain).
			jobs=$(jq '.phases[0].jobs // 0' <<<"$json")
			[ "${jobs:-0}" -gt 0 ] && record "$name" "$s" cpu_us_per_job "$(jq "[.phases[].server_cpu_s // 0] | add * 1e6 / $jobs" <<<"$json")"
			# System calls per job, all the server's threads, over the
			# whole bench run (connects included: a few per run).
			if [ "${jobs:-0}" -gt 0 ] && [ -s "$LAST_OUT.syscalls" ]; then
				record "$name" "$s" syscalls_per_job "$(awk -v j="$jobs" '{printf "%.3f", $1 / j}' "$LAST_OUT.syscalls")"
			fi
			# What the load tool and the server used in the timed phase
			# (the drain, for bg), as bench reports it: when the two
			# together keep every core busy, the rate is the machine's.
			ph='.phases[0]'
			[ "$name" = bg ] && ph='(.phases[] | select(.name == "drain"))'
			record "$name" "$s" cores "$(jq "$ph | if .server_cpu_s == null then null else (.tool_cpu_s + .server_cpu_s) / .seconds end" <<<"$json")"
			record "$name" "$s" tool_us_per_job "$(jq "$ph | if .jobs > 0 then .tool_cpu_s * 1e6 / .jobs else null end" <<<"$json")"
			record "$name" "$s" phase_cpu_us_per_job "$(jq "$ph | if .server_cpu_s == null or .jobs == 0 then null else .server_cpu_s * 1e6 / .jobs end" <<<"$json")"
			case $name in
			fg64 | fg64k)
				record "$name" "$s" jobs_per_s "$(jq '.phases[0].jobs_per_s' <<<"$json")"
				;;
			lat)
				record "$name" "$s" p50_us "$(jq '.phases[0].latency.p50_ns / 1000' <<<"$json")"
				record "$name" "$s" p99_us "$(jq '.phases[0].latency.p99_ns / 1000' <<<"$json")"
				;;
			bg)
				record "$name" "$s" submit_per_s "$(jq '.phases[] | select(.name == "submit") | .jobs_per_s' <<<"$json")"
				record "$name" "$s" drain_per_s "$(jq '.phases[] | select(.name == "drain") | .jobs_per_s' <<<"$json")"
				;;
			esac
			log "round $((round + 1))/$ROUNDS $name $s done"
		done
	done
done

# profile_bench NAME FLAGS...: one bench run against server NAME under
# "perf record" (samples only, no call graphs: cheap enough not to move
# the figures much); records the server's CPU per job split into kernel
# time outside the payload copies, the copies (_copy_from_iter: a write
# copying into a socket; _copy_to_iter: a read copying out), and user
# space.
profile_bench() {
	local name=$1 sc=$2
	shift 2
	local out perfpid json jobs cpu kernel copies
	out=$(mktemp "$WORK/prof.$name.XXXXXX")
	perf record -F 999 -p "${SPIDS[$name]}" -o "$out.data" >/dev/null 2>&1 &
	perfpid=$!
	sleep 0.3
	json=$("$WORK/gearflow" bench --server "127.0.0.1:${PORTS[$name]}" --server-pid "${SPIDS[$name]}" --json --timeout "$TIMEOUT" "$@" 2>"$out.err") || true
	kill -INT "$perfpid" 2>/dev/null || true
	wait "$perfpid" 2>/dev/null || true
	check_alive "$name"
	jobs=$(jq '.phases[0].jobs // 0' <<<"$json" 2>/dev/null || echo 0)
	[ "${jobs:-0}" -gt 0 ] || return 0
	cpu=$(jq '.phases[0].server_cpu_s * 1e6 / .phases[0].jobs' <<<"$json")
	kernel=$(perf report -i "$out.data" --no-children --sort dso --stdio 2>/dev/null |
		awk '/\[kernel\.kallsyms\]/ {sub("%", "", $1); k += $1} END {print k + 0}')
	copies=$(perf report -i "$out.data" --no-children --sort sym --stdio 2>/dev/null |
		awk '$3 == "_copy_from_iter" || $3 == "_copy_to_iter" {sub("%", "", $1); c += $1} END {print c + 0}')
	record "$sc" "$name" kernel_share "$kernel"
	record "$sc" "$name" kernel_nocopy_us "$(awk -v c="$cpu" -v k="$kernel" -v p="$copies" 'BEGIN {print c * (k - p) / 100}')"
	record "$sc" "$name" copies_us "$(awk -v c="$cpu" -v p="$copies" 'BEGIN {print c * p / 100}')"
	record "$sc" "$name" user_us "$(awk -v c="$cpu" -v k="$kernel" 'BEGIN {print c * (100 - k) / 100}')"
	log "profile $sc $name done"
}

if [ "${PROFILE:-0}" = 1 ] && [ -n "$PERF" ]; then
	for sc in "${SCENARIOS[@]:0:2}"; do # fg64, fg64k
		name=${sc%%|*} flags=${sc#*|}
		for s in "${SERVERS[@]}"; do
			# shellcheck disable=SC2086 # flags are words
			profile_bench "$s" "$name" $flags
		done
	done
fi

# Memory: fresh processes, one at a time; the servers above stop first so
# the measured one has the machine to itself.
for s in "${SERVERS[@]}"; do
	stop_pid "${SPIDS[$s]}"
done
for s in "${SERVERS[@]}"; do
	start_server "$s"
	PORTS[$s]=$PORT SPIDS[$s]=$PID SDIRS[$s]=$SDIR
	before=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")
	json=$(bench "$s" --mode bg --clients 4 --inflight 16 --workers 0 --payload 64 --jobs "$MEM_JOBS")
	queued=$(jq '.phases[0].jobs // 0' <<<"$json")
	check_alive "$s"
	after=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")
	if [ "${queued:-0}" -gt 0 ]; then
		record mem "$s" bytes_per_job "$(((after - before) * 1024 / queued))"
		record mem "$s" rss_after_kib "$after"
	fi
	log "memory $s: VmRSS $before KiB -> $after KiB for $queued queued jobs"
	stop_pid "$PID"
done

# median SCENARIO SERVER METRIC
median() {
	awk -F'\t' -v a="$1" -v b="$2" -v c="$3" '$1 == a && $2 == b && $3 == c {print $4}' "$WORK/results.tsv" |
		sort -g | awk '{v[NR] = $1} END {if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# row LABEL SCENARIO METRIC BETTER(high|low) TARGET FORMAT
row() {
	local label=$1 sc=$2 metric=$3 better=$4 target=$5 fmt=$6
	local ours ours0 t0 t4 best ratio met
	ours=$(median "$sc" gearflow "$metric")
	ours0=$(median "$sc" gearflow-t0 "$metric")
	t0=$(median "$sc" gearmand-t0 "$metric")
	t4=$(median "$sc" gearmand "$metric")
	read -r best ratio met < <(awk -v o="$ours" -v a="$t0" -v b="$t4" -v better="$better" -v target="$target" 'BEGIN {
		if (o == "" || a == "") { print "- - -"; exit }
		best = a
		if (b != "" && ((better == "high" && b > best) || (better == "low" && b < best))) best = b
		r = (best == 0) ? 0 : o / best
		ok = (better == "high") ? (r >= target) : (r <= target)
		printf "%s %.2f %s\n", best, r, ok ? "yes" : "no"
	}')
	local goal="≥ $target×"
	[ "$better" = low ] && goal="≤ $target×"
	if [ "$target" = 0 ]; then # no target: the figure is for information
		goal="-" met="-"
	fi
	printf "| %s | %s | %s | %s | %s | %s× | %s | %s |\n" "$label" \
		"$(printf "$fmt" "${ours:-0}")" "$(printf "$fmt" "${ours0:-0}")" "$(printf "$fmt" "${t0:-0}")" "$(printf "$fmt" "${t4:-0}")" \
		"$ratio" "$goal" "$met"
}

echo
echo "gearflow serve vs gearmand $("$GEARMAND" --version 2>/dev/null | awk 'NF {print $2; exit}'), $(date -u '+%Y-%m-%d %H:%M UTC'):" \
	"$(nproc) cores ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r), $(go version | awk '{print $3}')"
echo "median of $ROUNDS rounds; throughput runs ${DURATION} each; background $BG_JOBS jobs; memory $MEM_JOBS queued jobs."
echo "ratio = gearflow (its default: a thread per core) / the better of the two gearmand settings."
echo
echo "| figure | gearflow | gearflow --threads 0 | gearmand --threads 0 | gearmand (4 threads) | ratio | target | met |"
echo "|---|---:|---:|---:|---:|---:|---:|:---:|"
row "fg echo jobs/s, 4×16 in flight, 4 workers, 64 B" fg64 jobs_per_s high 2 "%.0f"
row "fg echo jobs/s, same, 64 KiB" fg64k jobs_per_s high 1.5 "%.0f"
row "fg latency p50 µs, 1 client, 1 in flight, 1 worker" lat p50_us low 0.8 "%.1f"
row "fg latency p99 µs, same" lat p99_us low 0.8 "%.1f"
row "bg submit jobs/s, $BG_JOBS × 64 B" bg submit_per_s high 1 "%.0f"
row "bg drain jobs/s, 4 workers" bg drain_per_s high 2 "%.0f"
row "RSS bytes per queued bg job, $MEM_JOBS × 64 B" mem bytes_per_job low 0.5 "%.0f"
echo
echo "Server CPU time per job (user+system, all threads, from /proc/PID/stat; no target, lower is better):"
echo
echo "| load | gearflow | gearflow --threads 0 | gearmand --threads 0 | gearmand (4 threads) | ratio | target | met |"
echo "|---|---:|---:|---:|---:|---:|---:|:---:|"
row "fg 64 B, 4×16 in flight, µs/job" fg64 cpu_us_per_job low 0 "%.1f"
row "fg 64 KiB, µs/job" fg64k cpu_us_per_job low 0 "%.1f"
row "fg 1 in flight, µs/job" lat cpu_us_per_job low 0 "%.1f"
row "bg submit + drain, µs/job" bg cpu_us_per_job low 0 "%.1f"
row "bg drain alone, µs/job" bg phase_cpu_us_per_job low 0 "%.1f"
if [ -n "$PERF" ]; then
	echo
	echo "Server system calls per job (\`perf stat -e raw_syscalls:sys_enter -p PID\` over each bench run; lower is better):"
	echo
	echo "| load | gearflow | gearflow --threads 0 | gearmand --threads 0 | gearmand (4 threads) | ratio | target | met |"
	echo "|---|---:|---:|---:|---:|---:|---:|:---:|"
	row "fg 64 B, 4×16 in flight" fg64 syscalls_per_job low 0 "%.2f"
	row "fg 64 KiB" fg64k syscalls_per_job low 0 "%.2f"
	row "fg 1 in flight" lat syscalls_per_job low 0 "%.2f"
	row "bg submit + drain" bg syscalls_per_job low 0 "%.2f"
fi
if [ "${PROFILE:-0}" = 1 ] && [ -n "$PERF" ]; then
	echo
	echo "Where the server's CPU per job goes (one more run each under \`perf record -F 999 -p PID\`, µs/job;"
	echo "copies: _copy_from_iter + _copy_to_iter, the payload copied into and out of sockets):"
	echo
	echo "| load | gearflow | gearflow --threads 0 | gearmand --threads 0 | gearmand (4 threads) | ratio | target | met |"
	echo "|---|---:|---:|---:|---:|---:|---:|:---:|"
	row "fg 64 B, kernel share %" fg64 kernel_share low 0 "%.1f"
	row "fg 64 B, kernel outside the copies" fg64 kernel_nocopy_us low 0 "%.1f"
	row "fg 64 B, copies" fg64 copies_us low 0 "%.1f"
	row "fg 64 B, user space" fg64 user_us low 0 "%.1f"
	row "fg 64 KiB, kernel share %" fg64k kernel_share low 0 "%.1f"
	row "fg 64 KiB, kernel outside the copies" fg64k kernel_nocopy_us low 0 "%.1f"
	row "fg 64 KiB, copies" fg64k copies_us low 0 "%.1f"
	row "fg 64 KiB, user space" fg64k user_us low 0 "%.1f"
fi
echo
echo "The load tool beside each server: cores the tool and the server kept busy together (CPU time ÷ wall"
echo "time; this machine has $(nproc)), and the tool's own CPU per job (from \`gearflow bench --server-pid\`):"
echo
echo "| load | gearflow | gearflow --threads 0 | gearmand --threads 0 | gearmand (4 threads) | ratio | target | met |"
echo "|---|---:|---:|---:|---:|---:|---:|:---:|"
row "fg 64 B, cores busy" fg64 cores high 0 "%.2f"
row "fg 64 KiB, cores busy" fg64k cores high 0 "%.2f"
row "fg 1 in flight, cores busy" lat cores high 0 "%.2f"
row "bg drain, cores busy" bg cores high 0 "%.2f"
row "fg 64 B, load tool µs/job" fg64 tool_us_per_job low 0 "%.1f"
row "fg 64 KiB, load tool µs/job" fg64k tool_us_per_job low 0 "%.1f"
row "fg 1 in flight, load tool µs/job" lat tool_us_per_job low 0 "%.1f"
row "bg drain, load tool µs/job" bg tool_us_per_job low 0 "%.1f"
