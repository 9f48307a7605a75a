package flow

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gearflow/gearflow/flow/spec"
)

// fakeStage records what a schedule does with its attempts.
type fakeStage struct {
	mu        sync.Mutex
	started   map[int][]time.Time // task -> start time of each attempt
	committed map[int]int         // task -> winning attempt
	discarded int
}

func newFakeStage() *fakeStage {
	return &fakeStage{started: map[int][]time.Time{}, committed: map[int]int{}}
}

// attempt returns an attemptFunc whose attempt of task runs for
// dur(task, attempt) and then fails with the error fail returns, or
// succeeds when it returns nil.
func (f *fakeStage) attempt(dur func(task, attempt int) time.Duration, fail func(task, attempt int) error) attemptFunc {
	return func(ctx context.Context, task, attempt int) attemptOutcome {
		f.mu.Lock()
		f.started[task] = append(f.started[task], time.Now())
		f.mu.Unlock()
		select {
		case <-time.After(dur(task, attempt)):
		case <-ctx.Done():
			return attemptOutcome{err: ctx.Err(), discard: f.discard}
		}
		if err := fail(task, attempt); err != nil {
			return attemptOutcome{err: err, discard: f.discard}
		}
		return attemptOutcome{
			commit: func() error {
				f.mu.Lock()
				defer f.mu.Unlock()
				if _, dup := f.committed[task]; dup {
					return errors.New("task committed twice")
				}
				f.committed[task] = attempt
				return nil
			},
			discard: f.discard,
		}
	}
}

func (f *fakeStage) discard() {
	f.mu.Lock()
	f.discarded++
	f.mu.Unlock()
}

func retrySpec(max int, initial time.Duration) spec.Retry {
	return spec.Retry{MaxAttempts: max, Backoff: spec.BackoffExponential, Initial: initial, Max: 30 * time.Second}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	r := spec.Retry{Initial: time.Second, Max: 5 * time.Second}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := backoff(r, i+1, 0); got != w {
			t.Errorf("backoff after %d failures = %v, want %v", i+1, got, w)
		}
		// With jitter, up to that share of the wait is taken off.
		lo := w - time.Duration(float64(w)*retryJitter)
		for range 20 {
			if got := backoff(r, i+1, retryJitter); got < lo || got > w {
				t.Errorf("backoff after %d failures with jitter = %v, want in [%v, %v]", i+1, got, lo, w)
			}
		}
	}
	r.Backoff = spec.BackoffFixed
	if got := backoff(r, 4, 0); got != time.Second {
		t.Errorf("fixed backoff = %v, want 1s", got)
	}
}

func TestScheduleRetriesWithBackoff(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeStage()
		s := &schedule{
			tasks: []int{0, 1, 2}, total: 3, concurrency: 2, retry: retrySpec(3, time.Second),
			run: f.attempt(func(int, int) time.Duration { return 100 * time.Millisecond },
				func(task, attempt int) error {
					if task == 1 && attempt < 3 {
						return errors.New("flaky")
					}
					return nil
				}),
		}
		failed, err := s.execute(t.Context())
		if err != nil || len(failed) != 0 {
			t.Fatalf("execute = %v, %v", failed, err)
		}
		if f.committed[1] != 3 || len(f.committed) != 3 {
			t.Errorf("committed %v, want task 1 by attempt 3", f.committed)
		}
		st := f.started[1]
		// Attempt 2 starts 1s after attempt 1 fails, attempt 3 2s after attempt 2 fails.
		if got := st[1].Sub(st[0]); got != 1100*time.Millisecond {
			t.Errorf("first retry after %v, want 1.1s", got)
		}
		if got := st[2].Sub(st[1]); got != 2100*time.Millisecond {
			t.Errorf("second retry after %v, want 2.1s", got)
		}
		if f.discarded != 2 {
			t.Errorf("discarded %d attempts, want 2", f.discarded)
		}
	})
}

