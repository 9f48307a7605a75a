package cli

import (
	"context"
	_ "embed" // the run page
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
	"github.com/gearflow/gearflow/server"
)

// The run page: `run --http ADDR` serves the run in progress, fed by its
// events, as a page, as JSON (/api/run), as Prometheus metrics
// (/metrics), and the state directory's runs (/api/runs). A run with an
// embedded job server also serves that server's endpoint under /server/
// and its gearflow_server_* series in /metrics.

//go:embed web/run.html
var runPage []byte

// maxListed bounds the failures and retries /api/run lists (the latest).
const maxListed = 50

// runMonitor keeps what the run page shows. Its event method is the
// run's OnEvent (with the progress printer's).
type runMonitor struct {
	pipeline string
	file     string
	stateDir string
	servers  []string
	workers  int

	embedded atomic.Pointer[embeddedServer] // set once the run's embedded server serves

	mu       sync.Mutex // guards the fields below
	run      string
	dir      string
	state    string // starting, running, finished, failed
	started  time.Time
	ended    time.Time
	errText  string
	output   string
	stages   []*stageState // in the pipeline's order
	failures []map[string]any
	retries  []map[string]any
	events   map[string]uint64 // events seen, by kind
}

// stageState is one stage as the page shows it.
type stageState struct {
	Name     string         `json:"name"`
	Kind     string         `json:"kind"`
	Function string         `json:"function"`
	State    string         `json:"state"` // waiting, running, done
	Started  *time.Time     `json:"started,omitempty"`
	Finished *time.Time     `json:"finished,omitempty"`
	Elapsed  float64        `json:"elapsed_s"`
	Progress float64        `json:"progress"` // tasks done / tasks, 0 to 1
	Last     map[string]any `json:"last,omitempty"`
}

func newRunMonitor(p *spec.Pipeline, opts flow.Options) *runMonitor {
	m := &runMonitor{pipeline: p.Name, file: opts.PipelineFile, stateDir: opts.StateDir, servers: opts.Servers,
		workers: max(opts.Workers, 0), state: "starting", started: time.Now(), events: map[string]uint64{}}
	if opts.Workers == 0 && len(opts.Servers) == 0 {
		m.workers = defaultConcurrency() // what flow.Run starts
	}
	for _, st := range p.Stages {
		m.stages = append(m.stages, &stageState{Name: st.Name, Kind: st.Kind.String(), Function: st.Function, State: "waiting"})
	}
	return m
}

// embeddedServer is what the run endpoint serves of an embedded job
// server.
type embeddedServer struct {
	handler   http.Handler         // the server's own endpoint, under /server/
	collector prometheus.Collector // its series, in the run's /metrics
}

// setServer is the run's Options.OnEmbeddedServer.
func (m *runMonitor) setServer(srv *server.Server) {
	m.embedded.Store(&embeddedServer{handler: http.StripPrefix("/server", srv.HTTPHandler()), collector: srv.Collector()})
}

// serverCollector adds the embedded server's series, once there is
// one, to the run's registry. It describes none, so the registry takes
// what it collects unchecked: the server may come after registration.
type serverCollector struct{ m *runMonitor }

func (c serverCollector) Describe(chan<- *prometheus.Desc) {}

func (c serverCollector) Collect(ch chan<- prometheus.Metric) {
	if e := c.m.embedded.Load(); e != nil {
		e.collector.Collect(ch)
	}
}

// fields returns e as the generic map the page renders: every field an
// event carries, named as in `run --json`, including any it may gain.
func fields(e flow.Event) map[string]any {
	b, err := json.Marshal(e)
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return map[string]any{"error": err.Error()}
	}
	return m
}

func (m *runMonitor) event(e flow.Event) {
	f := fields(e)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events[e.Kind.String()]++
	switch e.Kind {
	case flow.EventRunStarted:
		m.run, m.dir, m.state = e.Run, e.Dir, "running"
	case flow.EventRunDone:
		m.ended, m.output, m.errText = e.Time, e.Output, e.Err
		m.state = "finished"
		if e.Err != "" {
			m.state = "failed"
		}
	case flow.EventTaskFailed:
		m.failures = appendLatest(m.failures, f)
	case flow.EventTaskRetry:
		m.retries = appendLatest(m.retries, f)
	}
	if e.Stage == "" {
		return
	}
	i := slices.IndexFunc(m.stages, func(s *stageState) bool { return s.Name == e.Stage })
	if i < 0 {
		return
	}
	st := m.stages[i]
	if st.Started == nil {
		t := e.Time
		st.Started = &t
	}
	st.State = "running"
	if e.Kind == flow.EventStageDone {
		t := e.Time
		st.Finished, st.State = &t, "done"
	}
	st.Last = f
	if e.TasksTotal > 0 {
		st.Progress = float64(e.TasksDone+e.TasksFailed) / float64(e.TasksTotal)
	}
}

