// Command gearflow is a Gearman job server, worker and map/reduce
// pipeline runner. Run "gearflow help" for its subcommands.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// command is one subcommand: it parses its own flags from args and
// returns the process exit code.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run a Gearman job server (drop-in for gearmand)", cmdServe},
		{"worker", "serve registered flow functions to job servers", cmdWorker},
		{"run", "run a pipeline (embedded server and workers unless --servers)", cmdRun},
		{"validate", "check a pipeline file", cmdValidate},
		{"plan", "show the tasks a pipeline would run, without running it", cmdPlan},
		{"runs", "list, show and remove runs (runs, runs show ID, runs rm ID, runs gc)", cmdRuns},
		{"submit", "submit one job to a Gearman server", cmdSubmit},
		{"status", "show a server's functions, queues and workers", cmdStatus},
		{"bench", "load-test a Gearman server", cmdBench},
		{"version", "print the version", cmdVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches to a subcommand and returns the exit code: 0 success,
// 1 failure, 2 usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "gearflow: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: gearflow <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "gearflow <command> -h" for a command's flags.`)
}

func cmdVersion(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stdout, "gearflow", version)
	return 0
}
