package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/server"
)

const wordcountYAML = "../../examples/wordcount/wordcount.yaml"

// runCmd runs a subcommand in-process and returns its exit code, stdout
// and stderr.
func runCmd(t *testing.T, ctx context.Context, fn func(context.Context, []string, io.Writer, io.Writer) int, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := fn(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestRunEmbeddedWordcount(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "wc.tsv")
	code, stdout, stderr := runCmd(t, t.Context(), cmdRun, wordcountYAML, "-p", "out="+out, "-p", "lines=4", "--state-dir", filepath.Join(dir, "state"))
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	want, _ := os.ReadFile("../../examples/wordcount/testdata/want.tsv")
	got, _ := os.ReadFile(out)
	if string(got) != string(want) {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	for _, s := range []string{"output: " + out + " (48 records)", "7/7 tasks done", "count 3/3 tasks"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("stdout lacks %q:\n%s", s, stdout)
		}
	}
}

func TestRunJSONEvents(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "wc.tsv")
	code, stdout, stderr := runCmd(t, t.Context(), cmdRun, wordcountYAML, "--json", "-p", "out="+out, "-p", "lines=4", "--state-dir", dir, "--workers", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	kinds := map[string]int{}
	var last map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		kinds[ev["event"].(string)]++
		last = ev
	}
	if kinds["run_started"] != 1 || kinds["stage_started"] != 2 || kinds["task_done"] < 4 || kinds["run_done"] != 1 {
		t.Errorf("events %v", kinds)
	}
	if last["event"] != "summary" || last["ok"] != true || last["output"] != out || last["output_records"] != float64(48) {
		t.Errorf("last line %v: want the summary", last)
	}
	// JSON is snake_case with durations in seconds, events and summary
	// alike; task_done says how long, which attempt and where.
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if strings.Contains(line, `"Name"`) || strings.Contains(line, `"Elapsed"`) || strings.Contains(line, "_ns") {
			t.Errorf("not snake_case with seconds: %s", line)
		}
		var ev map[string]any
		json.Unmarshal([]byte(line), &ev)
		if ev["event"] == "task_done" {
			d, _ := ev["duration_s"].(float64)
			if d <= 0 || d > 60 || ev["attempt"] != float64(1) || ev["worker"] == nil || ev["worker"] == "" {
				t.Errorf("task_done %s: want duration_s in seconds, attempt and worker", line)
			}
		}
	}
	if el, _ := last["elapsed_s"].(float64); el <= 0 || el > 600 {
		t.Errorf("summary elapsed_s = %v, want the run's seconds", last["elapsed_s"])
	}
	stages, _ := last["stages"].([]any)
	if len(stages) != 2 {
		t.Fatalf("summary stages %v", last["stages"])
	}
	st := stages[0].(map[string]any)
	if st["name"] != "count" || st["tasks"] == nil || st["records_in"] != float64(12) || st["elapsed_s"] == nil {
		t.Errorf("summary stage %v: want name, tasks, records_in, elapsed_s", st)
	}
}

func TestRunBadPipeline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte("version: 1\nname: bad\nstages:\n  - name: count\n    kind: map\n    function: wc.map\n    input: { from: file:in.txt }\n    concurency: 4\noutput:\n  to: out.tsv\n"), 0o644)
	code, stdout, stderr := runCmd(t, t.Context(), cmdRun, path, "--state-dir", dir)
	if code != 2 || stdout != "" {
		t.Errorf("exit %d, stdout %q: want 2 and nothing", code, stdout)
	}
	if !strings.Contains(stderr, path+":8:5: ") || !strings.Contains(stderr, "concurency") {
		t.Errorf("stderr %q: want the unknown field with file:line:column", stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("a bad pipeline left state behind: %v", entries)
	}
}

func TestRunUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no pipeline", nil, "want one pipeline file (or --resume RUN_ID), got 0"},
		{"two pipelines", []string{"a.yaml", "b.yaml"}, "got 2 arguments"},
		{"bad param", []string{"a.yaml", "-p", "novalue"}, "want name=value"},
		{"unknown run", []string{"--resume", "nope", "--state-dir", "."}, "cannot resume"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := runCmd(t, t.Context(), cmdRun, tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d stderr %q: want 2 and %q", code, stderr, tt.want)
			}
		})
	}
}

// bigInput writes lines lines of words whose counts it returns as the
// exact expected wordcount output.
func bigInput(t *testing.T, lines int) (path, want string) {
	t.Helper()
	counts := map[string]int{}
	var b strings.Builder
	for i := 0; i < lines; i++ {
		for j := 0; j < 6; j++ {
			w := fmt.Sprintf("w%03d", (i*7+j*13)%397)
			counts[w]++
			b.WriteString(w)
			b.WriteByte(' ')
		}
		b.WriteByte('\n')
	}
	path = filepath.Join(t.TempDir(), "big.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var w strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&w, "%s\t%d\n", k, counts[k])
	}
	return path, w.String()
}

