package server

import (
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics: what the server counts for /metrics and /api/status
// (http.go). The hot paths pay for a count only: counters bumped where
// the server already holds mu (jobs submitted, ended, requeued; wait and
// run times) are plain fields of function or lock-free histograms, and
// those bumped outside it (bytes, store syncs) are atomics. Gauges
// (queues, workers, running jobs) are not kept at all: a scrape reads
// them from the server's state, under mu, in one snapshot.

// metrics are the server-wide counters.
type metrics struct {
	accepted atomic.Uint64 // connections accepted
	bytesIn  atomic.Uint64 // bytes read from peers
	bytesOut atomic.Uint64 // bytes written to peers
	writes   atomic.Uint64 // write system calls to peers' sockets

	wait latencyHist // queued to assigned, per assignment
	run  latencyHist // assigned to WORK_COMPLETE, WORK_FAIL or WORK_EXCEPTION (not of cancelled jobs)
}

// fnCounts are a function's job counters. Guarded by Server.mu.
//
// Every job comes in once (submitted or restored) and every run of it
// ends once, in exactly one of ended; a scheduled job comes in again
// (rescheduled) after each run. So at any moment, for each function,
//
//	submitted + restored + rescheduled = sum(ended) + queued + delayed + running + pending
//
// where the right-hand gauges are read from the server's state.
type fnCounts struct {
	submitted   uint64 // jobs created (not submissions joined to one by unique)
	restored    uint64 // jobs read back from the durable queue at start
	rescheduled uint64 // scheduled jobs waiting again for their next time after a run
	requeued    uint64 // taken back from a lost, timed-out or CANT_DO worker and queued again
	ended       [numEnds]uint64
}

// jobEnd is how a job (or a scheduled job's run) ended: each ends in
// exactly one, counted where it leaves the server (removeLocked) or,
// for a scheduled job, where it goes back to wait (finishLocked).
type jobEnd uint8

const (
	endCompleted jobEnd = iota // WORK_COMPLETE
	endFailed                  // WORK_FAIL
	endExcepted                // WORK_EXCEPTION
	// endDropped: the server gave up on the job and sent its clients
	// WORK_FAIL: lost by workers as often as Config.JobRetries allows,
	// or its record could not be stored in the durable queue.
	endDropped
	// endCancelled: admin "cancel job". A running job ends when its
	// worker sends its result (dropped) or loses it, not at the command.
	endCancelled
	// endAbandoned: a foreground job every client of which went away,
	// removed before a worker took it, or when its worker lost it (as
	// gearmand's ignored jobs). One that its worker finishes counts as
	// the result it got.
	endAbandoned
	numEnds
)

// latencyBounds are the upper bounds of the latency histograms'
// buckets: from a fast sync (100 µs) to a long job (an hour). Read only.
var latencyBounds = [...]time.Duration{
	100 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 5 * time.Second, 10 * time.Second, time.Minute, 5 * time.Minute,
	30 * time.Minute, time.Hour,
}

// latencyHist is a histogram of durations with latencyBounds' buckets.
// The zero value is empty and ready; observe takes no lock and does not
// allocate.
type latencyHist struct {
	counts [len(latencyBounds) + 1]atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Int64                          // nanoseconds
}

// observe counts one duration of d nanoseconds (negative counts as 0:
// the wall clock stepped back).
func (h *latencyHist) observe(d int64) {
	d = max(d, 0)
	i := 0
	for i < len(latencyBounds) && d > int64(latencyBounds[i]) {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(d)
}

// snapshot returns the histogram as Prometheus has it: cumulative counts
// per upper bound in seconds, the total count and the sum in seconds.
func (h *latencyHist) snapshot() (count uint64, sum float64, buckets map[float64]uint64) {
	buckets = make(map[float64]uint64, len(latencyBounds))
	for i, b := range latencyBounds {
		count += h.counts[i].Load()
		buckets[b.Seconds()] = count
	}
	count += h.counts[len(latencyBounds)].Load()
	return count, float64(h.sum.Load()) / 1e9, buckets
}

// clockBase is the origin of nowNanos. Read only.
var clockBase = time.Now()

// nowNanos is the clock of the wait and run times: monotonic
// nanoseconds since clockBase, which a step of the wall clock does not
// disturb and which costs one clock read (time.Now costs two).
func nowNanos() int64 { return int64(time.Since(clockBase)) }

// collector exports the server's metrics to a Prometheus registry.
type collector struct {
	s *Server

	info, connections, accepted, workerConns, workers                      *prometheus.Desc
	queued, delayed, running, pending                                      *prometheus.Desc
	submitted, restored, rescheduled, requeued                             *prometheus.Desc
	ended                                                                  [numEnds]*prometheus.Desc
	wait, run, bytesIn, bytesOut, buffered, maxConns, maxQueued, storeSync *prometheus.Desc
	writes                                                                 *prometheus.Desc
}

// Collector returns a prometheus.Collector of the server's metrics, to
// register with a registry of the caller's (HTTPHandler registers it
// with one of its own). Every name starts gearflow_server_.
func (s *Server) Collector() prometheus.Collector {
	fnLabel := []string{"function"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("gearflow_server_"+name, help, labels, nil)
	}
	c := &collector{
		s:           s,
		info:        d("info", "The server's version; always 1.", "version"),
		connections: d("connections", "Open connections (clients, workers and admin)."),
		accepted:    d("connections_accepted_total", "Connections accepted."),
		workerConns: d("worker_connections", "Connections that registered at least one function."),
		workers:     d("workers", "Worker connections registered for the function.", fnLabel...),
		queued:      d("queued_jobs", "Jobs waiting for a worker (delayed jobs not included).", "function", "priority"),
		delayed:     d("delayed_jobs", "Jobs waiting for their time (SUBMIT_JOB_EPOCH, SUBMIT_JOB_SCHED).", fnLabel...),
		running:     d("running_jobs", "Jobs assigned to a worker.", fnLabel...),
		pending:     d("pending_jobs", "Background jobs of the durable queue whose record is being synced (only with a data directory).", fnLabel...),
		submitted:   d("jobs_submitted_total", "Jobs created by submissions (a submission joining a job by its unique id makes none).", fnLabel...),
		restored:    d("jobs_restored_total", "Jobs read back from the durable queue when the server started.", fnLabel...),
		rescheduled: d("jobs_rescheduled_total", "Runs of scheduled jobs (SUBMIT_JOB_SCHED) that ended, the job waiting again for its next time.", fnLabel...),
		requeued:    d("jobs_requeued_total", "Running jobs taken back from their worker (disconnect, CANT_DO, timeout) and queued to run again.", fnLabel...),
		wait:        d("job_wait_seconds", "Time jobs waited in the queue before a worker took them, per assignment."),
		run:         d("job_run_seconds", "Time from assignment to the job's WORK_COMPLETE, WORK_FAIL or WORK_EXCEPTION (cancelled jobs not included)."),
		bytesIn:     d("received_bytes_total", "Bytes read from peers."),
		bytesOut:    d("sent_bytes_total", "Bytes written to peers."),
		writes:      d("socket_writes_total", "Writes to peers' sockets (write system calls); replies that go out together share one."),
		buffered:    d("buffered_bytes", "Bytes held in packets being read and replies not yet written, as counted against the buffer limit."),
		maxConns:    d("connections_limit", "Most open connections (MaxConnections)."),
		maxQueued:   d("queued_jobs_limit", "Most jobs per function, queued plus running (MaxQueuedJobs)."),
		storeSync:   d("store_sync_seconds", "Time each sync of the durable queue took (only with a data directory)."),
	}
	c.ended = [numEnds]*prometheus.Desc{
		endCompleted: d("jobs_completed_total", "Jobs ended by WORK_COMPLETE.", fnLabel...),
		endFailed:    d("jobs_failed_total", "Jobs ended by WORK_FAIL.", fnLabel...),
		endExcepted:  d("jobs_excepted_total", "Jobs ended by WORK_EXCEPTION.", fnLabel...),
		endDropped:   d("jobs_dropped_total", "Jobs the server gave up on, failing them: lost by workers as often as the retry limit allows, or not stored in the durable queue.", fnLabel...),
		endCancelled: d("jobs_cancelled_total", "Jobs ended by the admin command \"cancel job\" (a running one when its worker ends or loses it).", fnLabel...),
		endAbandoned: d("jobs_abandoned_total", "Foreground jobs removed because every client waiting for them went away.", fnLabel...),
	}
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.info, c.connections, c.accepted, c.workerConns, c.workers,
		c.queued, c.delayed, c.running, c.pending, c.submitted, c.restored, c.rescheduled, c.requeued,
		c.wait, c.run, c.bytesIn, c.bytesOut, c.writes, c.buffered, c.maxConns, c.maxQueued, c.storeSync} {
		ch <- d
	}
	for _, d := range c.ended {
		ch <- d
	}
}

// fnSample is one function's figures at a scrape.
type fnSample struct {
	name    string
	queued  [numPriorities]int
	delayed int
	running int
	pending int
	workers int
	counts  fnCounts
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	// The snapshot: everything read under mu, so that the figures agree
	// with each other; the metrics are built after it is let go.
	s.mu.Lock()
	conns := len(s.conns)
	workerConns := 0
	for cn := range s.conns {
		if len(cn.regs) > 0 {
			workerConns++
		}
	}
	fns := make([]fnSample, 0, len(s.functions))
	for _, fn := range s.functions {
		fs := fnSample{name: labelValue(fn.name), delayed: fn.delayed, running: fn.running, workers: len(fn.workers), counts: fn.counts}
		fs.pending = fn.total - fn.delayed - fn.running
		for p := priHigh; p < numPriorities; p++ {
			fs.queued[p] = fn.queues[p].n
			fs.pending -= fn.queues[p].n
		}
		fns = append(fns, fs)
	}
	waitN, waitSum, waitB := s.metrics.wait.snapshot()
	runN, runSum, runB := s.metrics.run.snapshot()
	s.mu.Unlock()
	slices.SortFunc(fns, func(a, b fnSample) int { return strings.Compare(a.name, b.name) })

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.info, 1, s.cfg.Version)
	gauge(c.connections, float64(conns))
	counter(c.accepted, s.metrics.accepted.Load())
	gauge(c.workerConns, float64(workerConns))
	for _, f := range fns {
		gauge(c.workers, float64(f.workers), f.name)
		for p := priHigh; p < numPriorities; p++ {
			gauge(c.queued, float64(f.queued[p]), f.name, p.String())
		}
		gauge(c.delayed, float64(f.delayed), f.name)
		gauge(c.running, float64(f.running), f.name)
		if s.store != nil {
			gauge(c.pending, float64(f.pending), f.name)
		}
		counter(c.submitted, f.counts.submitted, f.name)
		counter(c.restored, f.counts.restored, f.name)
		counter(c.rescheduled, f.counts.rescheduled, f.name)
		counter(c.requeued, f.counts.requeued, f.name)
		for e, d := range c.ended {
			counter(d, f.counts.ended[e], f.name)
		}
	}
	ch <- prometheus.MustNewConstHistogram(c.wait, waitN, waitSum, waitB)
	ch <- prometheus.MustNewConstHistogram(c.run, runN, runSum, runB)
	counter(c.bytesIn, s.metrics.bytesIn.Load())
	counter(c.bytesOut, s.metrics.bytesOut.Load())
	counter(c.writes, s.metrics.writes.Load())
	gauge(c.buffered, float64(s.held.Load()))
	gauge(c.maxConns, float64(s.cfg.MaxConnections))
	gauge(c.maxQueued, float64(s.cfg.MaxQueuedJobs))
	if s.store != nil {
		n, sum, b := s.store.syncTime.snapshot()
		ch <- prometheus.MustNewConstHistogram(c.storeSync, n, sum, b)
	}
}

// labelValue is a function name as a Prometheus label value, which
// must be UTF-8 (MustNewConstMetric panics otherwise, in a goroutine of
// the registry's where nothing recovers it, and a peer chooses the
// names): a name that is not is written with Go's escapes, "f\xff".
func labelValue(name string) string {
	if utf8.ValidString(name) {
		return name
	}
	q := strconv.QuoteToASCII(name)
	return q[1 : len(q)-1]
}
