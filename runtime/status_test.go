package runtime_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/runtime"
)

func TestBackgroundAndStatus(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 10*time.Second)
		// No worker yet: the job stays queued and the server knows it.
		task, err := c.Submit(ctx, runtime.Job{Function: "later", Payload: []byte("x"), Unique: "bg-1", Background: true})
		if err != nil {
			t.Fatal(err)
		}
		if task.Handle == "" || task.Server != srv.Addr {
			t.Fatalf("background task = %+v", task)
		}
		if _, ok := <-task.Events(); ok {
			t.Error("background task has events")
		}
		if out, err := task.Wait(ctx); out != nil || err != nil {
			t.Errorf("background Wait = %q, %v; want nil, nil", out, err)
		}
		st, err := c.Status(ctx, task.Server, task.Handle)
		if err != nil {
			t.Fatal(err)
		}
		want := runtime.Status{Handle: task.Handle, Known: true, Clients: -1}
		if st != want {
			t.Errorf("Status = %+v, want %+v", st, want)
		}
		st, err = c.Status(ctx, "", task.Handle)
		if err != nil || st != want {
			t.Errorf("Status(any server) = %+v, %v; want %+v", st, err, want)
		}
		st, err = c.StatusUnique(ctx, "bg-1")
		if err != nil {
			t.Fatal(err)
		}
		if wantU := (runtime.Status{Unique: "bg-1", Known: true, Clients: 0}); st != wantU {
			t.Errorf("StatusUnique = %+v, want %+v", st, wantU)
		}

		// A worker takes it and reports progress while running.
		release := make(chan struct{})
		started := make(chan struct{})
		startWorker(t, runtime.WorkerConfig{Servers: []string{srv.Addr}}, map[string]runtime.Handler{
			"later": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				if err := job.SendStatus(2, 5); err != nil {
					return nil, err
				}
				close(started)
				<-release
				return nil, nil
			}),
		})
		<-started
		// WORK_STATUS and STATUS_RES travel on different connections: poll.
		deadline := time.Now().Add(5 * time.Second)
		for {
			st, err = c.Status(ctx, task.Server, task.Handle)
			if err != nil {
				t.Fatal(err)
			}
			if st.Numerator == 2 || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		want = runtime.Status{Handle: task.Handle, Known: true, Running: true, Numerator: 2, Denominator: 5, Clients: -1}
		if st != want {
			t.Errorf("Status while running = %+v, want %+v", st, want)
		}
		close(release)
		for {
			st, err = c.Status(ctx, task.Server, task.Handle)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Known || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if st.Known {
			t.Errorf("Status after completion = %+v, want unknown", st)
		}
	})
}

func TestEcho(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 10*time.Second)
		for _, data := range [][]byte{[]byte("ping"), {}, bytes.Repeat([]byte{0, 1, 2}, 10000)} {
			got, err := c.Echo(ctx, data)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("Echo(%d bytes) = %d bytes", len(data), len(got))
			}
		}
	})
}

func TestEpochJob(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		ran := make(chan string, 1)
		startWorker(t, runtime.WorkerConfig{Servers: []string{srv.Addr}}, map[string]runtime.Handler{
			"at": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				ran <- string(job.Payload)
				return nil, nil
			}),
		})
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 10*time.Second)
		// A time already passed: runnable at once, and the submission
		// wakes the sleeping worker.
		if _, err := c.Submit(ctx, runtime.Job{Function: "at", Payload: []byte("epoch"), Background: true, When: time.Now().Add(-time.Second)}); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-ran:
			if got != "epoch" {
				t.Errorf("epoch job payload = %q", got)
			}
		case <-ctx.Done():
			t.Fatal("epoch job did not run")
		}
	})
}

