package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
)

func TestDispatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"help"}, 0, "commands:", ""},
		{nil, 2, "", "commands:"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"validate"}, 2, "", "want exactly one pipeline file"},
		{[]string{"help", "validate"}, 0, "usage: cli validate PIPELINE.yaml", ""},
		{[]string{"help", "nope"}, 2, "", `unknown command "nope"`},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := Dispatch(t.Context(), flow.NewRegistry(), tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String(), tt.out) || !strings.Contains(stderr.String(), tt.err) {
			t.Errorf("Dispatch(%q) = %d, stdout %q, stderr %q", tt.args, code, stdout.String(), stderr.String())
		}
	}
}

// TestCustomRegistry is what a ten-line custom binary does: its own
// function, the library's run and validate commands.
func TestCustomRegistry(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pipeline, reg := upperPipeline(t, dir)
	var stdout, stderr bytes.Buffer
	if code := Dispatch(t.Context(), reg, []string{"validate", pipeline}, &stdout, &stderr); code != 0 {
		t.Fatalf("validate: %d %s", code, stderr.String())
	}
	if code := Dispatch(t.Context(), reg, []string{"run", pipeline, "--state-dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("run: %d %s", code, stderr.String())
	}
	got, _ := os.ReadFile(filepath.Join(dir, "out.tsv"))
	if string(got) != "B\nA\nB\n" {
		t.Errorf("output %q", got)
	}
}

func TestProgressLines(t *testing.T) {
	t.Parallel()
	p := &spec.Pipeline{Stages: []*spec.Stage{{Name: "count"}, {Name: "total"}}}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	events := []flow.Event{
		{Kind: flow.EventRunStarted, Run: "r1", Dir: "state/r1", Time: t0},
		{Kind: flow.EventStageStarted, Stage: "count", Time: t0, TasksTotal: 4},
		{Kind: flow.EventTaskDone, Stage: "count", Time: t0.Add(time.Second), TasksDone: 1, TasksTotal: 4, RecordsIn: 1000},
		{Kind: flow.EventTaskRetry, Stage: "count", Task: 2, Attempt: 1, Err: "boom", Wait: time.Second, Time: t0.Add(time.Second), TasksDone: 1, TasksTotal: 4, Retries: 1, RecordsIn: 1000},
		{Kind: flow.EventTaskDone, Stage: "count", Time: t0.Add(2 * time.Second), TasksDone: 4, TasksTotal: 4, Retries: 1, RecordsIn: 4000},
		{Kind: flow.EventStageDone, Stage: "count", Time: t0.Add(2 * time.Second), TasksDone: 4, TasksTotal: 4, Retries: 1, RecordsIn: 4000},
	}
	for _, tty := range []bool{false, true} {
		var b bytes.Buffer
		pr := newProgress(&b, &b, p, false, tty)
		for _, e := range events[:3] {
			pr.event(e)
		}
		pr.draw(t0.Add(time.Second))
		for _, e := range events[3:] {
			pr.event(e)
		}
		out := b.String()
		for _, want := range []string{
			"run r1 started (state in state/r1)\n",
			"count 1/4 tasks, 1.0k rec/s, ETA 3s",
			"count 4/4 tasks, 2.0k rec/s, 1 retries, done in 2s\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("tty=%v: progress lacks %q:\n%q", tty, want, out)
			}
		}
		if tty != strings.Contains(out, "\r\033[K") {
			t.Errorf("tty=%v: live line redraw %q", tty, out)
		}
		if !tty && !strings.Contains(out, "task 2 attempt 1 failed, retrying in 1s: boom") {
			t.Errorf("plain output lacks the retry line:\n%s", out)
		}
	}
}

func TestStartProfiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.prof"), filepath.Join(dir, "mem.prof")
	stop, err := startProfiles(cpu, mem)
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{cpu, mem} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("profile %s: %v, %v", p, fi, err)
		}
	}
	if _, err := startProfiles(filepath.Join(dir, "no", "such", "dir", "cpu.prof"), ""); err == nil {
		t.Error("a CPU profile in a missing directory: no error")
	}
}

func TestUpstreamDone(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"stage:count":               "count is done",
		"stage:users, stage:orders": "users and orders are done",
		"stage:a, stage:b, stage:c": "a, b and c are done",
	} {
		if got := upstreamDone(in); got != want {
			t.Errorf("upstreamDone(%q) = %q, want %q", in, got, want)
		}
	}
}