func TestScheduleTimeoutThenRetry(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeStage()
		var events []schedEvent
		s := &schedule{
			tasks: []int{0}, total: 1, concurrency: 1, retry: retrySpec(2, time.Second), timeout: 5 * time.Second,
			run: f.attempt(func(_, attempt int) time.Duration {
				if attempt == 1 {
					return time.Hour // hangs until the timeout
				}
				return time.Second
			}, func(int, int) error { return nil }),
			observe: func(e schedEvent) { events = append(events, e) },
		}
		start := time.Now()
		if _, err := s.execute(t.Context()); err != nil {
			t.Fatal(err)
		}
		if f.committed[0] != 2 {
			t.Errorf("committed %v, want attempt 2", f.committed)
		}
		if got := time.Since(start); got != 7*time.Second {
			t.Errorf("took %v, want 5s timeout + 1s backoff + 1s run", got)
		}
		if len(events) < 2 || events[1].kind != schedRetry || events[1].err == nil {
			t.Errorf("events %+v: want a retry with the timeout error", events)
		}
	})
}

func TestScheduleSpeculativeBackup(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeStage()
		s := &schedule{
			tasks: []int{0, 1, 2, 3}, total: 4, concurrency: 4, retry: retrySpec(3, time.Second), speculative: true,
			run: f.attempt(func(task, attempt int) time.Duration {
				if task == 3 && attempt == 1 {
					return time.Hour // a straggler
				}
				return 4 * time.Second
			}, func(int, int) error { return nil }),
		}
		start := time.Now()
		if _, err := s.execute(t.Context()); err != nil {
			t.Fatal(err)
		}
		if f.committed[3] != 2 {
			t.Errorf("straggler won by attempt %d, want the backup (2)", f.committed[3])
		}
		// The backup starts when the straggler has run 2x the median (8s),
		// and takes 4s; the straggler is cancelled and its data discarded.
		if got := time.Since(start); got != 12*time.Second {
			t.Errorf("stage took %v, want 12s", got)
		}
		if f.discarded != 1 {
			t.Errorf("discarded %d, want the straggler's attempt", f.discarded)
		}
	})
}

func TestScheduleFailurePolicies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		policy     spec.FailurePolicy
		wantErr    bool
		wantFailed int
	}{
		{"fail_fast", spec.FailurePolicy{Mode: spec.FailFast}, true, 1},
		{"continue", spec.FailurePolicy{Mode: spec.Continue}, false, 2},
		{"tolerate 50%", spec.FailurePolicy{Mode: spec.Tolerate, Fraction: 0.5}, false, 2},
		{"tolerate 1", spec.FailurePolicy{Mode: spec.Tolerate, Count: 1}, true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				f := newFakeStage()
				s := &schedule{
					tasks: []int{0, 1, 2, 3}, total: 4, concurrency: 1, retry: retrySpec(2, time.Second), policy: tt.policy,
					run: f.attempt(func(int, int) time.Duration { return time.Second }, func(task, _ int) error {
						if task%2 == 0 {
							return errors.New("always fails")
						}
						return nil
					}),
				}
				failed, err := s.execute(t.Context())
				if (err != nil) != tt.wantErr || len(failed) != tt.wantFailed {
					t.Errorf("execute = %d failed, err %v; want %d failed, error %v", len(failed), err, tt.wantFailed, tt.wantErr)
				}
				for _, fl := range failed {
					if fl.attempts != 2 || fl.err == nil {
						t.Errorf("failure %+v: want 2 attempts and the last error", fl)
					}
				}
			})
		})
	}
}

// TestScheduleBackupNeedsAFreeSlot: with as many attempts in flight as
// the workers have slots, a straggler gets no backup, which would only
// queue behind it; with a slot free it gets one.
func TestScheduleBackupNeedsAFreeSlot(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		slots      int
		wantWinner int
	}{{1, 1}, {2, 2}} {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeStage()
			s := &schedule{
				tasks: []int{0, 1, 2, 3}, total: 4, concurrency: 4, retry: retrySpec(3, time.Second), speculative: true,
				backupSlots: tt.slots,
				run: f.attempt(func(task, attempt int) time.Duration {
					if task == 3 && attempt == 1 {
						return time.Minute // a straggler
					}
					return 4 * time.Second
				}, func(int, int) error { return nil }),
			}
			if _, err := s.execute(t.Context()); err != nil {
				t.Fatal(err)
			}
			if f.committed[3] != tt.wantWinner || len(f.started[3]) != tt.wantWinner {
				t.Errorf("%d slots: task 3 ran %d attempts, won by %d; want %d", tt.slots, len(f.started[3]), f.committed[3], tt.wantWinner)
			}
		})
	}
}
