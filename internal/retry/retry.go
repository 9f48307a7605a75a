// Package retry computes the waits between retries, for the runtime's
// reconnects and flow's task retries alike: exponential from an initial
// wait, capped, with jitter so that many clients or tasks that failed
// together do not come back together.
package retry

import (
	"math/rand/v2"
	"time"
)

// Policy is a retry schedule.
type Policy struct {
	// Initial is the wait before the second attempt (after one failure).
	Initial time.Duration
	// Max caps the wait; zero or less than Initial means Initial.
	Max time.Duration
	// Fixed waits Initial every time instead of doubling it.
	Fixed bool
	// Jitter is the share of a wait, from 0 to 1, taken off at random:
	// 0.5 waits between half the wait and all of it.
	Jitter float64
}

// Delay returns the wait after failures failures (from 1): Initial
// doubled failures-1 times, at most Max, less up to Jitter of it. It is
// zero for failures < 1.
func (p Policy) Delay(failures int) time.Duration {
	if failures < 1 || p.Initial <= 0 {
		return 0
	}
	limit := max(p.Max, p.Initial)
	d := p.Initial
	if !p.Fixed {
		for i := 1; i < failures && d < limit; i++ {
			d *= 2
		}
	}
	d = min(d, limit)
	if p.Jitter <= 0 {
		return d
	}
	off := time.Duration(float64(d) * min(p.Jitter, 1))
	if off <= 0 {
		return d
	}
	return d - rand.N(off+1)
}
