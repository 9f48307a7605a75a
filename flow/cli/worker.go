package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/internal/cliflag"
	"github.com/gearflow/gearflow/runtime"
)

// WorkerCommand serves every function of reg to job servers until
// interrupted: "worker --servers host:port,... [--concurrency N] [--id ID]".
func WorkerCommand(ctx context.Context, reg *flow.Registry, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("worker", "--servers host:port,... [flags]",
		"Serves the functions registered in this binary to job servers until\ninterrupted; runs started with --servers give it their tasks.", stderr)
	var servers cliflag.Servers
	fs.Var(&servers, "servers", "job servers (required)")
	conc := fs.Int("concurrency", 0, "tasks run at once (0: GOMAXPROCS)")
	id := fs.String("id", "", "worker id shown by the admin workers command (default: gearflow-worker-HOST-PID)")
	verbose := fs.BoolP("verbose", "v", false, "log connection and job events")
	var tlsFlags TLSFlags
	tlsFlags.Register(fs.FlagSet)
	pos, code, ok := fs.Parse(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return fs.Fail("unexpected argument %q", pos[0])
	}
	if len(servers) == 0 {
		return fs.Fail("--servers is required")
	}
	logger := newLogger(stderr, *verbose)
	tlsFlags.Log = logger // a renewed --tls-cert is read again, and says so
	tlsCfg, err := tlsFlags.Config()
	if err != nil {
		return fs.Fail("%v", err)
	}
	if *conc <= 0 {
		*conc = defaultConcurrency()
	}
	if *id == "" {
		host, _ := os.Hostname()
		*id = fmt.Sprintf("gearflow-worker-%s-%d", host, os.Getpid())
	}
	w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: servers, Concurrency: *conc, ClientID: flow.WorkerClientID(*id, *conc),
		TLS: tlsCfg, Logger: logger})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	// Trouble always; with -v each task's start and end too.
	taskLevel := slog.LevelWarn
	if *verbose {
		taskLevel = slog.LevelDebug
	}
	reg.SetLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: taskLevel})))
	reg.SetWorkerID(*id)
	reg.Register(w)
	fmt.Fprintf(stdout, "worker %s serving %s on %s with concurrency %d\n", *id, strings.Join(reg.Names(), ", "), strings.Join(servers, ","), *conc)
	if err := w.Run(ctx); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// PlanCommand prints what a run would do, without running it:
// "plan PIPELINE.yaml [-p name=value]... [--servers host:port,...]".
// With --servers it also asks each server (admin "status") which of the
// pipeline's functions have workers now.
func PlanCommand(ctx context.Context, reg *flow.Registry, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("plan", "PIPELINE.yaml [-p name=value]... [--servers host:port,...]",
		"Prints the stages and tasks a run would make, without running it; with\n--servers, also which of its functions have workers there now.", stderr)
	ps := cliflag.Params{}
	var servers cliflag.Servers
	fs.VarP(ps, "param", "p", "set a pipeline param (repeatable)")
	fs.Var(&servers, "servers", "job servers to ask which functions have workers")
	var tlsFlags TLSFlags
	tlsFlags.Register(fs.FlagSet)
	pos, code, ok := fs.Parse(args)
	if !ok {
		return code
	}
	tlsCfg, err := tlsFlags.Config()
	if err != nil {
		return fs.Fail("%v", err)
	}
	if len(pos) != 1 {
		return fs.Fail("want exactly one pipeline file, got %d", len(pos))
	}
	p, ok := loadPipeline(pos[0], ps, stderr)
	if !ok {
		return 2
	}
	plans, err := flow.Plan(p)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	workers := map[string]int{}
	for _, addr := range servers {
		st, err := adminStatus(ctx, runtime.Admin{TLS: tlsCfg}, addr)
		if err != nil {
			fmt.Fprintf(stderr, "server %s: %v\n", addr, err)
			return 1
		}
		for f, n := range st {
			workers[f] += n
		}
	}
	fmt.Fprintf(stdout, "pipeline %s: %d stages, output %s (%s)\n", p.Name, len(p.Stages), p.Output.To, p.Output.Format)
	for _, sp := range plans {
		tasks := strconv.Itoa(sp.Tasks)
		switch {
		case sp.Kind.String() == "reduce":
			tasks = fmt.Sprintf("one or more per non-empty partition (%d partitions)", sp.Partitions)
		case sp.Tasks < 0:
			tasks = "known when " + upstreamDone(sp.Input)
		}
		fmt.Fprintf(stdout, "\nstage %s (%s, function %s", sp.Name, sp.Kind, sp.Function)
		if sp.Combine != "" {
			fmt.Fprintf(stdout, ", combine %s", sp.Combine)
		}
		fmt.Fprintf(stdout, ", encoding %s)\n", sp.Encoding)
		if len(sp.Needs) > 0 {
			fmt.Fprintf(stdout, "  needs:      %s\n", strings.Join(sp.Needs, ", "))
		}
		if sp.Input != "" {
			fmt.Fprintf(stdout, "  input:      %s\n", sp.Input)
		}
		fmt.Fprintf(stdout, "  tasks:      %s\n", tasks)
		for i, in := range sp.Inputs {
			fmt.Fprintf(stdout, "    task %d: %s\n", i, in)
		}
		if sp.Tasks > len(sp.Inputs) {
			fmt.Fprintf(stdout, "    …\n")
		}
		if sp.Kind.String() != "reduce" && sp.Partitions > 0 {
			fmt.Fprintf(stdout, "  partitions: %d\n", sp.Partitions)
		}
		for _, w := range sp.Warnings {
			fmt.Fprintf(stdout, "  warning:    %s\n", w)
		}
		fns := []string{sp.Function}
		if sp.Combine != "" {
			fns = append(fns, sp.Combine)
		}
		for _, f := range fns {
			_, local := reg.Kind(f)
			where := "not registered in this binary"
			if local {
				where = "registered in this binary"
			}
			if len(servers) > 0 {
				where += fmt.Sprintf("; %d workers on the servers now", workers[f])
			}
			fmt.Fprintf(stdout, "  function %s: %s\n", f, where)
		}
	}
	return 0
}

// adminStatus asks a Gearman server for its admin "status" and returns
// the available workers per function.
func adminStatus(ctx context.Context, admin runtime.Admin, addr string) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := admin.Status(ctx, addr)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(st))
	for _, f := range st {
		out[f.Function] = f.Workers
	}
	return out, nil
}

// upstreamDone says which stages a stage's tasks wait for, from its
// input ("stage:a" or "stage:a, stage:b"): "a is done", "a and b are
// done".
func upstreamDone(input string) string {
	var names []string
	for _, in := range strings.Split(input, ", ") {
		names = append(names, strings.TrimPrefix(in, "stage:"))
	}
	if len(names) == 1 {
		return names[0] + " is done"
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1] + " are done"
}
