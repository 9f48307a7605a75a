package gearmandtest

import (
	"strings"
	"testing"
)

// TestStartOnTakenPort: when another server holds the port that freePort
// handed out (it was free a moment before), start must fail, not report
// that server as the one it started.
func TestStartOnTakenPort(t *testing.T) {
	t.Parallel()
	other := Start(t)
	s := &Server{t: t, dir: t.TempDir()}
	err := s.start(other.Port)
	if err == nil {
		s.Stop()
		t.Fatalf("start on %s, held by gearmand %d: no error (got pid %d)", other.Addr, other.PID(), s.PID())
	}
	if !strings.Contains(err.Error(), "not our gearmand") {
		t.Errorf("start on a taken port: %v", err)
	}
}
