package seaweedtest

import "syscall"

// dieWithParent is the process attributes that have the kernel kill the
// started process when the test binary dies, so that a test killed
// before its cleanup leaves no server behind.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
