package loadgen_test

import (
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/internal/loadgen"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/server"
)

// BenchmarkEcho runs the foreground echo load (4 clients with 16
// jobs in flight each, 4 workers) against gearmand and our in-process
// server in the same process run. Each iteration is a run of
// echoJobsPerRun jobs; jobs/s is over all of them. Run it with
// -cpuprofile/-memprofile and -bench 'Echo/gearflow' to profile the server.
func BenchmarkEcho(b *testing.B) {
	const echoJobsPerRun = 5000
	servers := []struct {
		name  string
		start func(b *testing.B) string
	}{
		{"gearmand", func(b *testing.B) string { return gearmandtest.Start(b, "--threads=0").Addr }},
		{"gearflow", func(b *testing.B) string { return servertest.Start(b, server.Config{}).Addr }},
	}
	payloads := []struct {
		name string
		size int
	}{
		{"64B", 64},
		{"64KiB", 64 << 10},
	}
	for _, s := range servers {
		for _, p := range payloads {
			b.Run(s.name+"/"+p.name, func(b *testing.B) {
				addr := s.start(b)
				cfg := loadgen.Config{
					Addr: addr, Clients: 4, InFlight: 16, Workers: 4,
					PayloadSize: p.size, Jobs: echoJobsPerRun, Timeout: time.Minute,
				}
				b.SetBytes(int64(p.size) * echoJobsPerRun)
				b.ReportAllocs()
				var jobs, errs int64
				var p99s loadgen.Histogram // each run's p99, for their median
				for b.Loop() {
					res, err := loadgen.Run(b.Context(), cfg)
					if err != nil {
						b.Fatalf("Run: %v", err)
					}
					ph := res.Phases[0]
					jobs += ph.Jobs
					errs += ph.Errors
					if ph.Latency != nil {
						p99s.Record(ph.Latency.P99)
					}
				}
				if errs > 0 {
					b.Errorf("%d jobs failed", errs)
				}
				b.ReportMetric(float64(jobs)/b.Elapsed().Seconds(), "jobs/s")
				b.ReportMetric(float64(p99s.Quantile(0.5).Microseconds()), "p99-µs")
			})
		}
	}
}
