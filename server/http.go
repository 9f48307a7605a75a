package server

import (
	"cmp"
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The monitoring endpoint: /metrics, /healthz, /api/status and a page.

//go:embed web/index.html
var webFiles embed.FS

// HTTPHandler returns the server's monitoring endpoint, to serve on an
// address of the operator's choosing (it has no access control: keep it
// on loopback or behind a proxy that has):
//
//   - /metrics: Prometheus exposition of the server (Collector) and of
//     the Go process, from a registry of the handler's own, so that two
//     servers in one process never mix their figures;
//   - /healthz: 200 "ok" while the server serves, 503 once it shuts down;
//   - /api/status: the server's state as JSON (see Status); with
//     ?max_workers=N it lists at most the N oldest workers;
//   - /: a page showing the same, polling /api/status.
//
// The mux is the handler's own; add more routes (pprof) around it.
func (s *Server) HTTPHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slogPrinter{s},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		closing := s.closing
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if closing {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("shutting down\n"))
			return
		}
		w.Write([]byte("ok\n"))
	})
	statusBusy := make(chan struct{}, 2) // snapshots taken at once: each holds the server's lock a while
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		maxWorkers := -1
		if v := r.URL.Query().Get("max_workers"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				http.Error(w, "max_workers must be a number, 0 or more", http.StatusBadRequest)
				return
			}
			maxWorkers = n
		}
		select {
		case statusBusy <- struct{}{}:
			defer func() { <-statusBusy }()
		case <-r.Context().Done():
			return
		}
		writeJSON(w, s.status(maxWorkers))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		page, _ := webFiles.ReadFile("web/index.html")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(page)
	})
	return mux
}

// slogPrinter logs promhttp's errors through the server's logger.
type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) {
	p.s.log.Warn("metrics: collecting failed", "err", strings.TrimSpace(fmt.Sprintln(v...)))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // a client gone mid-reply is no error of ours
}

// Status is the server's state at one moment, as /api/status serves it.
type Status struct {
	Version     string           `json:"version"`
	Time        time.Time        `json:"time"`
	Connections int              `json:"connections"`
	Jobs        int              `json:"jobs"`    // queued, delayed and running
	Running     int              `json:"running"` // assigned to workers
	Draining    bool             `json:"draining"`
	Durable     bool             `json:"durable"` // background jobs survive a restart (DataDir)
	BytesIn     uint64           `json:"bytes_in"`
	BytesOut    uint64           `json:"bytes_out"`
	Buffered    int64            `json:"buffered_bytes"`
	Functions   []FunctionStatus `json:"functions"`    // by name
	Workers     []WorkerStatus   `json:"workers"`      // connections with a registration, oldest first
	WorkerCount int              `json:"worker_count"` // all of them, however many Workers lists
	Limits      Limits           `json:"limits"`
}

// FunctionStatus is one function's queues, workers and counters.
type FunctionStatus struct {
	Name string `json:"name"`
	// Queued is the jobs waiting for a worker by priority; Delayed those
	// waiting for their time.
	Queued   Priorities `json:"queued"`
	Delayed  int        `json:"delayed"`
	Running  int        `json:"running"`
	Workers  int        `json:"workers"`
	MaxQueue Priorities `json:"max_queue"` // admin "maxqueue" limits; 0 = none
	// Pending is the background jobs of a durable server whose record
	// is being synced.
	Pending int `json:"pending"`
	// The counters of the jobs since the function was created, as the
	// jobs_*_total metrics: submitted + restored + rescheduled equals
	// the jobs ended (completed through abandoned) plus those queued,
	// delayed, running and pending.
	Submitted   uint64 `json:"submitted"`
	Restored    uint64 `json:"restored"`
	Rescheduled uint64 `json:"rescheduled"`
	Completed   uint64 `json:"completed"`
	Failed      uint64 `json:"failed"`
	Excepted    uint64 `json:"excepted"`
	Dropped     uint64 `json:"dropped"`
	Cancelled   uint64 `json:"cancelled"`
	Abandoned   uint64 `json:"abandoned"`
	Requeued    uint64 `json:"requeued"`
}

// Priorities is a figure per job priority.
type Priorities struct {
	High   int `json:"high"`
	Normal int `json:"normal"`
	Low    int `json:"low"`
}

