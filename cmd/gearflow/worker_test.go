package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/server"
)

// TestWorkerServesRun runs "gearflow worker" in-process against our
// server and a run that has no local workers: the worker serves every
// task, logs each with -v, and stops when its context ends.
func TestWorkerServesRun(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t, server.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int)
	var wout syncBuffer
	go func() {
		done <- cmdWorker(ctx, []string{"--servers", srv.Addr, "--concurrency", "2", "--id", "w1", "-v"}, &wout, &wout)
	}()

	out := filepath.Join(t.TempDir(), "wc.tsv")
	code, stdout, stderr := runCmd(t, t.Context(), cmdRun, wordcountYAML, "--servers", srv.Addr, "-p", "out="+out, "--state-dir", t.TempDir())
	cancel()
	if wcode := <-done; wcode != 0 {
		t.Errorf("worker exit %d: %s", wcode, wout.String())
	}
	if code != 0 {
		t.Fatalf("run exit %d\n%s\n%s", code, stdout, stderr)
	}
	got, _ := os.ReadFile(out)
	want, _ := os.ReadFile("../../examples/wordcount/testdata/want.tsv")
	if string(got) != string(want) {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(wout.String(), "worker w1 serving") || !strings.Contains(wout.String(), "wc.map") {
		t.Errorf("worker banner: %q", wout.String())
	}
	// -v logs each task's start and end.
	for _, want := range []string{`msg="task started" function=wc.map`, `msg="task done" function=wc.map`, `msg="task done" function=wc.sum`} {
		if !strings.Contains(wout.String(), want) {
			t.Errorf("worker -v output has no %s:\n%s", want, wout.String())
		}
	}
}

func TestWorkerUsage(t *testing.T) {
	t.Parallel()
	code, _, stderr := runCmd(t, t.Context(), cmdWorker)
	if code != 2 || !strings.Contains(stderr, "gearflow worker: --servers is required") {
		t.Errorf("exit %d stderr %q", code, stderr)
	}
}
