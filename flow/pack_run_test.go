package flow_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
)

// TestRunLargeAndSmallTaskOutputs: a task whose output outgrows memory
// streams it to a file of its own, small ones go to the stage's pack
// file, a task with no output has neither; the output holds every
// record in task order, and resuming the finished run reads them all
// back without running a task.
func TestRunLargeAndSmallTaskOutputs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	// One record per task: how many 1 KiB records the task emits.
	if err := os.WriteFile(in, []byte("3\n0\n1500\n2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.tsv")
	yaml := `version: 1
name: sizes
stages:
  - name: emit
    kind: map
    function: test.emit
    input:
      from: file:` + in + `
      split: { lines: 1 }
output:
  from: stage:emit
  to: file:` + out + "\n"
	p, err := spec.Parse([]byte(yaml), "sizes.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := flow.NewRegistry()
	pad := strings.Repeat("x", 1024)
	reg.Map("test.emit", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		n, err := strconv.Atoi(rec.Value.(string))
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := emit(fmt.Sprintf("%s-%05d", rec.Value, i), pad); err != nil {
				return err
			}
		}
		return nil
	})
	var want strings.Builder
	for _, n := range []int{3, 0, 1500, 2} {
		for i := 0; i < n; i++ {
			fmt.Fprintf(&want, "%d-%05d\t%s\n", n, i, pad)
		}
	}
	state := t.TempDir()
	res, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: state, Storage: flow.StorageNone, RunID: "sizes", KeepData: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, out, want.String())
	if res.OutputRecords != 1505 {
		t.Errorf("%d output records, want 1505", res.OutputRecords)
	}
	stage := filepath.Join(state, "sizes", "stages", "emit")
	files, _ := filepath.Glob(filepath.Join(stage, "task-*.rec"))
	if len(files) != 1 || filepath.Base(files[0]) != "task-000002.rec" {
		t.Errorf("task files %v, want only the large task's (task-000002.rec)", files)
	}
	if fi, err := os.Stat(filepath.Join(stage, "pack.rec")); err != nil || fi.Size() == 0 || fi.Size() > 10<<10 {
		t.Errorf("pack file: %v, %v; want the two small outputs in it", fi, err)
	}

	os.Remove(out)
	res, err = flow.Run(t.Context(), p, reg, flow.Options{StateDir: state, Storage: flow.StorageNone, RunID: "sizes", Resume: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, out, want.String())
	if st := res.Stages[0]; st.Resumed != 4 || st.Done != 4 {
		t.Errorf("resumed run: %+v, want all 4 tasks done earlier", st)
	}
}
