package flow_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/flow"
)

// TestEmbeddedRunRefusesWhatNoWorkerCanServe: an embedded run's server
// listens on no port, so a run that would wait for an outside worker
// (no workers of its own, or a raw function it lacks) fails at once
// instead of waiting for ever.
func TestEmbeddedRunRefusesWhatNoWorkerCanServe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("a\nb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := parsePipeline(t, dir, `
version: 1
name: outside
stages:
  - name: up
    kind: map
    function: ext.upper
    encoding: raw
    input: { from: file:in.txt }
output: { to: out.jsonl }
`, nil)
	tests := []struct {
		name    string
		workers int
		want    string
	}{
		{"raw function not registered", 2, `raw function "ext.upper" is not registered`},
		{"no workers of its own", -1, "an embedded run needs workers of its own"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			_, err := flow.Run(ctx, p, flow.NewRegistry(), flow.Options{StateDir: t.TempDir(), Workers: tt.workers, Logger: testLogger(t)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v; want an error with %q", err, tt.want)
			}
			if ctx.Err() != nil {
				t.Fatal("the run waited for its deadline instead of failing at once")
			}
		})
	}
}
