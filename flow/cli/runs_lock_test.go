//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestRunsRemoveRefusesRunInProgress: a run whose directory's lock is
// held (as its coordinator holds it while the run is open) shows as
// running and is neither removed by rm nor by gc.
func TestRunsRemoveRefusesRunInProgress(t *testing.T) {
	t.Parallel()
	f := newRunsFixture(t)
	if err := f.run(t, t.Context(), "busy", "my.upper", ""); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(f.state, "busy", "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runsCmd(t, "--state-dir", f.state)
	if code != 0 || !strings.Contains(out, " running ") {
		t.Errorf("runs with the lock held: %d\n%s", code, out)
	}
	code, out, errOut := runsCmd(t, "rm", "busy", "--state-dir", f.state)
	if code != 1 || !strings.Contains(errOut, "in progress") || strings.Contains(out, "removed") {
		t.Errorf("runs rm of a held run: %d %q %q", code, out, errOut)
	}
	if code, _, _ := runsCmd(t, "gc", "--older-than", "0s", "--state-dir", f.state); code != 0 {
		t.Errorf("runs gc: %d", code)
	}
	if _, err := os.Stat(filepath.Join(f.state, "busy", "plan.json")); err != nil {
		t.Fatalf("a run in progress was removed: %v", err)
	}
	syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if code, out, errOut := runsCmd(t, "rm", "busy", "--state-dir", f.state); code != 0 || !strings.Contains(out, "removed busy") {
		t.Errorf("runs rm once the lock is released: %d %q %q", code, out, errOut)
	}
}
