package main

import (
	"io"
	"sync"
)

// daemonEnv names the descriptor a daemon's child reports on: what it
// prints before it serves, then daemonReady.
const daemonEnv = "GEARFLOW_DAEMON_FD"

// switchWriter is a writer whose destination can change while others
// write to it: a daemon's messages go to its parent until it serves.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}
