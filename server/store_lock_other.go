//go:build !unix

package server

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir opens dir's LOCK file. Without flock, nothing stops a second
// server from using the directory: run one per directory.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("server: data directory: %w", err)
	}
	return f, nil
}
