package loadgen

import (
	"math/bits"
	"time"
)

// histSubBits sets the histogram's precision: each power of two is split
// into 2^histSubBits buckets, so a recorded value is known to within
// 1/64 (about 1.6%) of itself.
const (
	histSubBits  = 6
	histSubCount = 1 << histSubBits
	// histBuckets covers the whole uint64 range.
	histBuckets = (64-histSubBits)*histSubCount + histSubCount
)

// Histogram records durations in log-linear buckets: constant memory
// (about 30 KiB) whatever the number of values, and percentiles within
// 1.6% of the exact value. The zero value is ready to use. It is not
// safe for concurrent use: give each goroutine its own and Merge them.
type Histogram struct {
	counts [histBuckets]uint64
	total  uint64
	min    time.Duration
	max    time.Duration
	sum    time.Duration
}

func bucketOf(v uint64) int {
	if v < histSubCount {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits - 1 // v>>e is in [64, 128)
	return (e+1)*histSubCount + int(v>>e) - histSubCount
}

// bucketBounds returns the smallest value of bucket i and its width.
func bucketBounds(i int) (low, width uint64) {
	if i < 2*histSubCount {
		return uint64(i), 1
	}
	e := i/histSubCount - 1
	m := uint64(i%histSubCount + histSubCount)
	return m << e, 1 << e
}

// Record adds one value. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	if h.total == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.total++
	h.sum += d
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Max returns the largest recorded value, exactly.
func (h *Histogram) Max() time.Duration { return h.max }

// Min returns the smallest recorded value, exactly.
func (h *Histogram) Min() time.Duration { return h.min }

// Mean returns the average of the recorded values, or 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return h.sum / time.Duration(h.total)
}

// Quantile returns the value below which a fraction q (0..1) of the
// recorded values fall: the middle of the bucket holding that rank,
// clamped to the exact minimum and maximum. It returns 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	// rank is 1-based: the smallest value with at least q of the values
	// at or below it.
	rank := uint64(q*float64(h.total) + 0.5)
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			low, width := bucketBounds(i)
			v := time.Duration(low + width/2)
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}
