package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gearflow/gearflow/runtime"
)

// doEventually retries Do while the client reconnects, for at most d.
func doEventually(t *testing.T, c *runtime.Client, job runtime.Job, d time.Duration) ([]byte, error) {
	t.Helper()
	ctx := testContext(t, d)
	for {
		out, err := c.Do(ctx, job)
		if err == nil || !errors.Is(err, runtime.ErrNoServers) || ctx.Err() != nil {
			return out, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWorkerReconnectsAfterRestart(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		startWorker(t, runtime.WorkerConfig{Servers: []string{srv.Addr}}, map[string]runtime.Handler{"upper": upper()})
		c := newTestClient(t, srv.Addr)
		if out, err := doEventually(t, c, runtime.Job{Function: "upper", Payload: []byte("before")}, 10*time.Second); err != nil || string(out) != "BEFORE" {
			t.Fatalf("before restart: %q, %v", out, err)
		}
		// Down long enough for the worker's redials to fail and back off.
		srv.Stop()
		time.Sleep(300 * time.Millisecond)
		srv.Restart()
		// The worker reconnects and registers again; the client redials.
		out, err := doEventually(t, c, runtime.Job{Function: "upper", Payload: []byte("after")}, 20*time.Second)
		if err != nil || string(out) != "AFTER" {
			t.Fatalf("after restart: %q, %v", out, err)
		}
	})
}

func TestFailoverToLiveServer(t *testing.T) {
	t.Parallel()
	forEachServerKind(t, func(t *testing.T, start func(*testing.T) testServer) {
		down, up := start(t), start(t)
		down.Stop()
		startWorker(t, runtime.WorkerConfig{Servers: []string{down.Addr, up.Addr}}, map[string]runtime.Handler{"upper": upper()})
		c := newTestClient(t, down.Addr, up.Addr)
		ctx := testContext(t, 20*time.Second)
		for i := range 20 {
			job := runtime.Job{Function: "upper", Payload: []byte("x")}
			if i%2 == 1 {
				job.Unique = fmt.Sprintf("failover-%d", i) // some hash to the dead server
			}
			task, err := c.Submit(ctx, job)
			if err != nil {
				t.Fatalf("job %d: %v", i, err)
			}
			if task.Server != up.Addr {
				t.Errorf("job %d went to %s, want %s", i, task.Server, up.Addr)
			}
			if out, err := task.Wait(ctx); err != nil || string(out) != "X" {
				t.Errorf("job %d: %q, %v", i, out, err)
			}
		}
		// With every server down, Submit fails at once.
		up.Stop()
		_, err := c.Do(ctx, runtime.Job{Function: "upper"})
		if !errors.Is(err, runtime.ErrNoServers) {
			t.Errorf("all servers down: err = %v, want ErrNoServers", err)
		}
	})
}

func TestServerDiesDuringJob(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		started := make(chan struct{}, 1)
		startWorker(t, runtime.WorkerConfig{Servers: []string{srv.Addr}}, map[string]runtime.Handler{
			"hang": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				started <- struct{}{}
				<-ctx.Done() // cancelled when the worker loses the server
				return nil, ctx.Err()
			}),
		})
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 20*time.Second)
		task, err := c.Submit(ctx, runtime.Job{Function: "hang"})
		if err != nil {
			t.Fatal(err)
		}
		<-started
		stopped := time.Now()
		srv.Stop()
		_, err = task.Wait(ctx)
		if !errors.Is(err, runtime.ErrConnectionLost) {
			t.Fatalf("Wait = %v, want ErrConnectionLost", err)
		}
		if d := time.Since(stopped); d > 5*time.Second {
			t.Errorf("the error took %v", d)
		}
	})
}

func TestSubmitContextEndsTask(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		c := newTestClient(t, srv.Addr)
		ctx, cancel := context.WithCancel(testContext(t, 10*time.Second))
		task, err := c.Submit(ctx, runtime.Job{Function: "nobody-serves-this"})
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		var last runtime.Event
		for ev := range task.Events() {
			last = ev
		}
		if last.Kind != runtime.EventError || !errors.Is(last.Err, context.Canceled) {
			t.Errorf("last event = %+v, want EventError with context.Canceled", last)
		}
	})
}

func TestClose(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, srv testServer) {
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 10*time.Second)
		task, err := c.Submit(ctx, runtime.Job{Function: "nobody-serves-this"})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if _, err := task.Wait(ctx); !errors.Is(err, runtime.ErrClosed) {
			t.Errorf("Wait after Close = %v, want ErrClosed", err)
		}
		if _, err := c.Submit(ctx, runtime.Job{Function: "x"}); !errors.Is(err, runtime.ErrClosed) {
			t.Errorf("Submit after Close = %v, want ErrClosed", err)
		}
	})
}
