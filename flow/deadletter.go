package flow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gearflow/gearflow/flow/spec"
)

// Failed tasks' dead letters.

// deadLetter appends failed tasks to the run's failed.jsonl and to the
// stage's dead-letter file, if it names one.
func (c *coordinator) deadLetter(st *spec.Stage, fs []TaskFailure) error {
	paths := []string{filepath.Join(c.j.dir, "failed.jsonl")}
	if st.DeadLetter != "" && st.OnFailure.Mode != spec.FailFast {
		paths = append(paths, st.DeadLetter)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, f := range fs {
		type deadLetter struct {
			Run string `json:"run"`
			TaskFailure
		}
		enc.Encode(deadLetter{Run: c.run, TaskFailure: f})
	}
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("flow: dead letter: %w", err)
		}
		_, err = f.Write(buf.Bytes())
		if err == nil {
			err = f.Sync()
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("flow: dead letter: %w", err)
		}
	}
	return nil
}

// badLetters appends the bad records a committed attempt skipped to the
// run's bad.jsonl and to the stage's dead-letter file, if it names one:
// one JSON object a record, naming its stage, task, place, error and
// the record itself. Only the winning attempt's are written, so a
// retried or backed-up task never lists a record twice; they are written
// before the attempt is journaled, so a coordinator killed between the
// two writes them again when the run is resumed (at least once, never
// lost).
func (c *coordinator) badLetters(st *spec.Stage, task, attempt int, bad []BadRecord) error {
	if len(bad) == 0 {
		return nil
	}
	type badLetter struct {
		Run     string `json:"run"`
		Stage   string `json:"stage"`
		Task    int    `json:"task"`
		Attempt int    `json:"attempt"`
		BadRecord
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, b := range bad {
		enc.Encode(badLetter{Run: c.run, Stage: st.Name, Task: task, Attempt: attempt, BadRecord: b})
	}
	paths := []string{filepath.Join(c.j.dir, "bad.jsonl")}
	if st.DeadLetter != "" {
		paths = append(paths, st.DeadLetter)
	}
	c.log.Warn("skipped bad records", "stage", st.Name, "task", task, "records", len(bad), "first", bad[0].Where, "err", bad[0].Err)
	return appendFiles(paths, buf.Bytes())
}

// appendFiles appends data to each file of paths, making their folders,
// and syncs it.
func appendFiles(paths []string, data []byte) error {
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("flow: dead letter: %w", err)
		}
		_, err = f.Write(data)
		if err == nil {
			err = f.Sync()
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("flow: dead letter: %w", err)
		}
	}
	return nil
}

// skipBadOf returns a stage's skip_bad_records as a task payload carries
// it: "10", "1%", or "" for none.
func skipBadOf(st *spec.Stage) string {
	if st.SkipBadRecords.Zero() {
		return ""
	}
	return st.SkipBadRecords.String()
}
