package loadgen

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Latency summarises a phase's per-job latencies. Percentiles come from a
// Histogram, so they are within 1.6% of the exact values; Max is exact.
type Latency struct {
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	Max  time.Duration `json:"max_ns"`
	Mean time.Duration `json:"mean_ns"`
}

func latencyOf(h *Histogram) *Latency {
	if h.Count() == 0 {
		return nil
	}
	return &Latency{
		P50: h.Quantile(0.50), P90: h.Quantile(0.90), P99: h.Quantile(0.99),
		Max: h.Max(), Mean: h.Mean(),
	}
}

// Phase is the measurement of one part of a run: "fg" for a foreground
// run; "submit" and "drain" for a background one.
type Phase struct {
	Name string `json:"name"`
	// Jobs is how many jobs the phase finished without error: completed
	// with the payload echoed intact (fg, drain) or acknowledged with
	// JOB_CREATED (submit).
	Jobs int64 `json:"jobs"`
	// Errors counts jobs that ended badly: an ERROR reply, WORK_FAIL,
	// WORK_EXCEPTION, a payload that came back changed, or a job lost
	// with its connection.
	Errors int64 `json:"errors"`
	// Unfinished counts jobs still pending when the run timed out.
	Unfinished    int64   `json:"unfinished"`
	Seconds       float64 `json:"seconds"`
	JobsPerSecond float64 `json:"jobs_per_s"`
	// MBPerSecond is payload bytes carried per second (10^6 bytes), each
	// job's payload counted once.
	MBPerSecond float64 `json:"mb_per_s"`
	// Latency is per job: SUBMIT_JOB to WORK_COMPLETE (fg), SUBMIT_JOB_BG
	// to JOB_CREATED (submit). Nil for the drain phase, which has no
	// client to time it, and for a phase that finished no job.
	Latency *Latency `json:"latency,omitempty"`
	// ToolCPUSeconds is the CPU time (user plus system) the load tool
	// itself used during the phase.
	ToolCPUSeconds float64 `json:"tool_cpu_s"`
	// ServerCPUSeconds is the server's CPU time during the phase, when
	// Config.ServerPID names it; nil otherwise.
	ServerCPUSeconds *float64 `json:"server_cpu_s,omitempty"`
}

// CoresBusy is the CPU time of the load tool and the server together
// divided by the phase's wall time: how many cores the two kept busy.
// It is zero when the server's CPU time is unknown.
func (p Phase) CoresBusy() float64 {
	if p.ServerCPUSeconds == nil || p.Seconds <= 0 {
		return 0
	}
	return (p.ToolCPUSeconds + *p.ServerCPUSeconds) / p.Seconds
}

// cpuPerJob formats seconds of CPU per job as microseconds, "-" when
// unknown.
func cpuPerJob(seconds *float64, jobs int64) string {
	if seconds == nil || jobs <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fµs", *seconds*1e6/float64(jobs))
}

func newPhase(name string, jobs, errs, unfinished int64, d time.Duration, payload int, h *Histogram) Phase {
	p := Phase{Name: name, Jobs: jobs, Errors: errs, Unfinished: unfinished, Seconds: d.Seconds()}
	if d > 0 {
		p.JobsPerSecond = float64(jobs) / d.Seconds()
		p.MBPerSecond = p.JobsPerSecond * float64(payload) / 1e6
	}
	if h != nil {
		p.Latency = latencyOf(h)
	}
	return p
}

// Result is what a run measured, with the settings it ran with.
type Result struct {
	Server      string  `json:"server"`
	Mode        Mode    `json:"mode"`
	Function    string  `json:"function"`
	Clients     int     `json:"clients"`
	InFlight    int     `json:"inflight"`
	Workers     int     `json:"workers"`
	PayloadSize int     `json:"payload"`
	Phases      []Phase `json:"phases"`
	// TimedOut is set when Config.Timeout ended the run.
	TimedOut bool `json:"timed_out"`
	// Error is the first failure seen (a lost connection, an unexpected
	// packet), empty when there was none.
	Error string `json:"error,omitempty"`
}

// Errors returns the number of failed jobs over all phases.
func (r Result) Errors() int64 {
	var n int64
	for _, p := range r.Phases {
		n += p.Errors
	}
	return n
}

// Phase returns the phase with the given name, and whether there is one.
func (r Result) Phase(name string) (Phase, bool) {
	for _, p := range r.Phases {
		if p.Name == name {
			return p, true
		}
	}
	return Phase{}, false
}

// WriteTable writes r as a human-readable table: one row per phase.
func (r Result) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "server %s  mode %s  clients %d  inflight %d  workers %d  payload %d B\n",
		r.Server, r.Mode, r.Clients, r.InFlight, r.Workers, r.PayloadSize)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tjobs\tseconds\tjobs/s\tMB/s\tp50\tp90\tp99\tmax\terrors\ttool cpu/job\tserver cpu/job\tcores busy\t")
	for _, p := range r.Phases {
		lat := []string{"-", "-", "-", "-"}
		if l := p.Latency; l != nil {
			lat = []string{fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.Max)}
		}
		cores := "-"
		if c := p.CoresBusy(); c > 0 {
			cores = fmt.Sprintf("%.2f", c)
		}
		tool := p.ToolCPUSeconds
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.0f\t%.2f\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t\n",
			p.Name, p.Jobs, p.Seconds, p.JobsPerSecond, p.MBPerSecond,
			lat[0], lat[1], lat[2], lat[3], p.Errors,
			cpuPerJob(&tool, p.Jobs), cpuPerJob(p.ServerCPUSeconds, p.Jobs), cores)
	}
	tw.Flush()
	for _, p := range r.Phases {
		if p.Unfinished > 0 {
			fmt.Fprintf(&b, "%s: %d jobs unfinished\n", p.Name, p.Unfinished)
		}
	}
	if r.TimedOut {
		b.WriteString("timed out: figures cover the run until then\n")
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", r.Error)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fmtDur prints a latency with three significant digits in µs or ms.
func fmtDur(d time.Duration) string {
	switch {
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.2fµs", float64(d)/1e3)
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
