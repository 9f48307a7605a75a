package flow_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearflow/gearflow/examples/wordcount"
	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
)

// parsePipeline parses a pipeline written in dir.
func parsePipeline(t *testing.T, dir, yaml string, params map[string]string) *spec.Pipeline {
	t.Helper()
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := spec.Load(file, params)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAttemptTimeoutFreesSlot: the attempt's deadline travels with the
// task, so a function that waits on its context gives its worker slot
// back at the deadline and the next task runs there, instead of the slot
// staying busy for as long as the function would have run.
func TestAttemptTimeoutFreesSlot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("a\nb\nc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := parsePipeline(t, dir, `
version: 1
name: slow
stages:
  - name: wait
    kind: map
    function: slow.map
    input: { from: file:in.txt, split: { lines: 1 } }
    timeout: 300ms
    retry: { max_attempts: 1 }
    on_failure: continue
output: { to: out.tsv }
`, nil)
	reg := flow.NewRegistry()
	var started atomic.Int64
	reg.Map("slow.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		started.Add(1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(30 * time.Second):
			return emit("late", 1)
		}
	})
	begin := time.Now()
	res, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Workers: 1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(begin)
	// Three tasks, one slot, 300 ms each: a second or two. A slot held
	// for the function's 30 s would take 90 s.
	if elapsed > 15*time.Second {
		t.Errorf("run took %v: the slot was not freed at the attempt's deadline", elapsed)
	}
	if started.Load() != 3 || res.Stages[0].Failed != 3 {
		t.Errorf("%d attempts started, %d tasks failed; want 3 and 3", started.Load(), res.Stages[0].Failed)
	}
	for _, f := range res.Failed {
		if !strings.Contains(f.Err, "timed out") && !strings.Contains(f.Err, "deadline") {
			t.Errorf("task %d failed with %q, want a timeout", f.Task, f.Err)
		}
	}
}

// TestIgnoredContextReported: a function that ignores its context holds
// its slot until it returns, and the worker says so.
func TestIgnoredContextReported(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := parsePipeline(t, dir, `
version: 1
name: deaf
stages:
  - name: wait
    kind: map
    function: deaf.map
    input: { from: file:in.txt }
    timeout: 100ms
    retry: { max_attempts: 1 }
    on_failure: continue
output: { to: out.tsv }
`, nil)
	reg := flow.NewRegistry()
	returned := make(chan struct{})
	reg.Map("deaf.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		defer close(returned)
		time.Sleep(1500 * time.Millisecond) // ctx is not looked at
		return nil
	})
	var logs syncBuffer
	reg.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	if _, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Workers: 1, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the function never returned")
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "ignored its context") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if s := logs.String(); !strings.Contains(s, "ignored its context") || !strings.Contains(s, "function=deaf.map") {
		t.Errorf("worker log %q does not report the function that ignored its context", s)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestConcurrencyFollowsFleet: a stage that sets no concurrency keeps as
// many jobs in flight as its function has worker slots, here more than
// the old fixed 16.
func TestConcurrencyFollowsFleet(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var in strings.Builder
	for i := range 60 {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := parsePipeline(t, dir, `
version: 1
name: wide
stages:
  - name: nap
    kind: map
    function: nap.map
    input: { from: file:in.txt, split: { lines: 1 } }
    speculative: false
output: { to: out.tsv }
`, nil)
	reg := flow.NewRegistry()
	var running, most atomic.Int64
	reg.Map("nap.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(300 * time.Millisecond)
		return emit("", rec.Value)
	})
	const slots = 24
	res, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Workers: slots, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stages[0].Done != 60 {
		t.Fatalf("%d tasks done, want 60", res.Stages[0].Done)
	}
	if m := most.Load(); m <= 16 || m > slots {
		t.Errorf("at most %d tasks ran at once; want more than 16 and at most the %d slots", m, slots)
	}
}

// TestStoredRunLeavesOnlyCommittedFiles: with storage, the run's
// intermediate data are the files of committed attempts, each named in
// the journal; failed attempts' files are gone.
func TestStoredRunLeavesOnlyCommittedFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var in strings.Builder
	want := map[string]int64{}
	for i := range 2000 {
		w := fmt.Sprintf("w%03d", i%150)
		fmt.Fprintf(&in, "%s x%d\n", w, i%7)
		want[w]++
		want[fmt.Sprintf("x%d", i%7)]++
	}
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := parsePipeline(t, dir, `
version: 1
name: wc
storage: store
stages:
  - name: count
    kind: map
    function: wc.map
    input: { from: file:in.txt, split: { bytes: 3000 } }
    partition: { by: key, count: 5 }
    retry: { max_attempts: 3, initial: 10ms }
  - name: total
    kind: reduce
    needs: [count]
    function: wc.sum
output: { to: out.tsv }
`, nil)
	reg := flow.NewRegistry()
	var failedOnce sync.Map
	reg.Map("wc.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		info, _ := flow.InfoFrom(ctx)
		for _, w := range strings.Fields(rec.Value.(string)) {
			if err := emit(w, 1); err != nil {
				return err
			}
		}
		// Every third task's first attempt fails after emitting: its
		// files must not count or stay.
		if info.Task%3 == 0 && info.Attempt == 1 {
			if _, loaded := failedOnce.LoadOrStore(info.Task, true); !loaded {
				return fmt.Errorf("flaky")
			}
		}
		return nil
	})
	reg.Sum("wc.sum")
	state := t.TempDir()
	res, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: state, Workers: 3, KeepData: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stages[0].Retries == 0 {
		t.Fatal("no attempt failed; the test needs some")
	}
	got := readTSVCounts(t, filepath.Join(dir, "out.tsv"))
	if len(got) != len(want) {
		t.Errorf("%d keys, want %d", len(got), len(want))
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s = %d, want %d", k, got[k], n)
		}
	}
	// Every file in storage is one the journal names.
	named := map[string]bool{}
	data, err := os.ReadFile(filepath.Join(state, res.Run, "journal.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e struct {
			Files []struct{ Key string } `json:"files"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		for _, f := range e.Files {
			named[f.Key] = true
		}
	}
	var files []string
	filepath.WalkDir(filepath.Join(dir, "store"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(filepath.Join(dir, "store"), path)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if len(files) == 0 {
		t.Fatal("no files in the run's storage")
	}
	for _, f := range files {
		if !named[f] {
			t.Errorf("storage holds %s, which no committed attempt wrote", f)
		}
	}
	if len(files) != len(named) {
		t.Errorf("%d files in storage, the journal names %d", len(files), len(named))
	}
}

func readTSVCounts(t *testing.T, path string) map[string]int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	var keys []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		k, v, _ := strings.Cut(line, "\t")
		var n int64
		fmt.Sscan(v, &n)
		got[k] = n
		keys = append(keys, k)
	}
	if !sort.StringsAreSorted(keys) {
		t.Errorf("output keys are not sorted")
	}
	return got
}

