package runtime_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearflow/gearflow/runtime"
)

// countingConn counts the Write calls made on a connection; delay, when
// set, makes each one take that long first, like a slow link.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
	delay  time.Duration
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	if c.delay > 0 {
		time.Sleep(c.delay)
	}
	return c.Conn.Write(b)
}

// countingDial is a ClientConfig.Dial that counts, in writes, the Write
// calls on every connection it makes.
func countingDial(writes *atomic.Int64, delay time.Duration) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: nc, writes: writes, delay: delay}, nil
	}
}

func echo() runtime.Handler {
	return runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
		return job.Payload, nil
	})
}

// TestConcurrentSubmitsShareWrites submits many jobs at once from many
// goroutines through one client: the submissions that arrive while a
// write is in progress go out together in the next write, so the client
// makes far fewer writes than jobs, and every job still gets its own
// result. Each write takes a millisecond, as on a slow link, so that
// submissions overlap on any machine.
func TestConcurrentSubmitsShareWrites(t *testing.T) {
	t.Parallel()
	const n = 200
	forEachServer(t, func(t *testing.T, srv testServer) {
		startWorker(t, runtime.WorkerConfig{Servers: []string{srv.Addr}, Concurrency: 32},
			map[string]runtime.Handler{"echo": echo()})
		var writes atomic.Int64
		c, err := runtime.NewClient(runtime.ClientConfig{Servers: []string{srv.Addr}, Logger: testLogger(t),
			Dial: countingDial(&writes, time.Millisecond)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ctx := testContext(t, 30*time.Second)
		// Connected, and the worker registered, before the burst.
		if out, err := c.Do(ctx, runtime.Job{Function: "echo", Payload: []byte("warm")}); err != nil || string(out) != "warm" {
			t.Fatalf("Do(warm) = %q, %v", out, err)
		}
		before := writes.Load()
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				want := "job-" + strconv.Itoa(i)
				out, err := c.Do(ctx, runtime.Job{Function: "echo", Payload: []byte(want)})
				if err != nil || string(out) != want {
					t.Errorf("Do(%s) = %q, %v", want, out, err)
				}
			})
		}
		close(start)
		wg.Wait()
		got := writes.Load() - before
		t.Logf("%d jobs, %d client writes", n, got)
		if got >= n/2 {
			t.Errorf("%d concurrent submissions took %d writes, want fewer than %d", n, got, n/2)
		}
	})
}

// failingConn, once armed, holds its first Write until gate is closed
// (so that other submissions queue behind it) and fails it and every
// later Write.
type failingConn struct {
	net.Conn
	f *writeFault
}

type writeFault struct {
	armed   atomic.Bool
	held    atomic.Bool
	entered chan struct{} // closed when the held Write has begun
	gate    chan struct{}
}

func (c *failingConn) Write(b []byte) (int, error) {
	if !c.f.armed.Load() {
		return c.Conn.Write(b)
	}
	if c.f.held.CompareAndSwap(false, true) {
		close(c.f.entered)
		<-c.f.gate
	}
	return 0, errors.New("injected write failure")
}

// TestFailedWriteFailsEveryCaller fails the write that carries many
// concurrent submissions: each of them gets an error wrapping
// ErrConnectionLost, and none hangs.
func TestFailedWriteFailsEveryCaller(t *testing.T) {
	t.Parallel()
	const n = 100
	forEachServer(t, func(t *testing.T, srv testServer) {
		f := &writeFault{entered: make(chan struct{}), gate: make(chan struct{})}
		var gateOnce sync.Once
		openGate := func() { gateOnce.Do(func() { close(f.gate) }) }
		t.Cleanup(openGate)
		c, err := runtime.NewClient(runtime.ClientConfig{Servers: []string{srv.Addr}, Logger: testLogger(t),
			ReconnectMin: time.Second, ReconnectMax: time.Second,
			Dial: func(ctx context.Context, addr string) (net.Conn, error) {
				if f.armed.Load() {
					return nil, errors.New("injected dial failure")
				}
				var d net.Dialer
				nc, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					return nil, err
				}
				return &failingConn{Conn: nc, f: f}, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ctx := testContext(t, 30*time.Second)
		if _, err := c.Echo(ctx, []byte("connect")); err != nil {
			t.Fatal(err)
		}
		f.armed.Store(true)
		errs := make(chan error, n)
		started := make(chan struct{}, n)
		for i := range n {
			go func() {
				started <- struct{}{}
				_, err := c.Do(ctx, runtime.Job{Function: "nobody-serves-this", Payload: []byte(strconv.Itoa(i))})
				errs <- err
			}()
		}
		for range n {
			<-started
		}
		select {
		case <-f.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("no submission reached the socket")
		}
		// Let the other submissions queue behind the held write; the
		// checks below hold however many did.
		time.Sleep(50 * time.Millisecond)
		openGate()
		timeout := time.After(15 * time.Second)
		for range n {
			select {
			case err := <-errs:
				if !errors.Is(err, runtime.ErrConnectionLost) {
					t.Errorf("Do error = %v, want one wrapping ErrConnectionLost", err)
				}
			case <-timeout:
				t.Fatal("a submission whose write failed did not return")
			}
		}
	})
}
