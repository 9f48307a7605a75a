package loadgen_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	goruntime "runtime"
	"strconv"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/internal/loadgen"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

// forEachServer runs f against each server the generator is measured on.
// leavesJobs says that f ends with jobs queued on purpose.
func forEachServer(t *testing.T, leavesJobs bool, f func(t *testing.T, addr string)) {
	t.Helper()
	servers := []struct {
		name  string
		start func(t *testing.T) string
	}{
		{"gearmand", func(t *testing.T) string { return gearmandtest.Start(t, "--threads=0").Addr }},
		{"gearflow", func(t *testing.T) string {
			s := servertest.Start(t, server.Config{})
			if leavesJobs {
				s.AllowLeftoverJobs()
			}
			return s.Addr
		}},
	}
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			f(t, s.start(t))
		})
	}
}

func TestRunCountsExact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  loadgen.Config
		// phases wanted, each with every job finished
		phases []string
	}{
		{"fg-small", loadgen.Config{Clients: 2, InFlight: 8, Workers: 2, PayloadSize: 64, Jobs: 500}, []string{"fg"}},
		{"fg-one", loadgen.Config{Clients: 1, InFlight: 1, Workers: 1, PayloadSize: 0, Jobs: 50}, []string{"fg"}},
		{"fg-64KiB", loadgen.Config{Clients: 2, InFlight: 4, Workers: 2, PayloadSize: 64 << 10, Jobs: 100}, []string{"fg"}},
		{"fg-more-inflight-than-jobs", loadgen.Config{Clients: 3, InFlight: 16, Workers: 1, Jobs: 10}, []string{"fg"}},
		{"bg-drain", loadgen.Config{Mode: loadgen.ModeBackground, Clients: 2, InFlight: 16, Workers: 3, Jobs: 1000}, []string{"submit", "drain"}},
		{"bg-no-workers", loadgen.Config{Mode: loadgen.ModeBackground, Clients: 1, InFlight: 32, Jobs: 300}, []string{"submit"}},
	}
	// bg-no-workers leaves its jobs queued.
	forEachServer(t, true, func(t *testing.T, addr string) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				cfg := tt.cfg
				cfg.Addr = addr
				cfg.Timeout = 30 * time.Second
				res, err := loadgen.Run(t.Context(), cfg)
				if err != nil {
					t.Fatalf("Run: %v (result %+v)", err, res)
				}
				if len(res.Phases) != len(tt.phases) {
					t.Fatalf("phases %+v, want %v", res.Phases, tt.phases)
				}
				for i, name := range tt.phases {
					p := res.Phases[i]
					if p.Name != name || p.Jobs != cfg.Jobs || p.Errors != 0 || p.Unfinished != 0 {
						t.Errorf("phase %d = %+v, want %s with %d jobs, no errors, none unfinished", i, p, name, cfg.Jobs)
					}
					if p.Seconds <= 0 || p.JobsPerSecond <= 0 {
						t.Errorf("phase %s: seconds %v, jobs/s %v, want both > 0", name, p.Seconds, p.JobsPerSecond)
					}
					if name != "drain" {
						l := p.Latency
						if l == nil || l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max {
							t.Errorf("phase %s latency %+v, want 0 < p50 <= p90 <= p99 <= max", name, l)
						}
					}
				}
				if res.TimedOut || res.Error != "" {
					t.Errorf("TimedOut %v, Error %q", res.TimedOut, res.Error)
				}
			})
		}
	})
}

func TestRunDuration(t *testing.T) {
	t.Parallel()
	forEachServer(t, false, func(t *testing.T, addr string) {
		cfg := loadgen.Config{Addr: addr, Clients: 2, InFlight: 4, Workers: 2, Duration: 200 * time.Millisecond, Timeout: 30 * time.Second}
		res, err := loadgen.Run(t.Context(), cfg)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		p := res.Phases[0]
		if p.Jobs == 0 || p.Errors != 0 || p.Unfinished != 0 {
			t.Errorf("phase %+v, want jobs done, no errors", p)
		}
		if p.Seconds < 0.2 || p.Seconds > 10 {
			t.Errorf("seconds %v, want about 0.2", p.Seconds)
		}
	})
}