// TestReduceValuesStream: a reduce function sees one key's values as an
// iterator fed from the partition's sorted runs; stopping early skips
// the rest of that key's values and the next key comes whole.
func TestReduceValuesStream(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var in strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&in, "hot %d\n", i)
		if i%100 == 0 {
			fmt.Fprintf(&in, "cold %d\n", i)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := parsePipeline(t, dir, `
version: 1
name: hot
stages:
  - name: tag
    kind: map
    function: kv.map
    input: { from: file:in.txt, split: { bytes: 7000 } }
    partition: { by: key, count: 1 }
  - name: agg
    kind: reduce
    needs: [tag]
    function: kv.agg
output: { to: out.tsv }
`, nil)
	reg := flow.NewRegistry()
	reg.Map("kv.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		k, v, _ := strings.Cut(rec.Value.(string), " ")
		return emit(k, v)
	})
	reg.Reduce("kv.agg", func(ctx context.Context, key string, values iter.Seq[any], emit flow.Emit) error {
		n := 0
		for range values {
			n++
			if key == "hot" && n == 10 {
				break // the rest of hot's values are skipped
			}
		}
		return emit(key, n)
	})
	if _, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Workers: 2, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	got := readTSVCounts(t, filepath.Join(dir, "out.tsv"))
	if got["hot"] != 10 || got["cold"] != 50 || len(got) != 2 {
		t.Errorf("got %v, want hot 10 (stopped early), cold 50", got)
	}
}

// TestStoredInputsGlobAndCompressed: a glob with ** and {a,b} picks
// files at any depth, skipping hidden ones (such as the run's own state
// folder); a .gz file is read whole and decompressed; every line is
// counted once.
func TestStoredInputsGlobAndCompressed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, data []byte) {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	for range 300 {
		fmt.Fprintln(zw, "zipped line")
	}
	zw.Close()
	write("in/a/one.txt", []byte(strings.Repeat("plain line\n", 500)))
	write("in/b/deep/two.log", []byte(strings.Repeat("log line\n", 200)))
	write("in/b/three.txt.gz", gz.Bytes())
	write("in/c/skipped.txt", []byte("not matched\n"))
	write("in/.hidden/four.txt", []byte("hidden line\n"))
	p := parsePipeline(t, dir, `
version: 1
name: globs
stages:
  - name: count
    kind: map
    function: lines.map
    input: { from: "glob:in/{a,b}/**/*.{txt,log,gz}", split: { bytes: 1000 } }
    combine: lines.sum
    partition: { by: key, count: 2 }
  - name: total
    kind: reduce
    needs: [count]
    function: lines.sum
output: { to: out.tsv }
`, nil)
	reg := flow.NewRegistry()
	reg.Map("lines.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		return emit(rec.Value.(string), 1)
	})
	reg.Sum("lines.sum")
	if _, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: filepath.Join(dir, "in", ".state"), Workers: 2, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	got := readTSVCounts(t, filepath.Join(dir, "out.tsv"))
	want := map[string]int64{"plain line": 500, "log line": 200, "zipped line": 300}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%q counted %d times, want %d", k, got[k], n)
		}
	}
}

