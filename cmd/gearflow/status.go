package main

import (
	"context"
	"fmt"
	"io"
)

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "gearflow status: not built yet")
	return 1
}
