package flow_test

import (
	"bufio"
	"context"
	"fmt"
	"iter"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/runtime"
	"github.com/gearflow/gearflow/server"
)

// A test binary started with workerEnv set to a job server's address is
// a worker process serving hotRegistry's functions, not a test run.
const workerEnv = "GEARFLOW_FLOW_TEST_WORKER"

func TestMain(m *testing.M) {
	if addr := os.Getenv(workerEnv); addr != "" {
		os.Exit(serveHotWorker(addr))
	}
	os.Exit(m.Run())
}

// hotRegistry: hot.map emits every line under the key "hot" (the part
// after the first space as the value); hot.agg counts a key's values and
// their bytes, reading them one at a time.
func hotRegistry() *flow.Registry {
	reg := flow.NewRegistry()
	reg.Map("hot.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		k, v, _ := strings.Cut(rec.Value.(string), " ")
		return emit(k, v)
	})
	reg.Reduce("hot.agg", func(ctx context.Context, key string, values iter.Seq[any], emit flow.Emit) error {
		var n, bytes int64
		for v := range values {
			n++
			bytes += int64(len(v.(string)))
		}
		return emit(key, fmt.Sprintf("%d values, %d bytes", n, bytes))
	})
	return reg
}

func serveHotWorker(addr string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: []string{addr}, Concurrency: 1,
		ClientID: flow.WorkerClientID("hot-worker", 1)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	hotRegistry().Register(w)
	if err := w.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// peakRSS returns the peak resident set of process pid, from
// /proc/PID/status's VmHWM.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// TestHotKeyReducesInBoundedMemory: one key with 300 MB of values goes
// through a worker process whose peak RSS stays far below the key's
// size: map tasks spill sorted runs to storage, and the reduce merges
// them and hands the values to the function one at a time. (With the
// data through the job server, the whole key had to fit in one packet
// and in the coordinator's memory.)
func TestHotKeyReducesInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reduces 300 MB")
	}
	t.Parallel()
	const (
		valueSize = 1000
		values    = 300_000 // 300 MB of values under one key
	)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	pad := strings.Repeat("v", valueSize-8)
	for i := range values {
		fmt.Fprintf(bw, "hot %08d%s\n", i, pad)
		if i%1000 == 0 {
			fmt.Fprintf(bw, "cold %d\n", i)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := parsePipeline(t, dir, `
version: 1
name: hot
stages:
  - name: tag
    kind: map
    function: hot.map
    input: { from: file:in.txt, split: { bytes: 16MiB } }
    partition: { by: key, count: 2 }
  - name: agg
    kind: reduce
    needs: [tag]
    function: hot.agg
output: { to: out.tsv }
`, nil)

	srv := servertest.Start(t, server.Config{})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerEnv+"="+srv.Addr)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	})

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	_, err = flow.Run(ctx, p, hotRegistry(), flow.Options{Servers: []string{srv.Addr}, Workers: -1,
		Storage: "file://" + filepath.Join(dir, "store"), StateDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	rss := peakRSS(t, cmd.Process.Pid)
	out, err := os.ReadFile(filepath.Join(dir, "out.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("cold\t%d values, %d bytes\nhot\t%d values, %d bytes\n",
		values/1000, coldBytes(values), values, int64(values)*valueSize)
	if string(out) != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	t.Logf("worker peak RSS %d MiB for a key of %d MB", rss>>20, int64(values)*valueSize/1e6)
	if limit := int64(hotKeyRSSLimit) << 20; rss > limit {
		t.Errorf("worker peak RSS %d MiB, want at most %d MiB", rss>>20, hotKeyRSSLimit)
	}
}

// coldBytes is the bytes of the cold key's values: the decimal numbers
// 0, 1000, 2000, … below values.
func coldBytes(values int) int {
	n := 0
	for i := 0; i < values; i += 1000 {
		n += len(strconv.Itoa(i))
	}
	return n
}
