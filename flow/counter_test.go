package flow_test

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearflow/gearflow/examples/wordcount"
	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/runtime"
	"github.com/gearflow/gearflow/server"
)

// junk is what a losing attempt adds to a counter before it fails or
// hangs: counted twice, it would show in the totals at once.
const junk = 1000

// counterRegistry returns wordcount's functions counting "lines" (one
// per map input record) and "keys" (one per reduce call). Attempt 1 of
// map task 1 counts junk and fails; attempt 1 of map task 2 counts junk
// and waits until release is closed (once its backup won), then goes on
// and completes too. counted sums every Count call of every attempt.
func counterRegistry(release <-chan struct{}, counted *atomic.Int64) *flow.Registry {
	reg := flow.NewRegistry()
	reg.Map("wc.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		info, _ := flow.InfoFrom(ctx)
		if info.Attempt == 1 && (info.Task == 1 || info.Task == 2) {
			flow.Count(ctx, "lines", junk)
			counted.Add(junk)
			if info.Task == 1 {
				return errors.New("first attempt fails after counting")
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-release:
			}
		}
		flow.Count(ctx, "lines", 1)
		counted.Add(1)
		return wordcount.Map(ctx, rec, emit)
	})
	reg.Reduce("wc.sum", func(ctx context.Context, key string, values iter.Seq[any], emit flow.Emit) error {
		if _, ok := flow.InfoFrom(ctx); ok {
			if info, _ := flow.InfoFrom(ctx); info.Stage == "total" {
				flow.Count(ctx, "keys", 1)
				counted.Add(1)
			}
		}
		return wordcount.Sum(ctx, key, values, emit)
	})
	return reg
}

// TestCountersWinningAttemptOnly: counters add up to the records of the
// winning attempts, across a retry (an attempt that counted and failed)
// and a backup (a straggler that counted and was beaten), embedded and
// distributed (our server and gearmand), with and without storage; the
// totals reach task_done and stage_done events, Result, result.json and
// StatRun.
func TestCountersWinningAttemptOnly(t *testing.T) {
	t.Parallel()
	modes := []struct {
		name        string
		distributed bool
		storage     string
		gearmand    bool
	}{
		{"embedded", false, "", false},
		{"distributed", true, flow.StorageNone, false},
		{"distributed storage", true, "file", false},
		{"distributed gearmand", true, flow.StorageNone, true},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			p, out := loadWordcount(t, map[string]string{"lines": "4"})
			p.Stages[0].Speculative = true
			p.Stages[0].Retry.Initial = 10 * time.Millisecond
			release := make(chan struct{})
			var releaseOnce sync.Once
			free := func() { releaseOnce.Do(func() { close(release) }) }
			defer free()
			var counted atomic.Int64
			reg := counterRegistry(release, &counted)
			state := t.TempDir()
			opts := flow.Options{StateDir: state, Workers: 3, Logger: testLogger(t), SpeculateAfter: 200 * time.Millisecond}
			if m.distributed {
				addr := ""
				if m.gearmand {
					addr = gearmandtest.Start(t).Addr
				} else {
					addr = servertest.Start(t, server.Config{}).Addr
				}
				w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: []string{addr}, Concurrency: 4,
					ClientID: flow.WorkerClientID("counting-worker", 4)})
				if err != nil {
					t.Fatal(err)
				}
				reg.SetWorkerID("counting-worker")
				reg.Register(w)
				wctx, stop := context.WithCancel(t.Context())
				done := make(chan struct{})
				go func() { w.Run(wctx); close(done) }()
				defer func() { stop(); <-done }()
				opts.Servers, opts.Workers, opts.Storage = []string{addr}, -1, m.storage
				if m.storage == "file" {
					opts.Storage = "file://" + filepath.Join(t.TempDir(), "store")
				}
			}
			var mu sync.Mutex
			var taskDone []flow.Event
			stageDone := map[string]flow.Event{}
			opts.OnEvent = func(e flow.Event) {
				mu.Lock()
				defer mu.Unlock()
				switch e.Kind {
				case flow.EventTaskDone:
					taskDone = append(taskDone, e)
					if e.Stage == "count" && e.Task == 2 {
						free() // the straggler completes after its backup won
					}
				case flow.EventStageDone:
					stageDone[e.Stage] = e
				}
			}
			res, err := flow.Run(t.Context(), p, reg, opts)
			if err != nil {
				t.Fatal(err)
			}
			checkOutput(t, out, wantWordcount(t))
			count, total := res.Stages[0], res.Stages[1]
			if count.Retries < 1 || count.Backups < 1 {
				t.Fatalf("stage count %+v: want a retry and a backup, or the test shows nothing", count)
			}
			if counted.Load() < count.RecordsIn+2*junk {
				t.Fatalf("functions counted %d in all; want the losers' %d on top of %d lines", counted.Load(), 2*junk, count.RecordsIn)
			}
			if got := count.Counters["lines"]; got != count.RecordsIn || got != 12 {
				t.Errorf("stage count: lines = %d, want its %d input records (12)", got, count.RecordsIn)
			}
			if got := total.Counters["keys"]; got != total.RecordsIn || got != 48 {
				t.Errorf("stage total: keys = %d, want its %d key groups (48)", got, total.RecordsIn)
			}
			if len(total.Counters) != 1 || len(count.Counters) != 1 {
				t.Errorf("counters %v and %v: want lines and keys alone", count.Counters, total.Counters)
			}
			mu.Lock()
			if e := stageDone["count"]; e.Counters["lines"] != 12 {
				t.Errorf("stage_done of count: counters %v, want lines=12", e.Counters)
			}
			for _, e := range taskDone {
				if e.Duration <= 0 || e.Worker == "" || e.Attempt < 1 {
					t.Errorf("task_done %+v: want its duration, worker and attempt", e)
				}
				if m.distributed && e.Worker != "counting-worker" {
					t.Errorf("task_done worker %q, want counting-worker", e.Worker)
				}
				if e.Stage == "count" && (e.Task == 1 || e.Task == 2) && e.Attempt != 2 {
					t.Errorf("task_done of count task %d: attempt %d, want 2", e.Task, e.Attempt)
				}
			}
			mu.Unlock()

			var outcome struct {
				Stages []struct {
					Name     string           `json:"name"`
					Counters map[string]int64 `json:"counters"`
				} `json:"stages"`
			}
			data, err := os.ReadFile(filepath.Join(res.Dir, "result.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &outcome); err != nil {
				t.Fatal(err)
			}
			if len(outcome.Stages) != 2 || outcome.Stages[0].Counters["lines"] != 12 || outcome.Stages[1].Counters["keys"] != 48 {
				t.Errorf("result.json stages %+v, want lines=12 and keys=48", outcome.Stages)
			}
			st, err := flow.StatRun(state, res.Run)
			if err != nil {
				t.Fatal(err)
			}
			if st.Stages[0].Counters["lines"] != 12 || st.Stages[1].Counters["keys"] != 48 {
				t.Errorf("StatRun stages %+v, want lines=12 and keys=48 from the journal", st.Stages)
			}
		})
	}
}

