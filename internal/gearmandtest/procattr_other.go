//go:build !linux

package gearmandtest

import "syscall"

// DieWithParent returns nil: only Linux can kill a child when its
// parent dies. Elsewhere the test's cleanup stops the process, and a
// test binary killed before its cleanup leaves it running.
func DieWithParent() *syscall.SysProcAttr { return nil }
