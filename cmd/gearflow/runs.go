package main

import (
	"context"
	"io"

	"github.com/gearflow/gearflow/flow/cli"
)

func cmdRuns(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.RunsCommand(ctx, functions(), args, stdout, stderr)
}
