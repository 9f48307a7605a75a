package logstats_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gearflow/gearflow/examples/logstats"
	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
)

// TestLogstats runs the three stages (parse, aggregate, top) on the
// embedded default and checks the exact output; testdata/want.jsonl was
// computed from data/*.log by a separate script, not by this code.
func TestLogstats(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "top.jsonl")
	p, err := spec.Load("logstats.yaml", map[string]string{"out": out, "lines": "10"})
	if err != nil {
		t.Fatal(err)
	}
	reg := flow.NewRegistry()
	logstats.Register(reg)
	res, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile("testdata/want.jsonl")
	if string(got) != string(want) {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	if len(res.Stages) != 3 || res.Stages[0].Tasks != 9 || res.Stages[1].Tasks != 3 || res.Stages[2].Tasks != 1 {
		t.Errorf("stages %+v: want 9 parse tasks (2 files of 41 and 40 lines, 10 lines a task), 3 partitions, 1 top task", res.Stages)
	}
}
