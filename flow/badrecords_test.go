package flow_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/server"
)

// badLetter is one line of a dead letter of bad records.
type badLetter struct {
	Stage  string `json:"stage"`
	Task   int    `json:"task"`
	Where  string `json:"where"`
	Err    string `json:"error"`
	Record string `json:"record"`
}

func readBadLetters(t *testing.T, path string) []badLetter {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []badLetter
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var b badLetter
		if err := json.Unmarshal(sc.Bytes(), &b); err != nil {
			t.Fatalf("dead letter line %q: %v", sc.Text(), err)
		}
		out = append(out, b)
	}
	return out
}

// TestSkipBadRecords: a chunk with one line its function fails on, under
// skip_bad_records, counts its other lines, and the dead letter names the
// file and line of the bad one; the run succeeds. Embedded (storage in
// the run's folder), with a job server and shared storage, and with the
// data going through the job server.
func TestSkipBadRecords(t *testing.T) {
	t.Parallel()
	modes := []struct {
		name    string
		servers bool
		storage string
		where   string // how the dead letter names the bad line; %s is the input's path
	}{
		{"embedded", false, "", "%s:7"},
		{"storage", true, "store", "%s:7"},
		{"no storage", true, flow.StorageNone, "%s:7"},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			input := writeOneBadLine(t, dir)
			p := parsePipeline(t, dir, `
version: 1
name: bad
stages:
  - name: parse
    kind: map
    function: bad.map
    input: { from: file:in.jsonl, format: jsonl, split: { lines: 100 } }
    skip_bad_records: 2
    dead_letter: dead.jsonl
    retry: { max_attempts: 3, initial: 10ms }
output: { to: out.jsonl }
`, nil)
			var calls atomic.Int64
			reg := flow.NewRegistry()
			reg.Map("bad.map", numberMap(&calls))
			opts := flow.Options{StateDir: t.TempDir(), Workers: 2, Logger: testLogger(t)}
			if m.servers {
				opts.Servers = []string{servertest.Start(t, server.Config{}).Addr}
				opts.Storage = m.storage
				if m.storage == "store" {
					opts.Storage = filepath.Join(dir, "store")
				}
			}
			res, err := flow.Run(t.Context(), p, reg, opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Stages[0].RecordsOut; got != 9 {
				t.Errorf("records out = %d, want the 9 good ones", got)
			}
			if got := calls.Load(); got != 10 {
				t.Errorf("the function was called %d times, want 10 (one attempt, no retry)", got)
			}
			if got := res.Stages[0].Counters[flow.BadRecordsCounter]; got != 1 {
				t.Errorf("counter %s = %d, want the 1 skipped record", flow.BadRecordsCounter, got)
			}
			bad := readBadLetters(t, filepath.Join(dir, "dead.jsonl"))
			if len(bad) != 1 {
				t.Fatalf("dead letter has %d records, want 1: %+v", len(bad), bad)
			}
			wantWhere := fmt.Sprintf(m.where, input)
			if bad[0].Where != wantWhere || bad[0].Stage != "parse" ||
				!strings.Contains(bad[0].Err, "n is not a number") || !strings.Contains(bad[0].Record, `"seven"`) {
				t.Errorf("dead letter = %+v, want where %q, the error and the record", bad[0], wantWhere)
			}
		})
	}
}