// TestCountersResume: a resumed run's totals include the counters of the
// tasks an earlier attempt of the run completed, read from its journal.
func TestCountersResume(t *testing.T) {
	t.Parallel()
	p, out := loadWordcount(t, map[string]string{"lines": "4"})
	p.Stages[0].Retry.MaxAttempts = 1
	reg := flow.NewRegistry()
	var fail atomic.Bool
	fail.Store(true)
	reg.Map("wc.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		if info, _ := flow.InfoFrom(ctx); info.Task == 0 && fail.Load() {
			time.Sleep(500 * time.Millisecond) // the other tasks complete first
			return errors.New("fails until fixed")
		}
		flow.Count(ctx, "lines", 1)
		return wordcount.Map(ctx, rec, emit)
	})
	reg.Reduce("wc.sum", wordcount.Sum)
	state := t.TempDir()
	res, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: state, Workers: 3, Logger: testLogger(t)})
	if err == nil {
		t.Fatal("the run did not fail")
	}
	if got, done := res.Stages[0].Counters["lines"], res.Stages[0].Done; got != 4*int64(done) {
		t.Errorf("failed run: lines = %d, want the 4 of each of its %d completed tasks", got, done)
	}
	fail.Store(false)
	res, err = flow.Run(t.Context(), p, reg, flow.Options{StateDir: state, Workers: 2, Logger: testLogger(t), RunID: res.Run, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, out, wantWordcount(t))
	if got := res.Stages[0].Counters["lines"]; got != 12 || res.Stages[0].Resumed < 1 {
		t.Errorf("resumed run: lines = %d with %d tasks resumed, want 12 with some resumed", got, res.Stages[0].Resumed)
	}
}