// buildGearflow builds this command into a temporary directory.
func buildGearflow(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gearflow")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// syncBuffer is a bytes.Buffer safe for a process's output and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// startProcess starts bin with args; it is killed (by pid) when the test
// ends, and dies with the test process.
func startProcess(t *testing.T, bin string, stdout io.Writer, args ...string) *process {
	t.Helper()
	return startProcessEnv(t, bin, nil, stdout, args...)
}

// startProcessEnv is startProcess with env added to the environment.
func startProcessEnv(t *testing.T, bin string, env []string, stdout io.Writer, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = gearmandtest.DieWithParent()
	out := &syncBuffer{}
	if stdout == nil {
		stdout = out
	}
	cmd.Stdout, cmd.Stderr = stdout, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s %v output:\n%s", filepath.Base(bin), args, out)
		}
	})
	return p
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// kill sends SIGKILL to the process (by its pid) and waits for it to exit.
func (p *process) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// forEachServer runs f against our in-process server and a real gearmand.
func forEachServer(t *testing.T, f func(t *testing.T, addr string)) {
	t.Run("ours", func(t *testing.T) {
		t.Parallel()
		f(t, servertest.Start(t, server.Config{}).Addr)
	})
	t.Run("gearmand", func(t *testing.T) {
		t.Parallel()
		f(t, gearmandtest.Start(t).Addr)
	})
}

// TestDistributed runs wordcount with two "gearflow worker" processes
// and the coordinator in this process, over each server; then kills one
// worker with SIGKILL while the map stage runs; then kills the
// coordinator and resumes the run.
func TestDistributed(t *testing.T) {
	t.Parallel()
	bin := buildGearflow(t)
	input, want := bigInput(t, 20000)

	t.Run("two workers", func(t *testing.T) {
		t.Parallel()
		forEachServer(t, func(t *testing.T, addr string) {
			for i := 0; i < 2; i++ {
				startProcess(t, bin, nil, "worker", "--servers", addr, "--concurrency", "2")
			}
			out := filepath.Join(t.TempDir(), "wc.tsv")
			code, stdout, stderr := runCmd(t, t.Context(), cmdRun, wordcountYAML, "--servers", addr,
				"-p", "input="+input, "-p", "out="+out, "-p", "lines=500", "--state-dir", t.TempDir())
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
			}
			got, _ := os.ReadFile(out)
			if string(got) != want {
				t.Errorf("output differs from the expected counts (%d bytes, want %d)", len(got), len(want))
			}
		})
	})

	t.Run("worker killed", func(t *testing.T) {
		t.Parallel()
		forEachServer(t, func(t *testing.T, addr string) {
			victim := startProcess(t, bin, nil, "worker", "--servers", addr, "--concurrency", "2")
			startProcess(t, bin, nil, "worker", "--servers", addr, "--concurrency", "2")
			out := filepath.Join(t.TempDir(), "wc.tsv")
			// The coordinator's --json events tell when tasks complete: the
			// victim dies after the first one, with most of the stage to go.
			pr, pw := io.Pipe()
			var killed sync.Once
			var doneAtKill string
			go func() {
				sc := bufio.NewScanner(pr)
				for sc.Scan() {
					if strings.Contains(sc.Text(), `"event":"task_done"`) {
						killed.Do(func() {
							doneAtKill = sc.Text()
							victim.cmd.Process.Signal(syscall.SIGKILL)
						})
					}
				}
			}()
			var stderr bytes.Buffer
			code := cmdRun(t.Context(), []string{wordcountYAML, "--json", "--servers", addr,
				"-p", "input=" + input, "-p", "out=" + out, "-p", "lines=200", "--state-dir", t.TempDir()}, pw, &stderr)
			pw.Close()
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr.String())
			}
			t.Logf("coordinator log after the kill:\n%s", stderr.String())
			if doneAtKill == "" {
				t.Fatal("no task completed: the worker was never killed")
			}
			var ev struct{ TasksDone, TasksTotal int }
			json.Unmarshal([]byte(strings.ReplaceAll(strings.ReplaceAll(doneAtKill, "tasks_done", "TasksDone"), "tasks_total", "TasksTotal")), &ev)
			if ev.TasksDone >= ev.TasksTotal {
				t.Errorf("killed after %d of %d tasks: not mid-run", ev.TasksDone, ev.TasksTotal)
			}
			got, _ := os.ReadFile(out)
			if string(got) != want {
				t.Errorf("output differs from the expected counts (%d bytes, want %d)", len(got), len(want))
			}
		})
	})

	t.Run("coordinator killed and resumed", func(t *testing.T) {
		t.Parallel()
		forEachServer(t, func(t *testing.T, addr string) {
			for i := 0; i < 2; i++ {
				startProcess(t, bin, nil, "worker", "--servers", addr, "--concurrency", "1")
			}
			state := t.TempDir()
			out := filepath.Join(t.TempDir(), "wc.tsv")
			const runID = "5b0e6c1e-7a43-4e0c-9d4f-1c2b3a4d5e6f"
			args := []string{"run", wordcountYAML, "--json", "--servers", addr, "--run-id", runID, "--state-dir", state,
				"-p", "input=" + input, "-p", "out=" + out, "-p", "lines=100"}
			pr, pw := io.Pipe()
			coord := startProcess(t, bin, pw, args...)
			go io.Copy(io.Discard, pr)
			// Kill once 20 tasks are in the journal (it may trail the
			// task_done events by a few milliseconds: journal lines are
			// written in groups).
			var before map[string]int
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
				if before = journalTasksIfAny(filepath.Join(state, runID)); len(before) >= 20 {
					break
				}
			}
			coord.kill()
			before = journalTasks(t, filepath.Join(state, runID))
			if len(before) < 20 || len(before) >= 200 {
				t.Fatalf("journal has %d tasks at the kill, want at least 20 of 200 and not all", len(before))
			}

			code, stdout, stderr := runCmd(t, t.Context(), cmdRun, "--resume", runID, "--state-dir", state, "--servers", addr)
			if code != 0 {
				t.Fatalf("resume: exit %d\n%s\n%s", code, stdout, stderr)
			}
			got, _ := os.ReadFile(out)
			if string(got) != want {
				t.Errorf("output differs from the expected counts (%d bytes, want %d)", len(got), len(want))
			}
			t.Logf("%d tasks done at the kill; resumed run:\n%s%s", len(before), stdout, stderr)
			after := journalTasks(t, filepath.Join(state, runID))
			if len(after) <= len(before) {
				t.Errorf("the resumed run journaled no task (%d before, %d after)", len(before), len(after))
			}
			for task, n := range after {
				if n > 1 {
					t.Errorf("task %s completed %d times", task, n)
				}
			}
			if !strings.Contains(stdout, "tasks already done") {
				t.Errorf("resume did not report tasks done earlier:\n%s", stdout)
			}
		})
	})
}

