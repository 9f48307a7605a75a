package flow_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/flow"
)

// TestFinishedRunRemovesItsData: once a run has written its output, its
// stages' task outputs go (in its storage and in its run directory, with
// and without storage), its record stays for "runs show", and a resume
// says why there is nothing to resume; KeepData keeps them all.
func TestFinishedRunRemovesItsData(t *testing.T) {
	t.Parallel()
	for _, storage := range []string{"", flow.StorageNone} {
		for _, keep := range []bool{false, true} {
			name := "embedded storage"
			if storage == flow.StorageNone {
				name = "no storage"
			}
			if keep {
				name += ", keep"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				words := strings.Repeat("a b c\nb c\nc\n", 50)
				if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte(words), 0o644); err != nil {
					t.Fatal(err)
				}
				p := parsePipeline(t, dir, `
version: 1
name: keep
stages:
  - name: count
    kind: map
    function: k.map
    input: { from: file:in.txt, split: { lines: 30 } }
    partition: { by: key, count: 2 }
  - name: total
    kind: reduce
    needs: [count]
    function: k.sum
output: { to: out.tsv }
`, nil)
				reg := flow.NewRegistry()
				reg.Map("k.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
					for _, w := range strings.Fields(rec.Value.(string)) {
						if err := emit(w, int64(1)); err != nil {
							return err
						}
					}
					return nil
				})
				reg.Reduce("k.sum", flow.SumInt64)
				state := t.TempDir()
				opts := flow.Options{StateDir: state, RunID: "r", Storage: storage, KeepData: keep, Workers: 2, Logger: testLogger(t)}
				if _, err := flow.Run(t.Context(), p, reg, opts); err != nil {
					t.Fatal(err)
				}
				out, err := os.ReadFile(filepath.Join(dir, "out.tsv"))
				if err != nil || string(out) != "a\t50\nb\t100\nc\t150\n" {
					t.Fatalf("output %q, %v", out, err)
				}
				runDir := filepath.Join(state, "r")
				var data []string // task outputs left: files of data/ and stages/*/*.rec
				filepath.WalkDir(runDir, func(path string, d fs.DirEntry, err error) error {
					rel, _ := filepath.Rel(runDir, path)
					if err == nil && !d.IsDir() && (strings.HasPrefix(rel, "data"+string(filepath.Separator)) || strings.HasSuffix(rel, ".rec")) {
						data = append(data, rel)
					}
					return nil
				})
				if keep != (len(data) > 0) {
					t.Errorf("keep %v, task outputs left: %v", keep, data)
				}
				var outcome struct {
					State       string `json:"state"`
					DataRemoved bool   `json:"data_removed"`
				}
				raw, err := os.ReadFile(filepath.Join(runDir, "result.json"))
				if err != nil || json.Unmarshal(raw, &outcome) != nil || outcome.State != "finished" || outcome.DataRemoved == keep {
					t.Errorf("result.json %s (%v): want finished, data_removed %v", raw, err, !keep)
				}
				st, err := flow.StatRun(state, "r")
				if err != nil || st.State != flow.RunFinished || st.Records != 3 {
					t.Errorf("StatRun = %+v, %v; want the finished run and its 3 records", st, err)
				}
				opts.Resume = true
				_, err = flow.Run(t.Context(), p, reg, opts)
				if keep {
					if err != nil {
						t.Errorf("resume of a kept run: %v", err)
					}
				} else if err == nil || !strings.Contains(err.Error(), "intermediate data was removed: there is nothing to resume") {
					t.Errorf("resume = %v; want it refused, saying the data was removed", err)
				}
			})
		}
	}
}
