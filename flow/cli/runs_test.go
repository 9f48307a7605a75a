package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
)

// runsFixture is a folder with a one-stage pipeline and the functions
// that make its runs finish, fail or hang.
type runsFixture struct {
	dir, state string
	started    chan struct{} // a hanging task has started
}

func newRunsFixture(t *testing.T) *runsFixture {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("b\na\nb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(`version: 1
name: upper
params:
  fn:  { type: string, default: my.upper }
  out: { type: path, default: out.tsv }
stages:
  - name: up
    kind: map
    function: ${params.fn}
    retry: { max_attempts: 1 }
    input: { from: "file:in.txt" }
output:
  to: ${params.out}
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return &runsFixture{dir: dir, state: filepath.Join(dir, "state"), started: make(chan struct{}, 1)}
}

func (f *runsFixture) registry() *flow.Registry {
	reg := flow.NewRegistry()
	reg.Map("my.upper", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		return emit("", strings.ToUpper(rec.Value.(string)))
	})
	reg.Map("my.fail", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		return errors.New("bad record")
	})
	reg.Map("my.hang", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		select {
		case f.started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	})
	return reg
}

// run runs the pipeline as run id with function fn, and returns its error.
func (f *runsFixture) run(t *testing.T, ctx context.Context, id, fn, storage string) error {
	t.Helper()
	ps := map[string]string{"fn": fn, "out": filepath.Join(f.dir, "out-"+id+".tsv")}
	p, err := spec.Load(filepath.Join(f.dir, "p.yaml"), ps)
	if err != nil {
		t.Fatal(err)
	}
	_, err = flow.Run(ctx, p, f.registry(), flow.Options{StateDir: f.state, RunID: id, Workers: 2, KeepData: true,
		PipelineFile: filepath.Join(f.dir, "p.yaml"), Params: ps, Storage: storage})
	return err
}

// hang runs a run whose task waits until the run is cancelled, and
// cancels it once the task started: an interrupted run.
func (f *runsFixture) hang(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- f.run(t, ctx, id, "my.hang", "") }()
	select {
	case <-f.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the hanging task never started")
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v, want context.Canceled", err)
	}
}

func runsCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Dispatch(t.Context(), flow.NewRegistry(), append([]string{"runs"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestRunsListShowRemove(t *testing.T) {
	t.Parallel()
	f := newRunsFixture(t)
	if err := f.run(t, t.Context(), "ok", "my.upper", ""); err != nil {
		t.Fatal(err)
	}
	if err := f.run(t, t.Context(), "bad", "my.fail", ""); err == nil {
		t.Fatal("a run of a failing function succeeded")
	}
	f.hang(t, "cut")

	code, out, errOut := runsCmd(t, "--state-dir", f.state)
	if code != 0 {
		t.Fatalf("runs: %d %s", code, errOut)
	}
	var order []string
	for _, line := range strings.Split(out, "\n")[1:] {
		if fields := strings.Fields(line); len(fields) > 4 && fields[1] == "upper" {
			order = append(order, fields[0]+":"+fields[4])
		}
	}
	if want := []string{"cut:incomplete", "bad:failed", "ok:finished"}; strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("runs list gives %q, want %q (newest first); output:\n%s", order, want, out)
	}

	code, out, _ = runsCmd(t, "list", "--json", "--state-dir", f.state)
	if code != 0 {
		t.Fatalf("runs list --json: %d", code)
	}
	sizes := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("runs list --json line %q: %v", line, err)
		}
		sizes[m["run"].(string)] = m["size"].(float64)
	}
	if len(sizes) != 3 || sizes["ok"] <= 0 {
		t.Errorf("runs list --json sizes %v", sizes)
	}

	code, out, errOut = runsCmd(t, "show", "ok", "--state-dir", f.state)
	if code != 0 {
		t.Fatalf("runs show ok: %d %s", code, errOut)
	}
	for _, want := range []string{"state     finished", "output    " + filepath.Join(f.dir, "out-ok.tsv") + " (3 records)",
		"storage   file://", "(the run's own folder)", "fn=my.upper"} {
		if !strings.Contains(out, want) {
			t.Errorf("runs show ok lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "  up     1     1      0       3   3") {
		t.Errorf("runs show ok: stage line wrong:\n%s", out)
	}
	code, out, _ = runsCmd(t, "show", "bad", "--state-dir", f.state)
	if code != 0 || !strings.Contains(out, "state     failed") || !strings.Contains(out, "failed tasks (1):") ||
		!strings.Contains(out, "bad record") || !strings.Contains(out, "resume with: run --resume bad --state-dir "+f.state) {
		t.Errorf("runs show bad: %d\n%s", code, out)
	}
	if code, _, errOut := runsCmd(t, "show", "nope", "--state-dir", f.state); code != 1 || !strings.Contains(errOut, "no such run") {
		t.Errorf("runs show nope: %d %q", code, errOut)
	}

	code, out, errOut = runsCmd(t, "rm", "ok", "cut", "--state-dir", f.state)
	if code != 0 || !strings.Contains(out, "removed ok") || !strings.Contains(out, "removed cut") {
		t.Fatalf("runs rm ok cut: %d %q %q", code, out, errOut)
	}
	for _, id := range []string{"ok", "cut"} {
		if _, err := os.Stat(filepath.Join(f.state, id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("run %s's directory is still there: %v", id, err)
		}
	}
	if _, err := os.Stat(filepath.Join(f.state, "bad", "plan.json")); err != nil {
		t.Errorf("runs rm removed a run it was not given: %v", err)
	}
	for _, id := range []string{"nope", "..", "../state/bad"} {
		if code, _, errOut := runsCmd(t, "rm", id, "--state-dir", f.state); code != 1 || !strings.Contains(errOut, "no such run") {
			t.Errorf("runs rm %s: %d %q", id, code, errOut)
		}
	}
	if code, _, errOut := runsCmd(t, "frob"); code != 2 || !strings.Contains(errOut, "usage: runs") {
		t.Errorf("runs frob: %d %q", code, errOut)
	}
}

// TestRunsResumedFailure: a failed run resumed to success is then
// finished, not failed.
func TestRunsResumedFailure(t *testing.T) {
	t.Parallel()
	f := newRunsFixture(t)
	if err := f.run(t, t.Context(), "r", "my.fail", ""); err == nil {
		t.Fatal("a run of a failing function succeeded")
	}
	if s, err := flow.StatRun(f.state, "r"); err != nil || s.State != flow.RunFailed {
		t.Fatalf("StatRun = %+v, %v; want failed", s, err)
	}
	p, err := spec.Load(filepath.Join(f.dir, "p.yaml"), map[string]string{"out": filepath.Join(f.dir, "out-r.tsv")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flow.Run(t.Context(), p, f.registry(), flow.Options{StateDir: f.state, RunID: "r", Resume: true}); err != nil {
		t.Fatal(err)
	}
	s, err := flow.StatRun(f.state, "r")
	if err != nil || s.State != flow.RunFinished || s.Records != 3 || s.Err != "" {
		t.Fatalf("after a successful resume StatRun = %+v, %v; want finished with 3 records", s, err)
	}
	if len(s.Failed) != 0 || s.Stages[0].Failed != 0 {
		t.Errorf("a run resumed to success still shows the first attempt's failures: %v", s.Failed)
	}
}

func TestRunsGC(t *testing.T) {
	t.Parallel()
	f := newRunsFixture(t)
	for _, id := range []string{"a", "b", "c"} {
		if err := f.run(t, t.Context(), id, "my.upper", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.run(t, t.Context(), "failed", "my.fail", ""); err == nil {
		t.Fatal("a run of a failing function succeeded")
	}
	exists := func() string {
		var ids []string
		for _, id := range []string{"a", "b", "c", "failed"} {
			if _, err := os.Stat(filepath.Join(f.state, id)); err == nil {
				ids = append(ids, id)
			}
		}
		return strings.Join(ids, " ")
	}
	if code, _, errOut := runsCmd(t, "gc", "--state-dir", f.state); code != 2 || !strings.Contains(errOut, "--older-than") {
		t.Errorf("gc without --older-than: %d %q", code, errOut)
	}
	if code, _, _ := runsCmd(t, "gc", "--older-than", "soon", "--state-dir", f.state); code != 2 {
		t.Errorf("gc --older-than soon: %d, want 2", code)
	}
	// Nothing ended an hour ago.
	if code, out, _ := runsCmd(t, "gc", "--older-than", "1d", "--state-dir", f.state); code != 0 || exists() != "a b c failed" {
		t.Errorf("gc --older-than 1d: %d %q; left %q", code, out, exists())
	}
	// --keep-days and --keep-last say the same in days and counts.
	if code, out, _ := runsCmd(t, "gc", "--keep-days", "1", "--state-dir", f.state); code != 0 || exists() != "a b c failed" {
		t.Errorf("gc --keep-days 1: %d %q; left %q", code, out, exists())
	}
	if code, out, _ := runsCmd(t, "gc", "--keep-days", "0", "--keep-last", "1", "--dry-run", "--state-dir", f.state); code != 0 ||
		!strings.Contains(out, "would remove a ") || !strings.Contains(out, "would remove b ") || strings.Contains(out, "would remove c ") {
		t.Errorf("gc --keep-days 0 --keep-last 1 --dry-run: %d %q", code, out)
	}
	code, out, _ := runsCmd(t, "gc", "--older-than", "0s", "--keep", "1", "--dry-run", "--state-dir", f.state)
	if code != 0 || !strings.Contains(out, "would remove a ") || !strings.Contains(out, "would remove b ") || exists() != "a b c failed" {
		t.Errorf("gc --dry-run: %d %q; left %q", code, out, exists())
	}
	code, out, _ = runsCmd(t, "gc", "--older-than", "0s", "--keep", "1", "--state-dir", f.state)
	if code != 0 || exists() != "c failed" || !strings.Contains(out, "removed 2 of 4 runs") {
		t.Errorf("gc --older-than 0s --keep 1: %d %q; left %q, want c (the newest) and the failed run", code, out, exists())
	}
}

// TestRunsRemoveOutsideStorage: removing a run whose storage is a shared
// folder also removes its prefix there, unless --keep-data.
func TestRunsRemoveOutsideStorage(t *testing.T) {
	t.Parallel()
	f := newRunsFixture(t)
	shared := filepath.Join(t.TempDir(), "shared")
	for _, id := range []string{"one", "two"} {
		if err := f.run(t, t.Context(), id, "my.upper", "file://"+shared); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(shared, id)); err != nil {
			t.Fatalf("run %s left nothing in its storage: %v", id, err)
		}
	}
	code, out, _ := runsCmd(t, "show", "one", "--state-dir", f.state)
	if code != 0 || !strings.Contains(out, "storage   file://"+shared+"\n") {
		t.Errorf("runs show one: %d\n%s", code, out)
	}
	code, out, errOut := runsCmd(t, "rm", "--keep-data", "one", "--state-dir", f.state)
	if code != 0 || !strings.Contains(out, "its data stays in file://"+shared) {
		t.Errorf("runs rm --keep-data one: %d %q %q", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(shared, "one")); err != nil {
		t.Errorf("--keep-data removed the run's data: %v", err)
	}
	code, out, errOut = runsCmd(t, "rm", "two", "--state-dir", f.state)
	if code != 0 || !strings.Contains(out, "and its data in file://"+shared) {
		t.Errorf("runs rm two: %d %q %q", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(shared, "two")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run two's data is still in the shared storage: %v", err)
	}
	if _, err := os.Stat(filepath.Join(shared, "one")); err != nil {
		t.Errorf("removing run two removed run one's data: %v", err)
	}
}
