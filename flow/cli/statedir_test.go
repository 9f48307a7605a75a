package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/flow"
)

// upperPipeline writes a one-stage pipeline over a three-line input to
// dir and returns its path and a registry with its function.
func upperPipeline(t *testing.T, dir string) (string, *flow.Registry) {
	t.Helper()
	return writeUpperPipeline(t, dir, "b\na\nb\n", ""), upperRegistry()
}

// writeUpperPipeline writes in.txt holding input and p.yaml, a pipeline
// whose one stage "up" maps it through my.upper to out.tsv, split as
// split says (YAML; "" for the default), and returns p.yaml's path.
func writeUpperPipeline(t *testing.T, dir, input, split string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	from := `{ from: "file:in.txt" }`
	if split != "" {
		from = `{ from: "file:in.txt", split: ` + split + ` }`
	}
	pipeline := filepath.Join(dir, "p.yaml")
	err := os.WriteFile(pipeline, []byte(`version: 1
name: upper
stages:
  - name: up
    kind: map
    function: my.upper
    input: `+from+`
output:
  to: out.tsv
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return pipeline
}

// upperRegistry has my.upper, which upper-cases each line.
func upperRegistry() *flow.Registry {
	reg := flow.NewRegistry()
	reg.Map("my.upper", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		return emit("", strings.ToUpper(rec.Value.(string)))
	})
	return reg
}

// TestResumeFromAnotherFolder: the default state directory does not
// depend on the working folder, so a run started in one folder resumes
// from another by its id alone.
func TestResumeFromAnotherFolder(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	t.Setenv("GEARFLOW_STATE_DIR", state)
	if got := flow.DefaultStateDir(); got != state {
		t.Fatalf("DefaultStateDir() = %q, want %q", got, state)
	}
	work := t.TempDir()
	pipeline, reg := upperPipeline(t, work)
	t.Chdir(work)
	var stdout, stderr bytes.Buffer
	if code := Dispatch(t.Context(), reg, []string{"run", pipeline, "--run-id", "r1", "--keep-data"}, &stdout, &stderr); code != 0 {
		t.Fatalf("run: %d %s", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(state, "r1", "plan.json")); err != nil {
		t.Fatalf("the run is not in $GEARFLOW_STATE_DIR: %v", err)
	}
	os.Remove(filepath.Join(work, "out.tsv"))
	t.Chdir(t.TempDir())
	stderr.Reset()
	if code := Dispatch(t.Context(), reg, []string{"run", "--resume", "r1"}, &stdout, &stderr); code != 0 {
		t.Fatalf("resume from another folder: %d %s", code, stderr.String())
	}
	if got, _ := os.ReadFile(filepath.Join(work, "out.tsv")); string(got) != "B\nA\nB\n" {
		t.Errorf("resumed run's output %q", got)
	}
}

// TestResumeLegacyStateDir: a run under ./.gearflow/runs, where runs went
// before, still resumes by its id, with a word on stderr.
func TestResumeLegacyStateDir(t *testing.T) {
	t.Setenv("GEARFLOW_STATE_DIR", filepath.Join(t.TempDir(), "state"))
	work := t.TempDir()
	pipeline, reg := upperPipeline(t, work)
	t.Chdir(work)
	var stdout, stderr bytes.Buffer
	if code := Dispatch(t.Context(), reg, []string{"run", pipeline, "--run-id", "old", "--keep-data", "--state-dir", flow.LegacyStateDir}, &stdout, &stderr); code != 0 {
		t.Fatalf("run: %d %s", code, stderr.String())
	}
	stderr.Reset()
	if code := Dispatch(t.Context(), reg, []string{"run", "--resume", "old"}, &stdout, &stderr); code != 0 {
		t.Fatalf("resume of a legacy run: %d %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "old state folder") {
		t.Errorf("stderr %q does not say the run was found in the old state folder", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(flow.DefaultStateDir(), "old")); err == nil {
		t.Errorf("resuming a legacy run created a run directory in the new state dir")
	}
	// An id in neither place is still no such run.
	stderr.Reset()
	if code := Dispatch(t.Context(), reg, []string{"run", "--resume", "nope"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "no such run") {
		t.Errorf("resume of an unknown run: %d %q", code, stderr.String())
	}
}