// TestOutputPartFiles: an output folder ("to:" ends in "/") gets one
// part file per task of the output stage, each sorted by key, and an
// empty _SUCCESS; together they hold exactly the single file's records.
// With storage the reduce tasks write their part files themselves and
// the run renames them into place; without, the coordinator writes them.
func TestOutputPartFiles(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"", flow.StorageNone} {
		t.Run("storage="+store, func(t *testing.T) {
			t.Parallel()
			p, _ := loadWordcount(t, nil)
			dir := filepath.Join(t.TempDir(), "parts")
			p.Output.To, p.Output.Dir = dir, true
			reg := flow.NewRegistry()
			wordcount.Register(reg)
			res, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Workers: 2, Storage: store, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			var lines []string
			for _, e := range ents {
				names = append(names, e.Name())
				if !strings.HasPrefix(e.Name(), "part-") {
					continue
				}
				data, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				part := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
				if !sort.StringsAreSorted(part) {
					t.Errorf("%s is not sorted by key", e.Name())
				}
				lines = append(lines, part...)
			}
			wantNames := []string{"_SUCCESS"}
			for i := range res.Stages[1].Tasks {
				wantNames = append(wantNames, fmt.Sprintf("part-%05d.tsv", i))
			}
			if strings.Join(names, " ") != strings.Join(wantNames, " ") {
				t.Errorf("output folder holds %q, want %q", names, wantNames)
			}
			sort.Strings(lines)
			want := strings.Split(strings.TrimSuffix(wantWordcount(t), "\n"), "\n")
			if strings.Join(lines, "\n") != strings.Join(want, "\n") {
				t.Errorf("the part files hold %d lines, want the %d of the single output", len(lines), len(want))
			}
			if res.OutputRecords != int64(len(want)) {
				t.Errorf("output records %d, want %d", res.OutputRecords, len(want))
			}
		})
	}
}

// TestStoredLongLines: lines longer than the worker's read buffer, and
// longer than a split, are read whole and once, CRLF ends included.
func TestStoredLongLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	long := strings.Repeat("x", 600<<10)
	data := "short\r\n" + long + "\nmid\n" + long + long + "\r\nend"
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	p := parsePipeline(t, dir, `
version: 1
name: long
stages:
  - name: len
    kind: map
    function: len.map
    input: { from: file:in.txt, split: { bytes: 100KiB } }
output: { to: out.tsv }
`, nil)
	reg := flow.NewRegistry()
	reg.Map("len.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		s := rec.Value.(string)
		return emit(s[:min(len(s), 5)], len(s))
	})
	if _, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Workers: 2, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "out.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("short\t5\nxxxxx\t%d\nmid\t3\nxxxxx\t%d\nend\t3\n", len(long), 2*len(long))
	if string(got) != want {
		t.Errorf("output:\n%.300s\nwant:\n%.300s", got, want)
	}
}

// TestLineSplitsInlineOrByReference: a lines split of a few KiB of a
// small file travels with its task; a larger one is read by the worker
// from storage. Both count every line once, and a bad record is named by
// its file and line either way.
func TestLineSplitsInlineOrByReference(t *testing.T) {
	t.Parallel()
	for _, lineLen := range []int{10, 200} { // 100-line tasks of 1 KiB, and of 20 KiB
		t.Run(fmt.Sprint("line=", lineLen), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var in strings.Builder
			for i := range 1000 {
				fmt.Fprintf(&in, "%0*d\n", lineLen-1, i)
			}
			in.WriteString("bad\n")
			if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte(in.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			p := parsePipeline(t, dir, `
version: 1
name: lines
stages:
  - name: parse
    kind: map
    function: num.map
    input: { from: file:in.txt, split: { lines: 100 } }
    retry: { max_attempts: 1 }
    on_failure: continue
output: { to: out.tsv }
`, nil)
			reg := flow.NewRegistry()
			var seen atomic.Int64
			reg.Map("num.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
				if rec.Value.(string) == "bad" {
					return fmt.Errorf("not a number")
				}
				seen.Add(1)
				return nil
			})
			res, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Workers: 2, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			if seen.Load() != 1000 || len(res.Failed) != 1 {
				t.Fatalf("%d good lines seen, %d tasks failed; want 1000 and 1", seen.Load(), len(res.Failed))
			}
			if f := res.Failed[0]; !strings.HasSuffix(f.Input, "in.txt:1001-1001") {
				t.Errorf("the failed task's input is %q, want in.txt:1001-1001", f.Input)
			}
		})
	}
}
