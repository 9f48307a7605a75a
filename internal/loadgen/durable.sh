#!/usr/bin/env bash
# durable.sh: durable background submits acknowledged per second, in one
# run on this machine, with the same load tool ("gearflow bench"):
# "gearflow serve --data-dir" against gearmand with its libsqlite3 queue.
#
# Each run starts the server afresh on files of its own, has CLIENTS
# clients submit JOBS background jobs, each waiting for its JOB_CREATED
# before the next (--inflight 1), with no worker, each job with a unique
# id of its own (--unique: gearmand's sqlite queue keeps one job per
# empty unique, as libgearman's clients avoid with a UUID); then kills
# the server with SIGKILL, starts it again on the same files and counts
# the jobs queued: every acknowledged job must be there ("lost" is the
# shortfall).
# The order of the servers rotates every round; the median of ROUNDS
# rounds is printed.
#
# Only processes this script started are stopped, by their pid.
#
# Usage: internal/loadgen/durable.sh           (from anywhere in the repo)
# Knobs (environment): ROUNDS (3), JOBS (20000), CLIENTS (16), PAYLOAD (64),
# GEARMAND (/usr/sbin/gearmand), TMPDIR (where the queues are written),
# KEEP=1 keeps the work directory.
set -euo pipefail

cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/go/bin"
# shellcheck source=ports.sh
. internal/loadgen/ports.sh

ROUNDS=${ROUNDS:-3}
JOBS=${JOBS:-20000}
CLIENTS=${CLIENTS:-16}
PAYLOAD=${PAYLOAD:-64}
GEARMAND=${GEARMAND:-/usr/sbin/gearmand}
FN=durable_bench

for tool in jq go "$GEARMAND"; do
	command -v "$tool" >/dev/null || {
		echo "durable.sh: $tool not found (apt-get install jq gearman-job-server)" >&2
		exit 1
	}
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gearflow-durable.XXXXXX")
PID=

cleanup() {
	[ -n "$PID" ] && stop "$PID" KILL
	if [ "${KEEP:-0}" = 1 ]; then
		echo "durable.sh: results kept in $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "durable.sh: $*" >&2; }

# stop PID SIGNAL: signals one process this script started and reaps it.
stop() {
	kill "-$2" "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	PID=
}

# start NAME DIR: starts server NAME keeping its queue in DIR, on a free
# port (PORT), and waits until it answers getpid with its pid (PID).
start() {
	local name=$1 dir=$2 attempt port i
	mkdir -p "$dir"
	for ((attempt = 0; attempt < 5; attempt++)); do
		port=$(free_port)
		case $name in
		gearflow)
			"$WORK/gearflow" serve -L 127.0.0.1 -p "$port" --data-dir "$dir/data" --log-level warn \
				-l "$dir/log" >>"$dir/out" 2>&1 &
			;;
		gearmand-sqlite)
			local args=(-L 127.0.0.1 -p "$port" -l "$dir/log" -P "$dir/pid" -q libsqlite3 --libsqlite3-db "$dir/queue.db")
			[ "$(id -u)" = 0 ] && args+=(-u root)
			"$GEARMAND" "${args[@]}" >>"$dir/out" 2>&1 &
			;;
		esac
		PID=$!
		for ((i = 0; i < 600; i++)); do # a replay of many jobs takes a while
			kill -0 "$PID" 2>/dev/null || break
			if [ "$(admin "$port" getpid 2>/dev/null)" = "OK $PID" ]; then
				PORT=$port
				return 0
			fi
			sleep 0.1
		done
		log "$name on port $port did not come up (attempt $attempt): $(tail -q -n 3 "$dir/out" "$dir/log" 2>/dev/null)"
		stop "$PID" KILL
	done
	return 1
}

# queued PORT: jobs queued for FN, from the admin status line.
queued() {
	local line
	line=$(admin "$1" status) || return 1
	case $line in
	"$FN"$'\t'*) awk -F'\t' '{print $2}' <<<"$line" ;;
	*) echo 0 ;;
	esac
}

log "building gearflow"
go build -o "$WORK/gearflow" ./cmd/gearflow

LOAD0=$(cut -d" " -f1-3 /proc/loadavg)
SERVERS=(gearflow gearmand-sqlite)
: >"$WORK/results.tsv"
for ((round = 0; round < ROUNDS; round++)); do
	for ((k = 0; k < ${#SERVERS[@]}; k++)); do
		s=${SERVERS[$(((k + round) % ${#SERVERS[@]}))]}
		dir="$WORK/$s.$round"
		start "$s" "$dir"
		json=$("$WORK/gearflow" bench --server "127.0.0.1:$PORT" --mode bg --function "$FN" --unique \
			--clients "$CLIENTS" --inflight 1 --workers 0 --payload "$PAYLOAD" --jobs "$JOBS" --json --timeout 10m)
		acked=$(jq '.phases[0].jobs' <<<"$json")
		rate=$(jq '.phases[0].jobs_per_s' <<<"$json")
		errs=$(jq '.phases[0].errors' <<<"$json")
		stop "$PID" KILL
		start "$s" "$dir"
		back=$(queued "$PORT")
		stop "$PID" KILL
		lost=$((acked > back ? acked - back : 0))
		printf '%s\t%s\t%s\t%s\t%s\n' "$s" "$rate" "$acked" "$back" "$lost" >>"$WORK/results.tsv"
		log "round $((round + 1))/$ROUNDS $s: $rate acknowledged/s, $acked acknowledged, $errs errors, $back queued after kill -9 and restart, $lost lost"
	done
done

# median SERVER COLUMN
median() {
	awk -F'\t' -v s="$1" -v c="$2" '$1 == s {print $c}' "$WORK/results.tsv" | sort -g |
		awk '{v[NR] = $1} END {if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
total() { awk -F'\t' -v s="$1" -v c="$2" '$1 == s {t += $c} END {print t + 0}' "$WORK/results.tsv"; }
all() { awk -F'\t' -v s="$1" '$1 == s {printf "%s%.0f", sep, $2; sep = ", "}' "$WORK/results.tsv"; }

ours=$(median gearflow 2)
theirs=$(median gearmand-sqlite 2)
echo
echo "durable background submits, gearflow serve --data-dir vs gearmand $("$GEARMAND" --version 2>/dev/null | awk 'NF {print $2; exit}') -q libsqlite3, $(date -u '+%Y-%m-%d %H:%M UTC'):" \
	"$(nproc) cores ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r), $(go version | awk '{print $3}'),"
echo "queues on $(df -T "$WORK" | awk 'NR == 2 {print $2 " (" $1 ")"}'), load average before the run: $LOAD0."
echo "$CLIENTS clients, each waiting for its JOB_CREATED (--inflight 1), $JOBS jobs of $PAYLOAD B per run, each with a unique id of its own, no worker; median of $ROUNDS rounds."
echo
echo "| server | acknowledged submits/s (median) | each round | acknowledged | queued after kill -9 + restart | lost |"
echo "|---|---:|---|---:|---:|---:|"
for s in "${SERVERS[@]}"; do
	printf '| %s | %.0f | %s | %s | %s | %s |\n' "$s" "$(median "$s" 2)" "$(all "$s")" "$(total "$s" 3)" "$(total "$s" 4)" "$(total "$s" 5)"
done
awk -v o="$ours" -v t="$theirs" 'BEGIN {if (t > 0) printf "\nratio: %.1f× (target ≥ 10×)\n", o / t}'
