//go:build !unix

package flow

import (
	"errors"
	"os"
	"path/filepath"
)

// ErrRunBusy is returned when another coordinator holds the run's
// directory.
var ErrRunBusy = errors.New("flow: run is in use by another coordinator")

// lockRun opens the run's lock file; without flock(2) it cannot keep a
// second coordinator out.
func lockRun(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
}
