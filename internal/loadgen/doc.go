// Package loadgen is a load generator for any Gearman job server, the
// engine behind "gearflow bench".
//
// It speaks the wire protocol through package protocol directly, not
// through the client runtime, so a run costs every server the same: its
// workers and clients are plain Gearman peers on raw connections.
//
//   - A worker sends CAN_DO, then loops GRAB_JOB_UNIQ, and answers each
//     JOB_ASSIGN_UNIQ with WORK_COMPLETE carrying the job's payload back
//     (written together with its next GRAB_JOB_UNIQ). On NO_JOB it sends
//     PRE_SLEEP and waits for NOOP.
//   - A client keeps Config.InFlight jobs submitted at once on its
//     connection: it pipelines SUBMIT_JOB, matches each JOB_CREATED to the
//     oldest unanswered submission (servers answer in order), and submits
//     the next job as each WORK_COMPLETE arrives.
//
// Run measures one of two modes. ModeForeground times each job from its
// SUBMIT_JOB to its WORK_COMPLETE. ModeBackground first submits every job
// with SUBMIT_JOB_BG as fast as the server acknowledges them (the submit
// phase; latency is SUBMIT_JOB_BG to JOB_CREATED), then starts the
// workers and times how fast they empty the queue (the drain phase).
// With no workers, the jobs stay queued: that is how memory per queued
// job is measured.
//
// Latencies go into a Histogram of fixed size, so a run of any length
// uses bounded memory. Every run ends: after its job count or duration,
// and in any case at Config.Timeout, when it reports what it has.
//
// The script compare.sh beside this package runs the same matrix of
// loads against gearmand and "gearflow serve" in alternation and prints
// the figures side by side; docs/BENCHMARKS.md holds its latest output.
package loadgen
