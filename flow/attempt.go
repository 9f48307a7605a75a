package flow

import (
	"context"
	"errors"
	"fmt"

	"github.com/gearflow/gearflow/flow/spec"
	"github.com/gearflow/gearflow/runtime"
)

// What both data paths share about an attempt: its payload header, its
// job's priority, and telling a lost job server from a failed task.

// header returns the payload header of an attempt of a task of sr.
func (c *coordinator) header(sr *stageRun, task, attempt int) taskHeader {
	return taskHeader{Run: c.run, Stage: sr.st.Name, Task: task, Attempt: attempt, Kind: taskKindOf(sr.st.Kind),
		Combine: sr.st.Combine, Input: sr.chunks[task].String(), Params: sr.st.Params,
		Source: sr.chunks[task].Source, SkipBad: skipBadOf(sr.st)}
}

// taskKindOf returns the kind of task a stage of kind k runs.
func taskKindOf(k spec.Kind) TaskKind {
	switch k {
	case spec.KindMap:
		return TaskMap
	case spec.KindReduce:
		return TaskReduce
	case spec.KindTask:
		return TaskChunk
	}
	return 0
}

// lostServer marks err with errAttemptLost when it says the attempt's job
// server was lost or unreachable, not that the job failed or ctx ended.
func lostServer(ctx context.Context, err error) error {
	if ctx.Err() == nil && (errors.Is(err, runtime.ErrConnectionLost) || errors.Is(err, runtime.ErrNoServers)) {
		return fmt.Errorf("%w: %w", errAttemptLost, err)
	}
	return err
}

func jobPriority(p spec.Priority) runtime.Priority {
	switch p {
	case spec.PriorityHigh:
		return runtime.PriorityHigh
	case spec.PriorityLow:
		return runtime.PriorityLow
	}
	return runtime.PriorityNormal
}

// followJob reads an attempt's job events to their end: WORK_DATA goes to
// data, WORK_COMPLETE to complete, WORK_STATUS to the stage's progress.
// It returns the first error data or complete returned, else what ended
// the job if it did not complete: its WORK_FAIL (with the last
// WORK_WARNING), its WORK_EXCEPTION, or the loss of its server
// (errAttemptLost).
func (c *coordinator) followJob(ctx context.Context, sr *stageRun, task int, t *runtime.Task,
	data, complete func([]byte) error) error {
	var warning string
	var jobErr error
	keep := func(err error) {
		if jobErr == nil {
			jobErr = err
		}
	}
	for ev := range t.Events() {
		attemptStarted(ctx) // a worker has the job
		switch ev.Kind {
		case runtime.EventData:
			if err := data(ev.Data); err != nil {
				keep(err)
			}
		case runtime.EventWarning:
			warning = string(ev.Data)
		case runtime.EventStatus:
			c.progress(sr, task, ev.Numerator)
		case runtime.EventComplete:
			if err := complete(ev.Data); err != nil {
				keep(err)
			}
		case runtime.EventFail:
			if warning != "" {
				keep(fmt.Errorf("job failed (WORK_FAIL): %s", warning))
			} else {
				// gearmand and ours send it for a job whose workers
				// were lost too many times (--job-retries) as well.
				keep(errors.New("job failed (WORK_FAIL: the worker failed it, or the job server gave up on it after losing its workers too often)"))
			}
		case runtime.EventException:
			keep(fmt.Errorf("%s", ev.Data))
		case runtime.EventError:
			keep(lostServer(ctx, ev.Err))
		}
	}
	return jobErr
}

// submit submits an attempt's job. A job server that cannot be reached
// is reported as errAttemptLost (see lostServer).
func (c *coordinator) submit(ctx context.Context, sr *stageRun, task, attempt int, payload []byte) (*runtime.Task, error) {
	st := sr.st
	job := runtime.Job{Function: st.Function, Payload: payload, Unique: uniqueID(c.run, st.Name, task, attempt),
		Priority: jobPriority(st.Priority)}
	t, err := c.client.Submit(ctx, job)
	if err != nil {
		return nil, lostServer(ctx, err)
	}
	return t, nil
}

// tallyCommitted adds a committed attempt to its stage: its records, its
// counters and, with storage, its files. Only the winning attempt's
// commit calls it, so nothing is counted twice.
func (c *coordinator) tallyCommitted(sr *stageRun, task int, s *Summary) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(sr.running, task)
	if s.Files != nil { // only a run with storage has files, and sr.files
		sr.files[task] = s.Files
	}
	sr.outCounts[task] = s.RecordsOut
	sr.res.RecordsIn += s.RecordsIn
	sr.res.RecordsOut += s.RecordsOut
	addCounters(&sr.res.Counters, s.Counters)
}

// failedAttempt is the outcome of an attempt that failed with err: the
// task's progress is forgotten, and discard drops what it wrote.
func (c *coordinator) failedAttempt(sr *stageRun, task int, err error, discard func()) attemptOutcome {
	c.mu.Lock()
	delete(sr.running, task)
	c.mu.Unlock()
	return attemptOutcome{err: err, discard: discard}
}

// ErrWorkerLost is wrapped by the error of an attempt whose worker went
// away mid-task: the job server gave the job to another worker, which
// ran it again from the start, so the attempt's stream holds the lost
// worker's partial output too and is thrown away (the task runs again).
var ErrWorkerLost = errors.New("flow: the worker running the task was lost")

// streamMismatch is the error of an attempt whose received records and
// batches do not add up to its summary's. More than the summary says
// means the job server re-ran the job after losing its worker; fewer,
// that this coordinator joined a job already under way.
func streamMismatch(got, batches int64, s Summary) error {
	if got > s.RecordsOut || batches > s.Batches {
		return fmt.Errorf("%w: the job server ran the task again on another worker, whose output followed the lost one's partial output (received %d records in %d batches; the worker that completed sent %d in %d)",
			ErrWorkerLost, got, batches, s.RecordsOut, s.Batches)
	}
	return fmt.Errorf("incomplete stream: the coordinator joined a job that had already sent part of its output (received %d records in %d batches; the worker sent %d in %d)",
		got, batches, s.RecordsOut, s.Batches)
}
