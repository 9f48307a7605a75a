package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

// wire is a connection that counts the bytes it sends and receives, for
// the server's byte counters.
type wire struct {
	*wiretest.Conn
	sent, received *int
}

func (w wire) req(typ protocol.Type, args ...string) {
	*w.sent += len(wiretest.Packet(protocol.Req, typ, args...).Append(nil))
	w.Req(typ, args...)
}

func (w wire) next(t *testing.T, want protocol.Type) protocol.Packet {
	t.Helper()
	p := w.Next(t)
	*w.received += len(p.Append(nil))
	if p.Type != want {
		t.Fatalf("got %s, want %s", wiretest.Format(p), want)
	}
	return p
}

func (w wire) sync(t *testing.T) {
	t.Helper()
	w.req(protocol.EchoReq, "sync")
	w.next(t, protocol.EchoRes)
}

// scrape returns the metric families of url, parsed as Prometheus does.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	return fams
}

// sample is one metric to check: its name, its labels as name=value
// pairs, and its value (for a histogram, its count).
type sample struct {
	name   string
	labels string
	want   float64
}

// lookup returns the value of s in fams, or an error saying why not.
func lookup(fams map[string]*dto.MetricFamily, s sample) (float64, error) {
	fam := fams[s.name]
	if fam == nil {
		return 0, fmt.Errorf("%s: no such metric", s.name)
	}
	for _, m := range fam.GetMetric() {
		var pairs []string
		for _, l := range m.GetLabel() {
			pairs = append(pairs, l.GetName()+"="+l.GetValue())
		}
		if strings.Join(pairs, ",") != s.labels {
			continue
		}
		switch fam.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), nil
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), nil
		case dto.MetricType_HISTOGRAM:
			h := m.GetHistogram()
			// The buckets must be cumulative and end at the count.
			var last uint64
			for _, b := range h.GetBucket() {
				if b.GetCumulativeCount() < last {
					return 0, fmt.Errorf("%s: buckets not cumulative", s.name)
				}
				last = b.GetCumulativeCount()
			}
			if last > h.GetSampleCount() {
				return 0, fmt.Errorf("%s: bucket count %d above the count %d", s.name, last, h.GetSampleCount())
			}
			return float64(h.GetSampleCount()), nil
		}
		return 0, fmt.Errorf("%s: type %s", s.name, fam.GetType())
	}
	return 0, fmt.Errorf("%s{%s}: no such series", s.name, s.labels)
}

