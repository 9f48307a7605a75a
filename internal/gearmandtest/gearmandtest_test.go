package gearmandtest_test

import (
	"net"
	"testing"

	"github.com/gearflow/gearflow/internal/gearmandtest"
)

func TestStartRestart(t *testing.T) {
	s := gearmandtest.Start(t)
	pid := s.PID()
	s.Restart()
	if s.PID() == pid || s.PID() == 0 {
		t.Fatalf("Restart: pid %d, was %d", s.PID(), pid)
	}
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatalf("dial after restart: %v", err)
	}
	c.Close()
}
