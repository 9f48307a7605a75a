package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
)

// progress shows a run: on a terminal one live line redrawn in place
// with every started stage, otherwise a plain line every few seconds
// when something changed, or with --json every event as a JSON line.
type progress struct {
	w       io.Writer
	errw    io.Writer // where warnings go, unless asJSON
	asJSON  bool
	tty     bool
	order   []string
	mu      sync.Mutex // guards the fields below and writes to w
	stages  map[string]*stageView
	run     string
	dir     string
	begin   time.Time
	changed bool
	drawn   bool // a live line is on screen
	enc     *json.Encoder
	// width returns the terminal's columns, read at each redraw so that
	// a resized terminal is followed.
	width func() int
}

type stageView struct {
	started, finished time.Time
	last              flow.Event
	// shuffling is set while the coordinator shuffles the stage's input
	// (before its tasks are known).
	shuffling bool
}

// defaultWidth is the live line's width when the terminal's is unknown.
const defaultWidth = 80

func newProgress(w, errw io.Writer, p *spec.Pipeline, asJSON, tty bool) *progress {
	pr := &progress{w: w, errw: errw, asJSON: asJSON, tty: tty, stages: map[string]*stageView{}, begin: time.Now(),
		enc: json.NewEncoder(w), width: func() int { return defaultWidth }}
	if f, ok := w.(*os.File); ok && tty {
		pr.width = func() int {
			if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
				return cols
			}
			return defaultWidth
		}
	}
	for _, st := range p.Stages {
		pr.order = append(pr.order, st.Name)
	}
	return pr
}

// isTerminal reports whether w is a terminal: not a file, a pipe or
// /dev/null (a character device, but no terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// fit cuts line to at most width columns (one per rune: the line is
// ASCII but for names), ending a cut line in "…".
func fit(line string, width int) string {
	width = max(width, 10)
	if utf8.RuneCountInString(line) <= width {
		return line
	}
	r := []rune(line)
	return string(r[:width-1]) + "…"
}

func (p *progress) event(e flow.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.asJSON {
		p.enc.Encode(e)
		return
	}
	switch e.Kind {
	case flow.EventRunStarted:
		p.run, p.dir = e.Run, e.Dir
		p.linef("run %s started (state in %s)", e.Run, e.Dir)
	case flow.EventShuffleStarted:
		p.stages[e.Stage] = &stageView{started: e.Time, last: e, shuffling: true}
		if !p.tty {
			p.linef("stage %s: shuffling %d records of its input", e.Stage, e.ShuffleTotal)
		}
	case flow.EventShuffleDone:
		if sv := p.stages[e.Stage]; sv != nil {
			sv.shuffling = false
		}
		p.linef("stage %s: shuffled %d records in %v", e.Stage, e.Shuffled, e.Duration.Round(time.Millisecond))
	case flow.EventStageStarted:
		p.stages[e.Stage] = &stageView{started: e.Time, last: e}
		if e.TasksDone > 0 {
			p.linef("stage %s: %d of %d tasks already done by an earlier attempt of this run", e.Stage, e.TasksDone, e.TasksTotal)
		}
	case flow.EventWarning:
		p.clearLine()
		fmt.Fprintf(p.errw, "warning: %s\n", e.Message)
		return
	case flow.EventTaskFailed:
		p.linef("stage %s: task %d failed after %d attempts (input %s): %s", e.Stage, e.Task, e.Attempt, e.Input, e.Err)
	case flow.EventTaskRetry:
		if !p.tty {
			p.linef("stage %s: task %d attempt %d failed, retrying in %v: %s", e.Stage, e.Task, e.Attempt, e.Wait, e.Err)
		}
	case flow.EventStageDone:
		if sv := p.stages[e.Stage]; sv != nil {
			sv.finished = e.Time
		}
	}
	if sv := p.stages[e.Stage]; sv != nil {
		sv.last = e
	}
	p.changed = true
	if e.Kind == flow.EventStageDone {
		p.linef("%s", p.stageLine(e.Stage, e.Time))
	}
}

