package flow

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ErrNoRun is returned when --resume names a run whose directory or plan
// does not exist.
var ErrNoRun = errors.New("flow: no such run")

// The run directory:
//
//	plan.json                 the run's plan: pipeline, params, file chunks
//	journal.jsonl             one line per completed task (appended; fsynced at stage end)
//	stages/<stage>/task-NNNNNN.rec   output of each completed task
//	stages/<stage>/tmp/       attempts in flight, shuffle spills, reduce inputs
//	deadletter.jsonl          failed tasks under continue/tolerate (default)

// plan is what a run records before it submits anything, so a resumed
// run does the same work.
type plan struct {
	Run      string            `json:"run"`
	Pipeline string            `json:"pipeline"` // the pipeline's name
	File     string            `json:"file,omitempty"`
	Params   map[string]string `json:"params,omitempty"` // -p overrides
	Created  time.Time         `json:"created"`
	Stages   []plannedStage    `json:"stages"`
}

type plannedStage struct {
	Name   string  `json:"name"`
	Chunks []chunk `json:"chunks,omitempty"` // file and glob inputs only; others are derived when the stage starts
}

// journalEntry records one completed task.
type journalEntry struct {
	Stage      string `json:"stage"`
	Task       int    `json:"task"`
	Attempt    int    `json:"attempt"`
	RecordsIn  int64  `json:"in"`
	RecordsOut int64  `json:"out"`
	Millis     int64  `json:"ms"`
}

// journal is a run's directory.
type journal struct {
	dir  string
	lock *os.File // holds the run's flock while open

	mu sync.Mutex // guards f
	f  *os.File   // journal.jsonl
}

func openJournal(dir string) (*journal, error) {
	if err := os.MkdirAll(filepath.Join(dir, "stages"), 0o755); err != nil {
		return nil, fmt.Errorf("flow: run directory: %w", err)
	}
	lock, err := lockRun(dir)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "journal.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("flow: journal: %w", err)
	}
	return &journal{dir: dir, f: f, lock: lock}, nil
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	err := j.f.Close()
	j.lock.Close()
	return err
}

func (j *journal) stageDir(stage string) string { return filepath.Join(j.dir, "stages", stage) }
func (j *journal) tmpDir(stage string) string   { return filepath.Join(j.dir, "stages", stage, "tmp") }

func (j *journal) taskPath(stage string, task int) string {
	return filepath.Join(j.stageDir(stage), fmt.Sprintf("task-%06d.rec", task))
}

func (j *journal) taskDone(stage string, task int) bool {
	_, err := os.Stat(j.taskPath(stage, task))
	return err == nil
}

// record appends e to journal.jsonl. The write survives the process
// being killed; sync makes it survive the machine going down.
func (j *journal) record(e journalEntry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("flow: journal: %w", err)
	}
	return nil
}

// sync fsyncs the journal and the stage's directory, making the renames
// of its task outputs durable. A task whose rename is lost in a crash is
// simply run again on resume: its output file, not the journal, says
// whether it completed.
func (j *journal) sync(stage string) error {
	j.mu.Lock()
	err := j.f.Sync()
	j.mu.Unlock()
	if err != nil {
		return fmt.Errorf("flow: journal: %w", err)
	}
	if err := syncDir(j.stageDir(stage)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// entries reads journal.jsonl; a torn last line (a crash mid-write) is
// ignored.
func readJournal(dir string) ([]journalEntry, error) {
	f, err := os.Open(filepath.Join(dir, "journal.jsonl"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []journalEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e journalEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

func (j *journal) writePlan(p *plan) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(j.dir, "plan.json"), append(data, '\n'))
}

func readPlan(dir string) (*plan, error) {
	data, err := os.ReadFile(filepath.Join(dir, "plan.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no plan.json", ErrNoRun, dir)
	}
	if err != nil {
		return nil, err
	}
	var p plan
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("flow: %s/plan.json: %w", dir, err)
	}
	return &p, nil
}

// writeFileAtomic writes data to path through a temporary file in the
// same directory: write, fsync, rename, fsync the directory. A reader
// sees the old file or the whole new one, even across a crash.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	return commitFile(tmp, path)
}

// commitFile fsyncs and closes f, renames it to path and fsyncs path's
// directory.
func commitFile(f *os.File, path string) error {
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// RunInfo is what a run's plan records about how it was started.
type RunInfo struct {
	Run      string
	Pipeline string            // the pipeline's name
	File     string            // the pipeline file, absolute ("" if not recorded)
	Params   map[string]string // the -p overrides
	Created  time.Time
}

// ReadRunInfo reads the plan of run id under stateDir ("" = the default
// state directory). It wraps ErrNoRun when there is no such run.
func ReadRunInfo(stateDir, id string) (RunInfo, error) {
	p, err := readPlan(RunDir(stateDir, id))
	if err != nil {
		return RunInfo{}, err
	}
	return RunInfo{Run: p.Run, Pipeline: p.Pipeline, File: p.File, Params: p.Params, Created: p.Created}, nil
}