func appendLatest(list []map[string]any, f map[string]any) []map[string]any {
	if len(list) >= maxListed {
		list = slices.Delete(list, 0, len(list)-maxListed+1)
	}
	return append(list, f)
}

// runStatus is /api/run.
type runStatus struct {
	Run      string            `json:"run"`
	Pipeline string            `json:"pipeline"`
	File     string            `json:"file,omitempty"`
	Dir      string            `json:"dir"`
	State    string            `json:"state"`
	Started  time.Time         `json:"started"`
	Ended    *time.Time        `json:"ended,omitempty"`
	Elapsed  float64           `json:"elapsed_s"`
	Error    string            `json:"error,omitempty"`
	Output   string            `json:"output,omitempty"`
	Servers  []string          `json:"servers"` // empty: an embedded server
	Workers  int               `json:"workers"` // tasks the in-process worker runs at once
	Stages   []stageState      `json:"stages"`
	Failures []map[string]any  `json:"failures"`
	Retries  []map[string]any  `json:"retries"`
	Events   map[string]uint64 `json:"events"`
	// ServerPage is the embedded server's page, relative to the run
	// page, once the run has one.
	ServerPage string `json:"server_page,omitempty"`
}

func (m *runMonitor) status() runStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	st := runStatus{Run: m.run, Pipeline: m.pipeline, File: m.file, Dir: m.dir, State: m.state, Started: m.started,
		Error: m.errText, Output: m.output, Servers: append([]string{}, m.servers...), Workers: m.workers,
		Failures: append([]map[string]any{}, m.failures...), Retries: append([]map[string]any{}, m.retries...),
		Events: make(map[string]uint64, len(m.events))}
	if m.embedded.Load() != nil {
		st.ServerPage = "server/"
	}
	end := now
	if !m.ended.IsZero() {
		e := m.ended
		st.Ended, end = &e, e
	}
	st.Elapsed = end.Sub(m.started).Seconds()
	for k, v := range m.events {
		st.Events[k] = v
	}
	for _, s := range m.stages {
		c := *s
		if c.Started != nil {
			stop := now
			if c.Finished != nil {
				stop = *c.Finished
			}
			c.Elapsed = stop.Sub(*c.Started).Seconds()
		}
		st.Stages = append(st.Stages, c)
	}
	return st
}

// listedRun is one run of /api/runs.
type listedRun struct {
	Run      string        `json:"run"`
	Pipeline string        `json:"pipeline"`
	State    string        `json:"state"`
	Created  time.Time     `json:"created"`
	Ended    *time.Time    `json:"ended,omitempty"`
	Elapsed  float64       `json:"elapsed_s"`
	Tasks    int           `json:"tasks"`
	Done     int           `json:"done"`
	Failed   int           `json:"failed"`
	Output   string        `json:"output,omitempty"`
	Error    string        `json:"error,omitempty"`
	Stages   []stageListed `json:"stages"`
}

type stageListed struct {
	Name   string `json:"name"`
	Tasks  int    `json:"tasks"` // -1 while not planned
	Done   int    `json:"done"`
	Failed int    `json:"failed"`
}

// maxRunsListed bounds /api/runs to the newest runs.
const maxRunsListed = 200

func (m *runMonitor) runs() ([]listedRun, error) {
	all, err := flow.ListRuns(m.stateDir)
	if err != nil {
		return nil, err
	}
	out := []listedRun{}
	for _, r := range all[:min(len(all), maxRunsListed)] {
		l := listedRun{Run: r.Run, Pipeline: r.Pipeline, State: r.State.String(), Created: r.Created,
			Elapsed: r.Elapsed.Seconds(), Output: r.Output, Error: r.Err, Stages: []stageListed{}}
		if !r.Ended.IsZero() {
			e := r.Ended
			l.Ended = &e
		}
		for _, s := range r.Stages {
			l.Stages = append(l.Stages, stageListed{s.Name, s.Tasks, s.Done, s.Failed})
			l.Tasks += max(s.Tasks, 0)
			l.Done += s.Done
			l.Failed += s.Failed
		}
		out = append(out, l)
	}
	return out, nil
}