// balance checks the identity of the job counters in one scrape, for
// every function: the jobs that came in (submitted, restored from the
// durable queue, or back for a scheduled job's next run) are those that
// ended, each in exactly one way, plus those still in the server.
func balance(fams map[string]*dto.MetricFamily) error {
	byFn := func(names ...string) map[string]float64 {
		sum := map[string]float64{}
		for _, name := range names {
			for _, m := range fams[name].GetMetric() {
				fn := ""
				for _, l := range m.GetLabel() {
					if l.GetName() == "function" {
						fn = l.GetValue()
					}
				}
				sum[fn] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		return sum
	}
	p := "gearflow_server_"
	in := byFn(p+"jobs_submitted_total", p+"jobs_restored_total", p+"jobs_rescheduled_total")
	out := byFn(p+"jobs_completed_total", p+"jobs_failed_total", p+"jobs_excepted_total", p+"jobs_dropped_total",
		p+"jobs_cancelled_total", p+"jobs_abandoned_total",
		p+"queued_jobs", p+"delayed_jobs", p+"running_jobs", p+"pending_jobs")
	if len(in) == 0 {
		return fmt.Errorf("no jobs_submitted_total series")
	}
	var bad []string
	for fn, n := range in {
		if out[fn] != n {
			bad = append(bad, fmt.Sprintf("function %s: %v jobs came in, %v ended or are in the server", fn, n, out[fn]))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("job counters do not add up: %s", strings.Join(bad, "; "))
	}
	return nil
}

// expectMetrics scrapes url until every sample has its value, for up to
// 5 seconds (what a connection's departure does ends shortly after the
// peer sees its socket close), and fails t with the differences if not.
// Every scrape must balance (see balance), however early.
func expectMetrics(t *testing.T, url string, samples ...sample) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		fams := scrape(t, url)
		if err := balance(fams); err != nil {
			t.Fatal(err)
		}
		var bad []string
		for _, s := range samples {
			got, err := lookup(fams, s)
			switch {
			case err != nil:
				bad = append(bad, err.Error())
			case got != s.want:
				bad = append(bad, fmt.Sprintf("%s{%s} = %v, want %v", s.name, s.labels, got, s.want))
			}
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics:\n  %s", strings.Join(bad, "\n  "))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func queued(fn string, high, normal, low float64) []sample {
	return []sample{
		{"gearflow_server_queued_jobs", "function=" + fn + ",priority=high", high},
		{"gearflow_server_queued_jobs", "function=" + fn + ",priority=normal", normal},
		{"gearflow_server_queued_jobs", "function=" + fn + ",priority=low", low},
	}
}

func jobs(fn string, submitted, completed, failed, excepted, requeued, dropped, running float64) []sample {
	l := "function=" + fn
	return []sample{
		{"gearflow_server_jobs_submitted_total", l, submitted},
		{"gearflow_server_jobs_completed_total", l, completed},
		{"gearflow_server_jobs_failed_total", l, failed},
		{"gearflow_server_jobs_excepted_total", l, excepted},
		{"gearflow_server_jobs_requeued_total", l, requeued},
		{"gearflow_server_jobs_dropped_total", l, dropped},
		{"gearflow_server_running_jobs", l, running},
	}
}

// ends are the counters of the other ways a job ends.
func ends(fn string, cancelled, abandoned float64) []sample {
	l := "function=" + fn
	return []sample{
		{"gearflow_server_jobs_cancelled_total", l, cancelled},
		{"gearflow_server_jobs_abandoned_total", l, abandoned},
	}
}

// TestMetricsFollowJobs runs a scripted sequence of jobs and checks,
// after each step, the exact figures /metrics reports: queue depths per
// function and priority, workers, running jobs, the job counters, the
// wait and run time histograms' counts and the bytes either way.
func TestMetricsFollowJobs(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t, server.Config{JobRetries: 2})
	srv.AllowLeftoverJobs() // f2's job
	web := httptest.NewServer(srv.Srv.HTTPHandler())
	t.Cleanup(web.Close)
	url := web.URL + "/metrics"
	var sent, received int
	dial := func() wire { return wire{wiretest.Dial(t, srv.Addr), &sent, &received} }
	check := func(extra ...[]sample) {
		t.Helper()
		var all []sample
		for _, e := range extra {
			all = append(all, e...)
		}
		all = append(all,
			sample{"gearflow_server_received_bytes_total", "", float64(sent)},
			sample{"gearflow_server_sent_bytes_total", "", float64(received)})
		expectMetrics(t, url, all...)
	}

	// Three background jobs for f1, one per priority, one for f2.
	client := dial()
	for _, typ := range []protocol.Type{protocol.SubmitJobLowBg, protocol.SubmitJobBg, protocol.SubmitJobHighBg} {
		client.req(typ, "f1", "", "x")
		client.next(t, protocol.JobCreated)
	}
	client.req(protocol.SubmitJobBg, "f2", "", "y")
	client.next(t, protocol.JobCreated)
	check(queued("f1", 1, 1, 1), queued("f2", 0, 1, 0), jobs("f1", 3, 0, 0, 0, 0, 0, 0), jobs("f2", 1, 0, 0, 0, 0, 0, 0),
		[]sample{{"gearflow_server_connections", "", 1}, {"gearflow_server_connections_accepted_total", "", 1},
			{"gearflow_server_worker_connections", "", 0}, {"gearflow_server_workers", "function=f1", 0},
			{"gearflow_server_job_wait_seconds", "", 0}, {"gearflow_server_job_run_seconds", "", 0}})

	// A worker takes the HIGH job and completes it.
	w1 := dial()
	w1.req(protocol.CanDo, "f1")
	w1.req(protocol.GrabJob)
	high := string(w1.next(t, protocol.JobAssign).Args[0])
	check(queued("f1", 0, 1, 1), jobs("f1", 3, 0, 0, 0, 0, 0, 1),
		[]sample{{"gearflow_server_worker_connections", "", 1}, {"gearflow_server_workers", "function=f1", 1},
			{"gearflow_server_workers", "function=f2", 0}, {"gearflow_server_job_wait_seconds", "", 1}})
	w1.req(protocol.WorkComplete, high, "done")
	w1.sync(t)
	check(jobs("f1", 3, 1, 0, 0, 0, 0, 0), []sample{{"gearflow_server_job_run_seconds", "", 1}})

	// It fails the NORMAL one.
	w1.req(protocol.GrabJob)
	normal := string(w1.next(t, protocol.JobAssign).Args[0])
	w1.req(protocol.WorkFail, normal)
	w1.sync(t)
	check(queued("f1", 0, 0, 1), jobs("f1", 3, 1, 1, 0, 0, 0, 0),
		[]sample{{"gearflow_server_job_wait_seconds", "", 2}, {"gearflow_server_job_run_seconds", "", 2}})

	// It takes the LOW one and disconnects: the job is queued again.
	w1.req(protocol.GrabJob)
	w1.next(t, protocol.JobAssign)
	w1.Close()
	check(queued("f1", 0, 0, 1), jobs("f1", 3, 1, 1, 0, 1, 0, 0),
		[]sample{{"gearflow_server_connections", "", 1}, {"gearflow_server_worker_connections", "", 0},
			{"gearflow_server_workers", "function=f1", 0}, {"gearflow_server_job_wait_seconds", "", 3}})

	// A second worker loses it too: the retry limit (2) drops it rather
	// than requeueing it.
	w2 := dial()
	w2.req(protocol.CanDo, "f1")
	w2.req(protocol.GrabJob)
	w2.next(t, protocol.JobAssign)
	w2.Close()
	check(queued("f1", 0, 0, 0), jobs("f1", 3, 1, 1, 0, 1, 1, 0),
		[]sample{{"gearflow_server_job_wait_seconds", "", 4}, {"gearflow_server_job_run_seconds", "", 2}})

	// A foreground job ends in an exception.
	w3 := dial()
	w3.req(protocol.CanDo, "f1")
	w3.sync(t)
	client.req(protocol.OptionReq, "exceptions")
	client.next(t, protocol.OptionRes)
	client.req(protocol.SubmitJob, "f1", "", "z")
	client.next(t, protocol.JobCreated)
	w3.req(protocol.GrabJob)
	h := string(w3.next(t, protocol.JobAssign).Args[0])
	w3.req(protocol.WorkException, h, "boom")
	client.next(t, protocol.WorkException)
	check(queued("f1", 0, 0, 0), queued("f2", 0, 1, 0), jobs("f1", 4, 1, 1, 1, 1, 1, 0), jobs("f2", 1, 0, 0, 0, 0, 0, 0),
		[]sample{{"gearflow_server_connections", "", 2}, {"gearflow_server_connections_accepted_total", "", 4},
			{"gearflow_server_worker_connections", "", 1},
			{"gearflow_server_job_wait_seconds", "", 5}, {"gearflow_server_job_run_seconds", "", 3},
			{"gearflow_server_info", "version=" + server.Version, 1}})

	// The same state as JSON.
	var st server.Status
	getJSON(t, web.URL+"/api/status", &st)
	i := slices.IndexFunc(st.Functions, func(f server.FunctionStatus) bool { return f.Name == "f2" })
	if i < 0 || st.Functions[i].Queued != (server.Priorities{Normal: 1}) || st.Functions[i].Submitted != 1 {
		t.Errorf("/api/status functions = %+v, want f2 with one NORMAL job queued", st.Functions)
	}
	if len(st.Workers) != 1 || st.WorkerCount != 1 || !slices.Equal(st.Workers[0].Functions, []string{"f1"}) || st.Jobs != 1 || st.Connections != 2 {
		t.Errorf("/api/status = %+v, want one worker of f1, one job, two connections", st)
	}
	var capped server.Status
	getJSON(t, web.URL+"/api/status?max_workers=0", &capped)
	if len(capped.Workers) != 0 || capped.WorkerCount != 1 {
		t.Errorf("/api/status?max_workers=0 lists %d of %d workers, want 0 of 1", len(capped.Workers), capped.WorkerCount)
	}
	resp, err := http.Get(web.URL + "/api/status?max_workers=-1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("/api/status?max_workers=-1: %s, want 400", resp.Status)
	}
}

// TestMetricsEveryJobEndsOnce runs jobs that end in the ways besides a
// worker's result: cancelled by admin "cancel job" while queued and
// while running (its worker then completes it, or disconnects), and
// foreground jobs every client of which leaves, before a worker takes
// the job or while it runs (its worker then disconnects, or completes
// it). Each job must end in exactly one counter, no cancelled or
// abandoned job may count as completed, requeued or in the run times,
// and every scrape must balance; with a durable queue too, whose jobs
// come back as restored after a restart.
func TestMetricsEveryJobEndsOnce(t *testing.T) {
	t.Parallel()
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprint("durable=", durable), func(t *testing.T) {
			t.Parallel()
			cfg := server.Config{}
			if durable {
				cfg.DataDir = t.TempDir()
			}
			srv := servertest.Start(t, cfg)
			srv.AllowLeftoverJobs() // the last one, queued
			web := httptest.NewServer(srv.Srv.HTTPHandler())
			t.Cleanup(web.Close)
			url := web.URL + "/metrics"
			runTimes := func(n float64) sample { return sample{"gearflow_server_job_run_seconds", "", n} }
			check := func(submitted, completed, requeued, running, cancelled, abandoned, queuedN float64, runs float64) {
				t.Helper()
				expectMetrics(t, url, append(append(append(jobs("g", submitted, completed, 0, 0, requeued, 0, running),
					ends("g", cancelled, abandoned)...), queued("g", 0, queuedN, 0)...), runTimes(runs))...)
			}
			client := wiretest.Dial(t, srv.Addr)
			admin := wiretest.Dial(t, srv.Addr)
			cancel := func(h string) {
				t.Helper()
				if got := admin.Admin(t, "cancel job "+h); got != "OK\r\n" {
					t.Fatalf("cancel job %s: %q", h, got)
				}
			}
			worker := func() *wiretest.Conn {
				w := wiretest.Dial(t, srv.Addr)
				w.CanDo("g")
				return w
			}

			// A queued job, cancelled: it ends at once.
			h := client.Submit(t, protocol.SubmitJobBg, "g", "", "a")
			check(1, 0, 0, 0, 0, 0, 1, 0)
			cancel(h)
			check(1, 0, 0, 0, 1, 0, 0, 0)

			// A running job, cancelled: it runs on until its worker
			// completes it, and then ends as cancelled, not completed.
			w := worker()
			h = client.Submit(t, protocol.SubmitJobBg, "g", "", "b")
			w.Grab(t, h, "g", "b")
			cancel(h)
			check(2, 0, 0, 1, 1, 0, 0, 0)
			w.Req(protocol.WorkComplete, h, "result")
			w.Sync(t)
			check(2, 0, 0, 0, 2, 0, 0, 0)

			// A running job, cancelled, whose worker goes away: it is
			// not requeued.
			h = client.Submit(t, protocol.SubmitJobBg, "g", "", "c")
			w.Grab(t, h, "g", "c")
			cancel(h)
			w.Close()
			check(3, 0, 0, 0, 3, 0, 0, 0)

			// A foreground job whose client leaves before any worker
			// takes it is abandoned.
			fg := wiretest.Dial(t, srv.Addr)
			fg.Submit(t, protocol.SubmitJob, "g", "", "d")
			check(4, 0, 0, 0, 3, 0, 1, 0)
			fg.Close()
			check(4, 0, 0, 0, 3, 1, 0, 0)

			// One whose client leaves while it runs, and whose worker then
			// goes away: abandoned, not requeued.
			w = worker()
			fg = wiretest.Dial(t, srv.Addr)
			h = fg.Submit(t, protocol.SubmitJob, "g", "", "e")
			w.Grab(t, h, "g", "e")
			fg.Close()
			check(5, 0, 0, 1, 3, 1, 0, 0)
			w.Close()
			check(5, 0, 0, 0, 3, 2, 0, 0)

			// One whose client leaves while it runs, and whose worker
			// completes it: completed (nobody hears of it, as in gearmand).
			w = worker()
			fg = wiretest.Dial(t, srv.Addr)
			h = fg.Submit(t, protocol.SubmitJob, "g", "", "f")
			w.Grab(t, h, "g", "f")
			fg.Close()
			check(6, 0, 0, 1, 3, 2, 0, 0)
			w.Req(protocol.WorkComplete, h, "result")
			w.Sync(t)
			check(6, 1, 0, 0, 3, 2, 0, 1)

			// A background job its worker loses is requeued, and one is
			// left queued.
			h = client.Submit(t, protocol.SubmitJobBg, "g", "", "g")
			w.Grab(t, h, "g", "g")
			w.Close()
			check(7, 1, 1, 0, 3, 2, 1, 1)
			if !durable {
				return
			}

			// Restarted, the durable server has the queued job back:
			// restored, not submitted.
			client.Close()
			admin.Close()
			srv.Restart()
			web2 := httptest.NewServer(srv.Srv.HTTPHandler())
			t.Cleanup(web2.Close)
			expectMetrics(t, web2.URL+"/metrics", append(queued("g", 0, 1, 0),
				sample{"gearflow_server_jobs_submitted_total", "function=g", 0},
				sample{"gearflow_server_jobs_restored_total", "function=g", 1},
				sample{"gearflow_server_pending_jobs", "function=g", 0})...)
		})
	}
}

