package cli

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/runtime"
)

// WorkerCommand serves every function of reg to job servers until
// interrupted: "worker --servers host:port,... [--concurrency N] [--id ID]".
func WorkerCommand(ctx context.Context, reg *flow.Registry, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var servers serverList
	fs.Var(&servers, "servers", "job servers `host:port,...` (required)")
	conc := fs.Int("concurrency", 0, "tasks run at once (0: GOMAXPROCS)")
	id := fs.String("id", "", "worker id shown by the admin workers command (default: gearflow-worker-HOST-PID)")
	verbose := fs.Bool("v", false, "log connection and job events")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 0 || len(servers) == 0 {
		fmt.Fprintln(stderr, "usage: worker --servers host:port,... [--concurrency N] [--id ID]")
		return 2
	}
	if *conc <= 0 {
		*conc = defaultConcurrency()
	}
	if *id == "" {
		host, _ := os.Hostname()
		*id = fmt.Sprintf("gearflow-worker-%s-%d", host, os.Getpid())
	}
	w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: servers, Concurrency: *conc, ClientID: flow.WorkerClientID(*id, *conc),
		Logger: newLogger(stderr, *verbose)})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	reg.SetLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
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
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ps := params{}
	var servers serverList
	fs.Var(ps, "p", "set a pipeline param: `name=value` (repeatable)")
	fs.Var(&servers, "servers", "job servers `host:port,...` to ask which functions have workers")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: plan PIPELINE.yaml [-p name=value]... [--servers host:port,...]")
		return 2
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
		st, err := adminStatus(ctx, addr)
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
			tasks = "known when " + strings.TrimPrefix(sp.Input, "stage:") + " is done"
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

// adminStatus asks a Gearman server for its admin "status": function,
// total, running, available workers per line, ending with ".".
func adminStatus(ctx context.Context, addr string) (map[string]int, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "status\n"); err != nil {
		return nil, err
	}
	out := map[string]int{}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		line := sc.Text()
		if line == "." {
			return out, nil
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("admin status: unexpected line %q", line)
		}
		n, _ := strconv.Atoi(f[3])
		out[f[0]] = n
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, io.ErrUnexpectedEOF
}
