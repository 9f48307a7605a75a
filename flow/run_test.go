package flow_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearflow/gearflow/examples/wordcount"
	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
)

func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("GEARFLOW_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}))
}

// loadWordcount loads the wordcount example with its output in a
// temporary directory.
func loadWordcount(t *testing.T, extra map[string]string) (*spec.Pipeline, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "wordcount.tsv")
	// Four lines a task, so that the example's small input makes several.
	params := map[string]string{"out": out, "lines": "4"}
	for k, v := range extra {
		params[k] = v
	}
	p, err := spec.Load("../examples/wordcount/wordcount.yaml", params)
	if err != nil {
		t.Fatal(err)
	}
	return p, out
}

func wantWordcount(t *testing.T) string {
	t.Helper()
	want, err := os.ReadFile("../examples/wordcount/testdata/want.tsv")
	if err != nil {
		t.Fatal(err)
	}
	return string(want)
}

func checkOutput(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("output %s:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestRunWordcountEmbedded(t *testing.T) {
	t.Parallel()
	p, out := loadWordcount(t, nil)
	reg := flow.NewRegistry()
	wordcount.Register(reg)
	var mu sync.Mutex
	kinds := map[flow.EventKind]int{}
	res, err := flow.Run(t.Context(), p, reg, flow.Options{
		StateDir: t.TempDir(), Workers: 4, Logger: testLogger(t),
		OnEvent: func(e flow.Event) {
			mu.Lock()
			kinds[e.Kind]++
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, out, wantWordcount(t))
	if res.Stages[0].Tasks != 3 || res.Stages[0].Done != 3 || res.Stages[1].Done != res.Stages[1].Tasks {
		t.Errorf("stages %+v", res.Stages)
	}
	if res.OutputRecords != 48 || res.Output != out {
		t.Errorf("result output %s with %d records", res.Output, res.OutputRecords)
	}
	if kinds[flow.EventRunStarted] != 1 || kinds[flow.EventRunDone] != 1 || kinds[flow.EventTaskDone] != res.Stages[0].Tasks+res.Stages[1].Tasks {
		t.Errorf("events %v", kinds)
	}
}

// TestRunDiscardsPartialDataOfFailedAttempts: the first attempt of every
// map task streams a few thousand records (enough for WORK_DATA batches
// to go out) and then fails half-way through its input; the output is
// still exact, since that partial data never counts.
func TestRunDiscardsPartialDataOfFailedAttempts(t *testing.T) {
	t.Parallel()
	p, out := loadWordcount(t, nil)
	p.Stages[0].Combine = "" // so records stream as they are emitted
	reg := flow.NewRegistry()
	var failed atomic.Int64
	var mu sync.Mutex
	seen := map[int]int{} // task -> records seen by attempt 1
	reg.Map("wc.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		info, _ := flow.InfoFrom(ctx)
		if info.Attempt == 1 {
			mu.Lock()
			seen[info.Task]++
			n := seen[info.Task]
			mu.Unlock()
			if n == 1 {
				for i := 0; i < 10000; i++ { // several WORK_DATA batches
					if err := emit("partial-junk", 1); err != nil {
						return err
					}
				}
			}
			if n > 2 { // half of a 4-line chunk
				failed.Add(1)
				return errors.New("injected failure after partial output")
			}
		}
		return wordcount.Map(ctx, rec, emit)
	})
	reg.Reduce("wc.sum", wordcount.Sum)
	var retryEvents atomic.Int64
	res, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Workers: 2, Logger: testLogger(t),
		OnEvent: func(e flow.Event) {
			if e.Kind == flow.EventTaskRetry {
				retryEvents.Add(1)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, out, wantWordcount(t))
	if failed.Load() != 3 || res.Stages[0].Retries != 3 || retryEvents.Load() != 3 {
		t.Errorf("%d injected failures, %d retries, %d retry events; want 3 each", failed.Load(), res.Stages[0].Retries, retryEvents.Load())
	}
}

func TestRunFailureReport(t *testing.T) {
	t.Parallel()
	p, _ := loadWordcount(t, nil)
	p.Stages[0].Retry.MaxAttempts = 2
	p.Stages[0].Retry.Initial = 0
	reg := flow.NewRegistry()
	reg.Map("wc.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		if strings.Contains(rec.Value.(string), "Gearman") {
			return errors.New("cannot parse gearman")
		}
		return wordcount.Map(ctx, rec, emit)
	})
	reg.Reduce("wc.sum", wordcount.Sum)
	_, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Workers: 2, Logger: testLogger(t)})
	var re *flow.RunError
	if !errors.As(err, &re) || len(re.Failed) != 1 {
		t.Fatalf("err = %v, want a RunError with one failed task", err)
	}
	f := re.Failed[0]
	in := filepath.Join(p.Dir, "data", "input.txt")
	if f.Stage != "count" || f.Task != 1 || f.Function != "wc.map" || f.Attempts != 2 ||
		!strings.Contains(f.Err, "cannot parse gearman") || f.Input != in+":5-8" {
		t.Errorf("failure %+v", f)
	}
	if !strings.Contains(err.Error(), in+":5-8") {
		t.Errorf("error text %q does not name the input", err)
	}
}

func TestRunSpillsShuffleToDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var b strings.Builder
	want := map[string]int{}
	for i := 0; i < 3000; i++ {
		w := fmt.Sprintf("w%d", i%701)
		want[w]++
		fmt.Fprintf(&b, "%s\n", w)
	}
	in := filepath.Join(dir, "in.txt")
	os.WriteFile(in, []byte(b.String()), 0o644)
	p, out := loadWordcount(t, map[string]string{"input": in})
	p.Stages[0].Input.Split.N = 500
	p.Stages[0].Combine = ""
	reg := flow.NewRegistry()
	wordcount.Register(reg)
	if _, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), MemoryBudget: 4096, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d output lines, want %d", len(lines), len(want))
	}
	prev := ""
	for _, l := range lines {
		k, v, _ := strings.Cut(l, "\t")
		if fmt.Sprint(want[k]) != v || k <= prev {
			t.Errorf("line %q: want count %d, keys ascending", l, want[k])
		}
		prev = k
	}
}

// TestRunContinuePolicy: with on_failure: continue, a task that runs out
// of attempts is reported and written to the dead-letter file, and the
// run finishes with the other tasks' output.
func TestRunContinuePolicy(t *testing.T) {
	t.Parallel()
	p, out := loadWordcount(t, nil)
	dead := filepath.Join(t.TempDir(), "dead.jsonl")
	p.Stages[0].OnFailure = spec.FailurePolicy{Mode: spec.Continue}
	p.Stages[0].DeadLetter = dead
	p.Stages[0].Retry.Initial = 0
	reg := flow.NewRegistry()
	reg.Map("wc.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		if info, _ := flow.InfoFrom(ctx); info.Task == 2 {
			return errors.New("bad chunk")
		}
		return wordcount.Map(ctx, rec, emit)
	})
	reg.Reduce("wc.sum", wordcount.Sum)
	res, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failed) != 1 || res.Failed[0].Task != 2 || res.Stages[0].Failed != 1 {
		t.Fatalf("failed %+v, stages %+v", res.Failed, res.Stages)
	}
	// The expected output: the counts of lines 1-8 only (task 2 is 9-12).
	data, _ := os.ReadFile("../examples/wordcount/data/input.txt")
	counts := map[string]int64{}
	for _, line := range strings.Split(string(data), "\n")[:8] {
		wordcount.Map(t.Context(), flow.Record{Value: line}, func(k string, v any) error {
			counts[k]++
			return nil
		})
	}
	got, _ := os.ReadFile(out)
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	if len(lines) != len(counts) {
		t.Errorf("%d output lines, want %d", len(lines), len(counts))
	}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, "\t")
		if fmt.Sprint(counts[k]) != v {
			t.Errorf("line %q, want %d", l, counts[k])
		}
	}
	dl, err := os.ReadFile(dead)
	if err != nil || !strings.Contains(string(dl), `"task":2`) || !strings.Contains(string(dl), "input.txt:9-12") ||
		!strings.Contains(string(dl), "bad chunk") || strings.Count(string(dl), "\n") != 1 {
		t.Errorf("dead letter %q, %v", dl, err)
	}
}