// With no worker, foreground jobs never complete: the timeout must end the
// run and report the jobs as unfinished.
func TestRunTimeout(t *testing.T) {
	t.Parallel()
	forEachServer(t, false, func(t *testing.T, addr string) {
		cfg := loadgen.Config{Addr: addr, Clients: 2, InFlight: 3, Workers: -1, Jobs: 100, Timeout: 300 * time.Millisecond}
		start := time.Now()
		res, err := loadgen.Run(t.Context(), cfg)
		if !errors.Is(err, loadgen.ErrTimeout) {
			t.Fatalf("Run error %v, want ErrTimeout", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Run took %v after a 300ms timeout", d)
		}
		p := res.Phases[0]
		if !res.TimedOut || p.Jobs != 0 || p.Unfinished != 6 || p.Errors != 0 {
			t.Errorf("result %+v phase %+v, want timed out with 6 unfinished", res, p)
		}
	})
}

func TestRunCancel(t *testing.T) {
	t.Parallel()
	s := gearmandtest.Start(t, "--threads=0")
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := loadgen.Run(ctx, loadgen.Config{Addr: s.Addr, Workers: -1, Jobs: 10, Timeout: 30 * time.Second})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error %v, want context.Canceled", err)
	}
}

// A server that goes away mid-run: the run ends with an error and counts
// the jobs it lost.
func TestRunServerLost(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for range 2 { // the worker, then the client
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 512)
			n, _ := c.Read(buf)
			if n > 0 && buf[7] == 1 { // CAN_DO then ECHO_REQ: answer the echo
				c.Write([]byte("\x00RES\x00\x00\x00\x11\x00\x00\x00\x05ready"))
				continue
			}
			c.Close() // the client's submissions: hang up
		}
	}()
	res, err := loadgen.Run(t.Context(), loadgen.Config{Addr: l.Addr().String(), InFlight: 4, Jobs: 10, Timeout: 10 * time.Second})
	if err == nil || errors.Is(err, loadgen.ErrTimeout) {
		t.Fatalf("Run error %v, want a lost connection", err)
	}
	if p := res.Phases[0]; p.Errors != 4 || p.Jobs != 0 {
		t.Errorf("phase %+v, want 4 errors", p)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  loadgen.Config
	}{
		{"no-addr", loadgen.Config{}},
		{"negative-clients", loadgen.Config{Addr: "x:1", Clients: -1}},
		{"huge-payload", loadgen.Config{Addr: "x:1", PayloadSize: loadgen.MaxPayloadSize + 1}},
		{"negative-jobs", loadgen.Config{Addr: "x:1", Jobs: -5}},
		{"bad-mode", loadgen.Config{Addr: "x:1", Mode: 7}},
		{"negative-server-pid", loadgen.Config{Addr: "x:1", ServerPID: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := loadgen.Run(t.Context(), tt.cfg); !errors.Is(err, loadgen.ErrConfig) {
				t.Errorf("Run error %v, want ErrConfig", err)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"64", 64, false},
		{"0", 0, false},
		{"64KiB", 64 << 10, false},
		{"64kib", 64 << 10, false},
		{"64K", 64 << 10, false},
		{"1MiB", 1 << 20, false},
		{"1M", 1 << 20, false},
		{"2KB", 2000, false},
		{"10B", 10, false},
		{" 8 KiB ", 8 << 10, false},
		{"", 0, true},
		{"KiB", 0, true},
		{"-1", 0, true},
		{"1.5KiB", 0, true},
		{"99999999GiB", 0, true},
	}
	for _, tt := range tests {
		got, err := loadgen.ParseSize(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseMode(t *testing.T) {
	t.Parallel()
	for _, m := range []loadgen.Mode{loadgen.ModeForeground, loadgen.ModeBackground} {
		got, err := loadgen.ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := loadgen.ParseMode("sideways"); err == nil {
		t.Error("ParseMode(sideways) succeeded")
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"64", "64KiB", "1M", "2KB", "10b", " 8 kib ", "", "-1", "1.5K", "99999999999GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := loadgen.ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 || n > 1<<40 {
			t.Fatalf("ParseSize(%q) = %d, outside 0..2^40", s, n)
		}
		// Round trip: the plain number parses back to itself.
		if m, err := loadgen.ParseSize(strconv.Itoa(n)); err != nil || m != n {
			t.Fatalf("ParseSize(%q) = %d, but ParseSize(%q) = %d, %v", s, n, strconv.Itoa(n), m, err)
		}
	})
}

// TestRunReportsCPU checks the CPU accounting of each phase against a
// gearmand process: the tool's own time, the server's read from /proc,
// and the cores the two kept busy.
func TestRunReportsCPU(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	g := gearmandtest.Start(t, "--threads=0")
	for _, cfg := range []loadgen.Config{
		{Clients: 2, InFlight: 8, Workers: 2, Jobs: 3000},
		{Mode: loadgen.ModeBackground, Clients: 2, InFlight: 16, Workers: 2, Jobs: 3000},
	} {
		cfg.Addr, cfg.ServerPID, cfg.Timeout = g.Addr, g.PID(), 30*time.Second
		res, err := loadgen.Run(t.Context(), cfg)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		for _, p := range res.Phases {
			if p.ToolCPUSeconds <= 0 || p.ToolCPUSeconds > 2*float64(goruntime.NumCPU())*p.Seconds+0.05 {
				t.Errorf("%s: tool CPU %vs over %vs", p.Name, p.ToolCPUSeconds, p.Seconds)
			}
			if p.ServerCPUSeconds == nil || *p.ServerCPUSeconds < 0 {
				t.Errorf("%s: server CPU %v, want it read from /proc", p.Name, p.ServerCPUSeconds)
				continue
			}
			if p.CoresBusy() <= 0 {
				t.Errorf("%s: cores busy %v, want > 0", p.Name, p.CoresBusy())
			}
		}
		var total float64
		for _, p := range res.Phases {
			if p.ServerCPUSeconds != nil {
				total += *p.ServerCPUSeconds
			}
		}
		if total <= 0 {
			t.Errorf("%v: gearmand used no CPU time over %d jobs, by /proc", cfg.Mode, cfg.Jobs)
		}
	}

	// Without a pid the server's time is unknown, not zero.
	res, err := loadgen.Run(t.Context(), loadgen.Config{Addr: g.Addr, Jobs: 10, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Phases[0]; p.ServerCPUSeconds != nil || p.CoresBusy() != 0 {
		t.Errorf("no ServerPID: server CPU %v, cores %v; want unknown", p.ServerCPUSeconds, p.CoresBusy())
	}
}

// TestRunUniqueKeys: with UniqueKeys every job carries a unique id of
// its own, so none is coalesced and each reaches a worker with it.
func TestRunUniqueKeys(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, server.Config{})
	cfg := loadgen.Config{Addr: s.Addr, Mode: loadgen.ModeBackground, Function: "u", UniqueKeys: true,
		Clients: 3, InFlight: 4, Jobs: 300, Timeout: 30 * time.Second}
	if res, err := loadgen.Run(t.Context(), cfg); err != nil || res.Phases[0].Jobs != 300 {
		t.Fatalf("Run: %v (result %+v)", err, res)
	}
	w := wiretest.Dial(t, s.Addr)
	w.CanDo("u")
	seen := map[string]bool{}
	for range 300 {
		w.Req(protocol.GrabJobUniq)
		p := w.Next(t)
		if p.Type != protocol.JobAssignUniq {
			t.Fatalf("got %s, want JOB_ASSIGN_UNIQ", wiretest.Format(p))
		}
		seen[string(p.Args[2])] = true
		w.Req(protocol.WorkComplete, string(p.Args[0]), "")
	}
	w.NoJob(t)
	for i := 1; i <= 300; i++ {
		if !seen[strconv.Itoa(i)] {
			t.Fatalf("no job with unique %d; got %d distinct uniques", i, len(seen))
		}
	}
}

// TestRunTimeoutWhileRegistering: a server that accepts connections but
// never answers holds the workers' registration until the run's timeout
// ends it; the run then reports the timeout. It used to start a nil
// worker's loop and panic.
func TestRunTimeoutWhileRegistering(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	cfg := loadgen.Config{Addr: l.Addr().String(), Clients: 1, InFlight: 1, Workers: 4, Jobs: 10, Timeout: 300 * time.Millisecond}
	if _, err := loadgen.Run(t.Context(), cfg); !errors.Is(err, loadgen.ErrTimeout) {
		t.Fatalf("Run error %v, want ErrTimeout", err)
	}
}
