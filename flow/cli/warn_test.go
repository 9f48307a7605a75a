package cli

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlanAndRunWarnTinyTasks: plan prints the tiny-task warning under
// its stage; run prints it on stderr, as "warning: …", when the stage
// starts.
func TestPlanAndRunWarnTinyTasks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var b strings.Builder
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	pipeline := writeUpperPipeline(t, dir, b.String(), "{ lines: 2 }")
	reg := upperRegistry()
	var stdout, stderr bytes.Buffer
	if code := Dispatch(t.Context(), reg, []string{"plan", pipeline}, &stdout, &stderr); code != 0 {
		t.Fatalf("plan: %d %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "  warning:    stage up: 1000 tasks of") {
		t.Errorf("plan output lacks the warning:\n%s", stdout.String())
	}
	stdout.Reset()
	if code := Dispatch(t.Context(), reg, []string{"run", pipeline, "--state-dir", filepath.Join(dir, "state")}, &stdout, &stderr); code != 0 {
		t.Fatalf("run: %d %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "warning: stage up: 1000 tasks of") {
		t.Errorf("run stderr lacks the warning:\n%s", stderr.String())
	}
}
