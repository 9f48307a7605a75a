package flow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gearflow/gearflow/examples/wordcount"
	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
)

// journalLine is what a test reads of a journal line.
type journalLine struct {
	Stage string `json:"stage"`
	Task  int    `json:"task"`
}

// readJournalLines parses every line of a run's journal, failing the
// test on one that does not parse.
func readJournalLines(t *testing.T, runDir string) []journalLine {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(runDir, "journal.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Errorf("journal ends without a newline: %q", data[max(0, len(data)-40):])
	}
	var lines []journalLine
	for i, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var e journalLine
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Stage == "" {
			t.Fatalf("journal line %d %q: %v", i+1, l, err)
		}
		lines = append(lines, e)
	}
	return lines
}

// TestResumeAfterTornJournalLine: a run killed while writing the journal
// line of its first stage's last task leaves that line torn. Resuming it
// redoes that task alone (and the stage after, which had not started),
// journals each task once, and writes the exact output; resuming again
// runs nothing.
func TestResumeAfterTornJournalLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	const n = 12
	var input strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&input, "%d\n", i)
	}
	if err := os.WriteFile(in, []byte(input.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.tsv")
	yaml := `version: 1
name: torn
stages:
  - name: square
    kind: map
    function: test.square
    input:
      from: file:` + in + `
      split: { lines: 1 }
  - name: label
    kind: map
    function: test.label
    input: { from: stage:square, split: { records: 3 } }
output:
  from: stage:label
  to: file:` + out + "\n"
	p, err := spec.Parse([]byte(yaml), "torn.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := map[string]int{} // "stage/input record" -> calls in the current run
	count := func(stage string, v any) {
		mu.Lock()
		calls[fmt.Sprintf("%s/%v", stage, v)]++
		mu.Unlock()
	}
	reg := flow.NewRegistry()
	reg.Map("test.square", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		count("square", rec.Value)
		i, err := strconv.Atoi(rec.Value.(string))
		if err != nil {
			return err
		}
		return emit(rec.Value.(string), int64(i*i))
	})
	reg.Map("test.label", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		count("label", rec.Key)
		return emit("n"+rec.Key, fmt.Sprintf("%v", rec.Value))
	})
	var want strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&want, "n%d\t%d\n", i, i*i)
	}
	state := t.TempDir()
	run := func(resume bool) (*flow.Result, map[string]int) {
		t.Helper()
		mu.Lock()
		calls = map[string]int{}
		mu.Unlock()
		os.Remove(out)
		res, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: state, RunID: "torn", Resume: resume, KeepData: true, Workers: 4, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		checkOutput(t, out, want.String())
		mu.Lock()
		defer mu.Unlock()
		return res, calls
	}
	run(false)

	// The process died while writing square's last journal line, before
	// label started: cut the journal there and take label's files away.
	runDir := flow.RunDir(state, "torn")
	journal := filepath.Join(runDir, "journal.jsonl")
	data, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	lines := readJournalLines(t, runDir)
	last := -1
	for i, l := range lines {
		if l.Stage == "square" {
			last = i
		}
	}
	if last < 0 {
		t.Fatal("no square task journaled")
	}
	torn := lines[last].Task
	start := 0
	for range last {
		start += bytes.IndexByte(data[start:], '\n') + 1
	}
	end := start + bytes.IndexByte(data[start:], '\n')
	if err := os.Truncate(journal, int64(start+(end-start)/2)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(runDir, "stages", "label")); err != nil {
		t.Fatal(err)
	}

	t.Logf("journal cut half-way through square task %d's line (line %d of %d)", torn, last+1, len(lines))
	res, calls := run(true)
	wantCalls := map[string]int{fmt.Sprintf("square/%d", torn+1): 1}
	for i := 1; i <= n; i++ {
		wantCalls[fmt.Sprintf("label/%d", i)] = 1
	}
	if fmt.Sprint(calls) != fmt.Sprint(wantCalls) {
		t.Errorf("resumed run's calls %v, want %v (square task %d's line was torn)", calls, wantCalls, torn)
	}
	if sq, lb := res.Stages[0], res.Stages[1]; sq.Tasks != n || sq.Resumed != n-1 || sq.Done != n || lb.Resumed != 0 || lb.Done != lb.Tasks {
		t.Errorf("resumed run's stages %+v", res.Stages)
	}
	seen := map[journalLine]int{}
	for _, l := range readJournalLines(t, runDir) {
		seen[l]++
	}
	for l, k := range seen {
		if k != 1 {
			t.Errorf("%s task %d journaled %d times", l.Stage, l.Task, k)
		}
	}
	if len(seen) != n+res.Stages[1].Tasks {
		t.Errorf("%d tasks journaled, want %d", len(seen), n+res.Stages[1].Tasks)
	}

	res, calls = run(true)
	if len(calls) != 0 {
		t.Errorf("second resume ran %v, want nothing", calls)
	}
	for _, st := range res.Stages {
		if st.Resumed != st.Tasks {
			t.Errorf("second resume: stage %+v, want every task done earlier", st)
		}
	}
}

// TestResumeFailsOnDamagedRunDir: a resumed run whose stage pack file
// exists but cannot be read, or whose journal has a corrupt line before
// its last, fails with an error naming the file (and line), instead of
// redoing tasks as if their outputs were missing.
func TestResumeFailsOnDamagedRunDir(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		damage   func(t *testing.T, runDir string) (want string)
		wantIs   error
		needUser bool // chmod does not stop root
	}{
		{name: "pack file is a directory", damage: func(t *testing.T, runDir string) string {
			pack := filepath.Join(runDir, "stages", "count", "pack.rec")
			if err := os.Remove(pack); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(pack, 0o755); err != nil {
				t.Fatal(err)
			}
			return pack
		}},
		{name: "pack file unreadable", needUser: true, damage: func(t *testing.T, runDir string) string {
			pack := filepath.Join(runDir, "stages", "count", "pack.rec")
			if err := os.Chmod(pack, 0); err != nil {
				t.Fatal(err)
			}
			return pack
		}},
		{name: "corrupt journal line", wantIs: flow.ErrCorruptJournal, damage: func(t *testing.T, runDir string) string {
			path := filepath.Join(runDir, "journal.jsonl")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			second := bytes.IndexByte(b, '\n') + 1
			copy(b[second:], "{{")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return path + ":2:"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.needUser && os.Geteuid() == 0 {
				t.Skip("root reads files whatever their mode")
			}
			p, _ := loadWordcount(t, nil)
			reg := flow.NewRegistry()
			wordcount.Register(reg)
			state := t.TempDir()
			if _, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: state, Storage: flow.StorageNone, RunID: "wc", KeepData: true, Workers: 2, Logger: testLogger(t)}); err != nil {
				t.Fatal(err)
			}
			want := tt.damage(t, flow.RunDir(state, "wc"))
			_, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: state, Storage: flow.StorageNone, RunID: "wc", Resume: true, Workers: 2, Logger: testLogger(t)})
			if err == nil || !strings.Contains(err.Error(), want) || errors.Is(err, os.ErrNotExist) {
				t.Fatalf("resume: %v, want an error naming %s", err, want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("resume: %v, want it to wrap %v", err, tt.wantIs)
			}
			t.Logf("resume: %v", err)
		})
	}
}
