package flow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	goruntime "runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/flow/spec"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSplitFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeFile(t, dir, "in.txt", "one\ntwo\nthree\nfour\nfive")
	tests := []struct {
		name  string
		split spec.Split
		want  []string // chunk descriptions
		lines [][]string
	}{
		{"lines 2", spec.Split{By: spec.SplitLines, N: 2}, []string{path + ":1-2", path + ":3-4", path + ":5-5"},
			[][]string{{"one", "two"}, {"three", "four"}, {"five"}}},
		{"lines 10", spec.Split{By: spec.SplitLines, N: 10}, []string{path + ":1-5"},
			[][]string{{"one", "two", "three", "four", "five"}}},
		{"bytes 6", spec.Split{By: spec.SplitBytes, N: 6}, []string{path + ":1-2", path + ":3-3", path + ":4-5"},
			[][]string{{"one", "two"}, {"three"}, {"four", "five"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			chunks, err := planFiles(spec.Source{Kind: spec.SourceFile, Value: path}, tt.split)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			var lines [][]string
			for _, c := range chunks {
				got = append(got, c.String())
				recs, err := fileChunkRecords(c)
				if err != nil {
					t.Fatal(err)
				}
				var ls []string
				for _, r := range recs {
					v, _ := DecodeValue(r.Value)
					ls = append(ls, v.(string))
				}
				lines = append(lines, ls)
			}
			if !reflect.DeepEqual(got, tt.want) || !reflect.DeepEqual(lines, tt.lines) {
				t.Errorf("chunks %q lines %q, want %q %q", got, lines, tt.want, tt.lines)
			}
		})
	}
}

