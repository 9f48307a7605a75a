package main

import (
	"context"
	"io"

	"github.com/gearflow/gearflow/flow/cli"
)

func cmdWorker(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.WorkerCommand(ctx, functions(), args, stdout, stderr)
}
