package join_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/examples/join"
	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/runtime"
	"github.com/gearflow/gearflow/server"
)

// TestJoin runs the example embedded (as "gearflow run join.yaml" does by
// default) and distributed (a job server, workers of their own over TCP
// and shared storage), and checks the exact output against
// testdata/want.jsonl: every user's orders in file order, u3 without
// any, Dijkstra's name with its line break, and the order of the unknown
// user u9 dropped.
func TestJoin(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile("testdata/want.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"embedded", "distributed"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			out := filepath.Join(dir, "user_orders.jsonl")
			p, err := spec.Load("join.yaml", map[string]string{"out": out})
			if err != nil {
				t.Fatal(err)
			}
			reg := flow.NewRegistry()
			join.Register(reg)
			opts := flow.Options{StateDir: filepath.Join(dir, "state")}
			if mode == "distributed" {
				srv := servertest.Start(t, server.Config{})
				w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: []string{srv.Addr}, Concurrency: 4})
				if err != nil {
					t.Fatal(err)
				}
				reg.Register(w)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- w.Run(ctx) }()
				t.Cleanup(func() { cancel(); <-done })
				opts.Servers = []string{srv.Addr}
				opts.Storage = "file://" + filepath.Join(dir, "store")
			}
			res, err := flow.Run(t.Context(), p, reg, opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("output:\n%s\nwant:\n%s", got, want)
			}
			if n := len(res.Stages); n != 3 || res.Stages[2].Tasks != 4 {
				t.Errorf("stages %+v: want 3, the join with a task per partition", res.Stages)
			}
		})
	}
}

// TestJoinNeedsStorage: without storage the partitions of the two
// stages have nowhere to meet, and the run says so before it submits a
// single task.
func TestJoinNeedsStorage(t *testing.T) {
	t.Parallel()
	p, err := spec.Load("join.yaml", map[string]string{"out": filepath.Join(t.TempDir(), "out.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	reg := flow.NewRegistry()
	join.Register(reg)
	var events []flow.Event
	srv := servertest.Start(t, server.Config{})
	_, err = flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Servers: []string{srv.Addr}, Workers: 1,
		Storage: flow.StorageNone, OnEvent: func(e flow.Event) { events = append(events, e) }})
	if err == nil || !strings.Contains(err.Error(), "stage user_orders reads several stages together, which needs storage") {
		t.Fatalf("err = %v, want the cogroup's need of storage", err)
	}
	for _, e := range events {
		if e.Kind == flow.EventTaskDone {
			t.Errorf("a task ran: %+v", e)
		}
	}
}
