package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gearflow/gearflow/flow/storage"
)

// Run management: what a state directory's runs are, and removing them.

// resultFile is the run directory's record of how a run ended, written
// when Run returns after its stages ran (see runOutcome).
const resultFile = "result.json"

// RunState is where a run stands. A run is RunRunning while its
// coordinator has it open; it then ends RunFinished or RunFailed, or is
// left RunIncomplete when its process dies or its context is cancelled.
// Resuming a failed or incomplete run makes it RunRunning again.
type RunState int

const (
	// RunIncomplete: the run stopped (killed, interrupted) before it
	// ended; it can be resumed.
	RunIncomplete RunState = iota
	// RunRunning: a coordinator holds the run's directory now.
	RunRunning
	// RunFinished: the run ended and wrote its output.
	RunFinished
	// RunFailed: the run ended in failure; it can be resumed.
	RunFailed
)

var runStateNames = [...]string{RunIncomplete: "incomplete", RunRunning: "running", RunFinished: "finished", RunFailed: "failed"}

func (s RunState) String() string {
	if s >= 0 && int(s) < len(runStateNames) {
		return runStateNames[s]
	}
	return fmt.Sprintf("RunState(%d)", int(s))
}

// MarshalText gives the state's name, as result.json and JSON output
// carry it.
func (s RunState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a state's name.
func (s *RunState) UnmarshalText(b []byte) error {
	for i, name := range runStateNames {
		if string(b) == name {
			*s = RunState(i)
			return nil
		}
	}
	return fmt.Errorf("flow: unknown run state %q", b)
}

// runOutcome is result.json.
type runOutcome struct {
	Run           string         `json:"run"`
	State         RunState       `json:"state"`
	Ended         time.Time      `json:"ended"`
	Elapsed       float64        `json:"elapsed_s"`
	Output        string         `json:"output,omitempty"`
	OutputRecords int64          `json:"output_records"`
	Err           string         `json:"error,omitempty"`
	Stages        []outcomeStage `json:"stages"`
	Failed        []TaskFailure  `json:"failed,omitempty"`
	// DataRemoved: the finished run's intermediate data is gone
	// (Options.KeepData was off), so it cannot be resumed.
	DataRemoved bool `json:"data_removed,omitempty"`
}

type outcomeStage struct {
	Name       string  `json:"name"`
	Tasks      int     `json:"tasks"`
	Done       int     `json:"done"`
	Failed     int     `json:"failed"`
	RecordsIn  int64   `json:"records_in"`
	RecordsOut int64   `json:"records_out"`
	Retries    int     `json:"retries"`
	Backups    int     `json:"backups"`
	Elapsed    float64 `json:"elapsed_s"`
	// Counters are the stage's counter totals (see Count).
	Counters map[string]int64 `json:"counters,omitempty"`
}

// readOutcome reads a run directory's result.json.
func readOutcome(dir string) (*runOutcome, error) {
	data, err := os.ReadFile(filepath.Join(dir, resultFile))
	if err != nil {
		return nil, err
	}
	var o runOutcome
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, fmt.Errorf("flow: %s: %w", filepath.Join(dir, resultFile), err)
	}
	return &o, nil
}

// writeOutcome records in the run directory how the run ended: err nil
// is a finished run, a cancelled context an incomplete one, any other
// error a failed one.
func (j *journal) writeOutcome(res *Result, err error) error {
	o := runOutcome{Run: res.Run, State: RunFinished, Ended: time.Now().UTC(), Elapsed: res.Elapsed.Seconds(),
		Output: res.Output, OutputRecords: res.OutputRecords, Failed: res.Failed, DataRemoved: j.dataRemoved}
	switch {
	case errors.Is(err, context.Canceled):
		o.State, o.Output, o.Err = RunIncomplete, "", err.Error()
	case err != nil:
		o.State, o.Output, o.Err = RunFailed, "", err.Error()
	}
	for _, s := range res.Stages {
		o.Stages = append(o.Stages, outcomeStage{Name: s.Name, Tasks: s.Tasks, Done: s.Done, Failed: s.Failed,
			RecordsIn: s.RecordsIn, RecordsOut: s.RecordsOut, Retries: s.Retries, Backups: s.Backups,
			Elapsed: s.Elapsed.Seconds(), Counters: s.Counters})
	}
	data, merr := json.MarshalIndent(o, "", "  ")
	if merr != nil {
		return merr
	}
	return writeFileAtomic(filepath.Join(j.dir, resultFile), append(data, '\n'))
}