// TestRunAttemptTimeout: the first attempt of one task hangs; the
// coordinator gives up on it after the stage's timeout and a second
// attempt (with a different unique, so the server does not coalesce it
// onto the hung job) completes the run.
func TestRunAttemptTimeout(t *testing.T) {
	t.Parallel()
	p, out := loadWordcount(t, nil)
	p.Stages[0].Timeout = 300 * time.Millisecond
	p.Stages[0].Retry.Initial = 0
	reg := flow.NewRegistry()
	var hung atomic.Int64
	reg.Map("wc.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		if info, _ := flow.InfoFrom(ctx); info.Task == 1 && info.Attempt == 1 {
			hung.Add(1)
			<-ctx.Done() // until the worker shuts down
			return ctx.Err()
		}
		return wordcount.Map(ctx, rec, emit)
	})
	reg.Reduce("wc.sum", wordcount.Sum)
	// On a slow machine another attempt may also outlast the timeout and
	// be retried: only the hung attempt's timeout is certain.
	var timeouts, otherTimeouts atomic.Int64
	res, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Workers: 3, Logger: testLogger(t),
		OnEvent: func(e flow.Event) {
			if e.Kind == flow.EventTaskRetry && strings.Contains(e.Err, "timed out") {
				if e.Task == 1 && e.Attempt == 1 {
					timeouts.Add(1)
				} else {
					otherTimeouts.Add(1)
				}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, out, wantWordcount(t))
	if hung.Load() != 1 || timeouts.Load() != 1 || int64(res.Stages[0].Retries) != 1+otherTimeouts.Load() {
		t.Errorf("%d hung attempts, %d timeouts of the hung attempt (%d of others), %d retries; want 1 hung, 1 timeout, 1 retry per timeout",
			hung.Load(), timeouts.Load(), otherTimeouts.Load(), res.Stages[0].Retries)
	}
}

// TestRunMissingInput fails before anything is submitted, naming the
// stage and the file.
func TestRunMissingInput(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope.txt")
	p, out := loadWordcount(t, map[string]string{"input": missing})
	reg := flow.NewRegistry()
	wordcount.Register(reg)
	var events atomic.Int64
	_, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), OnEvent: func(flow.Event) { events.Add(1) }})
	if err == nil || !strings.Contains(err.Error(), "stage count") || !strings.Contains(err.Error(), missing) {
		t.Errorf("err = %v, want the stage and the missing file", err)
	}
	if events.Load() != 0 {
		t.Errorf("%d events: the run started", events.Load())
	}
	if _, serr := os.Stat(out); serr == nil {
		t.Error("an output was written")
	}
}

// TestRunStragglerBackup: one task's first attempt streams junk and then
// hangs; near the end of the stage it gets a backup attempt, which wins,
// and the straggler's data is discarded.
func TestRunStragglerBackup(t *testing.T) {
	t.Parallel()
	p, out := loadWordcount(t, nil)
	p.Stages[0].Combine = ""
	p.Stages[0].Speculative = true
	reg := flow.NewRegistry()
	reg.Map("wc.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		if info, _ := flow.InfoFrom(ctx); info.Task == 2 && info.Attempt == 1 {
			for i := 0; i < 5000; i++ {
				if err := emit("straggler-junk", 1); err != nil {
					return err
				}
			}
			<-ctx.Done() // until the worker shuts down
			return ctx.Err()
		}
		return wordcount.Map(ctx, rec, emit)
	})
	reg.Reduce("wc.sum", wordcount.Sum)
	// On a slow machine a healthy task may also run past the threshold
	// (twice the median, at least SpeculateAfter) and get a backup of
	// its own: only the straggler's backup is certain.
	var backups, otherBackups atomic.Int64
	res, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Workers: 3, Logger: testLogger(t),
		SpeculateAfter: 200 * time.Millisecond,
		OnEvent: func(e flow.Event) {
			if e.Kind != flow.EventTaskBackup {
				return
			}
			if e.Task == 2 && e.Attempt == 2 {
				backups.Add(1)
			} else {
				otherBackups.Add(1)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, out, wantWordcount(t))
	if backups.Load() != 1 || int64(res.Stages[0].Backups) != 1+otherBackups.Load() || res.Stages[0].Retries != 0 {
		t.Errorf("%d backup events of the straggler (%d of others), stage %+v; want one straggler backup and no retry",
			backups.Load(), otherBackups.Load(), res.Stages[0])
	}
}
