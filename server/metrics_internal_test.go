package server

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkMetricsHook is what the dispatch paths pay per job for the
// wait and run times: a clock read and a histogram observation.
func BenchmarkMetricsHook(b *testing.B) {
	var h latencyHist
	b.ReportAllocs()
	for b.Loop() {
		h.observe(nowNanos() - 1_000_000)
	}
}

// BenchmarkScrape is one /metrics collection of a server with many
// functions; the snapshot part of it holds the server's lock.
func BenchmarkScrape(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprint("functions=", n), func(b *testing.B) {
			s, err := New(Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			s.mu.Lock()
			for i := range n {
				s.functionLocked(fmt.Sprint("f", i))
			}
			s.mu.Unlock()
			reg := prometheus.NewRegistry()
			reg.MustRegister(s.Collector())
			b.ReportAllocs()
			for b.Loop() {
				if _, err := reg.Gather(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestLatencyHistBuckets checks the bucket a duration lands in: a bound
// is inclusive (Prometheus' "le"), and anything past the last is +Inf.
func TestLatencyHistBuckets(t *testing.T) {
	tests := []struct {
		d    int64
		want float64 // the smallest bound whose cumulative count is 1; 0 = +Inf only
	}{
		{-5, 0.0001}, {0, 0.0001}, {100_000, 0.0001}, {100_001, 0.0005},
		{int64(latencyBounds[len(latencyBounds)-1]), 3600}, {int64(latencyBounds[len(latencyBounds)-1]) + 1, 0},
	}
	for _, tt := range tests {
		var h latencyHist
		h.observe(tt.d)
		count, _, buckets := h.snapshot()
		got := 0.0
		for _, b := range latencyBounds {
			if buckets[b.Seconds()] == 1 {
				got = b.Seconds()
				break
			}
		}
		if count != 1 || got != tt.want {
			t.Errorf("observe(%d): count %d, first bucket %v; want 1, %v", tt.d, count, got, tt.want)
		}
	}
}