// linef prints a whole line, clearing a live line first.
func (p *progress) linef(format string, args ...any) {
	p.clearLine()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// clearLine clears the live line, if one is drawn.
func (p *progress) clearLine() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

func (p *progress) stageLine(name string, now time.Time) string {
	sv := p.stages[name]
	e := sv.last
	end := now
	if !sv.finished.IsZero() {
		end = sv.finished
	}
	el := end.Sub(sv.started)
	var b strings.Builder
	if sv.shuffling {
		fmt.Fprintf(&b, "%s shuffling %d/%d records, %v", name, e.Shuffled, e.ShuffleTotal, el.Round(time.Second))
		return b.String()
	}
	fmt.Fprintf(&b, "%s %d/%d tasks", name, e.TasksDone, e.TasksTotal)
	if e.TasksFailed > 0 {
		fmt.Fprintf(&b, " (%d failed)", e.TasksFailed)
	}
	if el > 0 {
		fmt.Fprintf(&b, ", %s rec/s", humanRate(float64(e.RecordsIn+e.RecordsRunning)/el.Seconds()))
	}
	if sv.finished.IsZero() && e.TasksDone > 0 && e.TasksDone < e.TasksTotal {
		eta := time.Duration(float64(el) / float64(e.TasksDone) * float64(e.TasksTotal-e.TasksDone))
		fmt.Fprintf(&b, ", ETA %v", eta.Round(time.Second))
	}
	if e.Retries > 0 {
		fmt.Fprintf(&b, ", %d retries", e.Retries)
	}
	if !sv.finished.IsZero() {
		fmt.Fprintf(&b, ", done in %v", el.Round(time.Millisecond))
	}
	if len(e.Counters) > 0 {
		b.WriteString("; ")
		b.WriteString(counterList(e.Counters))
	}
	return b.String()
}

// counterList writes counters as "name=total name=total", names in
// order.
func counterList(m map[string]int64) string {
	var b strings.Builder
	for i, name := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", name, m[name])
	}
	return b.String()
}

func humanRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.1fM", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}

// start redraws progress until the returned stop is called.
func (p *progress) start(ctx context.Context) (stop func()) {
	if p.asJSON {
		return func() {}
	}
	every := 2 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw(time.Now())
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		p.mu.Lock()
		if p.drawn {
			fmt.Fprint(p.w, "\r\033[K")
			p.drawn = false
		}
		p.mu.Unlock()
	}
}

func (p *progress) draw(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var parts []string
	for _, name := range p.order {
		if sv := p.stages[name]; sv != nil && sv.finished.IsZero() {
			parts = append(parts, p.stageLine(name, now))
		}
	}
	if len(parts) == 0 {
		return
	}
	line := strings.Join(parts, " | ")
	if p.tty {
		// One column short of the width: a line that fills the last
		// column wraps on some terminals, and "\r" then redraws only
		// the second row, leaving the first behind.
		fmt.Fprintf(p.w, "\r\033[K%s", fit(line, p.width()-1))
		p.drawn = true
		return
	}
	if p.changed {
		fmt.Fprintln(p.w, line)
		p.changed = false
	}
}

// summary prints the end of the run: time, tasks, retries, records and
// where the output is; with --json one final "summary" object.
func (p *progress) summary(res *flow.Result, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var tasks, done, resumed, failed, retries, backups int
	var in, out int64
	for _, s := range res.Stages {
		tasks += s.Tasks
		done += s.Done
		resumed += s.Resumed
		failed += s.Failed
		retries += s.Retries
		backups += s.Backups
		in += s.RecordsIn
		out += s.RecordsOut
	}
	if p.asJSON {
		type summary struct {
			Event   string             `json:"event"`
			Run     string             `json:"run"`
			OK      bool               `json:"ok"`
			Error   string             `json:"error,omitempty"`
			Elapsed float64            `json:"elapsed_s"`
			Output  string             `json:"output,omitempty"`
			Records int64              `json:"output_records"`
			Dir     string             `json:"dir"`
			Stages  []flow.StageResult `json:"stages"`
			Failed  []flow.TaskFailure `json:"failed,omitempty"`
		}
		s := summary{Event: "summary", Run: res.Run, OK: err == nil, Elapsed: res.Elapsed.Seconds(),
			Records: res.OutputRecords, Dir: res.Dir, Stages: res.Stages, Failed: res.Failed}
		if err == nil {
			s.Output = res.Output
		} else {
			s.Error = err.Error()
		}
		p.enc.Encode(s)
		return
	}
	status := "finished"
	if err != nil {
		status = "FAILED"
	}
	p.linef("run %s %s in %v: %d/%d tasks done (%d from an earlier attempt of the run), %d failed, %d retries, %d backups; %d records in, %d out",
		res.Run, status, res.Elapsed.Round(time.Millisecond), done, tasks, resumed, failed, retries, backups, in, out)
	for _, s := range res.Stages {
		if len(s.Counters) > 0 {
			p.linef("  counters of %s: %s", s.Name, counterList(s.Counters))
		}
	}
	for _, f := range res.Failed {
		p.linef("  failed: %s", f)
	}
	if err == nil {
		p.linef("output: %s (%d records)", res.Output, res.OutputRecords)
	}
}
