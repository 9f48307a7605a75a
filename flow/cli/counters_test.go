package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/flow"
)

// TestCountersShown: a function's counters appear in the stage's done
// line, the final summary, the --json summary and runs show.
func TestCountersShown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pipeline := writeUpperPipeline(t, dir, "b\na\nb\n\n", "")
	reg := flow.NewRegistry()
	reg.Map("my.upper", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		s := rec.Value.(string)
		if s == "" {
			flow.Count(ctx, "blank", 1)
			return nil
		}
		flow.Count(ctx, "upper", 1)
		return emit("", strings.ToUpper(s))
	})
	state := filepath.Join(dir, "state")
	var stdout, stderr bytes.Buffer
	if code := Dispatch(t.Context(), reg, []string{"run", pipeline, "--state-dir", state}, &stdout, &stderr); code != 0 {
		t.Fatalf("run: %d %s", code, stderr.String())
	}
	for _, want := range []string{"; blank=1 upper=3\n", "  counters of up: blank=1 upper=3\n"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("run output lacks %q:\n%s", want, stdout.String())
		}
	}
	run := regexp.MustCompile(`run (\S+) started`).FindStringSubmatch(stdout.String())
	if run == nil {
		t.Fatalf("no run id in:\n%s", stdout.String())
	}
	stdout.Reset()
	if code := Dispatch(t.Context(), reg, []string{"runs", "show", run[1], "--state-dir", state}, &stdout, &stderr); code != 0 {
		t.Fatalf("runs show: %d %s", code, stderr.String())
	}
	if !regexp.MustCompile(`(?m)^counters:\n  STAGE +COUNTER +TOTAL\n  up +blank +1\n  up +upper +3\n`).MatchString(stdout.String()) {
		t.Errorf("runs show lacks the counters:\n%s", stdout.String())
	}

	stdout.Reset()
	if code := Dispatch(t.Context(), reg, []string{"run", pipeline, "--state-dir", state, "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("run --json: %d %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var sum struct {
		Event  string `json:"event"`
		Stages []struct {
			Counters map[string]int64 `json:"counters"`
		} `json:"stages"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum.Event != "summary" || len(sum.Stages) != 1 ||
		sum.Stages[0].Counters["upper"] != 3 || sum.Stages[0].Counters["blank"] != 1 {
		t.Errorf("--json summary %s (%v): want the counters", lines[len(lines)-1], err)
	}
}
