package main

import (
	"context"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/runtime"
	"github.com/gearflow/gearflow/server"
)

func TestPlan(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runCmd(t, t.Context(), cmdPlan, wordcountYAML, "-p", "lines=5")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"pipeline wordcount: 2 stages",
		"stage count (map, function wc.map, combine wc.sum, encoding msgpack)",
		"tasks:      3\n",
		"input.txt:1-5\n",
		"input.txt:11-12\n",
		"partitions: 4\n",
		"stage total (reduce, function wc.sum",
		"one or more per non-empty partition (4 partitions)",
		"function wc.map: registered in this binary",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan output lacks %q:\n%s", want, stdout)
		}
	}
}

// TestPlanShowsWorkers asks a server which of the pipeline's functions
// have workers right now.
func TestPlanShowsWorkers(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t, server.Config{})
	w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: []string{srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	reg := flow.NewRegistry()
	reg.Map("wc.map", func(context.Context, flow.Record, flow.Emit) error { return nil })
	reg.Register(w)
	w.Handle("ping", runtime.HandlerFunc(func(context.Context, *runtime.Job) ([]byte, error) { return nil, nil }))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	// A job done by the worker proves it has registered its functions
	// (CAN_DO goes out before the first grab).
	c, err := runtime.NewClient(runtime.ClientConfig{Servers: []string{srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do(t.Context(), runtime.Job{Function: "ping"}); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd(t, t.Context(), cmdPlan, wordcountYAML, "--servers", srv.Addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"function wc.map: registered in this binary; 1 workers on the servers now",
		"function wc.sum: registered in this binary; 0 workers on the servers now",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, stdout)
		}
	}
}

func TestPlanBadPipeline(t *testing.T) {
	t.Parallel()
	code, _, stderr := runCmd(t, t.Context(), cmdPlan, wordcountYAML, "-p", "partitions=many")
	if code != 2 || !strings.Contains(stderr, "wordcount.yaml:") || !strings.Contains(stderr, "partitions") {
		t.Errorf("exit %d stderr %q: want 2 and the param's error with its position", code, stderr)
	}
}
