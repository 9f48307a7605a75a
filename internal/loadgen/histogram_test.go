package loadgen

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsContiguous(t *testing.T) {
	t.Parallel()
	// Every bucket's range starts where the previous one ended, and each
	// value lands in the bucket whose range holds it.
	var next uint64
	for i := range histBuckets {
		low, width := bucketBounds(i)
		if low != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, low, next)
		}
		for _, v := range []uint64{low, low + width - 1} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, got, i)
			}
		}
		next = low + width
		if next == 0 && i != histBuckets-1 {
			t.Fatalf("buckets wrap after bucket %d of %d", i, histBuckets)
		}
	}
	if next != 0 {
		t.Fatalf("buckets end at %d, want the whole uint64 range", next)
	}
}

func TestQuantileAccuracy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		gen  func(r *rand.Rand) time.Duration
	}{
		{"uniform-us", func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(int64(time.Millisecond))) }},
		{"exponential", func(r *rand.Rand) time.Duration { return time.Duration(r.ExpFloat64() * float64(200*time.Microsecond)) }},
		{"tiny", func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(100)) }},
		{"wide", func(r *rand.Rand) time.Duration { return time.Duration(r.Int64N(int64(time.Hour))) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(1, 2))
			var h Histogram
			vals := make([]time.Duration, 20000)
			for i := range vals {
				vals[i] = tt.gen(r)
				h.Record(vals[i])
			}
			slices.Sort(vals)
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
				exact := vals[int(q*float64(len(vals)))-1]
				got := h.Quantile(q)
				tol := float64(exact)/60 + 2
				if d := float64(got - exact); d > tol || -d > tol {
					t.Errorf("Quantile(%v) = %v, exact %v (tolerance %.0fns)", q, got, exact, tol)
				}
			}
			if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
				t.Errorf("Min, Max = %v, %v, want %v, %v", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
			}
			if h.Count() != uint64(len(vals)) {
				t.Errorf("Count = %d, want %d", h.Count(), len(vals))
			}
		})
	}
}

func TestMerge(t *testing.T) {
	t.Parallel()
	var a, b, all Histogram
	for i := range 1000 {
		d := time.Duration(i) * time.Microsecond
		all.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{})
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 1} {
		if got, want := m.Quantile(q), all.Quantile(q); got != want {
			t.Errorf("merged Quantile(%v) = %v, want %v", q, got, want)
		}
	}
	if m.Count() != 1000 || m.Mean() != all.Mean() {
		t.Errorf("merged Count, Mean = %d, %v, want 1000, %v", m.Count(), m.Mean(), all.Mean())
	}
}

func TestHistogramEmpty(t *testing.T) {
	t.Parallel()
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Errorf("empty histogram: Quantile %v, Max %v, Mean %v, want zeros", h.Quantile(0.5), h.Max(), h.Mean())
	}
	h.Record(-time.Second)
	if h.Max() != 0 || h.Count() != 1 {
		t.Errorf("negative value: Max %v, Count %d, want 0, 1", h.Max(), h.Count())
	}
}
