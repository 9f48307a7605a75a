package flow

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gearflow/gearflow/flow/spec"
	"github.com/gearflow/gearflow/runtime"
)

// TestScheduleLostAttemptsAreNotFailures: attempts lost with their job
// server run again, the first at once and later ones after the stage's
// backoff, without using up the task's single attempt; a task lost more
// than maxLost times fails.
func TestScheduleLostAttemptsAreNotFailures(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeStage()
		var events []schedEvent
		lost := fmt.Errorf("%w: %w", errAttemptLost, runtime.ErrConnectionLost)
		s := &schedule{
			tasks: []int{0, 1, 2}, total: 3, concurrency: 3, retry: retrySpec(1, time.Second),
			run: f.attempt(func(int, int) time.Duration { return 100 * time.Millisecond },
				func(task, attempt int) error {
					switch {
					case task == 1 && attempt <= 3:
						return lost
					case task == 2:
						return lost // for ever
					}
					return nil
				}),
			policy:  spec.FailurePolicy{Mode: spec.Continue},
			observe: func(e schedEvent) { events = append(events, e) },
		}
		failed, err := s.execute(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if f.committed[0] != 1 || f.committed[1] != 4 {
			t.Errorf("committed %v, want task 0 by attempt 1 and task 1 by attempt 4", f.committed)
		}
		st := f.started[1]
		// At once after the first loss, then 1s and 2s of backoff.
		for i, want := range []time.Duration{100 * time.Millisecond, 1100 * time.Millisecond, 2100 * time.Millisecond} {
			if got := st[i+1].Sub(st[i]); got != want {
				t.Errorf("attempt %d of task 1 started %v after attempt %d, want %v", i+2, got, i+1, want)
			}
		}
		if len(failed) != 1 || failed[0].task != 2 || failed[0].attempts != maxLost+1 || !errors.Is(failed[0].err, runtime.ErrConnectionLost) {
			t.Errorf("failed %+v: want task 2 after %d lost attempts", failed, maxLost+1)
		}
		kinds := map[schedEventKind]int{}
		for _, e := range events {
			kinds[e.kind]++
			if e.kind == schedRetry {
				t.Errorf("a lost attempt was retried as a failure: %+v", e)
			}
		}
		if kinds[schedLost] != 3+maxLost || kinds[schedFailed] != 1 || kinds[schedDone] != 2 {
			t.Errorf("events %v: want %d lost, 1 failed, 2 done", kinds, 3+maxLost)
		}
	})
}

// TestLostServerClassification: only a lost or unreachable server marks
// an attempt lost, and not once the attempt's context is done.
func TestLostServerClassification(t *testing.T) {
	t.Parallel()
	live := context.Background()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		ctx  context.Context
		err  error
		lost bool
	}{
		{live, fmt.Errorf("x: %w", runtime.ErrConnectionLost), true},
		{live, fmt.Errorf("%w: all down", runtime.ErrNoServers), true},
		{done, fmt.Errorf("x: %w", runtime.ErrConnectionLost), false},
		{live, &runtime.JobError{Kind: runtime.EventException, Data: []byte("boom")}, false},
		{live, runtime.ErrClosed, false},
		{live, context.DeadlineExceeded, false},
	}
	for _, tt := range tests {
		got := lostServer(tt.ctx, tt.err)
		if errors.Is(got, errAttemptLost) != tt.lost || !errors.Is(got, tt.err) {
			t.Errorf("lostServer(%v) = %v: want lost %v, wrapping the error", tt.err, got, tt.lost)
		}
	}
}
