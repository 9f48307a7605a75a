package wordcount_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gearflow/gearflow/examples/wordcount"
	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
)

// TestWordcount runs the example as "gearflow run wordcount.yaml" does by
// default (embedded server, local workers) and checks the exact output.
// testdata/want.tsv was made with coreutils:
//
//	tr A-Z a-z < data/input.txt | tr -cs "a-z0-9'" '\n' | sed "s/^'*//; s/'*$//" |
//	  grep -v '^$' | LC_ALL=C sort | uniq -c | awk '{print $2"\t"$1}'
func TestWordcount(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "wordcount.tsv")
	// Four lines a task, so that the small input makes several tasks.
	p, err := spec.Load("wordcount.yaml", map[string]string{"out": out, "lines": "4"})
	if err != nil {
		t.Fatal(err)
	}
	reg := flow.NewRegistry()
	wordcount.Register(reg)
	res, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile("testdata/want.tsv")
	if string(got) != string(want) {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	if res.Stages[0].Tasks != 3 || res.Stages[1].Tasks < 1 {
		t.Errorf("stages %+v: want 3 map tasks and reduce tasks", res.Stages)
	}
}
