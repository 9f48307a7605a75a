package gearmandtest

import "syscall"

// DieWithParent returns process attributes that have the kernel kill a
// started process (gearmand, a gearman worker) when the test binary
// dies, so that a test killed before its cleanup leaves nothing running.
// Set it as exec.Cmd.SysProcAttr.
func DieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
