package flow_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
	"github.com/gearflow/gearflow/internal/loadgen"
	"github.com/gearflow/gearflow/server"
)

// noopTasks is how many tasks one run of BenchmarkRunNoopTasks has.
const noopTasks = 5000

// noopPipeline returns a one-stage pipeline of noopTasks map tasks of one
// tiny record each, served by the function "bench.noop", with at most
// concurrency tasks in flight.
func noopPipeline(b *testing.B, concurrency int) *spec.Pipeline {
	b.Helper()
	dir := b.TempDir()
	in := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(in, []byte(strings.Repeat("x\n", noopTasks)), 0o644); err != nil {
		b.Fatal(err)
	}
	yaml := `version: 1
name: noop
stages:
  - name: noop
    kind: map
    function: bench.noop
    input:
      from: file:` + in + `
      split: { lines: 1 }
` + concurrencyLine(concurrency) + `output:
  from: stage:noop
  to: file:` + filepath.Join(dir, "out.tsv") + "\n"
	p, err := spec.Parse([]byte(yaml), "noop.yaml", nil)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// concurrencyLine is the stage's concurrency: line, or nothing for 0,
// which leaves it to the fleet.
func concurrencyLine(n int) string {
	if n == 0 {
		return ""
	}
	return "    concurrency: " + itoa(n) + "\n"
}

func itoa(n int) string {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(buf[i:])
		}
	}
}

// BenchmarkRunNoopTasks measures the coordinator's task throughput: runs
// of noopTasks map tasks that do nothing, on the embedded default
// (in-process server and workers): with the default workers and stage
// concurrency, and with the workers and jobs in flight of the server
// benchmark below (4 workers, 4 clients x 16).
// It reports tasks/s over the map stage, and, measured in the same
// process right after, the embedded server's own foreground jobs/s (4
// clients x 16 in flight, 4 workers, 64-byte payloads, as `gearflow
// bench --mode fg`), and the ratio of the two in percent; and the CPU
// time the process spends per task and per server job, which other load
// on the machine disturbs less than the rates.
// NOOP_FG_DURATION sets the length of the server run (default 2s; 0
// leaves it out, for profiling the coordinator alone).
func BenchmarkRunNoopTasks(b *testing.B) {
	for _, cfg := range []struct{ workers, conc int }{
		{0, spec.DefaultConcurrency}, // the embedded default: GOMAXPROCS workers, as many tasks in flight
		{4, 64},                      // as the server's load: 4 workers, 64 jobs in flight
	} {
		b.Run("workers="+itoa(cfg.workers)+"/concurrency="+itoa(cfg.conc), func(b *testing.B) {
			p := noopPipeline(b, cfg.conc)
			reg := flow.NewRegistry()
			reg.Map("bench.noop", func(ctx context.Context, rec flow.Record, emit flow.Emit) error { return nil })
			var stage time.Duration
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			for b.Loop() {
				res, err := flow.Run(b.Context(), p, reg, flow.Options{StateDir: b.TempDir(), Workers: cfg.workers})
				if err != nil {
					b.Fatal(err)
				}
				if res.Stages[0].Done != noopTasks {
					b.Fatalf("%d tasks done, want %d", res.Stages[0].Done, noopTasks)
				}
				stage += res.Stages[0].Elapsed
			}
			cpu := cpuTime(b) - cpu0
			tasks := float64(noopTasks) * float64(b.N) / stage.Seconds()
			b.ReportMetric(tasks, "tasks/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(noopTasks*b.N), "cpu-µs/task")
			if fg, fgCPU := serverForeground(b); fg > 0 {
				b.ReportMetric(fg, "server-fg-jobs/s")
				b.ReportMetric(fgCPU, "server-fg-cpu-µs/job")
				b.ReportMetric(100*tasks/fg, "%-of-server")
			}
		})
	}
}

// serverForeground runs the foreground load of `gearflow bench --mode fg
// --clients 4 --inflight 16 --workers 4 --payload 64B` against a fresh
// in-process server and returns its jobs/s and the CPU time the process
// spent per job (server, clients and workers together), or zeros when
// NOOP_FG_DURATION is 0.
func serverForeground(b *testing.B) (jobsPerSec, cpuPerJob float64) {
	b.Helper()
	d := 2 * time.Second
	if s := os.Getenv("NOOP_FG_DURATION"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			b.Fatalf("NOOP_FG_DURATION: %v", err)
		}
	}
	if d <= 0 {
		return 0, 0
	}
	srv, err := server.New(server.Config{})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
	}()
	cpu0 := cpuTime(b)
	res, err := loadgen.Run(b.Context(), loadgen.Config{Addr: l.Addr().String(), Clients: 4, InFlight: 16,
		Workers: 4, PayloadSize: 64, Duration: d, Timeout: d + time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	cpu := cpuTime(b) - cpu0
	ph, ok := res.Phase("fg")
	if !ok || res.Errors() > 0 || ph.Jobs == 0 {
		b.Fatalf("server run: %+v", res)
	}
	return ph.JobsPerSecond, float64(cpu.Microseconds()) / float64(ph.Jobs)
}
