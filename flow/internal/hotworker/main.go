// Command hotworker is a flow worker for tests: hot.map emits every line
// under its first word as the key (the rest as the value), and hot.agg
// counts a key's values and their bytes, reading them one at a time. A
// test builds it without the race detector, so that the worker's memory
// is the program's own.
//
//	hotworker ADDR
package main

import (
	"context"
	"fmt"
	"iter"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/runtime"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: hotworker HOST:PORT")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	reg := flow.NewRegistry()
	reg.Map("hot.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		k, v, _ := strings.Cut(rec.Value.(string), " ")
		return emit(k, v)
	})
	reg.Reduce("hot.agg", func(ctx context.Context, key string, values iter.Seq[any], emit flow.Emit) error {
		var n, bytes int64
		for v := range values {
			n++
			bytes += int64(len(v.(string)))
		}
		return emit(key, fmt.Sprintf("%d values, %d bytes", n, bytes))
	})
	w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: []string{os.Args[1]}, Concurrency: 1,
		ClientID: flow.WorkerClientID("hotworker", 1)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	reg.Register(w)
	if err := w.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
