package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"syscall"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
)

// Main runs the subcommand named by os.Args[1] with reg's functions and
// exits with its code. SIGINT and SIGTERM cancel the command's context.
func Main(reg *flow.Registry) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Dispatch(ctx, reg, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type command struct {
	name, summary string
	run           func(ctx context.Context, reg *flow.Registry, args []string, stdout, stderr io.Writer) int
}

func commandList() []command {
	return []command{
		{"run", "run a pipeline (embedded server and workers unless --servers)", RunCommand},
		{"plan", "show the tasks a pipeline would run, without running it", PlanCommand},
		{"worker", "serve the registered functions to job servers", WorkerCommand},
		{"validate", "check a pipeline file", ValidateCommand},
		{"runs", "list, show and remove runs (runs, runs show ID, runs rm ID, runs gc)", RunsCommand},
	}
}

// Dispatch runs the subcommand args[0] and returns its exit code.
func Dispatch(ctx context.Context, reg *flow.Registry, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		w := stdout
		if len(args) == 0 {
			w = stderr
		}
		fmt.Fprintln(w, "usage: COMMAND [flags]\n\ncommands:")
		for _, c := range commandList() {
			fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
		}
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commandList() {
		if c.name == args[0] {
			return c.run(ctx, reg, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "unknown command %q (commands: run, plan, worker, validate, runs)\n", args[0])
	return 2
}

// params collects repeated -p name=value flags.
type params map[string]string

func (p params) String() string {
	var s []string
	for k, v := range p {
		s = append(s, k+"="+v)
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

func (p params) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", v)
	}
	p[name] = value
	return nil
}

// serverList is a comma-separated --servers flag.
type serverList []string

func (s *serverList) String() string { return strings.Join(*s, ",") }
func (s *serverList) Set(v string) error {
	for _, a := range strings.Split(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			if !strings.Contains(a, ":") {
				a += ":4730"
			}
			*s = append(*s, a)
		}
	}
	return nil
}

// parseInterspersed parses flags that may come before or after the
// positional arguments ("run pipeline.yaml -p x=1"), and returns the
// positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// loadPipeline loads a pipeline file and prints its errors, one per line
// with file:line:column, returning ok=false on any.
func loadPipeline(path string, p params, stderr io.Writer) (*spec.Pipeline, bool) {
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

// ValidateCommand checks a pipeline file: "validate PIPELINE.yaml [-p name=value]...".
func ValidateCommand(ctx context.Context, reg *flow.Registry, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ps := params{}
	fs.Var(ps, "p", "set a pipeline param: `name=value` (repeatable)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: validate PIPELINE.yaml [-p name=value]...")
		return 2
	}
	p, ok := loadPipeline(pos[0], ps, stderr)
	if !ok {
		return 1 // an invalid pipeline, not a usage error
	}
	fmt.Fprintf(stdout, "%s: pipeline %q is valid: %d stages, output %s\n", pos[0], p.Name, len(p.Stages), p.Output.To)
	return 0
}

// RunCommand runs a pipeline:
//
//	run PIPELINE.yaml [-p name=value]... [--servers host:port,...] [--workers N]
//	    [--json] [--resume RUN_ID] [--state-dir DIR] [--memory-budget MiB] [-v]
//	    [--cpuprofile FILE] [--memprofile FILE]
func RunCommand(ctx context.Context, reg *flow.Registry, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ps := params{}
	var servers serverList
	fs.Var(ps, "p", "set a pipeline param: `name=value` (repeatable)")
	fs.Var(&servers, "servers", "job servers `host:port,...`; none: start an embedded server")
	workers := fs.Int("workers", 0, "tasks the in-process worker runs at once (0: GOMAXPROCS when embedded, none with --servers)")
	jsonOut := fs.Bool("json", false, "print a stream of JSON events instead of progress lines")
	resume := fs.String("resume", "", "resume the run with this `id`, redoing only unfinished tasks")
	stateDir := fs.String("state-dir", "", "directory of run directories (default $GEARFLOW_STATE_DIR, else $XDG_STATE_HOME/gearflow/runs, else ~/.local/state/gearflow/runs)")
	store := fs.String("storage", "", "`URI` of the run's intermediate data, shared by its workers: file:///shared/path or s3://bucket/prefix (default: the pipeline's storage:, else the run's folder when embedded; \"none\": through the job servers)")
	budget := fs.Int64("memory-budget", 256, "MiB of records a shuffle keeps in memory before spilling to disk")
	speculate := fs.Duration("speculate-after", 0, "least run time before a straggler gets a backup attempt (0: 5s)")
	runID := fs.String("run-id", "", "id of a new run (default: a random UUID)")
	verbose := fs.Bool("v", false, "log the run's lifecycle to stderr")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to `file` (for go tool pprof)")
	memProfile := fs.String("memprofile", "", "write a heap profile at the end of the run to `file`")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 1 || (len(pos) == 0 && *resume == "") {
		fmt.Fprintln(stderr, "usage: run PIPELINE.yaml [-p name=value]... [--servers host:port,...] [--workers N] [--json] [--resume RUN_ID]")
		return 2
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
		Servers: servers, Workers: *workers, StateDir: *stateDir, RunID: *runID, Storage: *store,
		PipelineFile: file, Params: ps, MemoryBudget: *budget << 20, SpeculateAfter: *speculate,
		OnEvent: prog.event, Logger: newLogger(stderr, *verbose),
	}
	if *resume != "" {
		opts.RunID, opts.Resume = *resume, true
	}
	if *workers < 0 {
		opts.Workers = -1
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
