package flow_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearflow/gearflow/examples/wordcount"
	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/runtime"
	"github.com/gearflow/gearflow/server"
)

// startWorker serves reg's functions on addr until the test ends.
func startWorker(t *testing.T, addr string, reg *flow.Registry) {
	t.Helper()
	w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: []string{addr}, Concurrency: 2, ClientID: flow.WorkerClientID("w", 2)})
	if err != nil {
		t.Fatal(err)
	}
	reg.Register(w)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// eventLog collects a run's events.
type eventLog struct {
	mu     sync.Mutex
	events []flow.Event
}

func (l *eventLog) add(e flow.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) of(kind flow.EventKind) []flow.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []flow.Event
	for _, e := range l.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// TestRunNamesLostWorker: a worker streams part of a task's output and
// goes away; the job server gives the job to another worker, whose
// output follows. The attempt's error says a worker was lost (not just
// that a stream did not add up), and the retry makes the output exact.
func TestRunNamesLostWorker(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t, server.Config{})
	p, out := loadWordcount(t, map[string]string{"lines": "4"})
	p.Stages[0].Retry.Initial = 10 * time.Millisecond
	reg := flow.NewRegistry()
	wordcount.Register(reg)

	lost := wiretest.Dial(t, srv.Addr)
	lost.CanDo("wc.map")
	lost.Sync(t)
	var log eventLog
	type result struct {
		res *flow.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := flow.Run(t.Context(), p, reg, flow.Options{Servers: []string{srv.Addr}, Workers: -1, Storage: flow.StorageNone,
			StateDir: t.TempDir(), Logger: testLogger(t), OnEvent: log.add})
		done <- result{res, err}
	}()
	lost.Req(protocol.PreSleep)
	if p := lost.Next(t); p.Type != protocol.Noop {
		t.Fatalf("got %s, want NOOP", wiretest.Format(p))
	}
	job := lost.GrabAny(t)
	// One batch of one record, ["x", 1], then the worker is gone.
	lost.Send(protocol.New(protocol.Req, protocol.WorkData, job.Args[0], []byte{0x91, 0x92, 0xa1, 'x', 0x01}))
	lost.Sync(t)
	lost.Close()
	startWorker(t, srv.Addr, reg)

	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	checkOutput(t, out, wantWordcount(t))
	retries := log.of(flow.EventTaskRetry)
	if len(retries) == 0 {
		t.Fatal("no retry: the lost worker's batch was kept")
	}
	if e := retries[0]; !strings.Contains(e.Err, "worker running the task was lost") || !strings.Contains(e.Err, "another worker") {
		t.Errorf("retry error %q: want the lost worker named", e.Err)
	}
}

// TestRunWarnsUnservedAtOnce: a run whose function no worker serves says
// so at once, as an EventWarning naming the function and the stage, and
// runs once a worker comes.
func TestRunWarnsUnservedAtOnce(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t, server.Config{})
	p, out := loadWordcount(t, map[string]string{"lines": "4"})
	reg := flow.NewRegistry()
	wordcount.Register(reg)
	warned := make(chan flow.Event, 8)
	done := make(chan error, 1)
	begin := time.Now()
	go func() {
		_, err := flow.Run(t.Context(), p, reg, flow.Options{Servers: []string{srv.Addr}, Workers: -1, StateDir: t.TempDir(),
			Logger: testLogger(t), OnEvent: func(e flow.Event) {
				if e.Kind == flow.EventWarning {
					warned <- e
				}
			}})
		done <- err
	}()
	select {
	case e := <-warned:
		if e.Function != "wc.map" || e.Stage != "count" || !strings.Contains(e.Message, "no worker serves wc.map (stage count) on "+srv.Addr) {
			t.Errorf("warning %+v: want wc.map of stage count on %s", e, srv.Addr)
		}
		// "At once": the fleet's first look, not a timer's later one.
		if d := time.Since(begin); d > 5*time.Second {
			t.Errorf("the warning took %v", d)
		}
	case err := <-done:
		t.Fatalf("the run ended (%v) without a warning", err)
	}
	startWorker(t, srv.Addr, reg)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkOutput(t, out, wantWordcount(t))
	// wc.sum had no worker either, until then; nothing was said twice.
	for len(warned) > 0 {
		if e := <-warned; e.Function != "wc.sum" || strings.Contains(e.Message, "still") {
			t.Errorf("warning %q of %s: want wc.sum's first and no other", e.Message, e.Function)
		}
	}
}

// TestTinyTaskWarnings: plan and run warn of a stage cut into thousands
// of tasks of a few dozen bytes, with better split advice, and not of a
// small input cut into a few small tasks.
func TestTinyTaskWarnings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	input := filepath.Join(dir, "in.txt")
	var b strings.Builder
	for i := 0; i < 8000; i++ {
		fmt.Fprintf(&b, "the quick brown fox %d\n", i)
	}
	if err := os.WriteFile(input, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		input string
		lines string
		warn  bool
	}{
		{"tiny tasks", input, "4", true},
		{"sensible split", input, "5000", false},
		{"small input", "", "4", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			params := map[string]string{"lines": tt.lines}
			if tt.input != "" {
				params["input"] = tt.input
			}
			p, _ := loadWordcount(t, params)
			plans, err := flow.Plan(p)
			if err != nil {
				t.Fatal(err)
			}
			w := plans[0].Warnings
			if tt.warn != (len(w) > 0) {
				t.Fatalf("plan warnings %q, want warned=%v", w, tt.warn)
			}
			if tt.warn && (!strings.Contains(w[0], "stage count: 2000 tasks") || !strings.Contains(w[0], "round trip") ||
				!strings.Contains(w[0], "split: { lines: ")) {
				t.Errorf("warning %q: want the count, the round trip and a lines split to use", w[0])
			}
			if !tt.warn {
				return
			}
			// The run says it as its stage starts; it is not waited for.
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var got []string
			var mu sync.Mutex
			reg := flow.NewRegistry()
			wordcount.Register(reg)
			_, err = flow.Run(ctx, p, reg, flow.Options{StateDir: t.TempDir(), Workers: 2, Logger: testLogger(t),
				OnEvent: func(e flow.Event) {
					if e.Kind == flow.EventWarning {
						mu.Lock()
						got = append(got, e.Message)
						mu.Unlock()
						cancel()
					}
				}})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("run: %v, want it cancelled at the warning", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 || got[0] != w[0] {
				t.Errorf("run warnings %q, want the plan's %q", got, w[0])
			}
		})
	}
}

// TestShuffleEvents: a run that shuffles through the coordinator (no
// storage) reports the shuffle: its start with the records to read, and
// its end with all of them read.
func TestShuffleEvents(t *testing.T) {
	t.Parallel()
	p, out := loadWordcount(t, map[string]string{"lines": "4"})
	reg := flow.NewRegistry()
	wordcount.Register(reg)
	var log eventLog
	res, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Workers: 2, Storage: flow.StorageNone,
		Logger: testLogger(t), OnEvent: log.add})
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, out, wantWordcount(t))
	started, ended := log.of(flow.EventShuffleStarted), log.of(flow.EventShuffleDone)
	total := res.Stages[0].RecordsOut
	if len(started) != 1 || len(ended) != 1 || started[0].Stage != "total" || started[0].ShuffleTotal != total ||
		ended[0].Shuffled != total || ended[0].Duration <= 0 {
		t.Errorf("shuffle events %+v then %+v; want one of each for total, with %d records", started, ended, total)
	}
}
