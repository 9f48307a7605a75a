package loadgen

import (
	"syscall"
	"time"
)

// selfCPU is this process's user plus kernel CPU time, or 0 when the
// system cannot say.
func selfCPU() time.Duration {
	self, err := syscall.GetCurrentProcess() // a pseudo-handle: nothing to close
	if err != nil {
		return 0
	}
	var creation, exit, kernel, user syscall.Filetime
	if err := syscall.GetProcessTimes(self, &creation, &exit, &kernel, &user); err != nil {
		return 0
	}
	return filetimeDuration(kernel) + filetimeDuration(user)
}

// filetimeDuration reads a FILETIME that holds a span (in 100 ns units),
// not a date: Filetime.Nanoseconds would subtract the 1601 epoch.
func filetimeDuration(ft syscall.Filetime) time.Duration {
	return time.Duration(int64(ft.HighDateTime)<<32|int64(ft.LowDateTime)) * 100
}