// TestBadRecordsPastLimitFailNamingTheLine: past skip_bad_records the
// task fails as before, and its error names the line, not the chunk's
// range; without skip_bad_records a bad line fails the task the same way.
// An error marked permanent is not retried.
func TestBadRecordsPastLimitFailNamingTheLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		skip      string
		permanent bool
		calls     int64 // function calls over all attempts
	}{
		{"no skipping, retried", "", false, 3 * 3},
		{"over the limit", "skip_bad_records: 1", false, 3 * 4},
		{"permanent, not retried", "", true, 3},
		{"over a percentage", `skip_bad_records: "20%"`, false, 3 * 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			input := filepath.Join(dir, "in.txt")
			if err := os.WriteFile(input, []byte("ok\nok\nbad\nbad\nok\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			p := parsePipeline(t, dir, `
version: 1
name: bad
stages:
  - name: parse
    kind: map
    function: bad.map
    input: { from: file:in.txt, split: { lines: 100 } }
    retry: { max_attempts: 3, initial: 10ms }
    `+tt.skip+`
output: { to: out.tsv }
`, nil)
			var calls atomic.Int64
			reg := flow.NewRegistry()
			reg.Map("bad.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
				calls.Add(1)
				if rec.Value == "bad" {
					err := errors.New("a bad line")
					if tt.permanent {
						return flow.Permanent(err)
					}
					return err
				}
				return emit("", rec.Value)
			})
			_, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Workers: 1, Logger: testLogger(t)})
			if err == nil {
				t.Fatal("the run succeeded")
			}
			want := input + ":3: a bad line"
			if tt.skip == "skip_bad_records: 1" {
				want = input + ":4: a bad line"
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name the line (%q)", err, want)
			}
			if strings.Contains(tt.skip, "%") && !strings.Contains(err.Error(), "2 of 5 records failed") {
				t.Errorf("error %q does not count the bad records", err)
			}
			if got := calls.Load(); got != tt.calls {
				t.Errorf("the function was called %d times, want %d", got, tt.calls)
			}
		})
	}
}

// TestBadLinesOfByteSplits: lines that do not read as JSON are bad
// records too; in a bytes split the dead letter names the first split's
// lines by number and the others' by byte offset, their line numbers
// being unknown without reading the file before them.
func TestBadLinesOfByteSplits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var in strings.Builder
	for i := 1; i <= 9; i++ {
		if i == 2 || i == 7 {
			in.WriteString("{\"n\": x}\n") // 9 bytes, as the others
			continue
		}
		fmt.Fprintf(&in, "{\"n\": %d}\n", i)
	}
	input := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(input, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := parsePipeline(t, dir, `
version: 1
name: bad
stages:
  - name: parse
    kind: map
    function: bad.map
    input: { from: file:in.jsonl, format: jsonl, split: { bytes: 40 } }
    skip_bad_records: 1
output: { to: out.jsonl }
`, nil)
	reg := flow.NewRegistry()
	reg.Map("bad.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		return emit("", rec.Value)
	})
	state := t.TempDir()
	res, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: state, RunID: "bytes", Workers: 2, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stages[0].RecordsOut != 7 {
		t.Errorf("records out = %d, want 7", res.Stages[0].RecordsOut)
	}
	dirs, _ := filepath.Glob(filepath.Join(state, "*bytes*", "bad.jsonl"))
	if len(dirs) != 1 {
		t.Fatalf("bad.jsonl files: %v", dirs)
	}
	var wheres []string
	for _, b := range readBadLetters(t, dirs[0]) {
		wheres = append(wheres, b.Where)
		if !strings.Contains(b.Err, "invalid character") || b.Record != `{"n": x}` {
			t.Errorf("bad record %+v: want the JSON error and the line", b)
		}
	}
	sort.Strings(wheres)
	if want := []string{input + ":2", input + "@54"}; strings.Join(wheres, " ") != strings.Join(want, " ") {
		t.Errorf("bad records at %q, want %q", wheres, want)
	}
}

// TestPermanentRawNotRetried: a raw stage's function that fails with a
// permanent error is not retried either.
func TestPermanentRawNotRetried(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("a\nb\n"), 0o644)
	p := parsePipeline(t, dir, `
version: 1
name: raw
stages:
  - name: up
    kind: map
    function: raw.up
    encoding: raw
    input: { from: file:in.txt }
    retry: { max_attempts: 3, initial: 10ms }
output: { to: out.tsv }
`, nil)
	var calls atomic.Int64
	reg := flow.NewRegistry()
	reg.Raw("raw.up", func(ctx context.Context, in []byte) ([]byte, error) {
		calls.Add(1)
		return nil, flow.Permanent(errors.New("cannot be mended"))
	})
	_, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Workers: 1, Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "permanent: raw.up: cannot be mended") {
		t.Errorf("err = %v, want the permanent error", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the function ran %d times, want once", n)
	}
}

// TestBadRecordsSurviveAFailedCommit: a dead letter that cannot be
// written fails the task's commit, and the resumed run writes the
// skipped record: it is never lost with the task journaled as done.
func TestBadRecordsSurviveAFailedCommit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	input := writeOneBadLine(t, dir)
	blocker := filepath.Join(dir, "dl") // a file where the dead letter's folder goes
	if err := os.WriteFile(blocker, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := parsePipeline(t, dir, `
version: 1
name: bad
stages:
  - name: parse
    kind: map
    function: bad.map
    input: { from: file:in.jsonl, format: jsonl, split: { lines: 100 } }
    skip_bad_records: 2
    dead_letter: dl/dead.jsonl
output: { to: out.jsonl }
`, nil)
	reg := flow.NewRegistry()
	reg.Map("bad.map", numberMap(nil))
	opts := flow.Options{StateDir: t.TempDir(), Workers: 2, RunID: "r1", Logger: testLogger(t)}
	if _, err := flow.Run(t.Context(), p, reg, opts); err == nil {
		t.Fatal("the run succeeded though its dead letter could not be written")
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	opts.Resume = true
	res, err := flow.Run(t.Context(), p, reg, opts)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if got := res.Stages[0].RecordsOut; got != 9 {
		t.Errorf("records out = %d, want 9", got)
	}
	bad := readBadLetters(t, filepath.Join(dir, "dl", "dead.jsonl"))
	if len(bad) != 1 || bad[0].Where != input+":7" {
		t.Errorf("dead letter = %+v, want the one record of line 7", bad)
	}
}

// writeOneBadLine writes dir/in.jsonl: ten {"n": N} lines, of which
// line 7's n is not a number, and returns its path.
func writeOneBadLine(t *testing.T, dir string) string {
	t.Helper()
	var in strings.Builder
	for i := 1; i <= 10; i++ {
		if i == 7 {
			in.WriteString("{\"n\": \"seven\"}\n")
			continue
		}
		fmt.Fprintf(&in, "{\"n\": %d}\n", i)
	}
	input := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(input, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return input
}

// numberMap emits each record's n, and fails a record whose n is not a
// number; it counts its calls in calls, if not nil.
func numberMap(calls *atomic.Int64) flow.MapFunc {
	return func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		if calls != nil {
			calls.Add(1)
		}
		n, ok := rec.Value.(map[string]any)["n"].(int64)
		if !ok {
			return fmt.Errorf("n is not a number: %v", rec.Value)
		}
		return emit("", n)
	}
}

// runMode is how a test runs a pipeline: embedded (storage in the run's
// folder), with a job server and shared storage, or with a job server
// and the data going through it.
type runMode struct {
	name    string
	servers bool
	storage string // "store": a folder of the test's
}

var runModes = []runMode{
	{"embedded", false, ""},
	{"storage", true, "store"},
	{"no storage", true, flow.StorageNone},
}

// options returns the run options of mode m for a test whose files are
// in dir.
func (m runMode) options(t *testing.T, dir string) flow.Options {
	opts := flow.Options{StateDir: t.TempDir(), Workers: 2, Logger: testLogger(t)}
	if m.servers {
		opts.Servers = []string{servertest.Start(t, server.Config{}).Addr}
		opts.Storage = m.storage
		if m.storage == "store" {
			opts.Storage = filepath.Join(dir, "store")
		}
	}
	return opts
}

// TestUnreadableLinesInEveryMode: input lines that do not read as their
// format (jsonl lines that are not JSON; CSV records with a stray quote
// or the wrong number of fields) are skipped under skip_bad_records
// alike whether the workers read the input (embedded, storage) or the
// coordinator reads it to put its records in the tasks (no storage):
// the same dead letter, naming each by file and line, the same counter,

// unreadablePipeline writes content to file in dir and parses a
// one-stage pipeline mapping it with bad.map (input as given, and the
// stage's further settings in stage) to out.jsonl; it returns the
// pipeline and the input's path.
func unreadablePipeline(t *testing.T, dir, file, content, input, stage string) (*spec.Pipeline, string) {
	t.Helper()
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return parsePipeline(t, dir, `
version: 1
name: unreadable
stages:
  - name: parse
    kind: map
    function: bad.map
    input: `+input+`
    retry: { max_attempts: 3, initial: 10ms }
    `+stage+`
output: { to: out.jsonl }
`, nil), path
}

// the same output.
func TestUnreadableLinesInEveryMode(t *testing.T) {
	t.Parallel()
	inputs := []struct {
		name, file, content, input string
		bad                        map[int]string // line → the record the dead letter shows
		out                        int64
	}{
		{
			name: "jsonl", file: "in.jsonl",
			// Line 5 reads but fails the function; 3, 6 and 10 do not
			// read; 10 comes after its task's last record.
			content: "{\"n\": 1}\n{\"n\": 2}\nnot json\n{\"n\": 4}\n{\"n\": \"five\"}\n{\"n\": 6\n{\"n\": 7}\n\n{\"n\": 9}\n{\"n\": x}\n",
			input:   "{ from: file:in.jsonl, format: jsonl, split: { lines: 4 } }",
			bad:     map[int]string{3: "not json", 5: `{"key":"","value":{"n":"five"}}`, 6: `{"n": 6`, 10: `{"n": x}`},
			out:     5,
		},
		{
			name: "csv", file: "in.csv",
			// Line 3 has a field too many, 4 a stray quote (no text: the
			// CSV reader gives none), 7 a field too few.
			content: "name,n\na,1\nb,2,extra\nc\"d\"e,3\nf,4\ng,5\nh\ni,6\n",
			input:   "{ from: file:in.csv, header: true, split: { lines: 3 } }",
			bad:     map[int]string{3: `["b","2","extra"]`, 4: "", 7: `["h"]`},
			out:     4,
		},
	}
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			t.Parallel()
			type result struct {
				bad      []badLetter
				counter  int64
				in       int64
				out      string
				recsOut  int64
				modeName string
			}
			results := make([]result, len(runModes))
			for i, m := range runModes {
				dir := t.TempDir()
				p, _ := unreadablePipeline(t, dir, in.file, in.content, in.input, "skip_bad_records: 2\n    dead_letter: dead.jsonl")
				reg := flow.NewRegistry()
				reg.Map("bad.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
					if v, ok := rec.Value.(map[string]any); ok && in.name == "jsonl" {
						if _, ok := v["n"].(int64); !ok {
							return fmt.Errorf("n is not a number: %v", v["n"])
						}
					}
					return emit("", rec.Value)
				})
				res, err := flow.Run(t.Context(), p, reg, m.options(t, dir))
				if err != nil {
					t.Fatalf("%s: %v", m.name, err)
				}
				out, err := os.ReadFile(filepath.Join(dir, "out.jsonl"))
				if err != nil {
					t.Fatal(err)
				}
				bad := readBadLetters(t, filepath.Join(dir, "dead.jsonl"))
				runBad, _ := filepath.Glob(filepath.Join(res.Dir, "bad.jsonl"))
				if len(runBad) != 1 || len(readBadLetters(t, runBad[0])) != len(bad) {
					t.Errorf("%s: the run's bad.jsonl (%v) does not hold the %d bad records", m.name, runBad, len(bad))
				}
				sort.Slice(bad, func(a, b int) bool { return bad[a].Where < bad[b].Where })
				for j := range bad {
					bad[j].Where = strings.TrimPrefix(bad[j].Where, dir) // compared across modes
				}
				st := res.Stages[0]
				results[i] = result{bad: bad, counter: st.Counters[flow.BadRecordsCounter], in: st.RecordsIn,
					out: string(out), recsOut: st.RecordsOut, modeName: m.name}

				if len(bad) != len(in.bad) {
					t.Errorf("%s: dead letter has %d records, want %d: %+v", m.name, len(bad), len(in.bad), bad)
					continue
				}
				for _, b := range bad {
					line, err := strconv.Atoi(strings.TrimPrefix(b.Where, "/"+in.file+":"))
					want, ok := in.bad[line]
					if err != nil || !ok || b.Record != want || b.Err == "" || b.Stage != "parse" {
						t.Errorf("%s: dead letter record %+v, want one of lines %v with its text", m.name, b, in.bad)
					}
				}
				if results[i].counter != int64(len(in.bad)) {
					t.Errorf("%s: counter %s = %d, want %d", m.name, flow.BadRecordsCounter, results[i].counter, len(in.bad))
				}
				if st.RecordsOut != in.out {
					t.Errorf("%s: records out = %d, want %d", m.name, st.RecordsOut, in.out)
				}
			}
			for _, r := range results[1:] {
				first := results[0]
				if !reflect.DeepEqual(r.bad, first.bad) {
					t.Errorf("dead letter %s:\n%+v\n%s:\n%+v", r.modeName, r.bad, first.modeName, first.bad)
				}
				if r.counter != first.counter || r.in != first.in || r.recsOut != first.recsOut || r.out != first.out {
					t.Errorf("%s: counter %d, in %d, out %d, output %q; %s: %d, %d, %d, %q", r.modeName, r.counter, r.in, r.recsOut, r.out,
						first.modeName, first.counter, first.in, first.recsOut, first.out)
				}
			}
		})
	}
}

// TestUnreadableLinesPastTheLimit: past skip_bad_records, or without
// it, a line that does not read fails its task, in every mode, with a
// permanent error naming its file and line: the task is not retried, and
// the function saw the records before the line, as the limit counts
// lines and function errors together in input order.
func TestUnreadableLinesPastTheLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, content, input, skip string
		line                             int   // the line the error names
		calls                            int64 // function calls
	}{
		{"jsonl over the limit", "in.jsonl", "{\"n\": 1}\n{\"n\": \"two\"}\nnot json\n{\"n\": 4}\n{\"n\": 5\n{\"n\": 6}\n",
			"{ from: file:in.jsonl, format: jsonl, split: { lines: 100 } }", "skip_bad_records: 2", 5, 3},
		{"jsonl without skipping", "in.jsonl", "{\"n\": 1}\n{\"n\": 2}\n{\"n\": 3\n{\"n\": 4}\n",
			"{ from: file:in.jsonl, format: jsonl, split: { lines: 100 } }", "", 3, 2},
		{"csv without skipping", "in.csv", "a,1\nb,2\nc\"d\"e,3\nf,4\n",
			"{ from: file:in.csv, split: { lines: 100 } }", "", 3, 2},
	}
	for _, tt := range tests {
		for _, m := range runModes {
			t.Run(tt.name+"/"+m.name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				p, input := unreadablePipeline(t, dir, tt.file, tt.content, tt.input, tt.skip)
				var calls atomic.Int64
				reg := flow.NewRegistry()
				reg.Map("bad.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
					calls.Add(1)
					if v, ok := rec.Value.(map[string]any); ok {
						if _, ok := v["n"].(int64); !ok {
							return fmt.Errorf("n is not a number: %v", v["n"])
						}
					}
					return emit("", rec.Value)
				})
				_, err := flow.Run(t.Context(), p, reg, m.options(t, dir))
				if err == nil {
					t.Fatal("the run succeeded")
				}
				if want := fmt.Sprintf("%s:%d: ", input, tt.line); !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name the line (%q)", err, want)
				}
				if !errors.Is(err, flow.ErrPermanent) && !strings.Contains(err.Error(), "permanent") {
					t.Errorf("error %q is not permanent", err)
				}
				if got := calls.Load(); got != tt.calls {
					t.Errorf("the function was called %d times, want %d (once per record before the line, no retry)", got, tt.calls)
				}
			})
		}
	}
}
