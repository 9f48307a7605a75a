package flow

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"
)

// EventKind says what an Event reports.
type EventKind int

const (
	// EventRunStarted: the run began (or resumed); Dir is its directory.
	EventRunStarted EventKind = iota + 1
	// EventStageStarted: a stage's needs are done and its tasks are known.
	EventStageStarted
	// EventTaskRetry: an attempt failed; another follows after Wait.
	EventTaskRetry
	// EventTaskBackup: a straggler got a backup attempt.
	EventTaskBackup
	// EventTaskDone: a task completed. Its journal line follows within
	// about 20 ms (on disk by the stage's end); a run killed in between
	// redoes the task on resume.
	EventTaskDone
	// EventTaskFailed: a task ran out of attempts.
	EventTaskFailed
	// EventStageDone: every task of a stage completed or failed.
	EventStageDone
	// EventRunDone: the run ended; Output names the result file, Err
	// says why it failed.
	EventRunDone
	// EventProgress: running tasks reported progress (WORK_STATUS); sent
	// at most twice a second per stage.
	EventProgress
	// EventWarning: something the user should hear of, in Message: no
	// worker serves a stage's Function, a stage's tasks are much too
	// small or too large for their round trip.
	EventWarning
	// EventShuffleStarted: the coordinator began shuffling the needed
	// stage's output into the partitions of reduce stage Stage;
	// ShuffleTotal records to read.
	EventShuffleStarted
	// EventShuffleProgress: Shuffled of ShuffleTotal records read; sent
	// at most twice a second.
	EventShuffleProgress
	// EventShuffleDone: the shuffle ended after Duration; the stage's
	// tasks follow.
	EventShuffleDone
)

var eventKindNames = map[EventKind]string{
	EventRunStarted: "run_started", EventStageStarted: "stage_started", EventTaskRetry: "task_retry",
	EventTaskBackup: "task_backup", EventTaskDone: "task_done", EventTaskFailed: "task_failed",
	EventStageDone: "stage_done", EventRunDone: "run_done", EventProgress: "progress",
	EventWarning: "warning", EventShuffleStarted: "shuffle_started", EventShuffleProgress: "shuffle_progress",
	EventShuffleDone: "shuffle_done",
}

