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
