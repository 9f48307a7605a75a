//go:build !linux

package seaweedtest

import "syscall"

// dieWithParent is nil: only Linux can kill a child when its parent
// dies. Elsewhere the test's cleanup stops the process, and a test
// binary killed before its cleanup leaves it running.
func dieWithParent() *syscall.SysProcAttr { return nil }
