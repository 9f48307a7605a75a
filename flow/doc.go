// Package flow runs map/reduce pipelines as Gearman jobs.
//
// A pipeline file (package spec) names stages; each stage names a Go
// function registered in a Registry, or a function any Gearman worker
// serves. Run plans the run, submits each stage's tasks as jobs through
// a runtime.Client, collects their streamed output, shuffles it by key,
// runs the reducers as jobs too, and writes the result.
//
// # Records, stages, tasks and attempts
//
// A Record is a key (string) and a value (any msgpack-encodable value).
// A MapFunc gets one input record and emits zero or more; a ReduceFunc
// gets a key with all its values and emits records; the same ReduceFunc
// may run map-side as a combiner, on a few values of a key at a time as
// they gather. Registry.Sum registers SumInt64, whose combiner keeps a
// running sum per key. A TaskFunc gets a whole input chunk. An input
// record says which of its stage's inputs it is of (Record.Source) and
// where it was read (Record.Pos: file, line, offset). A CoGroupFunc
// (Registry.CoGroup) serves a reduce stage that needs several stages: it
// gets each key's values grouped by stage, and Join makes inner and left
// joins of it.
//
// A map function's error for one record fails its task, naming the
// record's file and line, unless the stage's skip_bad_records lets the
// task skip it: the record then goes to the dead letter. An error
// wrapped with Permanent is not retried.
//
// A stage is one map (optionally combined and partitioned by key hash)
// or one reduce over the partitions of the stage it needs. Stages run as
// soon as the stages they need are done.
//
// A task is one Gearman job: a chunk of input records for a map, a
// partition (or a key range of it) for a reduce. Its unique id is
// "<run>:<stage>:<task>", so a resumed run re-attaches to a job still
// running. docs/TASKFORMAT.md documents the payload, so a worker in any
// language can serve a stage.
//
// An attempt is one submission of a task. A failed, timed-out or lost
// attempt is retried with backoff up to the stage's limit; a straggler
// near the end of a stage gets a backup attempt. Each attempt collects
// its WORK_DATA on its own (in memory, or in a file past 1 MiB), which
// becomes the task's output only when that attempt completes first:
// retries and backups never double-count.
//
// # Counters and events
//
// A function adds to named counters with Count(ctx, "bad_dates", 1), as
// with Hadoop's user counters. An attempt's counters travel with its
// result, and only the winning attempt's reach the stage's totals:
// StageResult.Counters, the events, result.json and the journal (so a
// resumed run keeps them). Options.OnEvent receives the run's events:
// stage and task progress (task_done with the attempt, its duration and
// its worker), the shuffle's, and warnings (functions no worker serves,
// tasks much too small or too large). Events and Result are snake_case
// in JSON, with durations in float seconds.
//
// # Runs and the journal
//
// Every run has an id (a UUID) and a directory under Options.StateDir
// (DefaultStateDir when empty) holding its plan and a journal of
// completed tasks. With storage the journal names the files each task's
// winning attempt wrote there. Without, the coordinator keeps the
// outputs itself: a small output is appended to its stage's pack file,
// the journal line giving its place and checksum; a large one is a file
// of its own, renamed into place. Options.Resume with the run's id
// redoes only what had not completed and been journaled, or whose
// packed bytes do not check out. A journal cut short by a crash is cut
// back to its last whole line; a journal damaged elsewhere stops the
// resume with ErrCorruptJournal, naming the file and line.
//
// # Caveats
//
// A reduce task holds all values of one key in memory; the shuffle
// itself spills to disk beyond Options.MemoryBudget. Output of a reduce
// stage is sorted by key; output of a map stage is in input order.
package flow
