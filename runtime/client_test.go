package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearflow/gearflow/runtime"
)

func upper() runtime.Handler {
	return runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
		return bytes.ToUpper(job.Payload), nil
	})
}

func TestDo(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		startWorker(t, runtime.WorkerConfig{Servers: []string{srv.Addr}}, map[string]runtime.Handler{"upper": upper()})
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 10*time.Second)
		tests := []struct {
			name string
			job  runtime.Job
		}{
			{"normal", runtime.Job{Function: "upper", Payload: []byte("abc")}},
			{"high", runtime.Job{Function: "upper", Payload: []byte("abc"), Priority: runtime.PriorityHigh}},
			{"low", runtime.Job{Function: "upper", Payload: []byte("abc"), Priority: runtime.PriorityLow}},
			{"unique", runtime.Job{Function: "upper", Payload: []byte("abc"), Unique: "u-1"}},
			{"binary", runtime.Job{Function: "upper", Payload: []byte("a\x00b")}},
			// A GRAB_JOB_UNIQ worker gets a reduce job as a plain job.
			{"reduce", runtime.Job{Function: "upper", Payload: []byte("abc"), Reducer: "count"}},
			{"coalesce by payload", runtime.Job{Function: "upper", Payload: []byte("abc"), Unique: "-"}},
		}
		for _, tt := range tests {
			got, err := c.Do(ctx, tt.job)
			if err != nil {
				t.Fatalf("%s: Do: %v", tt.name, err)
			}
			if want := bytes.ToUpper(tt.job.Payload); !bytes.Equal(got, want) {
				t.Errorf("%s: Do = %q, want %q", tt.name, got, want)
			}
		}
	})
}

func TestEventsInOrder(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		h := runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			for _, err := range []error{
				job.SendData([]byte("d1")),
				job.SendWarning([]byte("w1")),
				job.SendStatus(1, 3),
				job.SendData([]byte("d2")),
				job.SendStatus(3, 3),
			} {
				if err != nil {
					return nil, err
				}
			}
			return []byte("done:" + job.Unique), nil
		})
		startWorker(t, runtime.WorkerConfig{Servers: []string{srv.Addr}}, map[string]runtime.Handler{"steps": h})
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 10*time.Second)
		task, err := c.Submit(ctx, runtime.Job{Function: "steps", Unique: "ev-1"})
		if err != nil {
			t.Fatal(err)
		}
		if task.Handle == "" || task.Server != srv.Addr {
			t.Errorf("task = {Handle: %q, Server: %q}, want a handle from %s", task.Handle, task.Server, srv.Addr)
		}
		want := []runtime.Event{
			{Kind: runtime.EventData, Data: []byte("d1")},
			{Kind: runtime.EventWarning, Data: []byte("w1")},
			{Kind: runtime.EventStatus, Numerator: 1, Denominator: 3},
			{Kind: runtime.EventData, Data: []byte("d2")},
			{Kind: runtime.EventStatus, Numerator: 3, Denominator: 3},
			{Kind: runtime.EventComplete, Data: []byte("done:ev-1")},
		}
		var got []runtime.Event
		for ev := range task.Events() {
			got = append(got, ev)
		}
		if len(got) != len(want) {
			t.Fatalf("got %d events %+v, want %d", len(got), got, len(want))
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.Kind != w.Kind || !bytes.Equal(g.Data, w.Data) || g.Numerator != w.Numerator || g.Denominator != w.Denominator {
				t.Errorf("event %d = %+v, want %+v", i, g, w)
			}
		}
		// Wait after the stream has been drained still reports the result.
		out, err := task.Wait(ctx)
		if err != nil || string(out) != "done:ev-1" {
			t.Errorf("Wait after drain = %q, %v", out, err)
		}
	})
}

func TestFailAndException(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		handlers := map[string]runtime.Handler{
			"fail": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				return nil, errors.New("plain failure")
			}),
			"exception": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				return nil, runtime.Exception(errors.New("bad input"))
			}),
			"panic": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				panic("boom")
			}),
		}
		startWorker(t, runtime.WorkerConfig{Servers: []string{srv.Addr}}, handlers)
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 10*time.Second)
		tests := []struct {
			function string
			kind     runtime.EventKind
			data     string
		}{
			{"fail", runtime.EventFail, ""},
			{"exception", runtime.EventException, "bad input"},
			{"panic", runtime.EventException, "panic: boom"},
			// The worker goes on after a panic.
			{"panic", runtime.EventException, "panic: boom"},
		}
		for _, tt := range tests {
			_, err := c.Do(ctx, runtime.Job{Function: tt.function})
			var je *runtime.JobError
			if !errors.As(err, &je) {
				t.Fatalf("Do(%s) error = %v, want *JobError", tt.function, err)
			}
			if je.Kind != tt.kind || string(je.Data) != tt.data || je.Function != tt.function || je.Handle == "" {
				t.Errorf("Do(%s) = %+v, want kind %v data %q", tt.function, je, tt.kind, tt.data)
			}
		}
	})
}

// TestSameUniqueTwiceOnOneClient: a second submission of a running
// unique from the same client joins the first, and each task sees every
// event exactly once (gearmand would send each packet once per
// submission on the connection).
func TestSameUniqueTwiceOnOneClient(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		started := make(chan struct{}, 2)
		release := make(chan struct{})
		var runs atomic.Int32
		startWorker(t, runtime.WorkerConfig{Servers: []string{srv.Addr}, Concurrency: 2}, map[string]runtime.Handler{
			"twice": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				runs.Add(1)
				started <- struct{}{}
				<-release
				for _, d := range []string{"a", "b"} {
					if err := job.SendData([]byte(d)); err != nil {
						return nil, err
					}
				}
				return []byte("ok"), nil
			}),
		})
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 10*time.Second)
		job := runtime.Job{Function: "twice", Unique: "same-client"}
		t1, err := c.Submit(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		<-started
		t2, err := c.Submit(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		if t1.Handle != t2.Handle {
			t.Errorf("handles %s and %s, want one job", t1.Handle, t2.Handle)
		}
		close(release)
		for i, task := range []*runtime.Task{t1, t2} {
			var got []string
			for ev := range task.Events() {
				got = append(got, ev.Kind.String()+":"+string(ev.Data))
			}
			if s := strings.Join(got, " "); s != "data:a data:b complete:ok" {
				t.Errorf("task %d events = %s, want data:a data:b complete:ok", i+1, s)
			}
		}
		if n := runs.Load(); n != 1 {
			t.Errorf("handler ran %d times, want 1", n)
		}
		// After it ended, the same unique is a new job.
		if out, err := c.Do(ctx, job); err != nil || string(out) != "ok" {
			t.Errorf("Do after the first ended = %q, %v", out, err)
		}
	})
}
