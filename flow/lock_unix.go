//go:build unix

package flow

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrRunBusy is returned when another coordinator holds the run's
// directory.
var ErrRunBusy = errors.New("flow: run is in use by another coordinator")

// lockRun takes an exclusive lock on the run directory for as long as
// the returned file stays open, so two coordinators never write one run.
// The kernel drops the lock when the process dies, even by SIGKILL.
func lockRun(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrRunBusy, dir)
		}
		return nil, err
	}
	return f, nil
}
