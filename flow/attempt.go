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
		Combine: sr.st.Combine, Input: sr.chunks[task].String(), Params: sr.st.Params}
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
