package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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
	"github.com/gearflow/gearflow/flow/spec"
	"github.com/gearflow/gearflow/internal/browsertest"
	"github.com/gearflow/gearflow/internal/cliflag"
	"github.com/gearflow/gearflow/server"
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
	if !strings.Contains(dom, `id="serverlink">`) {
		t.Errorf("page does not show the link to the embedded server's page")
	}
	// The embedded server's page, under /server/, fetches its status
	// there and shows the map function's two held jobs running.
	sdom := browsertest.DOM(t, base+"/server/")
	if !regexp.MustCompile(`<tr data-function="[^"]+">`).MatchString(sdom) {
		t.Errorf("the embedded server's page at /server/ lists no function:\n%s", sdom)
	}

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

// TestRunPageServesEmbeddedServer: `run --http` of a run with an embedded
// job server serves that server's endpoint under /server/ (its metrics,
// status and page) and its series in the run's own /metrics, while the
// run is in progress: with two map tasks held, the server has them
// running.
func TestRunPageServesEmbeddedServer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	started, release := make(chan struct{}, 2), make(chan struct{})
	file, reg := holdPipeline(t, dir, started, release)
	addr := freeAddr(t)
	exited := make(chan int, 1)
	go func() {
		exited <- RunCommand(t.Context(), reg, []string{file, "--state-dir", filepath.Join(dir, "runs"), "--workers", "4", "--http", addr, "--run-id", "r-srv"}, io.Discard, io.Discard)
	}()
	released := false
	defer func() {
		if !released {
			close(release)
			<-exited
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

	// sums returns, per metric name, the sum of its series' values.
	sums := func(path string) map[string]float64 {
		t.Helper()
		code, body := get(t, base+path)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
		if err != nil {
			t.Fatalf("parsing %s: %v", path, err)
		}
		out := map[string]float64{}
		for name, fam := range fams {
			for _, m := range fam.GetMetric() {
				out[name] += m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
		return out
	}
	for _, path := range []string{"/server/metrics", "/metrics"} {
		var got map[string]float64
		deadline := time.Now().Add(10 * time.Second)
		for {
			got = sums(path)
			if got["gearflow_server_running_jobs"] == 2 && got["gearflow_server_jobs_submitted_total"] >= 4 && got["gearflow_server_worker_connections"] >= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: running_jobs %v, jobs_submitted_total %v, worker_connections %v; want the 2 held tasks running of at least 4 submitted, by at least one worker",
					path, got["gearflow_server_running_jobs"], got["gearflow_server_jobs_submitted_total"], got["gearflow_server_worker_connections"])
			}
			time.Sleep(20 * time.Millisecond)
		}
		if path == "/metrics" && got["gearflow_run_info"] != 1 {
			t.Errorf("/metrics lacks the run's own series beside the server's")
		}
	}

	var st server.Status
	code, body := get(t, base+"/server/api/status")
	if code != 200 || json.Unmarshal(body, &st) != nil || st.Running != 2 || st.Version != server.Version {
		t.Errorf("/server/api/status: %d, running %d, version %q; want 200, 2, %q", code, st.Running, st.Version, server.Version)
	}
	if code, body := get(t, base+"/server/"); code != 200 || !strings.Contains(string(body), "gearflow server") {
		t.Errorf("/server/: %d, want the server page", code)
	}
	var rs runStatus
	if code, body := get(t, base+"/api/run"); code != 200 || json.Unmarshal(body, &rs) != nil || rs.ServerPage != "server/" {
		t.Errorf("/api/run: %d, server_page %q; want server/", code, rs.ServerPage)
	}

	close(release)
	released = true
	if code := <-exited; code != 0 {
		t.Fatalf("run exited %d", code)
	}
}

// TestRunPageWithoutEmbeddedServer: a run page with no embedded server
// answers /server/ with 404 and exports no server series.
func TestRunPageWithoutEmbeddedServer(t *testing.T) {
	t.Parallel()
	m := newRunMonitor(&spec.Pipeline{Name: "p"}, flow.Options{Servers: []string{"127.0.0.1:4730"}})
	srv := httptest.NewServer(m.handler())
	t.Cleanup(srv.Close)
	if code, _ := get(t, srv.URL+"/server/metrics"); code != http.StatusNotFound {
		t.Errorf("/server/metrics without an embedded server: %d, want 404", code)
	}
	if code, body := get(t, srv.URL+"/metrics"); code != 200 || strings.Contains(string(body), "gearflow_server_") {
		t.Errorf("/metrics without an embedded server: %d, has server series: %v", code, strings.Contains(string(body), "gearflow_server_"))
	}
}