// TestMetricsScheduledJobs: each run of a scheduled job ends in one
// counter and brings the job back as rescheduled; cancelled while it
// waits, or while it runs, it ends as cancelled and does not come back.
func TestMetricsScheduledJobs(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t, server.Config{})
	web := httptest.NewServer(srv.Srv.HTTPHandler())
	t.Cleanup(web.Close)
	url := web.URL + "/metrics"
	check := func(submitted, rescheduled, completed, cancelled, delayed, running float64) {
		t.Helper()
		l := "function=s"
		expectMetrics(t, url,
			sample{"gearflow_server_jobs_submitted_total", l, submitted},
			sample{"gearflow_server_jobs_rescheduled_total", l, rescheduled},
			sample{"gearflow_server_jobs_completed_total", l, completed},
			sample{"gearflow_server_jobs_cancelled_total", l, cancelled},
			sample{"gearflow_server_delayed_jobs", l, delayed},
			sample{"gearflow_server_running_jobs", l, running})
	}
	client := wiretest.Dial(t, srv.Addr)
	admin := wiretest.Dial(t, srv.Addr)
	w := wiretest.Dial(t, srv.Addr)
	w.CanDo("s")
	every := func(data string) string {
		t.Helper()
		client.Req(protocol.SubmitJobSched, "s", "", "*", "*", "*", "*", "*", data)
		return client.Created(t)
	}
	cancel := func(h string) {
		t.Helper()
		if got := admin.Admin(t, "cancel job "+h); got != "OK\r\n" {
			t.Fatalf("cancel job %s: %q", h, got)
		}
	}

	h := every("tick")
	check(1, 0, 0, 0, 1, 0)
	for run := range 2 {
		srv.Srv.RunDelayedNow()
		w.Grab(t, h, "s", "tick")
		check(1, float64(run), float64(run), 0, 0, 1)
		w.Req(protocol.WorkComplete, h, "")
		w.Sync(t)
		check(1, float64(run+1), float64(run+1), 0, 1, 0)
	}
	cancel(h) // waiting for its next time
	check(1, 2, 2, 1, 0, 0)

	h = every("tock")
	srv.Srv.RunDelayedNow()
	w.Grab(t, h, "s", "tock")
	cancel(h) // running
	check(2, 2, 2, 1, 0, 1)
	w.Req(protocol.WorkComplete, h, "")
	w.Sync(t)
	check(2, 2, 2, 2, 0, 0)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/json" {
		t.Fatalf("GET %s: %s, %s", url, resp.Status, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestStatusJSONIsSnakeCase checks the names /api/status gives its
// fields, which scripts depend on.
func TestStatusJSONIsSnakeCase(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t, server.Config{MaxQueuedJobs: 7})
	web := httptest.NewServer(srv.Srv.HTTPHandler())
	t.Cleanup(web.Close)
	c := wiretest.Dial(t, srv.Addr)
	c.Req(protocol.SetClientID, "w-1")
	c.CanDo("resize")
	c.Sync(t)
	var st map[string]any
	getJSON(t, web.URL+"/api/status", &st)
	b, _ := json.Marshal(st)
	for _, want := range []string{`"version":"` + server.Version + `"`, `"max_queued_jobs":7`, `"client_id":"w-1"`,
		`"functions":["resize"]`, `"queued":{"high":0,"low":0,"normal":0}`, `"bytes_in":`, `"job_retries":0`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/api/status lacks %s:\n%s", want, b)
		}
	}
}

