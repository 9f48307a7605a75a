//go:build unix

package seaweedtest_test

import "syscall"

// processAlive reports, by signal 0, whether pid still exists.
func processAlive(pid int) error { return syscall.Kill(pid, 0) }
