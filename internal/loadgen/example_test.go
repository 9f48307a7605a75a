package loadgen_test

import (
	"fmt"
	"os"
	"time"

	"github.com/gearflow/gearflow/internal/loadgen"
)

func ExampleHistogram() {
	var h loadgen.Histogram
	for i := 1; i <= 100; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	// Percentiles are the middle of a bucket 1/64 of the value wide.
	fmt.Println(h.Count(), h.Quantile(0.5).Round(time.Millisecond), h.Quantile(0.99).Round(time.Millisecond), h.Max())
	// Output: 100 50ms 99ms 100ms
}

func ExampleParseSize() {
	for _, s := range []string{"64", "64KiB", "1MiB", "2KB"} {
		n, _ := loadgen.ParseSize(s)
		fmt.Println(s, n)
	}
	// Output:
	// 64 64
	// 64KiB 65536
	// 1MiB 1048576
	// 2KB 2000
}

func ExampleResult_WriteTable() {
	serverSubmit, serverDrain := 0.8, 1.6 // seconds of the server's CPU (Config.ServerPID)
	res := loadgen.Result{
		Server: "127.0.0.1:4730", Mode: loadgen.ModeBackground, Clients: 4, InFlight: 16, Workers: 4, PayloadSize: 64,
		Phases: []loadgen.Phase{
			{Name: "submit", Jobs: 100000, Seconds: 0.5, JobsPerSecond: 200000, MBPerSecond: 12.8,
				Latency:        &loadgen.Latency{P50: 250 * time.Microsecond, P90: 400 * time.Microsecond, P99: 2 * time.Millisecond, Max: 9 * time.Millisecond},
				ToolCPUSeconds: 0.2, ServerCPUSeconds: &serverSubmit},
			{Name: "drain", Jobs: 100000, Seconds: 4, JobsPerSecond: 25000, MBPerSecond: 1.6,
				ToolCPUSeconds: 2, ServerCPUSeconds: &serverDrain},
		},
	}
	res.WriteTable(os.Stdout)
	// Output:
	// server 127.0.0.1:4730  mode bg  clients 4  inflight 16  workers 4  payload 64 B
	//    phase    jobs  seconds  jobs/s   MB/s    p50    p90     p99     max  errors  tool cpu/job  server cpu/job  cores busy
	//   submit  100000    0.500  200000  12.80  250µs  400µs  2.00ms  9.00ms       0         2.0µs           8.0µs        2.00
	//    drain  100000    4.000   25000   1.60      -      -       -       -       0        20.0µs          16.0µs        0.90
}
