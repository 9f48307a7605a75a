package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gearflow/gearflow/flow/storage"
	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/internal/seaweedtest"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/server"
)

// storagePipeline is wordcount with byte splits, its input and storage
// given as URIs.
const storagePipeline = `
version: 1
name: wcstore
params:
  input: { type: string, required: true }
  out:   { type: string, required: true }
  split: { type: int, default: 65536 }
defaults:
  timeout: 1m
  retry: { max_attempts: 4, backoff: exponential, initial: 100ms, max: 1s }
stages:
  - name: count
    kind: map
    function: wc.map
    input: { from: "${params.input}", split: { bytes: "${params.split}" } }
    combine: wc.sum
    partition: { by: key, count: 6 }
  - name: total
    kind: reduce
    needs: [count]
    function: wc.sum
output:
  from: stage:total
  to: "${params.out}"
`

// storageSetup is where a distributed storage test keeps its input and
// data: a shared folder, or an S3-compatible store.
type storageSetup struct {
	input   string   // the input's URI
	storage string   // the run's storage URI
	parts   string   // a folder for part files, ending in /
	env     []string // what every process needs to reach them
}

// setupStorage puts the input (read from path) in a shared folder or in
// a SeaweedFS store started for the test.
func setupStorage(t *testing.T, kind, path string) storageSetup {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	switch kind {
	case "file":
		dir := t.TempDir()
		in := filepath.Join(dir, "input", "big.txt")
		os.MkdirAll(filepath.Dir(in), 0o755)
		if err := os.WriteFile(in, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return storageSetup{input: "file:" + in, storage: "file://" + filepath.Join(dir, "data"), parts: filepath.Join(dir, "parts") + "/"}
	case "s3":
		s := seaweedtest.Start(t)
		env := s.Env()
		setup := storageSetup{input: s.URI("input/big.txt"), storage: s.URI("runs"), parts: s.URI("out") + "/", env: env}
		// The test's own process writes the input through the same code
		// the workers read it with.
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		st, err := storage.Open(t.Context(), s.URI("input"))
		if err != nil {
			t.Fatal(err)
		}
		w, err := st.Create(t.Context(), "big.txt")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		return setup
	}
	t.Fatalf("unknown storage %q", kind)
	return storageSetup{}
}

// TestDistributedStorage runs wordcount over two job servers (ours and
// gearmand) with three gearflow worker processes, its input and its
// intermediate data in storage (a shared folder; an S3-compatible
// store); a worker is SIGKILLed mid-map and another mid-reduce, and the
// output must equal the counts computed here. Then the coordinator
// process is SIGKILLed mid-map and the run resumed.
func TestDistributedStorage(t *testing.T) {
	bin := buildGearflow(t)
	input, want := bigInput(t, 40000)
	for _, kind := range []string{"file", "s3"} {
		t.Run(kind, func(t *testing.T) {
			setup := setupStorage(t, kind, input)
			dir := t.TempDir()
			pipeline := filepath.Join(dir, "wc.yaml")
			if err := os.WriteFile(pipeline, []byte(storagePipeline), 0o644); err != nil {
				t.Fatal(err)
			}
			servers := servertest.Start(t, server.Config{}).Addr + "," + gearmandtest.Start(t).Addr

			t.Run("workers killed", func(t *testing.T) {
				var workers []*process
				for range 3 {
					workers = append(workers, startProcessEnv(t, bin, setup.env, nil, "worker", "--servers", servers, "--concurrency", "2"))
				}
				out := filepath.Join(t.TempDir(), "wc.tsv")
				pr, pw := io.Pipe()
				var mapKill, reduceKill sync.Once
				killedMap, killedReduce := make(chan struct{}), make(chan struct{})
				go func() {
					sc := bufio.NewScanner(pr)
					for sc.Scan() {
						line := sc.Text()
						if !strings.Contains(line, `"event":"task_done"`) {
							continue
						}
						if strings.Contains(line, `"stage":"count"`) {
							mapKill.Do(func() { workers[0].cmd.Process.Signal(syscall.SIGKILL); close(killedMap) })
						}
						if strings.Contains(line, `"stage":"total"`) {
							reduceKill.Do(func() { workers[1].cmd.Process.Signal(syscall.SIGKILL); close(killedReduce) })
						}
					}
				}()
				coord := startProcessEnv(t, bin, setup.env, pw, "run", pipeline, "--json", "--servers", servers,
					"--storage", setup.storage, "--state-dir", t.TempDir(),
					"-p", "input="+setup.input, "-p", "out="+out, "-p", "split=16384")
				select {
				case <-coord.done:
				case <-time.After(5 * time.Minute):
					t.Fatal("the run did not end within 5 minutes")
				}
				pw.Close()
				if code := coord.cmd.ProcessState.ExitCode(); code != 0 {
					t.Fatalf("run exited %d", code)
				}
				for what, ch := range map[string]chan struct{}{"mid-map": killedMap, "mid-reduce": killedReduce} {
					select {
					case <-ch:
					default:
						t.Errorf("no worker was killed %s", what)
					}
				}
				got, _ := os.ReadFile(out)
				if string(got) != want {
					t.Errorf("output differs from the expected counts (%d bytes, want %d)", len(got), len(want))
				}
			})

			t.Run("part files", func(t *testing.T) {
				for range 2 {
					startProcessEnv(t, bin, setup.env, nil, "worker", "--servers", servers, "--concurrency", "2")
				}
				run := startProcessEnv(t, bin, setup.env, nil, "run", pipeline, "--servers", servers,
					"--storage", setup.storage, "--state-dir", t.TempDir(),
					"-p", "input="+setup.input, "-p", "out="+setup.parts, "-p", "split=65536")
				select {
				case <-run.done:
				case <-time.After(5 * time.Minute):
					t.Fatal("the run did not end within 5 minutes")
				}
				if code := run.cmd.ProcessState.ExitCode(); code != 0 {
					t.Fatalf("run exited %d", code)
				}
				checkParts(t, strings.TrimSuffix(setup.parts, "/"), want)
			})

			t.Run("coordinator killed and resumed", func(t *testing.T) {
				for range 2 {
					startProcessEnv(t, bin, setup.env, nil, "worker", "--servers", servers, "--concurrency", "1")
				}
				state := t.TempDir()
				out := filepath.Join(t.TempDir(), "wc.tsv")
				const runID = "0c3b6a52-51f5-4d1e-9a0e-3f1f7d2c8b90"
				args := []string{"run", pipeline, "--servers", servers, "--storage", setup.storage, "--run-id", runID,
					"--state-dir", state, "-p", "input=" + setup.input, "-p", "out=" + out, "-p", "split=8192"}
				coord := startProcessEnv(t, bin, setup.env, nil, args...)
				var before map[string]int
				for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
					if before = journalTasksIfAny(filepath.Join(state, runID)); len(before) >= 5 {
						break
					}
				}
				coord.kill()
				before = journalTasks(t, filepath.Join(state, runID))
				if len(before) < 5 {
					t.Fatalf("journal has %d tasks at the kill, want at least 5", len(before))
				}
				resumed := startProcessEnv(t, bin, setup.env, nil, "run", "--resume", runID, "--keep-data", "--state-dir", state,
					"--servers", servers)
				select {
				case <-resumed.done:
				case <-time.After(5 * time.Minute):
					t.Fatal("the resumed run did not end within 5 minutes")
				}
				if code := resumed.cmd.ProcessState.ExitCode(); code != 0 {
					t.Fatalf("resume exited %d", code)
				}
				got, _ := os.ReadFile(out)
				if string(got) != want {
					t.Errorf("output differs from the expected counts (%d bytes, want %d)", len(got), len(want))
				}
				after := journalTasks(t, filepath.Join(state, runID))
				if len(after) <= len(before) {
					t.Errorf("the resumed run journaled no task (%d before, %d after)", len(before), len(after))
				}
				for task, n := range after {
					if n > 1 {
						t.Errorf("task %s completed %d times", task, n)
					}
				}
				// Nothing is left in storage but committed files.
				checkStorageCommitted(t, setup.storage, runID, filepath.Join(state, runID))
			})
		})
	}
}