// handler serves the run page, its JSON, its metrics and the run list.
func (m *runMonitor) handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&runCollector{m: m}, serverCollector{m}, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.HandleFunc("/server/", func(w http.ResponseWriter, r *http.Request) {
		e := m.embedded.Load()
		if e == nil {
			http.Error(w, "this run has no embedded job server (yet, or it uses --servers)", http.StatusNotFound)
			return
		}
		e.handler.ServeHTTP(w, r)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /api/run", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, m.status())
	})
	mux.HandleFunc("GET /api/runs", func(w http.ResponseWriter, r *http.Request) {
		runs, err := m.runs()
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, runs)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(runPage)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // a client gone mid-reply is no error of ours
}

// serve serves the run's endpoint on addr until stop is called. The
// address is bound here, so that a bad one fails the command at start.
func (m *runMonitor) serve(addr string, log *slog.Logger) (stop func(), bound string, err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	hs := &http.Server{Handler: m.handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			log.Warn("http stopped", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		hs.Close()
		<-done
	}, l.Addr().String(), nil
}

// runCollector exports the run's figures; every name starts gearflow_run_.
type runCollector struct{ m *runMonitor }

var (
	runInfoDesc     = prometheus.NewDesc("gearflow_run_info", "The run being watched; always 1.", []string{"run", "pipeline", "state"}, nil)
	runElapsedDesc  = prometheus.NewDesc("gearflow_run_elapsed_seconds", "Time since the run started (to its end once it ended).", nil, nil)
	runEventsDesc   = prometheus.NewDesc("gearflow_run_events_total", "Events of the run, by kind.", []string{"kind"}, nil)
	stageTasksDesc  = prometheus.NewDesc("gearflow_run_stage_tasks", "Tasks of the stage.", []string{"stage"}, nil)
	stageDoneDesc   = prometheus.NewDesc("gearflow_run_stage_tasks_done", "Tasks of the stage completed.", []string{"stage"}, nil)
	stageFailDesc   = prometheus.NewDesc("gearflow_run_stage_tasks_failed", "Tasks of the stage that ran out of attempts.", []string{"stage"}, nil)
	stageRetryDesc  = prometheus.NewDesc("gearflow_run_stage_retries_total", "Task attempts of the stage that failed and were retried.", []string{"stage"}, nil)
	stageRecInDesc  = prometheus.NewDesc("gearflow_run_stage_records_in_total", "Records the stage's completed tasks read.", []string{"stage"}, nil)
	stageRecOutDesc = prometheus.NewDesc("gearflow_run_stage_records_out_total", "Records the stage's completed tasks emitted.", []string{"stage"}, nil)
	stageValueDesc  = prometheus.NewDesc("gearflow_run_stage_value", "Any other number the stage's latest event carries (counters), by its JSON path.", []string{"stage", "field"}, nil)
)

// knownField reports whether an event field is exported under a name
// of its own, or is no figure worth a series.
func knownField(path string) bool {
	switch path {
	case "task", "attempt", "wait_ns", "tasks_done", "tasks_failed", "tasks_total", "retries", "records_in", "records_out":
		return true
	}
	return false
}

func (c *runCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{runInfoDesc, runElapsedDesc, runEventsDesc, stageTasksDesc, stageDoneDesc,
		stageFailDesc, stageRetryDesc, stageRecInDesc, stageRecOutDesc, stageValueDesc} {
		ch <- d
	}
}

func (c *runCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.m.status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(runInfoDesc, 1, st.Run, st.Pipeline, st.State)
	gauge(runElapsedDesc, st.Elapsed)
	for kind, n := range st.Events {
		counter(runEventsDesc, float64(n), kind)
	}
	for _, s := range st.Stages {
		num := func(k string) float64 { v, _ := s.Last[k].(float64); return v }
		gauge(stageTasksDesc, num("tasks_total"), s.Name)
		gauge(stageDoneDesc, num("tasks_done"), s.Name)
		gauge(stageFailDesc, num("tasks_failed"), s.Name)
		counter(stageRetryDesc, num("retries"), s.Name)
		counter(stageRecInDesc, num("records_in"), s.Name)
		counter(stageRecOutDesc, num("records_out"), s.Name)
		var walk func(prefix string, v any)
		walk = func(path string, v any) {
			switch v := v.(type) {
			case float64:
				if !knownField(path) {
					gauge(stageValueDesc, v, s.Name, path)
				}
			case map[string]any:
				for k, x := range v {
					walk(strings.TrimPrefix(path+"."+k, "."), x)
				}
			}
		}
		walk("", s.Last)
	}
}