// RunStatus describes a run directory.
type RunStatus struct {
	RunInfo
	Dir    string // the run's directory
	Legacy bool   // the directory is under LegacyStateDir
	State  RunState
	// Storage is the run's storage URI ("" = data through the job
	// server); OwnStorage says it is a folder of the run's directory.
	Storage    string
	OwnStorage bool
	Size       int64     // bytes of the run directory's files
	Ended      time.Time // zero until the run ended
	Elapsed    time.Duration
	Output     string // the output, once finished
	Records    int64  // its records
	Err        string // why the run failed
	Stages     []StageStatus
	Failed     []TaskFailure // tasks that ran out of attempts (failed.jsonl)
}

// StageStatus is one stage of a run: its tasks (-1 while not planned)
// and those the journal records as done, with their records and counter
// totals (see Count).
type StageStatus struct {
	Name                  string
	Tasks, Done, Failed   int
	RecordsIn, RecordsOut int64
	Counters              map[string]int64
}

// Age is how long ago the run ended, or was created if it has not.
func (s *RunStatus) Age(now time.Time) time.Duration {
	if !s.Ended.IsZero() {
		return now.Sub(s.Ended)
	}
	return now.Sub(s.Created)
}

// checkRunID refuses an id that is not one name in the state directory.
func checkRunID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, `/\`) {
		return fmt.Errorf("%w: invalid run id %q", ErrNoRun, id)
	}
	return nil
}

// StatRun describes run id under stateDir ("" = the default, or the
// legacy one: see LocateRun). It wraps ErrNoRun when there is no such
// run.
func StatRun(stateDir, id string) (*RunStatus, error) {
	if err := checkRunID(id); err != nil {
		return nil, err
	}
	dir, legacy := LocateRun(stateDir, id)
	return statRunDir(dir, legacy)
}

func statRunDir(dir string, legacy bool) (*RunStatus, error) {
	p, err := readPlan(dir)
	if err != nil {
		return nil, err
	}
	s := &RunStatus{RunInfo: RunInfo{Run: p.Run, Pipeline: p.Pipeline, File: p.File, Params: p.Params, Created: p.Created},
		Dir: dir, Legacy: legacy, Storage: p.Storage, OwnStorage: ownStorage(dir, p.Storage), State: RunIncomplete}
	s.Size = dirSize(dir)
	if data, err := os.ReadFile(filepath.Join(dir, "failed.jsonl")); err == nil {
		for line := range strings.Lines(string(data)) {
			var f TaskFailure
			if json.Unmarshal([]byte(line), &f) == nil {
				s.Failed = append(s.Failed, f)
			}
		}
	}
	entries, _ := readJournal(dir) // a torn or unreadable journal counts what it can
	done := make(map[stageTask]journalEntry)
	for _, e := range entries {
		done[stageTask{e.Stage, e.Task}] = e
	}
	complete := len(p.Stages) > 0
	for _, ps := range p.Stages {
		st := StageStatus{Name: ps.Name, Tasks: -1}
		if data, err := os.ReadFile(filepath.Join(dir, "stages", ps.Name, "chunks.json")); err == nil {
			var chunks []json.RawMessage
			if json.Unmarshal(data, &chunks) == nil {
				st.Tasks = len(chunks)
			}
		}
		for k, e := range done {
			if k.stage == ps.Name {
				st.Done++
				st.RecordsIn += e.RecordsIn
				st.RecordsOut += e.RecordsOut
				addCounters(&st.Counters, e.Counters)
			}
		}
		if st.Tasks < 0 || st.Done < st.Tasks {
			complete = false
		}
		s.Stages = append(s.Stages, st)
	}
	var o runOutcome
	if data, err := os.ReadFile(filepath.Join(dir, resultFile)); err == nil && json.Unmarshal(data, &o) == nil {
		s.State, s.Ended, s.Err = o.State, o.Ended, o.Err
		s.Elapsed = time.Duration(o.Elapsed * float64(time.Second))
		s.Output, s.Records = o.Output, o.OutputRecords
		s.Failed = o.Failed // failed.jsonl also has the failures of earlier attempts
		for i := range s.Stages {
			for _, ost := range o.Stages {
				if ost.Name == s.Stages[i].Name && s.Stages[i].Tasks < 0 {
					s.Stages[i].Tasks = ost.Tasks
				}
			}
		}
	} else {
		// A run from before result.json: its journal and plan tell.
		switch {
		case complete:
			s.State = RunFinished
		case len(s.Failed) > 0:
			s.State = RunFailed
		}
		if s.State != RunIncomplete {
			if fi, err := os.Stat(filepath.Join(dir, "journal.jsonl")); err == nil {
				s.Ended = fi.ModTime().UTC()
			}
		}
	}
	for i := range s.Stages {
		for _, f := range s.Failed {
			if f.Stage == s.Stages[i].Name {
				s.Stages[i].Failed++
			}
		}
	}
	if busy(dir) {
		s.State = RunRunning
	}
	return s, nil
}

// busy says whether a coordinator holds the run directory's lock.
func busy(dir string) bool {
	f, err := lockRun(dir)
	if err != nil {
		return errors.Is(err, ErrRunBusy)
	}
	f.Close()
	return false
}

// ownStorage says whether storage URI uri is a folder inside run
// directory dir (or there is no storage), so removing the directory
// removes the run's data.
func ownStorage(dir, uri string) bool {
	if uri == "" {
		return true
	}
	rest, ok := strings.CutPrefix(uri, "file://")
	if !ok {
		return false
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	p := filepath.FromSlash(rest)
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real
	}
	rel, err := filepath.Rel(abs, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// ListRuns describes the runs under stateDir, newest first. With
// stateDir "" that is DefaultStateDir() and, after it, the runs left
// under LegacyStateDir of the working folder. A directory without a plan
// is skipped.
func ListRuns(stateDir string) ([]*RunStatus, error) {
	type place struct {
		dir    string
		legacy bool
	}
	places := []place{{stateDir, false}}
	if stateDir == "" {
		places[0].dir = DefaultStateDir()
		if abs, err := filepath.Abs(LegacyStateDir); err == nil && abs != places[0].dir {
			places = append(places, place{LegacyStateDir, true})
		}
	}
	var runs []*RunStatus
	for _, pl := range places {
		ents, err := os.ReadDir(pl.dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var these []*RunStatus
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			s, err := statRunDir(filepath.Join(pl.dir, e.Name()), pl.legacy)
			if err != nil {
				continue
			}
			these = append(these, s)
		}
		sort.SliceStable(these, func(a, b int) bool { return these[a].Created.After(these[b].Created) })
		runs = append(runs, these...)
	}
	return runs, nil
}

// RemoveRun deletes run id's directory under stateDir ("" = as in
// StatRun) and, unless keepData, its data in a storage outside that
// directory (the run's prefix of an s3:// or shared store). A run a
// coordinator holds is refused with an error wrapping ErrRunBusy.
func RemoveRun(ctx context.Context, stateDir, id string, keepData bool) error {
	if err := checkRunID(id); err != nil {
		return err
	}
	dir, _ := LocateRun(stateDir, id)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("%w: %s", ErrNoRun, dir)
	}
	lock, err := lockRun(dir)
	if err != nil {
		return err
	}
	defer lock.Close()
	p, err := readPlan(dir)
	if err != nil && !errors.Is(err, ErrNoRun) {
		return err
	}
	if p != nil && !keepData && !ownStorage(dir, p.Storage) {
		if err := checkRunID(p.Run); err != nil {
			return err
		}
		st, err := storage.Open(ctx, p.Storage)
		if err != nil {
			return fmt.Errorf("flow: run %s's storage: %w", id, err)
		}
		if err := st.DeletePrefix(ctx, p.Run); err != nil {
			return fmt.Errorf("flow: deleting run %s's data in %s: %w", id, p.Storage, err)
		}
	}
	return os.RemoveAll(dir)
}
