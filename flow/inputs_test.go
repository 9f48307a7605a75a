package flow_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/server"
)

// TestSeveralInputs: a stage with inputs: reads each with its own
// format and split, and its function sees each record's input name and
// place (file and line). Run embedded, with a job server and storage,
// and through the job server.
func TestSeveralInputs(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"embedded", "storage", "no storage"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			users := filepath.Join(dir, "users.csv")
			orders := filepath.Join(dir, "orders.jsonl")
			os.WriteFile(users, []byte("id,name\nu1,\"Ada\nLovelace\"\nu2,Grace\n"), 0o644)
			os.WriteFile(orders, []byte("{\"user\": \"u1\", \"n\": 1}\n\n{\"user\": \"u2\", \"n\": 2}\n{\"user\": \"u1\", \"n\": 3}\n"), 0o644)
			p := parsePipeline(t, dir, `
version: 1
name: two
stages:
  - name: read
    kind: map
    function: two.map
    inputs:
      - { name: users, from: file:users.csv, format: csv, header: true, split: { records: 1 } }
      - { name: orders, from: file:orders.jsonl, format: jsonl, split: { records: 2 } }
output: { to: out.tsv }
`, nil)
			var mu sync.Mutex
			var seen []string
			reg := flow.NewRegistry()
			reg.Map("two.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
				m := rec.Value.(map[string]any)
				mu.Lock()
				seen = append(seen, fmt.Sprintf("%s %s:%d %v", rec.Source, filepath.Base(rec.Pos.File), rec.Pos.Line, m))
				mu.Unlock()
				return emit(rec.Source, m)
			})
			opts := flow.Options{StateDir: t.TempDir(), Workers: 2, Logger: testLogger(t)}
			if mode != "embedded" {
				opts.Servers = []string{servertest.Start(t, server.Config{}).Addr}
				opts.Storage = flow.StorageNone
				if mode == "storage" {
					opts.Storage = filepath.Join(dir, "store")
				}
			}
			res, err := flow.Run(t.Context(), p, reg, opts)
			if err != nil {
				t.Fatal(err)
			}
			// users: the header, then 2 records (one of two lines); a
			// blank line; orders: 2 records a task.
			if res.Stages[0].Tasks != 3+2 || res.Stages[0].RecordsOut != 5 {
				t.Errorf("stage %+v: want 5 tasks and 5 records", res.Stages[0])
			}
			sort.Strings(seen)
			want := []string{
				"orders orders.jsonl:1 map[n:1 user:u1]",
				"orders orders.jsonl:3 map[n:2 user:u2]",
				"orders orders.jsonl:4 map[n:3 user:u1]",
				"users users.csv:2 map[id:u1 name:Ada\nLovelace]",
				"users users.csv:4 map[id:u2 name:Grace]",
			}
			if strings.Join(seen, "\n") != strings.Join(want, "\n") {
				t.Errorf("records:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestGlobSkipsRunState: a glob that would match the run's own state
// folder (here a plain folder beside the input, as --state-dir state
// makes it) reads only the input.
func TestGlobSkipsRunState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "in"), 0o755)
	os.WriteFile(filepath.Join(dir, "in", "a.txt"), []byte("x\ny\n"), 0o644)
	p := parsePipeline(t, dir, `
version: 1
name: glob
stages:
  - name: read
    kind: map
    function: glob.map
    input: { from: "glob:**/*", split: files }
output: { to: out.tsv }
`, nil)
	reg := flow.NewRegistry()
	var mu sync.Mutex
	var files []string
	reg.Map("glob.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		mu.Lock()
		files = append(files, rec.Key)
		mu.Unlock()
		return emit(rec.Key, 1)
	})
	state := filepath.Join(dir, "state")
	// A first run leaves its state (journal, chunks.json, data) there.
	for run := range 2 {
		files = nil
		if _, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: state, Workers: 1, Logger: testLogger(t)}); err != nil {
			t.Fatal(err)
		}
		sort.Strings(files)
		// p.yaml and in/a.txt, and out.tsv after the first run.
		want := "a.txt p.yaml"
		if run == 1 {
			want = "a.txt out.tsv p.yaml"
		}
		if got := strings.Join(files, " "); got != want {
			t.Errorf("run %d read %q, want %q", run+1, got, want)
		}
	}
}

// TestHeaderOnlyForCSV: header: true on a file that does not read as
// CSV is an error, not a first line quietly taken for data.
func TestHeaderOnlyForCSV(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("a,b\n1,2\n"), 0o644)
	p := parsePipeline(t, dir, `
version: 1
name: h
stages:
  - name: read
    kind: map
    function: h.map
    input: { from: file:in.txt, header: true }
output: { to: out.tsv }
`, nil)
	_, err := flow.Plan(p)
	if err == nil || !strings.Contains(err.Error(), "header: true applies to CSV, and this file reads as text (set format: csv)") {
		t.Errorf("Plan: %v, want the header refused", err)
	}
}

// TestInputsMixStageAndFile: a map stage may read another stage's output
// and a file together; its records say which.
func TestInputsMixStageAndFile(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"embedded", "no storage"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "a.txt"), []byte("x\ny\n"), 0o644)
			os.WriteFile(filepath.Join(dir, "b.txt"), []byte("z\n"), 0o644)
			p := parsePipeline(t, dir, `
version: 1
name: mix
stages:
  - name: first
    kind: map
    function: mix.up
    input: { from: file:a.txt }
  - name: both
    kind: map
    function: mix.tag
    inputs:
      - { from: stage:first }
      - { name: extra, from: file:b.txt }
output: { to: out.tsv }
`, nil)
			reg := flow.NewRegistry()
			reg.Map("mix.up", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
				return emit("", strings.ToUpper(rec.Value.(string)))
			})
			reg.Map("mix.tag", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
				return emit(rec.Source, rec.Value)
			})
			opts := flow.Options{StateDir: t.TempDir(), Workers: 2, Logger: testLogger(t)}
			if mode == "no storage" {
				opts.Servers = []string{servertest.Start(t, server.Config{}).Addr}
				opts.Storage = flow.StorageNone
			}
			if _, err := flow.Run(t.Context(), p, reg, opts); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, "out.tsv"))
			if err != nil {
				t.Fatal(err)
			}
			if want := "first\tX\nfirst\tY\nextra\tz\n"; string(got) != want {
				t.Errorf("output:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestInputInsideStorageFolder: an input may lie in the storage folder;
// only the run's own prefix there is left out of a glob.
func TestInputInsideStorageFolder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "shared", "in"), 0o755)
	os.WriteFile(filepath.Join(dir, "shared", "in", "a.txt"), []byte("x\ny\n"), 0o644)
	p := parsePipeline(t, dir, `
version: 1
name: shared
storage: shared
stages:
  - name: read
    kind: map
    function: shared.map
    input: { from: "glob:shared/**", split: files }
output: { to: out.tsv }
`, nil)
	reg := flow.NewRegistry()
	reg.Map("shared.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		return emit(rec.Key, 1)
	})
	if _, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Workers: 1, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "out.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "a.txt\t1\n" {
		t.Errorf("output %q, want the one input file", got)
	}
}
