#!/usr/bin/env bash
# run.sh: the durable queue's log (server/store.go, as it is in this tree)
# against bbolt, at the engine level: 16 goroutines each putting a job
# record and waiting until it is synced, with group commit on both (the
# log's writer; bbolt's DB.Batch at several settings), with and without
# deleting the job acknowledged before. Reports jobs/s, CPU µs per job,
# bytes written to the disk per job (/proc/self/io) and jobs per commit.
#
# This folder is a module of its own, so bbolt stays out of gearflow's
# go.mod; the log's files are copied in beside the benchmark.
#
# Usage: internal/loadgen/enginebench/run.sh   (TMPDIR: where the files go;
# COUNT (5) rounds, N (5000) jobs per run)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/enginebench.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$here/go.mod" "$here/go.sum" "$here/engine_test.go" "$here/stub.go" "$work/"
for f in store.go store_lock_unix.go; do
	sed 's/^package server$/package logstore/' "$repo/server/$f" >"$work/$f"
done

cd "$work"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(df -T . | awk 'NR == 2 {print $2 " on " $1}')"
go test -run '^$' -bench 'Engine/(log|bbolt-batch-default|bbolt-batch-1ms-16|bbolt-batch-200us-16)/' \
	-benchtime "${N:-5000}x" -count "${COUNT:-5}" .
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
