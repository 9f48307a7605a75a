package flow

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gearflow/gearflow/flow/internal/msgp"
)

// maxPacked is the largest task output kept in memory and appended to
// the stage's pack file at commit; larger outputs stream to a file of
// their own. Creating and renaming a file per task bounds a run to about
// a thousand tasks a second on a common filesystem; appending to one
// file does not.
const maxPacked = 1 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// packFile is a stage's pack file, opened for appending.
type packFile struct {
	f    *os.File
	size int64
}

// loadPacked indexes the packed outputs among entries whose bytes are in
// their pack file with the right checksum. One that is missing or torn
// (the machine went down before the stage's fsync) is left out, so its
// task runs again; so are all of a stage's when its pack file does not
// exist. A pack file that exists but cannot be read is an error naming
// it: taking its outputs for missing would redo or lose work silently.
func (j *journal) loadPacked(entries []journalEntry) error {
	readers := map[string]*os.File{}
	defer func() {
		for _, f := range readers {
			if f != nil {
				f.Close()
			}
		}
	}()
	for _, e := range entries {
		if !e.Packed {
			continue
		}
		if e.Length > 0 {
			f, seen := readers[e.Stage]
			if !seen {
				var err error
				if f, err = openPack(j.packPath(e.Stage)); err != nil {
					return err
				}
				readers[e.Stage] = f
			}
			if f == nil || e.Length > maxPacked || e.Offset < 0 {
				continue
			}
			buf := make([]byte, e.Length)
			if _, err := f.ReadAt(buf, e.Offset); err != nil {
				if errors.Is(err, io.EOF) {
					continue // the bytes never reached the file
				}
				return fmt.Errorf("flow: pack: %w", err)
			}
			if crc32.Checksum(buf, crcTable) != e.CRC {
				continue
			}
		}
		j.packed[stageTask{e.Stage, e.Task}] = e
	}
	return nil
}

// openPack opens a stage's pack file for reading: nil (and no error)
// when it does not exist.
func openPack(path string) (*os.File, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("flow: pack: %w", err)
	}
	// A directory opens, and its reads fail; say what is wrong instead.
	fi, err := f.Stat()
	switch {
	case err != nil:
	case fi.IsDir():
		err = fmt.Errorf("%s is a directory", path)
	case !fi.Mode().IsRegular():
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flow: pack: %w", err)
	}
	return f, nil
}

func (j *journal) packPath(stage string) string { return filepath.Join(j.stageDir(stage), "pack.rec") }

// commitPacked appends a task's output to its stage's pack file, then
// journals it: the journal line is written only after the bytes it
// points at, within journalDelay of the return (see record).
func (j *journal) commitPacked(e journalEntry, data []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	e.Packed, e.Length, e.CRC = true, int64(len(data)), crc32.Checksum(data, crcTable)
	if len(data) > 0 {
		p := j.packs[e.Stage]
		if p == nil {
			f, err := os.OpenFile(j.packPath(e.Stage), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return fmt.Errorf("flow: pack: %w", err)
			}
			fi, err := f.Stat()
			if err != nil {
				f.Close()
				return fmt.Errorf("flow: pack: %w", err)
			}
			p = &packFile{f: f, size: fi.Size()}
			j.packs[e.Stage] = p
		}
		e.Offset = p.size
		n, err := p.f.Write(data)
		p.size += int64(n)
		if err != nil {
			return fmt.Errorf("flow: pack: %w", err)
		}
	}
	if err := j.writeLocked(e); err != nil {
		return err
	}
	j.packed[stageTask{e.Stage, e.Task}] = e
	return nil
}

// eachTaskRecord calls fn for every record of a completed task's output,
// packed or in its own file. It returns an error wrapping
// fs.ErrNotExist when the task has no output (it did not complete).
// Records are the caller's to keep.
func (j *journal) eachTaskRecord(stage string, task int, fn func(rawRecord) error) error {
	return j.eachTaskRaw(stage, task, func(key, value []byte) error {
		return fn(rawRecord{Key: string(key), Value: value})
	})
}

// eachTaskRaw is eachTaskRecord with the key as bytes valid only during
// the call, sparing a copy of keys the callee already holds; values are
// the callee's to keep.
func (j *journal) eachTaskRaw(stage string, task int, fn func(key, value []byte) error) error {
	j.mu.Lock()
	e, ok := j.packed[stageTask{stage, task}]
	j.mu.Unlock()
	if !ok {
		return eachRawRecord(j.taskPath(stage, task), fn)
	}
	if e.Length == 0 {
		return nil
	}
	f, err := os.Open(j.packPath(stage))
	if err != nil {
		// Not %w: the task completed, so this must not read as the
		// fs.ErrNotExist of a task with no output.
		return fmt.Errorf("flow: pack %s task %d: %v", stage, task, err)
	}
	defer f.Close()
	buf := make([]byte, e.Length)
	if _, err := f.ReadAt(buf, e.Offset); err != nil {
		return fmt.Errorf("flow: pack %s task %d: %w", stage, task, err)
	}
	c := msgp.NewCursor(buf)
	for c.Rest() > 0 {
		k, v, err := c.RawRecord()
		if err != nil {
			return fmt.Errorf("%w: pack %s task %d: %v", ErrMalformed, stage, task, err)
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// doneTasks returns the stage's completed tasks: those with a packed
// output and those with an output file, found in one directory listing.
func (j *journal) doneTasks(stage string) (map[int]bool, error) {
	done := map[int]bool{}
	j.mu.Lock()
	for k := range j.packed {
		if k.stage == stage {
			done[k.task] = true
		}
	}
	j.mu.Unlock()
	ents, err := os.ReadDir(j.stageDir(stage))
	if errors.Is(err, fs.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		var n int
		name := e.Name()
		if len(name) == len("task-000000.rec") && !e.IsDir() {
			if _, err := fmt.Sscanf(name, "task-%06d.rec", &n); err == nil && name == filepath.Base(j.taskPath(stage, n)) {
				done[n] = true
			}
		}
	}
	return done, nil
}

func (j *journal) taskDone(stage string, task int) bool {
	j.mu.Lock()
	_, packed := j.packed[stageTask{stage, task}]
	j.mu.Unlock()
	if packed {
		return true
	}
	_, err := os.Stat(j.taskPath(stage, task))
	return err == nil
}
