package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/internal/browsertest"
	"github.com/gearflow/gearflow/internal/cliflag"
)

// holdPipeline writes a two-stage word count whose map tasks (one per
// input line) block on the lines "hold" until release is closed, and
// whose task of the line "b c" fails its first attempt; it returns the
// pipeline file and the registry.
func holdPipeline(t *testing.T, dir string, started chan<- struct{}, release <-chan struct{}) (string, *flow.Registry) {
	t.Helper()
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("a b\nb c\nhold\nhold\n"), 0o644)
	file := filepath.Join(dir, "p.yaml")
	os.WriteFile(file, []byte(`version: 1
name: wordcount
stages:
  - name: count
    kind: map
    function: t.words
    input: { from: "file:in.txt", split: { lines: 1 } }
    partition: { by: key, count: 2 }
    retry: { initial: 10ms }
  - name: total
    kind: reduce
    needs: [count]
    function: t.sum
output:
  to: out.tsv
`), 0o644)
	reg := flow.NewRegistry()
	var failed atomic.Bool
	reg.Map("t.words", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		line := rec.Value.(string)
		if line == "b c" && !failed.Swap(true) {
			return fmt.Errorf("disk busy: try again")
		}
		if line == "hold" {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		for _, w := range strings.Fields(line) {
			if err := emit(w, int64(1)); err != nil {
				return err
			}
		}
		return nil
	})
	reg.Sum("t.sum")
	return file, reg
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

var (
	stageRow     = regexp.MustCompile(`(?s)<tr data-stage="([^"]+)" class="(\w+)">(.*?)</tr>`)
	progressCell = regexp.MustCompile(`data-progress="(\d+)"`)
	tasksCell    = regexp.MustCompile(`data-tasks="">([^<]*)<`)
)

// TestRunPageInBrowser runs a pipeline with `run --http ADDR`, holds two
// of its four map tasks, and loads the run page in headless chromium:
// the rendered page must show the map stage running at 2 of 4 tasks
// (50%) and the reduce stage waiting. /api/run and /metrics must say the
// same. It also takes docs/img/run-page.png (GEARFLOW_SCREENSHOTS=docs/img).
func TestRunPageInBrowser(t *testing.T) {
	t.Parallel()
	browsertest.Chromium(t)
	dir := t.TempDir()
	started, release := make(chan struct{}, 2), make(chan struct{})
	file, reg := holdPipeline(t, dir, started, release)
	addr := freeAddr(t)
	exited := make(chan int, 1)
	go func() {
		exited <- RunCommand(t.Context(), reg, []string{file, "--state-dir", filepath.Join(dir, "runs"), "--workers", "4", "--http", addr, "--run-id", "r-page"}, io.Discard, io.Discard)
	}()
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	for range 2 {
		select {
		case <-started:
		case code := <-exited:
			t.Fatalf("run exited %d before its tasks started", code)
		case <-time.After(30 * time.Second):
			t.Fatal("the held tasks did not start in 30 s")
		}
	}
	base := "http://" + addr
	// The two other tasks complete; wait until the run says so.
	var st runStatus
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get(t, base+"/api/run")
		if code == 200 && json.Unmarshal(body, &st) == nil && len(st.Stages) == 2 && st.Stages[0].Progress == 0.5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/api/run never showed count at 2 of 4 tasks: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Run != "r-page" || st.State != "running" || st.Stages[0].State != "running" || st.Stages[1].State != "waiting" {
		t.Errorf("/api/run = run %q %s, stages %s %s; want r-page running, running and waiting", st.Run, st.State, st.Stages[0].State, st.Stages[1].State)
	}

	dom := browsertest.DOM(t, base+"/")
	rows := map[string][]string{}
	for _, m := range stageRow.FindAllStringSubmatch(dom, -1) {
		var pc, tasks string
		if p := progressCell.FindStringSubmatch(m[3]); p != nil {
			pc = p[1]
		}
		if p := tasksCell.FindStringSubmatch(m[3]); p != nil {
			tasks = p[1]
		}
		rows[m[1]] = []string{m[2], pc, tasks}
	}
	if got := fmt.Sprint(rows["count"]); got != "[running 50 2 / 4]" {
		t.Errorf("page shows stage count as %s, want [running 50 2 / 4]", got)
	}
	if got := fmt.Sprint(rows["total"]); got != "[waiting 0 –]" {
		t.Errorf("page shows stage total as %s, want [waiting 0 –]", got)
	}
	for _, want := range []string{"r-page", "disk busy: try again"} {
		if !strings.Contains(dom, want) {
			t.Errorf("page does not show %q (the run id, the retried attempt's error)", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
	browsertest.Screenshot(t, base+"/", browsertest.ScreenshotPath(t, "run-page.png"))

	// The metrics, parsed.
	code, body := get(t, base+"/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if code != 200 || err != nil {
		t.Fatalf("/metrics: %d, %v", code, err)
	}
	for name, want := range map[string]float64{"gearflow_run_stage_tasks": 4, "gearflow_run_stage_tasks_done": 2} {
		got := -1.0
		for _, m := range fams[name].GetMetric() {
			if l := m.GetLabel(); len(l) == 1 && l[0].GetValue() == "count" {
				got = m.GetGauge().GetValue()
			}
		}
		if got != want {
			t.Errorf("%s{stage=count} = %v, want %v", name, got, want)
		}
	}

	close(release)
	released = true
	if code := <-exited; code != 0 {
		t.Fatalf("run exited %d", code)
	}
	out, _ := os.ReadFile(filepath.Join(dir, "out.tsv"))
	if !strings.Contains(string(out), "b\t2") {
		t.Errorf("output %q lacks b\\t2", out)
	}
}

// TestRunMonitorListsRuns checks /api/runs against the state directory
// and that a generic field of an event is exported as a metric.
func TestRunMonitorListsRuns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	started, release := make(chan struct{}, 2), make(chan struct{})
	close(release)
	file, reg := holdPipeline(t, dir, started, release)
	state := filepath.Join(dir, "runs")
	var stderr strings.Builder
	if code := RunCommand(t.Context(), reg, []string{file, "--state-dir", state, "--run-id", "r-done"}, io.Discard, &stderr); code != 0 {
		t.Fatalf("run: %d %s", code, stderr.String())
	}
	p, _ := loadPipeline(file, cliflag.Params{}, io.Discard)
	m := newRunMonitor(p, flow.Options{StateDir: state})
	runs, err := m.runs()
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs() = %v, %v; want the one run", runs, err)
	}
	if r := runs[0]; r.Run != "r-done" || r.State != "finished" || r.Done != r.Tasks || r.Tasks < 5 {
		t.Errorf("runs()[0] = %+v, want r-done finished with every task done", r)
	}
	m.event(flow.Event{Kind: flow.EventProgress, Stage: "count", TasksTotal: 4, RecordsRunning: 7})
	rec := httpGet(t, m.handler(), "/metrics")
	if !strings.Contains(rec, `gearflow_run_stage_value{field="records_running",stage="count"} 7`) {
		t.Errorf("/metrics lacks records_running as a generic value:\n%s", rec)
	}
}

func httpGet(t *testing.T, h http.Handler, path string) string {
	t.Helper()
	srv := &http.Server{Handler: h}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	code, body := get(t, "http://"+l.Addr().String()+path)
	if code != 200 {
		t.Fatalf("GET %s: %d", path, code)
	}
	return string(body)
}