// TestHealthz: 200 while serving, 503 once the server shuts down.
func TestHealthz(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t, server.Config{})
	h := srv.Srv.HTTPHandler()
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	if code, body := get(); code != 200 || body != "ok\n" {
		t.Errorf("healthz while serving = %d %q, want 200 ok", code, body)
	}
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(); code != http.StatusServiceUnavailable {
		t.Errorf("healthz after shutdown = %d, want 503", code)
	}
}

// TestMetricsStoreSync: a durable server reports how long its syncs
// take; one without a data directory has no such metric.
func TestMetricsStoreSync(t *testing.T) {
	t.Parallel()
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprint("durable=", durable), func(t *testing.T) {
			t.Parallel()
			cfg := server.Config{}
			if durable {
				cfg.DataDir = t.TempDir()
			}
			srv := servertest.Start(t, cfg)
			srv.AllowLeftoverJobs()
			web := httptest.NewServer(srv.Srv.HTTPHandler())
			t.Cleanup(web.Close)
			c := wiretest.Dial(t, srv.Addr)
			c.Submit(t, protocol.SubmitJobBg, "f", "", "x")
			fams := scrape(t, web.URL+"/metrics")
			n, err := lookup(fams, sample{name: "gearflow_server_store_sync_seconds"})
			switch {
			case !durable && err == nil:
				t.Errorf("store_sync_seconds reported without a store")
			case durable && (err != nil || n < 1):
				t.Errorf("store_sync_seconds count = %v, %v; want at least the one sync before JOB_CREATED", n, err)
			}
		})
	}
}

// TestMetricsNonUTF8FunctionName: a function name that is not UTF-8
// (any peer may register one) is scraped with Go's escapes; it made
// the registry panic in a goroutine of its own and took the server down.
func TestMetricsNonUTF8FunctionName(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t, server.Config{})
	w := wiretest.Dial(t, srv.Addr)
	w.CanDo("f\xff", "ok")
	w.Sync(t)
	rec := httptest.NewRecorder()
	srv.Srv.HTTPHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, `gearflow_server_workers{function="f\\xff"} 1`) ||
		!strings.Contains(body, `gearflow_server_workers{function="ok"} 1`) {
		t.Errorf("status %d, body:\n%s", rec.Code, body)
	}
}
