// Package servertest starts an in-process gearflow job server for tests,
// on 127.0.0.1 with a port the kernel picks, stopped when the test ends.
package servertest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearflow/gearflow/server"
)

// Server is a running in-process server.
type Server struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	// Srv is the running server; nil while stopped.
	Srv *server.Server

	t    testing.TB
	cfg  server.Config
	done chan error
	// leftoverOK is set by AllowLeftoverJobs.
	leftoverOK atomic.Bool
}

// Start runs a server with cfg on a fresh loopback port and registers
// its shutdown with t.Cleanup. Unless cfg has a Logger, logs at warning
// level and above go to the test's output (GEARFLOW_TEST_LOG=debug for
// everything).
func Start(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	if cfg.Logger == nil {
		level := slog.LevelWarn
		if os.Getenv("GEARFLOW_TEST_LOG") == "debug" {
			level = slog.LevelDebug
		}
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}))
	}
	s := &Server{t: t, cfg: cfg}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("servertest: listen: %v", err)
	}
	s.Addr = l.Addr().String()
	s.serve(l)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) serve(l net.Listener) {
	srv, err := server.New(s.cfg)
	if err != nil {
		l.Close()
		s.t.Fatalf("servertest: %v", err)
	}
	s.Srv = srv
	s.done = make(chan error, 1)
	go func() { s.done <- srv.Serve(l) }()
}

// AllowLeftoverJobs lets the test end with jobs in the server: Stop
// (and Shutdown and Restart) no longer fail for the jobs left when every
// peer is gone. For tests that queue background jobs nobody runs, or
// that stop a server holding jobs, on purpose. Safe to call from any
// goroutine.
func (s *Server) AllowLeftoverJobs() { s.leftoverOK.Store(true) }

// Stop shuts the server down, waiting up to 10 seconds for running jobs
// and connections, and fails the test if it does not stop cleanly or
// leaves a connection, goroutine or pooled buffer reference behind, or
// a job (see AllowLeftoverJobs). It is safe to call more than once.
func (s *Server) Stop() {
	if s.Srv == nil {
		return
	}
	srv := s.Srv
	s.Srv = nil
	// Close, not Shutdown: a test's jobs may still be running, and a
	// stopped server must look like a crashed one to its peers.
	if err := srv.Close(); err != nil {
		s.t.Errorf("servertest: close: %v", err)
	}
	select {
	case err := <-s.done:
		if !errors.Is(err, server.ErrServerClosed) {
			s.t.Errorf("servertest: Serve returned %v, want ErrServerClosed", err)
		}
	case <-time.After(10 * time.Second):
		s.t.Errorf("servertest: Serve did not return within 10s of Close")
	}
	checkStopped(s.t, srv, s.leftoverOK.Load())
}

// checkStopped fails the test if the stopped server left anything
// behind: a connection, a goroutine it started, a reference on a pooled
// buffer (a job or queued write that was never released), or, unless
// jobsOK, a job. A goroutine may take a moment to return after the
// server stopped (an admin "shutdown" returns from the goroutine that
// ran it), so the check waits, bounded.
//
// Jobs are counted once every peer is gone: the server has dropped the
// foreground jobs nobody waits for and taken running jobs back from
// their workers, so what is left was queued in the background and
// never run, or is a job the server failed to let go.
func checkStopped(t testing.TB, srv *server.Server, jobsOK bool) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := srv.Stats()
		if st.Connections == 0 && st.Goroutines == 0 && st.PooledRefs == 0 {
			if st.Jobs != 0 && !jobsOK {
				t.Errorf("servertest: %d jobs left in the server when it stopped (%d running); a test that leaves jobs on purpose calls AllowLeftoverJobs",
					st.Jobs, st.Running)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("servertest: 5s after the server stopped: %d connections, %d goroutines, %d pooled buffer references left",
				st.Connections, st.Goroutines, st.PooledRefs)
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Shutdown stops the server gracefully with ctx, as SIGTERM does.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.Srv == nil {
		return nil
	}
	srv := s.Srv
	s.Srv = nil
	err := srv.Shutdown(ctx)
	<-s.done
	checkStopped(s.t, srv, s.leftoverOK.Load())
	return err
}

// Restart stops the server and starts a new one, with the same config,
// on the same address. Jobs in memory are lost, as in a real restart.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var l net.Listener
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if l, err = net.Listen("tcp", s.Addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond) // the port may linger briefly
	}
	if err != nil {
		s.t.Fatalf("servertest: restart on %s: %v", s.Addr, err)
	}
	s.serve(l)
}
