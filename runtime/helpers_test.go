package runtime_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/runtime"
	"github.com/gearflow/gearflow/server"
)

// testServer is a job server a test runs against: a real gearmand or
// gearflow's own, with the controls fault tests need.
type testServer struct {
	Addr    string
	Stop    func()
	Restart func()
	// AllowLeftoverJobs lets the test end with jobs queued on purpose
	// (servertest.Server.AllowLeftoverJobs; nothing for gearmand).
	AllowLeftoverJobs func()
}

// serverKinds are the job servers every runtime test runs against.
var serverKinds = []struct {
	name  string
	start func(t *testing.T) testServer
}{
	{"gearmand", func(t *testing.T) testServer {
		s := gearmandtest.Start(t)
		return testServer{Addr: s.Addr, Stop: s.Stop, Restart: s.Restart, AllowLeftoverJobs: func() {}}
	}},
	{"gearflow", func(t *testing.T) testServer {
		s := servertest.Start(t, server.Config{})
		return testServer{Addr: s.Addr, Stop: s.Stop, Restart: s.Restart, AllowLeftoverJobs: s.AllowLeftoverJobs}
	}},
}

// forEachServer runs f as a subtest against each kind of job server,
// each started fresh for the subtest.
func forEachServer(t *testing.T, f func(t *testing.T, srv testServer)) {
	t.Helper()
	for _, k := range serverKinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			f(t, k.start(t))
		})
	}
}

// forEachServerKind is forEachServer for tests that start their own
// servers (several, or with flags).
func forEachServerKind(t *testing.T, f func(t *testing.T, start func(t *testing.T) testServer)) {
	t.Helper()
	for _, k := range serverKinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			f(t, k.start)
		})
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testContext returns a context that ends with the test or after d.
func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func newTestClient(t *testing.T, servers ...string) *runtime.Client {
	t.Helper()
	c, err := runtime.NewClient(runtime.ClientConfig{
		Servers: servers, Logger: testLogger(t),
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
		DialTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startWorker runs a worker with the given handlers until the test ends.
func startWorker(t *testing.T, cfg runtime.WorkerConfig, handlers map[string]runtime.Handler) *runtime.Worker {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.ReconnectMin == 0 {
		cfg.ReconnectMin, cfg.ReconnectMax = 10*time.Millisecond, 200*time.Millisecond
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 2 * time.Second
	}
	w, err := runtime.NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range handlers {
		w.Handle(name, h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Worker.Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Worker.Run did not return after cancel")
		}
	})
	return w
}
