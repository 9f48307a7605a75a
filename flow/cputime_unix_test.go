//go:build unix

package flow_test

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the user and system CPU time the process has used: a
// measure of the work per task that other load on the machine disturbs
// less than wall time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