// WorkerStatus is one worker connection.
type WorkerStatus struct {
	ID        uint64   `json:"id"`
	Remote    string   `json:"remote"` // the peer's IP address
	ClientID  string   `json:"client_id"`
	Functions []string `json:"functions"` // in registration order
	Running   int      `json:"running"`   // jobs it runs
	Sleeping  bool     `json:"sleeping"`  // sent PRE_SLEEP and was not woken
}

// Limits are the server's configured limits.
type Limits struct {
	MaxConnections   int     `json:"max_connections"`
	MaxQueuedJobs    int     `json:"max_queued_jobs"`
	MaxPacketSize    int     `json:"max_packet_size"`
	MaxOutboundBytes int     `json:"max_outbound_bytes"`
	MaxBufferBytes   int64   `json:"max_buffer_bytes"`
	JobRetries       int     `json:"job_retries"` // 0 = unlimited
	ReadTimeout      float64 `json:"read_timeout_s"`
	IdleTimeout      float64 `json:"idle_timeout_s"` // 0 = never
	WriteTimeout     float64 `json:"write_timeout_s"`
}

// Status returns a snapshot of the server's state, all of it read at
// one moment under the server's lock.
func (s *Server) Status() Status { return s.status(-1) }

// status is Status listing at most maxWorkers workers (all when
// negative), the lowest connection ids first. Only those are built
// under the server's lock: the others are counted.
func (s *Server) status(maxWorkers int) Status {
	cfg := &s.cfg
	st := Status{
		Version: cfg.Version, Time: time.Now().UTC(), Durable: s.store != nil,
		BytesIn: s.metrics.bytesIn.Load(), BytesOut: s.metrics.bytesOut.Load(), Buffered: s.held.Load(),
		Limits: Limits{MaxConnections: cfg.MaxConnections, MaxQueuedJobs: cfg.MaxQueuedJobs,
			MaxPacketSize: cfg.MaxPacketSize, MaxOutboundBytes: cfg.MaxOutboundBytes, MaxBufferBytes: cfg.MaxBufferBytes,
			JobRetries: cfg.JobRetries, ReadTimeout: max(cfg.ReadTimeout, 0).Seconds(),
			IdleTimeout: max(cfg.IdleTimeout, 0).Seconds(), WriteTimeout: cfg.WriteTimeout.Seconds()},
		Functions: []FunctionStatus{}, Workers: []WorkerStatus{},
	}
	s.mu.Lock()
	st.Connections, st.Jobs, st.Running, st.Draining = len(s.conns), s.jobs.len(), s.running, s.draining
	for _, fn := range s.sortedFunctionsLocked() {
		c := fn.counts
		q := Priorities{fn.queues[priHigh].n, fn.queues[priNormal].n, fn.queues[priLow].n}
		st.Functions = append(st.Functions, FunctionStatus{Name: fn.name,
			Queued: q, Delayed: fn.delayed, Running: fn.running, Workers: len(fn.workers),
			Pending:   fn.total - q.High - q.Normal - q.Low - fn.delayed - fn.running,
			MaxQueue:  Priorities{fn.maxQueue[priHigh], fn.maxQueue[priNormal], fn.maxQueue[priLow]},
			Submitted: c.submitted, Restored: c.restored, Rescheduled: c.rescheduled,
			Completed: c.ended[endCompleted], Failed: c.ended[endFailed], Excepted: c.ended[endExcepted],
			Dropped: c.ended[endDropped], Cancelled: c.ended[endCancelled], Abandoned: c.ended[endAbandoned],
			Requeued: c.requeued})
	}
	var workers []*conn
	for c := range s.conns {
		if len(c.regs) > 0 {
			workers = append(workers, c)
		}
	}
	st.WorkerCount = len(workers)
	if maxWorkers >= 0 && maxWorkers < len(workers) {
		slices.SortFunc(workers, func(a, b *conn) int { return cmp.Compare(a.id, b.id) })
		workers = workers[:maxWorkers]
	}
	for _, c := range workers {
		w := WorkerStatus{ID: c.id, Remote: c.ip, ClientID: c.clientID, Sleeping: c.sleeping && !c.noopSent,
			Functions: make([]string, 0, len(c.regs))}
		for _, r := range c.regs {
			w.Functions = append(w.Functions, r.fn.name)
			w.Running += r.running.n
		}
		st.Workers = append(st.Workers, w)
	}
	s.mu.Unlock()
	slices.SortFunc(st.Workers, func(a, b WorkerStatus) int { return cmp.Compare(a.ID, b.ID) })
	return st
}
