package main

import (
	"context"
	"fmt"
	"io"
)

func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "gearflow plan: not built yet")
	return 1
}
