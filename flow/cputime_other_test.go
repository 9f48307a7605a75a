//go:build !unix

package flow_test

import (
	"testing"
	"time"
)

// cpuTime needs getrusage: where it is missing the benchmarks that
// report CPU per task are skipped rather than report zeros.
func cpuTime(b *testing.B) time.Duration {
	b.Skip("CPU time per task is measured with getrusage, which this system lacks")
	return 0
}
