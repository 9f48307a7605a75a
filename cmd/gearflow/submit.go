package main

import (
	"context"
	"fmt"
	"io"
)

func cmdSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "gearflow submit: not built yet")
	return 1
}
