package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/runtime"
)

func TestHandlerTimeout(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		ctxErr := make(chan error, 1)
		w := startWorker(t, runtime.WorkerConfig{Servers: []string{srv.Addr}}, nil)
		w.HandleTimeout("slow", 100*time.Millisecond, runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			select {
			case <-ctx.Done():
				ctxErr <- ctx.Err()
				return nil, ctx.Err()
			case <-time.After(10 * time.Second):
				ctxErr <- nil
				return []byte("too late"), nil
			}
		}))
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 10*time.Second)
		_, err := c.Do(ctx, runtime.Job{Function: "slow"})
		var je *runtime.JobError
		if !errors.As(err, &je) || je.Kind != runtime.EventFail {
			t.Errorf("Do(slow) error = %v, want a WORK_FAIL *JobError", err)
		}
		if err := <-ctxErr; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("handler context error = %v, want DeadlineExceeded", err)
		}
	})
}

func TestHandleWhileRunning(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		w := startWorker(t, runtime.WorkerConfig{Servers: []string{srv.Addr}}, map[string]runtime.Handler{"upper": upper()})
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 10*time.Second)
		if _, err := c.Do(ctx, runtime.Job{Function: "upper", Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		w.Handle("late", runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			return []byte("registered live"), nil
		}))
		out, err := c.Do(ctx, runtime.Job{Function: "late"})
		if err != nil || string(out) != "registered live" {
			t.Errorf("Do(late) = %q, %v", out, err)
		}
	})
}

func TestConcurrentSubmit(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		const goroutines, jobs = 32, 50
		var running, peak atomic.Int32
		startWorker(t, runtime.WorkerConfig{Servers: []string{srv.Addr}, Concurrency: 8}, map[string]runtime.Handler{
			"echo": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				n := running.Add(1)
				defer running.Add(-1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				if err := job.SendData(job.Payload); err != nil {
					return nil, err
				}
				return job.Payload, nil
			}),
		})
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 60*time.Second)
		var wg sync.WaitGroup
		errs := make(chan error, goroutines)
		for g := range goroutines {
			wg.Go(func() {
				for i := range jobs {
					want := fmt.Sprintf("g%d-j%d", g, i)
					task, err := c.Submit(ctx, runtime.Job{Function: "echo", Payload: []byte(want)})
					if err != nil {
						errs <- err
						return
					}
					var data []string
					var out []byte
					for ev := range task.Events() {
						switch ev.Kind {
						case runtime.EventData:
							data = append(data, string(ev.Data))
						case runtime.EventComplete:
							out = ev.Data
						default:
							errs <- fmt.Errorf("job %s: unexpected event %v (%v)", want, ev.Kind, ev.Err)
							return
						}
					}
					if string(out) != want || len(data) != 1 || data[0] != want {
						errs <- fmt.Errorf("job %s: result %q, data %q", want, out, data)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if p := peak.Load(); p > 8 {
			t.Errorf("%d handlers ran at once, want at most Concurrency=8", p)
		}
	})
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		started := make(chan struct{})
		finish := make(chan struct{})
		w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: []string{srv.Addr}, Logger: testLogger(t), ShutdownTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		w.Handle("drain", runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			close(started)
			<-finish
			return []byte("finished"), nil
		}))
		w.Handle("stuck", runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}))
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(runCtx) }()
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 10*time.Second)
		task, err := c.Submit(ctx, runtime.Job{Function: "drain"})
		if err != nil {
			t.Fatal(err)
		}
		<-started
		stop()
		// The running job finishes and its result is delivered after the
		// worker was told to stop.
		close(finish)
		if out, err := task.Wait(ctx); err != nil || string(out) != "finished" {
			t.Errorf("Wait = %q, %v", out, err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-ctx.Done():
			t.Fatal("Run did not return")
		}
	})
}

func TestShutdownCancelsStuckJobs(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		started := make(chan struct{})
		cause := make(chan error, 1)
		w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: []string{srv.Addr}, Logger: testLogger(t), ShutdownTimeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		w.Handle("stuck", runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			close(started)
			<-ctx.Done()
			cause <- context.Cause(ctx)
			return nil, ctx.Err()
		}))
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(runCtx) }()
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 10*time.Second)
		if _, err := c.Submit(ctx, runtime.Job{Function: "stuck"}); err != nil {
			t.Fatal(err)
		}
		<-started
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-ctx.Done():
			t.Fatal("Run did not return")
		}
		if err := <-cause; !errors.Is(err, runtime.ErrClosed) {
			t.Errorf("handler context cause = %v, want ErrClosed", err)
		}
	})
}

