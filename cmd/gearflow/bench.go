package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/gearflow/gearflow/internal/cliflag"
	"github.com/gearflow/gearflow/internal/loadgen"
)

// cmdBench load-tests a Gearman server with raw-protocol clients and
// workers (package loadgen) and prints what it measured. It exits 0 when
// every job completed, 1 when jobs failed, the run timed out or a
// connection was lost (the figures are printed all the same), and 2 on a
// usage error.
func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := cliflag.New("gearflow bench", "[flags]", `Load-tests any Gearman server with its own workers (echoing each payload
back) and clients (each keeping --inflight jobs submitted).
  --mode fg: times each job from SUBMIT_JOB to WORK_COMPLETE.
  --mode bg: submits --jobs background jobs as fast as possible, then starts
             the workers and times the drain (--workers 0: leave them queued).`, stderr)
	server := fs.String("server", "127.0.0.1:4730", "`host:port` of the Gearman server")
	mode := fs.String("mode", "fg", "fg (foreground) or bg (background)")
	clients := fs.Int("clients", 4, "client connections")
	inflight := fs.Int("inflight", 16, "jobs each client keeps in flight")
	workers := fs.Int("workers", 4, "worker connections (bg: 0 leaves the jobs queued)")
	payload := fs.String("payload", "64", "payload `size` per job: bytes, or with a unit (64KiB, 1MiB)")
	jobs := fs.Int64("jobs", 0, "jobs to submit in all (default 10000 unless --duration is set)")
	duration := fs.Duration("duration", 0, "stop submitting after this long (0: only --jobs)")
	timeout := fs.Duration("timeout", 2*time.Minute, "hard limit: stop and report what was measured")
	function := fs.String("function", "", "function name (default: a name unique to the run)")
	uniques := fs.Bool("unique", false, "give each job a unique id of its own (1, 2, ...), as libgearman's clients do; needed against gearmand's persistent queues, which keep one job per empty unique")
	serverPID := fs.Int("server-pid", 0, "the server's process id, when it runs on this machine: report its CPU time per job too (Linux)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	verbose := fs.BoolP("verbose", "v", false, "log debug messages to stderr")
	pos, code, ok := fs.Parse(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return fs.Fail("unexpected argument %q", pos[0])
	}
	m, err := loadgen.ParseMode(*mode)
	if err != nil {
		fmt.Fprintln(stderr, "gearflow bench:", err)
		return 2
	}
	size, err := loadgen.ParseSize(*payload)
	if err != nil {
		fmt.Fprintln(stderr, "gearflow bench:", err)
		return 2
	}
	if *timeout <= 0 {
		fmt.Fprintln(stderr, "gearflow bench: --timeout must be positive")
		return 2
	}
	w := *workers
	if w == 0 {
		w = -1 // loadgen's zero means its default; the flag's 0 means none
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	cfg := loadgen.Config{
		Addr:        *server,
		Mode:        m,
		Function:    *function,
		UniqueKeys:  *uniques,
		Clients:     *clients,
		InFlight:    *inflight,
		Workers:     w,
		PayloadSize: size,
		Jobs:        *jobs,
		Duration:    *duration,
		Timeout:     *timeout,
		ServerPID:   *serverPID,
		Logger:      slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
	}
	res, err := loadgen.Run(ctx, cfg)
	if errors.Is(err, loadgen.ErrConfig) {
		fmt.Fprintln(stderr, "gearflow bench:", err)
		return 2
	}
	if len(res.Phases) > 0 || err == nil {
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if werr := enc.Encode(res); werr != nil {
				fmt.Fprintln(stderr, "gearflow bench:", werr)
				return 1
			}
		} else if werr := res.WriteTable(stdout); werr != nil {
			fmt.Fprintln(stderr, "gearflow bench:", werr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "gearflow bench:", err)
		return 1
	}
	if n := res.Errors(); n > 0 {
		fmt.Fprintf(stderr, "gearflow bench: %d jobs failed\n", n)
		return 1
	}
	return 0
}