// journalTasks counts how often each stage/task completed in a run's
// journal.
func journalTasks(t *testing.T, dir string) map[string]int {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "journal.jsonl")); err != nil {
		t.Fatal(err)
	}
	return journalTasksIfAny(dir)
}

// journalTasksIfAny is journalTasks for a journal that may not exist yet
// (nil then).
func journalTasksIfAny(dir string) map[string]int {
	data, err := os.ReadFile(filepath.Join(dir, "journal.jsonl"))
	if err != nil {
		return nil
	}
	m := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e struct {
			Stage string
			Task  int
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Stage != "" {
			m[fmt.Sprintf("%s/%d", e.Stage, e.Task)]++
		}
	}
	return m
}

// TestRunWarnsUnservedFunction: a distributed run whose function no
// worker serves says so, and a worker that comes later still runs it.
func TestRunWarnsUnservedFunction(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t, server.Config{})
	out := filepath.Join(t.TempDir(), "wc.tsv")
	pr, pw := io.Pipe()
	warned := make(chan string, 1)
	var rest syncBuffer
	go func() {
		sc := bufio.NewScanner(pr)
		var lines []string
		for sc.Scan() {
			rest.Write([]byte(sc.Text() + "\n"))
			if lines = append(lines, sc.Text()); strings.Contains(sc.Text(), "wc.map") {
				select {
				case warned <- strings.Join(lines, "\n"):
				default:
				}
			}
		}
	}()
	codes := make(chan int, 1)
	go func() {
		codes <- cmdRun(t.Context(), []string{wordcountYAML, "--servers", srv.Addr, "-p", "out=" + out, "--state-dir", t.TempDir()}, io.Discard, pw)
		pw.Close()
	}()
	// The warning comes before anything is submitted; then a worker starts.
	select {
	case w := <-warned:
		if !strings.Contains(w, "warning: no worker serves wc.map (stage count)") || strings.Contains(w, "wc.sum (stage count)") {
			t.Errorf("warnings %q: want wc.map, and not the combiner", w)
		}
	case code := <-codes:
		t.Fatalf("run ended (%d) without a warning: %s", code, rest.String())
	}
	wctx, wcancel := context.WithCancel(t.Context())
	wdone := make(chan int)
	go func() { wdone <- cmdWorker(wctx, []string{"--servers", srv.Addr}, io.Discard, io.Discard) }()
	defer func() { wcancel(); <-wdone }()
	select {
	case code := <-codes:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, rest.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not finish once a worker served it")
	}
	got, _ := os.ReadFile(out)
	want, _ := os.ReadFile("../../examples/wordcount/testdata/want.tsv")
	if string(got) != string(want) {
		t.Errorf("output differs")
	}
}
