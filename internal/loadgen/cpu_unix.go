//go:build unix

package loadgen

import (
	"syscall"
	"time"
)

// selfCPU is this process's user plus system CPU time, or 0 when the
// system cannot say.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