// checkStorageCommitted fails t when the run's storage holds a file
// that its journal does not name.
func checkStorageCommitted(t *testing.T, uri, runID, runDir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := storage.Open(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := st.List(ctx, runID+"/**")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(runDir, "journal.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if !strings.Contains(string(data), fmt.Sprintf("%q", in.Key)) {
			t.Errorf("storage holds %s, which the journal does not name", in.Key)
		}
	}
	if len(infos) == 0 {
		t.Error("storage holds none of the run's files")
	}
}

// checkParts fails t unless the output folder at uri holds _SUCCESS and
// part files (the reduce stage's 6), each sorted, that hold want's lines.
func checkParts(t *testing.T, uri, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := storage.Open(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := st.List(ctx, "**")
	if err != nil {
		t.Fatal(err)
	}
	var names, lines []string
	for _, in := range infos {
		names = append(names, in.Key)
		if !strings.HasPrefix(in.Key, "part-") {
			continue
		}
		rc, err := st.Open(ctx, in.Key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		part := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if !sort.StringsAreSorted(part) {
			t.Errorf("%s is not sorted", in.Key)
		}
		lines = append(lines, part...)
	}
	wantNames := "_SUCCESS part-00000.tsv part-00001.tsv part-00002.tsv part-00003.tsv part-00004.tsv part-00005.tsv"
	if strings.Join(names, " ") != wantNames {
		t.Errorf("output folder holds %q, want %s", names, wantNames)
	}
	sort.Strings(lines)
	if got := strings.Join(lines, "\n") + "\n"; got != want {
		t.Errorf("part files hold %d lines, want %d", len(lines), strings.Count(want, "\n"))
	}
}
