package main

import (
	"context"
	"io"

	"github.com/gearflow/gearflow/flow/cli"
)

func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.PlanCommand(ctx, functions(), args, stdout, stderr)
}