func TestPlanGlobFilesAndJSON(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "b.jsonl", "{\"n\": 2}\n\n{\"n\": 1.5}\n")
	writeFile(t, dir, "a.jsonl", "{\"n\": 1}\n")
	chunks, err := planFiles(spec.Source{Kind: spec.SourceGlob, Value: filepath.Join(dir, "*.jsonl")}, spec.Split{By: spec.SplitRecords, N: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []any
	for _, c := range chunks {
		recs, err := fileChunkRecords(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			v, _ := DecodeValue(r.Value)
			got = append(got, v.(map[string]any)["n"])
		}
	}
	if want := []any{int64(1), int64(2), 1.5}; !reflect.DeepEqual(got, want) {
		t.Errorf("values %v, want %v", got, want)
	}
	chunks, err = planFiles(spec.Source{Kind: spec.SourceGlob, Value: filepath.Join(dir, "*.jsonl")}, spec.Split{By: spec.SplitFiles, N: 1})
	if err != nil || len(chunks) != 2 {
		t.Fatalf("files split: %v chunks, err %v", chunks, err)
	}
	recs, err := fileChunkRecords(chunks[0])
	if err != nil || len(recs) != 1 || recs[0].Key != "a.jsonl" {
		t.Errorf("files chunk records %+v, %v", recs, err)
	}
}

func TestShuffleSpillsAndKeepsOrder(t *testing.T) {
	t.Parallel()
	for _, budget := range []int64{1 << 30, 512} { // no spill; spill every few records
		t.Run(fmt.Sprint("budget=", budget), func(t *testing.T) {
			t.Parallel()
			s := newShuffler(t.TempDir(), 3, budget)
			want := map[string][]string{}
			for i := 0; i < 500; i++ {
				k := fmt.Sprintf("k%02d", i%37)
				v := fmt.Sprint(i)
				want[k] = append(want[k], v)
				if err := s.add(rawRecord{Key: k, Value: mustValue(t, v)}); err != nil {
					t.Fatal(err)
				}
			}
			if budget < 1<<30 && s.spills == 0 {
				t.Fatal("no spill under a small budget")
			}
			got := map[string][]string{}
			for p := 0; p < 3; p++ {
				var keys []string
				err := s.groups(p, func(g group) error {
					keys = append(keys, g.Key)
					if partitionOf(g.Key, 3) != p {
						t.Errorf("key %s in partition %d", g.Key, p)
					}
					for _, v := range g.Values {
						x, _ := DecodeValue(v)
						got[g.Key] = append(got[g.Key], x.(string))
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if !sort.StringsAreSorted(keys) {
					t.Errorf("partition %d keys not sorted: %v", p, keys)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("groups differ from input")
			}
			s.cleanup()
		})
	}
}

func TestJournalAndAtomicWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openJournal(dir); !errors.Is(err, ErrRunBusy) {
		t.Errorf("second openJournal of a run: err = %v, want ErrRunBusy", err)
	}
	p := &plan{Run: "r", Pipeline: "p", Stages: []plannedStage{{Name: "s", Chunks: []chunk{{File: "f", Lines: 3, FirstLine: 1}}}}}
	if err := j.writePlan(p); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := j.record(journalEntry{Stage: "s", Task: i, Attempt: 1, RecordsOut: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	j.close()
	// A torn last line, as after a crash mid-append.
	f, _ := os.OpenFile(filepath.Join(dir, "journal.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"stage":"s","ta`)
	f.Close()
	entries, err := readJournal(dir)
	if err != nil || len(entries) != 3 || entries[2].RecordsOut != 2 {
		t.Errorf("readJournal = %+v, %v", entries, err)
	}
	got, err := readPlan(dir)
	if err != nil || !reflect.DeepEqual(got.Stages, p.Stages) {
		t.Errorf("readPlan = %+v, %v", got, err)
	}
	if _, err := readPlan(t.TempDir()); err == nil {
		t.Error("readPlan of an empty dir: no error")
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestOutputFormats(t *testing.T) {
	t.Parallel()
	recs := []rawRecord{
		{Key: "a\tb", Value: mustValue(t, 3)},
		{Key: "c", Value: mustValue(t, map[string]any{"x": 1})},
		{Key: "", Value: mustValue(t, "line, with comma")},
	}
	tests := []struct {
		format spec.Format
		want   string
	}{
		{spec.FormatTSV, "a\\tb\t3\nc\t{\"x\":1}\nline, with comma\n"},
		{spec.FormatCSV, "a\tb,3\nc,\"{\"\"x\"\":1}\"\n\"line, with comma\"\n"},
		{spec.FormatJSONL, "{\"key\":\"a\\tb\",\"value\":3}\n{\"key\":\"c\",\"value\":{\"x\":1}}\n{\"key\":\"\",\"value\":\"line, with comma\"}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.format.String(), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "sub", "out."+tt.format.String())
			n, err := writeOutput(context.Background(), path, tt.format, func(fn func(rawRecord) error) error {
				for _, r := range recs {
					if err := fn(r); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil || n != 3 {
				t.Fatalf("writeOutput = %d, %v", n, err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != tt.want {
				t.Errorf("output:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestUniqueFitsGearmanLimit(t *testing.T) {
	t.Parallel()
	run := "0b7c2a4e-8c0a-4b53-9d39-3f6f2f6f7a11"
	tests := []struct {
		stage   string
		task    int
		attempt int
		want    string
	}{
		{"count", 3, 1, run + ":count:3"},
		{"count", 3, 2, run + ":count:3#2"},
	}
	for _, tt := range tests {
		if got := uniqueID(run, tt.stage, tt.task, tt.attempt); got != tt.want {
			t.Errorf("uniqueID(%s, %d, %d) = %q, want %q", tt.stage, tt.task, tt.attempt, got, tt.want)
		}
	}
	long := strings.Repeat("s", 100)
	a, b := uniqueID(run, long, 123456, 7), uniqueID(run, long+"x", 123456, 7)
	if len(a) > 63 || len(b) > 63 || a == b {
		t.Errorf("long uniques %q %q: want ≤ 63 bytes and distinct", a, b)
	}
}

// TestCSVInput: CSV rows are arrays of their fields, or maps by the
// header with header: true; a quoted field may span lines, and a split
// never cuts one; blank lines are no records.
func TestCSVInput(t *testing.T) {
	t.Parallel()
	path := writeFile(t, t.TempDir(), "in.csv", "a,b\n\"x, y\",2\n\n\"two\nlines\",3\n\"say \"\"hi\"\"\n\",4\n")
	tests := []struct {
		name   string
		header bool
		split  spec.Split
		chunks int
		want   []any
	}{
		{"rows", false, spec.Split{By: spec.SplitLines, N: 10}, 1, []any{
			[]any{"a", "b"}, []any{"x, y", "2"}, []any{"two\nlines", "3"}, []any{"say \"hi\"\n", "4"}}},
		{"header", true, spec.Split{By: spec.SplitLines, N: 10}, 1, []any{
			map[string]any{"a": "x, y", "b": "2"}, map[string]any{"a": "two\nlines", "b": "3"}, map[string]any{"a": "say \"hi\"\n", "b": "4"}}},
		{"a record a task", true, spec.Split{By: spec.SplitRecords, N: 1}, 5, []any{
			map[string]any{"a": "x, y", "b": "2"}, map[string]any{"a": "two\nlines", "b": "3"}, map[string]any{"a": "say \"hi\"\n", "b": "4"}}},
		{"bytes", true, spec.Split{By: spec.SplitBytes, N: 1}, 5, []any{
			map[string]any{"a": "x, y", "b": "2"}, map[string]any{"a": "two\nlines", "b": "3"}, map[string]any{"a": "say \"hi\"\n", "b": "4"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := spec.Input{From: spec.Source{Kind: spec.SourceFile, Value: path}, Split: tt.split, Header: tt.header}
			check := func(t *testing.T, chunks []chunk, read func(chunk) ([]any, error)) {
				t.Helper()
				if len(chunks) != tt.chunks {
					t.Errorf("%d chunks, want %d", len(chunks), tt.chunks)
				}
				var got []any
				for _, c := range chunks {
					vs, err := read(c)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, vs...)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("rows %#v, want %#v", got, tt.want)
				}
			}
			// Through the payload: the coordinator reads the records.
			chunks, err := planFileInput(in, nil)
			if err != nil {
				t.Fatal(err)
			}
			check(t, chunks, func(c chunk) ([]any, error) {
				recs, err := fileChunkRecords(c)
				var vs []any
				for _, r := range recs {
					v, _ := DecodeValue(r.Value)
					vs = append(vs, v)
				}
				return vs, err
			})
			// Through storage: the worker reads its split.
			chunks, err = planInput(t.Context(), in, nil)
			if err != nil {
				t.Fatal(err)
			}
			reg := NewRegistry()
			check(t, chunks, func(c chunk) ([]any, error) {
				var vs []any
				err := reg.eachRefRecord(t.Context(), &taskRefs{Split: c.Split}, func(_ Position, _ string, value []byte) error {
					v, err := DecodeValue(value)
					vs = append(vs, v)
					return err
				}, nil)
				return vs, err
			})
		})
	}
}

// TestShufflerCopiesKeptValues: a shuffler that keeps a few of the
// records it is shown copies their values, so the buffer they arrived
// in (a task's packed output, up to 1 MiB) is not kept alive by them.
func TestShufflerCopiesKeptValues(t *testing.T) {
	sh := newShuffler(t.TempDir(), 4, 64<<20)
	sh.copyValues = true
	defer sh.cleanup()
	freed := make(chan struct{})
	func() {
		src := make([]byte, 1<<20)
		copy(src[100:], "kept value")
		goruntime.AddCleanup(&src[0], func(ch chan struct{}) { close(ch) }, freed)
		if err := sh.addToPart(1, []byte("k"), src[100:110]); err != nil {
			t.Fatal(err)
		}
	}()
	for i := 0; ; i++ {
		goruntime.GC()
		select {
		case <-freed:
		case <-time.After(10 * time.Millisecond):
			if i < 100 {
				continue
			}
			t.Fatal("the source buffer is still alive: the shuffler kept a value in it")
		}
		break
	}
	var got []string
	if err := sh.groups(1, func(g group) error {
		for _, v := range g.Values {
			got = append(got, g.Key+"="+string(v))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "k=kept value" {
		t.Fatalf("groups = %q", got)
	}
}
