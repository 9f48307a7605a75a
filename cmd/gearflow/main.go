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

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// plain adapts a command that needs no flow functions to cli.Command.
type plain func(ctx context.Context, args []string, stdout, stderr io.Writer) int

func (f plain) run(ctx context.Context, _ *flow.Registry, args []string, stdout, stderr io.Writer) int {
	return f(ctx, args, stdout, stderr)
}

// commands are gearflow's subcommands: the server's and the load
// tool's, and flow/cli's pipeline commands, which a custom binary built
// with cli.Main has too.
func commands() []cli.Command {
	cmds := []cli.Command{
		{Name: "serve", Summary: "run a Gearman job server (drop-in for gearmand)", Run: plain(cmdServe).run},
	}
	for _, c := range cli.Commands() {
		if c.Name == "runs" {
			cmds = append(cmds,
				cli.Command{Name: "submit", Summary: "submit one job to a Gearman server", Run: plain(cmdSubmit).run},
				cli.Command{Name: "status", Summary: "show a server's functions, queues and workers", Run: plain(cmdStatus).run})
		}
		cmds = append(cmds, c)
	}
	return append(cmds,
		cli.Command{Name: "bench", Summary: "load-test a Gearman server", Run: plain(cmdBench).run},
		cli.Command{Name: "version", Summary: "print the version", Run: plain(cmdVersion).run})
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
	return cli.DispatchCommands(ctx, functions(), commands(), args, stdout, stderr)
}

func cmdVersion(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stdout, "gearflow", version)
	return 0
}
