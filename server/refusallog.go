package server

import "time"

// refusalLogEvery is the least time between two log lines about
// background jobs the durable queue refused.
const refusalLogEvery = 10 * time.Second

// refusalLog rate-limits the log lines about refused background jobs:
// during a full disk every background submission is refused, and busy
// clients would otherwise log thousands of lines a second. A line goes
// out at most once per refusalLogEvery and counts the refusals since the
// line before.
type refusalLog struct {
	last    time.Time // when the last line went out
	pending int       // refusals not counted in a line yet
}

// refused counts a refusal and reports whether to log a line now, with
// the refusals it accounts for (this one included).
func (r *refusalLog) refused() (bool, int) {
	r.pending++
	return r.due()
}

// stored reports whether to log that a background job was stored after
// refusals, with the refusals not accounted for yet. It keeps to the
// same pace as refused, so a disk that alternates between room and none
// does not log a pair of lines per job either.
func (r *refusalLog) stored() (bool, int) {
	if r.pending == 0 {
		return false, 0
	}
	return r.due()
}

func (r *refusalLog) due() (bool, int) {
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < refusalLogEvery {
		return false, 0
	}
	n := r.pending
	r.last, r.pending = now, 0
	return true, n
}
