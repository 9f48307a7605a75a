package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
	"github.com/gearflow/gearflow/internal/cliflag"
)

// Main runs the subcommand named by os.Args[1] with reg's functions and
// exits with its code. SIGINT and SIGTERM cancel the command's context.
func Main(reg *flow.Registry) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Dispatch(ctx, reg, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Command is one subcommand: it parses its own flags from args and
// returns the process's exit code (cliflag's ExitOK, ExitFailure,
// ExitUsage).
type Command struct {
	Name, Summary string
	Run           func(ctx context.Context, reg *flow.Registry, args []string, stdout, stderr io.Writer) int
}

// Commands returns the pipeline commands, the ones every binary built
// with this package has: run, plan, worker, validate, runs.
func Commands() []Command {
	return []Command{
		{"run", "run a pipeline (embedded server and workers unless --servers)", RunCommand},
		{"plan", "show the tasks a pipeline would run, without running it", PlanCommand},
		{"worker", "serve the registered functions to job servers", WorkerCommand},
		{"validate", "check a pipeline file", ValidateCommand},
		{"runs", "list, show and remove runs (runs, runs show ID, runs rm ID, runs gc)", RunsCommand},
	}
}

// Dispatch runs the pipeline command args[0] and returns its exit code.
func Dispatch(ctx context.Context, reg *flow.Registry, args []string, stdout, stderr io.Writer) int {
	return DispatchCommands(ctx, reg, Commands(), args, stdout, stderr)
}

// DispatchCommands runs the command of cmds named by args[0] and returns
// its exit code: 0 done, 1 failed, 2 usage error. "help" lists the
// commands; "help COMMAND" and "COMMAND -h" print a command's usage and
// flags.
func DispatchCommands(ctx context.Context, reg *flow.Registry, cmds []Command, args []string, stdout, stderr io.Writer) int {
	prog := progName()
	if len(args) == 0 {
		commandUsage(stderr, prog, cmds)
		return cliflag.ExitUsage
	}
	name := args[0]
	if name == "-h" || name == "--help" {
		name = "help"
	}
	if name == "help" {
		if len(args) == 1 {
			commandUsage(stdout, prog, cmds)
			return cliflag.ExitOK
		}
		name = args[1]
		for _, c := range cmds {
			if c.Name == name {
				return c.Run(ctx, reg, []string{"-h"}, stdout, stdout)
			}
		}
	}
	for _, c := range cmds {
		if c.Name == name {
			return c.Run(ctx, reg, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "%s: unknown command %q; run '%s help' for the list\n", prog, name, prog)
	return cliflag.ExitUsage
}

func commandUsage(w io.Writer, prog string, cmds []Command) {
	fmt.Fprintf(w, "usage: %s COMMAND [flags]\n\ncommands:\n", prog)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-9s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintf(w, "\nRun '%s help COMMAND' for a command's flags.\n", prog)
}

// progName is the name the program was started by, for messages:
// "gearflow", or a custom binary's own name.
func progName() string {
	name := filepath.Base(os.Args[0])
	name = strings.TrimSuffix(name, ".exe")
	return strings.TrimSuffix(name, ".test")
}

// newFlags returns the flags of subcommand cmd, named after the program.
func newFlags(cmd, usage, about string, stderr io.Writer) *cliflag.Set {
	return cliflag.New(progName()+" "+cmd, usage, about, stderr)
}

// loadPipeline loads a pipeline file and prints its errors, one per line
// with file:line:column, returning ok=false on any.
func loadPipeline(path string, p cliflag.Params, stderr io.Writer) (*spec.Pipeline, bool) {
	pl, err := spec.Load(path, p)
	if err != nil {
		if errs := spec.Errors(err); len(errs) > 0 {
			for _, e := range errs {
				fmt.Fprintln(stderr, e)
			}
		} else {
			fmt.Fprintln(stderr, err)
		}
		return nil, false
	}
	return pl, true
}

// newLogger logs errors only (progress lines already report retries and
// failures), or everything from Info up with -v.
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelError
	if verbose {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// ValidateCommand checks a pipeline file and its params without running
// anything: "validate PIPELINE.yaml [-p name=value]...". It prints "ok:
// NAME (N stages)" and exits 0, or prints every error (file:line:column:
// message (hint: ...)) and exits 1.
func ValidateCommand(ctx context.Context, reg *flow.Registry, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("validate", "PIPELINE.yaml [-p name=value]...",
		"Checks a pipeline file and its params without running anything: every\nerror is printed as file:line:column: message (hint: ...). See\ndocs/PIPELINE.md for the file format.", stderr)
	ps := cliflag.Params{}
	fs.VarP(ps, "param", "p", "set a pipeline param (repeatable)")
	pos, code, ok := fs.Parse(args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return fs.Fail("want exactly one pipeline file, got %d", len(pos))
	}
	p, ok := loadPipeline(pos[0], ps, stderr)
	if !ok {
		return cliflag.ExitFailure
	}
	plural := "s"
	if len(p.Stages) == 1 {
		plural = ""
	}
	fmt.Fprintf(stdout, "ok: %s (%d stage%s)\n", p.Name, len(p.Stages), plural)
	return cliflag.ExitOK
}

// RunCommand runs a pipeline:
//
//	run PIPELINE.yaml [-p name=value]... [--servers host:port,...] [--workers N]
//	    [--json] [--resume RUN_ID] [--state-dir DIR] [--memory-budget MiB] [-v]
//	    [--cpuprofile FILE] [--memprofile FILE] [--http ADDR]
func RunCommand(ctx context.Context, reg *flow.Registry, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("run", "PIPELINE.yaml [flags]",
		"Runs a pipeline: with no --servers, on a job server and workers of its own,\nin this process; with --servers, on the workers of those servers.\n--resume ID finishes an earlier run, redoing only its unfinished tasks.", stderr)
	ps := cliflag.Params{}
	var servers cliflag.Servers
	fs.VarP(ps, "param", "p", "set a pipeline param (repeatable)")
	fs.Var(&servers, "servers", "job servers (default: an embedded server and workers in this process)")
	workers := fs.Int("workers", 0, "tasks the in-process worker runs at once (0: GOMAXPROCS when embedded, none with --servers)")
	jsonOut := fs.Bool("json", false, "print a stream of JSON events instead of progress lines")
	resume := fs.String("resume", "", "resume the run with this `id`, redoing only unfinished tasks")
	stateDir := fs.String("state-dir", "", "directory of run directories (default $GEARFLOW_STATE_DIR, else $XDG_STATE_HOME/gearflow/runs, else ~/.local/state/gearflow/runs)")
	store := fs.String("storage", "", "`URI` of the run's intermediate data, shared by its workers: file:///shared/path or s3://bucket/prefix (default: the pipeline's storage:, else the run's folder when embedded; \"none\": through the job servers)")
	budget := fs.Int64("memory-budget", 256, "MiB of records a shuffle keeps in memory before spilling to disk")
	speculate := fs.Duration("speculate-after", 0, "least run time before a straggler gets a backup attempt (0: 5s)")
	runID := fs.String("run-id", "", "id of a new run (default: a random UUID)")
	keepData := fs.Bool("keep-data", false, "keep the run's intermediate data (its stages' task outputs) after it finishes; by default only its plan, journal and result stay")
	verbose := fs.BoolP("verbose", "v", false, "log the run's lifecycle to stderr")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to `file` (for go tool pprof)")
	memProfile := fs.String("memprofile", "", "write a heap profile at the end of the run to `file`")
	httpAddr := fs.String("http", "", "serve a page, JSON (/api/run, /api/runs) and /metrics of the run on this `address`, e.g. 127.0.0.1:8080 (no access control: keep it on loopback)")
	var tlsFlags TLSFlags
	tlsFlags.Register(fs.FlagSet)
	pos, code, ok := fs.Parse(args)
	if !ok {
		return code
	}
	logger := newLogger(stderr, *verbose)
	tlsFlags.Log = logger // a renewed --tls-cert is read again, and says so
	tlsCfg, err := tlsFlags.Config()
	if err != nil {
		return fs.Fail("%v", err)
	}
	if tlsCfg != nil && len(servers) == 0 {
		return fs.Fail("the --tls flags need --servers (an embedded server is reachable from this process only)")
	}
	if len(pos) > 1 || (len(pos) == 0 && *resume == "") {
		return fs.Fail("want one pipeline file (or --resume RUN_ID), got %d arguments", len(pos))
	}
	var file string
	if len(pos) == 1 {
		file = pos[0]
	}
	if *resume != "" {
		if dir, legacy := flow.LocateRun(*stateDir, *resume); legacy {
			fmt.Fprintf(stderr, "run %s is in the old state folder %s, not in %s; resuming it there\n", *resume, filepath.Dir(dir), flow.DefaultStateDir())
			*stateDir = filepath.Dir(dir)
		}
		info, err := flow.ReadRunInfo(*stateDir, *resume)
		if err != nil {
			fmt.Fprintf(stderr, "cannot resume: %v\n", err)
			return 2
		}
		if file == "" {
			file = info.File
		}
		for k, v := range info.Params {
			if _, set := ps[k]; !set {
				ps[k] = v
			}
		}
		if file == "" {
			fmt.Fprintln(stderr, "cannot resume: the run did not record its pipeline file; name it")
			return 2
		}
	}
	p, ok := loadPipeline(file, ps, stderr)
	if !ok {
		return 2
	}
	prog := newProgress(stdout, stderr, p, *jsonOut, isTerminal(stdout))
	opts := flow.Options{
		Servers: servers, TLS: tlsCfg, Workers: *workers, StateDir: *stateDir, RunID: *runID, Storage: *store,
		PipelineFile: file, Params: ps, MemoryBudget: *budget << 20, SpeculateAfter: *speculate,
		KeepData: *keepData, OnEvent: prog.event, Logger: logger,
	}
	if *resume != "" {
		opts.RunID, opts.Resume = *resume, true
	}
	if *workers < 0 {
		opts.Workers = -1
	}
	if *httpAddr != "" {
		mon := newRunMonitor(p, opts)
		stopHTTP, bound, err := mon.serve(*httpAddr, opts.Logger)
		if err != nil {
			fmt.Fprintf(stderr, "--http: %v\n", err)
			return 2
		}
		defer stopHTTP()
		fmt.Fprintf(stderr, "run page at http://%s/\n", bound)
		opts.OnEvent = func(e flow.Event) { prog.event(e); mon.event(e) }
		opts.OnEmbeddedServer = mon.setServer
	}
	stopProfile, err := startProfiles(*cpuProfile, *memProfile)
	if err != nil {
		fmt.Fprintf(stderr, "profile: %v\n", err)
		return 2
	}
	stop := prog.start(ctx)
	res, err := flow.Run(ctx, p, reg, opts)
	stop()
	if perr := stopProfile(); perr != nil {
		fmt.Fprintf(stderr, "profile: %v\n", perr)
	}
	if res != nil {
		prog.summary(res, err)
	}
	if err != nil {
		var re *flow.RunError
		if errors.As(err, &re) && res != nil {
			fmt.Fprintf(stderr, "%v\n", err)
			hint := ""
			if *stateDir != "" {
				hint = " --state-dir " + *stateDir
			}
			fmt.Fprintf(stderr, "resume with: run %s --resume %s%s\n", file, re.Run, hint)
			return 1
		}
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	return 0
}

func defaultConcurrency() int { return goruntime.GOMAXPROCS(0) }