func (k EventKind) String() string {
	if s, ok := eventKindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// MarshalText makes the kind a string in JSON event streams.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText parses a kind's name.
func (k *EventKind) UnmarshalText(b []byte) error {
	for kk, n := range eventKindNames {
		if n == string(b) {
			*k = kk
			return nil
		}
	}
	return fmt.Errorf("flow: unknown event kind %q", b)
}

// Event reports progress of a run. Stage counters are the stage's totals
// at the time of the event. In JSON its names are snake_case and its
// durations float seconds (wait_s, duration_s).
type Event struct {
	Kind  EventKind `json:"event"`
	Time  time.Time `json:"time"`
	Run   string    `json:"run"`
	Stage string    `json:"stage,omitempty"`
	// Task and Attempt are set for task events.
	Task    int    `json:"task"`
	Attempt int    `json:"attempt,omitempty"`
	Input   string `json:"input,omitempty"`
	Err     string `json:"error,omitempty"`
	// Wait is the backoff before a retry.
	Wait time.Duration `json:"-"`
	// Duration is the winning attempt's time from its submission to its
	// completion (EventTaskDone), or the shuffle's (EventShuffleDone).
	Duration time.Duration `json:"-"`
	// Worker names who ran the winning attempt (EventTaskDone), as the
	// worker reported it: a gearflow worker's id, or host/pid.
	Worker string `json:"worker,omitempty"`

	TasksDone   int   `json:"tasks_done"`
	TasksFailed int   `json:"tasks_failed,omitempty"`
	TasksTotal  int   `json:"tasks_total"`
	Retries     int   `json:"retries,omitempty"`
	RecordsIn   int64 `json:"records_in"`
	RecordsOut  int64 `json:"records_out"`
	// RecordsRunning counts input records that running attempts have
	// reported done (WORK_STATUS) and that are not in RecordsIn yet.
	RecordsRunning int64 `json:"records_running,omitempty"`
	// Counters are the stage's counter totals (see Count): the winning
	// attempts' of its completed tasks.
	Counters map[string]int64 `json:"counters,omitempty"`

	// Shuffled and ShuffleTotal count the records a shuffle read and
	// has to read (EventShuffle...).
	Shuffled     int64 `json:"shuffled,omitempty"`
	ShuffleTotal int64 `json:"shuffle_total,omitempty"`

	// Message says what an EventWarning warns of; Function is the
	// function it is about, if any.
	Message  string `json:"message,omitempty"`
	Function string `json:"function,omitempty"`

	// Dir is the run's directory (EventRunStarted); Output the result
	// file (EventRunDone).
	Dir    string `json:"dir,omitempty"`
	Output string `json:"output,omitempty"`
}

// eventFields is Event without its methods, for its JSON.
type eventFields Event

type eventJSON struct {
	eventFields
	WaitSeconds     float64 `json:"wait_s,omitempty"`
	DurationSeconds float64 `json:"duration_s,omitempty"`
}

// MarshalJSON writes the event with its durations in seconds.
func (e Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(eventJSON{eventFields: eventFields(e), WaitSeconds: e.Wait.Seconds(), DurationSeconds: e.Duration.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (e *Event) UnmarshalJSON(b []byte) error {
	var j eventJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*e = Event(j.eventFields)
	e.Wait, e.Duration = seconds(j.WaitSeconds), seconds(j.DurationSeconds)
	return nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// StageResult sums up one stage of a run.
type StageResult struct {
	Name     string `json:"name"`
	Function string `json:"function"`
	Tasks    int    `json:"tasks"`   // tasks in the stage
	Done     int    `json:"done"`    // completed, including Resumed
	Resumed  int    `json:"resumed"` // completed by an earlier run of the same run id
	Failed   int    `json:"failed"`
	Retries  int    `json:"retries"`
	Backups  int    `json:"backups"`
	// RecordsIn and RecordsOut count the records (reduce: key groups)
	// the stage's completed tasks read and emitted.
	RecordsIn  int64 `json:"records_in"`
	RecordsOut int64 `json:"records_out"`
	// Counters are the totals of the counters its functions added to
	// (see Count), the winning attempt's of each completed task.
	Counters map[string]int64 `json:"counters,omitempty"`
	Elapsed  time.Duration    `json:"-"` // elapsed_s in JSON
}

type stageResultFields StageResult

type stageResultJSON struct {
	stageResultFields
	ElapsedSeconds float64 `json:"elapsed_s"`
}

// MarshalJSON writes the stage's result with Elapsed in seconds.
func (s StageResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(stageResultJSON{stageResultFields(s), s.Elapsed.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *StageResult) UnmarshalJSON(b []byte) error {
	var j stageResultJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = StageResult(j.stageResultFields)
	s.Elapsed = seconds(j.ElapsedSeconds)
	return nil
}

// TaskFailure names a task that ran out of attempts.
type TaskFailure struct {
	Stage    string `json:"stage"`
	Task     int    `json:"task"`
	Function string `json:"function"`
	Attempts int    `json:"attempts"`
	Err      string `json:"error"`
	// Input says which input the task had: file and line range, files,
	// upstream records, or partition and keys.
	Input string `json:"input"`
}

func (f TaskFailure) String() string {
	return fmt.Sprintf("stage %s task %d (function %s, %d attempts), input %s: %s",
		f.Stage, f.Task, f.Function, f.Attempts, f.Input, f.Err)
}

// Result sums up a run. In JSON its names are snake_case and Elapsed is
// elapsed_s, in seconds.
type Result struct {
	Run           string        `json:"run"`
	Dir           string        `json:"dir"`    // the run's directory
	Output        string        `json:"output"` // the result file
	OutputRecords int64         `json:"output_records"`
	Elapsed       time.Duration `json:"-"`
	Stages        []StageResult `json:"stages"`
	// Failed lists tasks that ran out of attempts in stages whose
	// policy let the run go on.
	Failed []TaskFailure `json:"failed,omitempty"`
}

type resultFields Result

type resultJSON struct {
	resultFields
	ElapsedSeconds float64 `json:"elapsed_s"`
}

// MarshalJSON writes the result with Elapsed in seconds.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(resultJSON{resultFields(r), r.Elapsed.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Result) UnmarshalJSON(b []byte) error {
	var j resultJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = Result(j.resultFields)
	r.Elapsed = seconds(j.ElapsedSeconds)
	return nil
}

// RunError is the error of a run that failed: the failed tasks (if the
// failure came from tasks) and the cause.
type RunError struct {
	Run    string
	Failed []TaskFailure
	Err    error
}

func (e *RunError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "flow: run %s failed: %v", e.Run, e.Err)
	for _, f := range e.Failed {
		b.WriteString("\n  ")
		b.WriteString(f.String())
	}
	return b.String()
}

func (e *RunError) Unwrap() error { return e.Err }

func (c *coordinator) emit(e Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.emitLocked(e)
}

func (c *coordinator) emitLocked(e Event) {
	if c.opts.OnEvent == nil {
		return
	}
	e.Time = time.Now()
	e.Run = c.run
	if sr := c.stages[e.Stage]; sr != nil {
		e.TasksDone, e.TasksFailed, e.TasksTotal = sr.res.Done, sr.res.Failed, sr.res.Tasks
		e.Retries, e.RecordsIn, e.RecordsOut = sr.res.Retries, sr.res.RecordsIn, sr.res.RecordsOut
		if len(sr.res.Counters) > 0 {
			e.Counters = maps.Clone(sr.res.Counters) // the handler may keep the event
		}
		for _, n := range sr.running {
			e.RecordsRunning += int64(n)
		}
	}
	c.opts.OnEvent(e)
}

// warnLocked emits e as an EventWarning and logs it; c.mu is held.
func (c *coordinator) warnLocked(e Event) {
	e.Kind = EventWarning
	c.log.Warn(e.Message, "stage", e.Stage)
	c.emitLocked(e)
}

// observe turns scheduler events into counters and Events.
func (c *coordinator) observe(sr *stageRun, e schedEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.kind == schedLost {
		c.log.Warn("task attempt lost with its job server; running it again", "stage", sr.st.Name, "task", e.task, "attempt", e.attempt, "err", e.err)
	}
	if e.kind == schedStart || e.kind == schedDropped || e.kind == schedLost {
		return
	}
	ev := Event{Stage: sr.st.Name, Task: e.task, Attempt: e.attempt}
	if c.opts.OnEvent != nil || e.kind != schedDone {
		ev.Input = sr.chunks[e.task].String()
	}
	if e.err != nil {
		ev.Err = e.err.Error()
	}
	switch e.kind {
	case schedBackup:
		sr.res.Backups++
		ev.Kind = EventTaskBackup
	case schedRetry:
		sr.res.Retries++
		ev.Kind, ev.Wait = EventTaskRetry, e.wait
		c.log.Warn("task attempt failed; retrying", "stage", sr.st.Name, "task", e.task, "attempt", e.attempt, "wait", e.wait, "err", e.err)
	case schedDropped:
		return
	case schedDone:
		sr.res.Done++
		ev.Kind, ev.Duration, ev.Worker = EventTaskDone, e.elapsed, e.worker
	case schedFailed:
		sr.res.Failed++
		ev.Kind = EventTaskFailed
		c.log.Warn("task failed", "stage", sr.st.Name, "task", e.task, "attempts", e.attempt, "err", e.err)
	}
	c.emitLocked(ev)
}

// progress records a running task's WORK_STATUS and emits an
// EventProgress now and then.
func (c *coordinator) progress(sr *stageRun, task int, done uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sr.running == nil {
		sr.running = make(map[int]uint64)
	}
	sr.running[task] = done
	if now := time.Now(); now.Sub(sr.lastProgress) >= 500*time.Millisecond {
		sr.lastProgress = now
		c.emitLocked(Event{Kind: EventProgress, Stage: sr.st.Name, Task: task})
	}
}
