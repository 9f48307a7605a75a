package flow

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// ErrNoRun is returned when --resume names a run whose directory or plan
// does not exist.
var ErrNoRun = errors.New("flow: no such run")

// The run directory:
//
//	plan.json                 the run's plan: pipeline, params, storage, file chunks
//	journal.jsonl             one line per completed task (appended; fsynced at stage end)
//	data/                     the run's storage when it names none and runs embedded:
//	                          <run>/<stage>/task-NNNNNN/attempt-N/{part-NNNNN,out}.rec
//	                          (removed, with stages/*/*.rec, when the run finishes, unless Options.KeepData)
//	stages/<stage>/chunks.json       the stage's tasks' inputs, as planned
//	stages/<stage>/task-NNNNNN.rec   without storage: output of a completed task above maxPacked bytes
//	stages/<stage>/pack.rec   without storage: the stage's other tasks' outputs, one after another (see journalEntry)
//	stages/<stage>/tmp/       attempts in flight, shuffle spills, reduce inputs
//	failed.jsonl              tasks that ran out of attempts, one line each, appended by every attempt of the run
//	result.json               how the run ended (finished or failed, output, stages), written as Run returns;
//	                          removed when the run is resumed (see runOutcome)
//	lock                      flock(2)ed by the coordinator while the run is open

// plan is what a run records before it submits anything, so a resumed
// run does the same work.
type plan struct {
	Run      string            `json:"run"`
	Pipeline string            `json:"pipeline"` // the pipeline's name
	File     string            `json:"file,omitempty"`
	Params   map[string]string `json:"params,omitempty"` // -p overrides
	Created  time.Time         `json:"created"`
	Storage  string            `json:"storage,omitempty"` // the run's storage URI; "" = data through the job server
	Stages   []plannedStage    `json:"stages"`
}

type plannedStage struct {
	Name   string  `json:"name"`
	Chunks []chunk `json:"chunks,omitempty"` // file and glob inputs only; others are derived when the stage starts
}

func (j *journal) stageDir(stage string) string { return filepath.Join(j.dir, "stages", stage) }

func (j *journal) tmpDir(stage string) string { return filepath.Join(j.dir, "stages", stage, "tmp") }

func (j *journal) taskPath(stage string, task int) string {
	return filepath.Join(j.stageDir(stage), fmt.Sprintf("task-%06d.rec", task))
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
