package main

import (
	"context"
	"io"

	"github.com/gearflow/gearflow/examples"
	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/cli"
)

// functions returns the Go functions the stock binary serves: those of
// the bundled examples. A program with its own functions builds its own
// binary with flow/cli instead (see examples/wordcount/cmd/wordcount).
func functions() *flow.Registry {
	reg := flow.NewRegistry()
	examples.Register(reg)
	return reg
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.RunCommand(ctx, functions(), args, stdout, stderr)
}
