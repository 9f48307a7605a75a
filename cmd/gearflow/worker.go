package main

import (
	"context"
	"fmt"
	"io"
)

func cmdWorker(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "gearflow worker: not built yet")
	return 1
}