// TestNoBusyLoop: a server that answers every PRE_SLEEP with an instant
// NOOP but never has a job must not make the worker spin.
func TestNoBusyLoop(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var grabs atomic.Int64
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		r := protocol.NewReader(nc, protocol.ReaderConfig{})
		for {
			p, err := r.ReadPacket()
			if err != nil {
				return
			}
			var reply []byte
			switch p.Type {
			case protocol.GrabJobUniq:
				grabs.Add(1)
				reply = protocol.AppendPacket(nil, protocol.Res, protocol.NoJob)
			case protocol.PreSleep:
				reply = protocol.AppendPacket(nil, protocol.Res, protocol.Noop)
			}
			if _, err := nc.Write(reply); err != nil {
				return
			}
		}
	}()
	startWorker(t, runtime.WorkerConfig{Servers: []string{l.Addr().String()}, ReconnectMin: 50 * time.Millisecond, ReconnectMax: time.Second},
		map[string]runtime.Handler{"f": upper()})
	time.Sleep(time.Second)
	// Without the pause this is tens of thousands. With it, about 20; the
	// bound leaves room for a loaded machine, where a NOOP slower than
	// the 5 ms "quick wake" resets the count of empty wake-ups.
	if n := grabs.Load(); n < 5 || n > 300 {
		t.Errorf("%d grabs in a second, want a few (the worker pauses after repeated empty wake-ups)", n)
	}
}

func TestJobMethodsOutsideHandler(t *testing.T) {
	t.Parallel()
	var j runtime.Job
	if err := j.SendData([]byte("x")); !errors.Is(err, runtime.ErrNotWorkerJob) {
		t.Errorf("SendData on a client-side job = %v, want ErrNotWorkerJob", err)
	}
	forEachServer(t, func(t *testing.T, srv testServer) {
		kept := make(chan *runtime.Job, 1)
		startWorker(t, runtime.WorkerConfig{Servers: []string{srv.Addr}}, map[string]runtime.Handler{
			"keep": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				kept <- job
				return nil, nil
			}),
		})
		c := newTestClient(t, srv.Addr)
		if _, err := c.Do(testContext(t, 10*time.Second), runtime.Job{Function: "keep"}); err != nil {
			t.Fatal(err)
		}
		if err := (<-kept).SendStatus(1, 1); !errors.Is(err, runtime.ErrJobDone) {
			t.Errorf("SendStatus after the handler returned = %v, want ErrJobDone", err)
		}
	})
}

// TestBackoffOnDroppingServer: a server that accepts connections and
// closes them at once gets a growing backoff, not a reconnect storm.
func TestBackoffOnDroppingServer(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepts atomic.Int64
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			nc.Close()
		}
	}()
	startWorker(t, runtime.WorkerConfig{Servers: []string{l.Addr().String()}, ReconnectMin: 50 * time.Millisecond, ReconnectMax: time.Second},
		map[string]runtime.Handler{"f": upper()})
	time.Sleep(time.Second)
	// 50ms doubling: about six connections in a second (jitter halves
	// some waits); a reset after every connection would make twenty.
	if n := accepts.Load(); n < 2 || n > 10 {
		t.Errorf("%d connections in a second, want a few", n)
	}
}

// TestBusyServerDoesNotStarveAnother checks that a worker over two
// servers shares its slots between them: with one slot, a job queued on
// the second server runs long before the first server's backlog drains,
// although every job of the first ends with its next grab already sent.
func TestBusyServerDoesNotStarveAnother(t *testing.T) {
	t.Parallel()
	forEachServerKind(t, func(t *testing.T, start func(t *testing.T) testServer) {
		busy, other := start(t), start(t)
		// The test ends with the backlog unfinished, and without waiting
		// for "b"'s WORK_COMPLETE to reach its server.
		busy.AllowLeftoverJobs()
		other.AllowLeftoverJobs()
		ctx := testContext(t, 60*time.Second)
		const backlog = 200
		cb, co := newTestClient(t, busy.Addr), newTestClient(t, other.Addr)
		for i := range backlog {
			if _, err := cb.Submit(ctx, runtime.Job{Function: "a", Payload: fmt.Appendf(nil, "%d", i), Background: true}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := co.Submit(ctx, runtime.Job{Function: "b", Background: true}); err != nil {
			t.Fatal(err)
		}
		var done atomic.Int32
		ran := make(chan int32, 1)
		startWorker(t, runtime.WorkerConfig{Servers: []string{busy.Addr, other.Addr}, Concurrency: 1}, map[string]runtime.Handler{
			"a": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				time.Sleep(time.Millisecond) // a job that takes a little work
				done.Add(1)
				return nil, nil
			}),
			"b": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				ran <- done.Load()
				return nil, nil
			}),
		})
		select {
		case n := <-ran:
			if n >= backlog/2 {
				t.Errorf("the other server's job ran after %d of the busy server's %d jobs, want it served alongside", n, backlog)
			}
		case <-ctx.Done():
			t.Fatal("the other server's job never ran")
		}
	})
}
