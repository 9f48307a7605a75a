package server

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gearflow/gearflow/protocol"
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

// TestMetricsStoreFailureDrops: a background job whose record the
// durable queue cannot write is refused (ERROR QUEUE_ERROR) and counted
// as dropped, so the counters still add up.
func TestMetricsStoreFailureDrops(t *testing.T) {
	srv, c := serveLoopback(t, Config{DataDir: t.TempDir()})
	c.Submit(t, protocol.SubmitJobBg, "f", "", "stored")
	srv.store.f.Close() // the next write fails
	c.Req(protocol.SubmitJobBg, "f", "", "refused")
	c.ExpectErrorCode(t, protocol.CodeQueueError)

	st := srv.Status()
	if len(st.Functions) != 1 {
		t.Fatalf("functions %+v, want f", st.Functions)
	}
	f := st.Functions[0]
	in := f.Submitted + f.Restored + f.Rescheduled
	out := f.Completed + f.Failed + f.Excepted + f.Dropped + f.Cancelled + f.Abandoned +
		uint64(f.Queued.High+f.Queued.Normal+f.Queued.Low+f.Delayed+f.Running+f.Pending)
	if f.Submitted != 2 || f.Dropped != 1 || f.Queued.Normal != 1 || in != out {
		t.Errorf("f: submitted %d, dropped %d, queued %d; %d came in, %d ended or are in the server; want 2, 1, 1 and balanced",
			f.Submitted, f.Dropped, f.Queued.Normal, in, out)
	}
}