func TestCoalesceAcrossClients(t *testing.T) {
	t.Parallel()
	forEachServerKind(t, func(t *testing.T, start func(*testing.T) testServer) {
		// Two servers: the unique must land on the same one from both
		// clients for the job to coalesce.
		a, b := start(t), start(t)
		servers := []string{a.Addr, b.Addr}
		var runs atomic.Int32
		release := make(chan struct{})
		started := make(chan struct{}, 4)
		startWorker(t, runtime.WorkerConfig{Servers: servers, Concurrency: 4}, map[string]runtime.Handler{
			"once": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				runs.Add(1)
				started <- struct{}{}
				<-release
				return []byte("shared"), nil
			}),
		})
		c1 := newTestClient(t, servers...)
		c2 := newTestClient(t, servers[1], servers[0]) // order does not matter
		ctx := testContext(t, 10*time.Second)
		job := runtime.Job{Function: "once", Unique: "coalesce-me"}
		t1, err := c1.Submit(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		<-started
		t2, err := c2.Submit(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		if t1.Handle != t2.Handle || t1.Server != t2.Server {
			t.Errorf("tasks = (%s on %s), (%s on %s); want the same job", t1.Handle, t1.Server, t2.Handle, t2.Server)
		}
		close(release)
		for _, task := range []*runtime.Task{t1, t2} {
			out, err := task.Wait(ctx)
			if err != nil || string(out) != "shared" {
				t.Errorf("Wait = %q, %v", out, err)
			}
		}
		if n := runs.Load(); n != 1 {
			t.Errorf("handler ran %d times, want 1", n)
		}
	})
}

func TestBackgroundKinds(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		ran := make(chan string, 8)
		startWorker(t, runtime.WorkerConfig{Servers: []string{srv.Addr}}, map[string]runtime.Handler{
			"bg": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				ran <- string(job.Payload)
				return nil, nil
			}),
		})
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 10*time.Second)
		jobs := map[string]runtime.Job{
			"normal": {Priority: runtime.PriorityNormal},
			"high":   {Priority: runtime.PriorityHigh},
			"low":    {Priority: runtime.PriorityLow},
			"reduce": {Reducer: "sum"},
			"unique": {Unique: "bg-kinds"},
		}
		for name, job := range jobs {
			job.Function, job.Payload, job.Background = "bg", []byte(name), true
			task, err := c.Submit(ctx, job)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if task.Handle == "" {
				t.Errorf("%s: no handle", name)
			}
		}
		seen := map[string]bool{}
		for len(seen) < len(jobs) {
			select {
			case name := <-ran:
				seen[name] = true
			case <-ctx.Done():
				t.Fatalf("ran %v of %d background jobs", seen, len(jobs))
			}
		}
	})
}

// TestFractionalStatus: a worker that reports progress as a fraction
// ("33.33333333333333" of "100", as Node's abraxas does) is read as C
// peers read it, 33 of 100, in the task's events and in a status query;
// a strict parse read 0.
func TestFractionalStatus(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 10*time.Second)
		fn := "fractional-" + t.Name()
		task, err := c.Submit(ctx, runtime.Job{Function: fn, Payload: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		w := wiretest.Dial(t, srv.Addr)
		w.CanDo(fn)
		handle := string(w.GrabAny(t).Args[0])
		w.Req(protocol.WorkStatus, handle, "33.33333333333333", "100")
		var ev runtime.Event
		select {
		case ev = <-task.Events():
		case <-ctx.Done():
			t.Fatal("no status event")
		}
		if ev.Kind != runtime.EventStatus || ev.Numerator != 33 || ev.Denominator != 100 {
			t.Errorf("event = %+v, want status 33/100", ev)
		}
		st, err := c.Status(ctx, task.Server, handle)
		if err != nil {
			t.Fatal(err)
		}
		if st.Numerator != 33 || st.Denominator != 100 || !st.Running {
			t.Errorf("Status = %+v, want running at 33/100", st)
		}
		w.Req(protocol.WorkComplete, handle, "done")
		if out, err := task.Wait(ctx); err != nil || string(out) != "done" {
			t.Errorf("Wait = %q, %v; want done", out, err)
		}
	})
}

// TestAdminStatusTabNames: the admin status of a function whose name
// holds a tab, as Perl's prefixed workers register: gearmand prints the
// tab as it is, which made the reply "malformed"; ours prints \t.
func TestAdminStatusTabNames(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		ctx := testContext(t, 10*time.Second)
		w := wiretest.Dial(t, srv.Addr)
		w.CanDo("ns\tupper", "plain")
		w.Sync(t)
		st, err := runtime.AdminStatus(ctx, srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{"ns\tupper": true, `ns\tupper`: true, "plain": true}
		var names []string
		for _, f := range st {
			if !want[f.Function] || f.Workers != 1 {
				t.Errorf("function %q with %d workers", f.Function, f.Workers)
			}
			names = append(names, f.Function)
		}
		if len(st) != 2 {
			t.Errorf("functions %q, want ns<TAB>upper (or ns\\tupper) and plain", names)
		}
	})
}
