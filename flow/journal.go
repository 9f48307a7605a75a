package flow

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
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
//	stages/<stage>/task-NNNNNN.rec   output of a completed task above maxPacked bytes
//	stages/<stage>/pack.rec   outputs of the stage's other tasks, one after another (see journalEntry)
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
	Storage  string            `json:"storage,omitempty"` // the run's storage URI; "" = data through the job server
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
	// Packed: the task's output is not a file of its own but Length
	// bytes at Offset of the stage's pack file, whose CRC-32C is CRC (no
	// bytes at all for a task with no output).
	Packed bool   `json:"packed,omitempty"`
	Offset int64  `json:"off,omitempty"`
	Length int64  `json:"len,omitempty"`
	CRC    uint32 `json:"crc,omitempty"`
	// Stored: the task's output is in the run's storage, in Files (none
	// for a task with no output).
	Stored bool      `json:"stored,omitempty"`
	Files  []outFile `json:"files,omitempty"`
}

// maxPacked is the largest task output kept in memory and appended to
// the stage's pack file at commit; larger outputs stream to a file of
// their own. Creating and renaming a file per task bounds a run to about
// a thousand tasks a second on a common filesystem; appending to one
// file does not.
const maxPacked = 1 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type stageTask struct {
	stage string
	task  int
}

// journal is a run's directory.
type journal struct {
	dir  string
	lock *os.File // holds the run's flock while open
	torn int64    // bytes of a torn last line cut from journal.jsonl at open

	mu     sync.Mutex                 // guards the fields below
	f      *os.File                   // journal.jsonl
	packs  map[string]*packFile       // by stage, opened at the first packed commit
	packed map[stageTask]journalEntry // packed outputs whose bytes check out

	// Lines are written in groups: pending holds those not written yet,
	// at most journalDelay old, when a timer writes them.
	pending []byte
	line    []byte // scratch for a line being encoded
	timed   bool   // a timer will write pending
	werr    error  // the timer's failed write, reported by the next call
	closed  bool
}

// journalDelay is the longest a journal line waits to be written with
// others. A line lost with the process (killed within this time of a
// commit) only makes a resumed run do its task again.
//
// So a task's commit, and the EventTaskDone that follows it, come up to
// journalDelay before its line is in journal.jsonl, and until the
// stage's sync before the line is on disk: neither an event nor the
// return of record or commitPacked says the task will count as done on
// resume. A packed task whose line was lost runs again; a task with an
// output file of its own counts as done once its file is renamed into
// place (until a machine crash before the stage's sync undoes the
// rename), journaled or not.
const journalDelay = 20 * time.Millisecond

// journalGroup is the size of pending lines that are written at once.
const journalGroup = 64 << 10

// packFile is a stage's pack file, opened for appending.
type packFile struct {
	f    *os.File
	size int64
}

// openJournal opens (creating it if need be) the run directory dir and
// holds its lock until close. A torn last line of journal.jsonl, left
// by a process killed mid-write, is cut off first: lines appended after
// it would otherwise be glued onto the fragment and lost with it. The
// cut line's task is not done, so the run does it again.
func openJournal(dir string) (*journal, error) {
	if err := os.MkdirAll(filepath.Join(dir, "stages"), 0o755); err != nil {
		return nil, fmt.Errorf("flow: run directory: %w", err)
	}
	lock, err := lockRun(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "journal.jsonl")
	scan, err := scanJournal(path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("flow: journal: %w", err)
	}
	j := &journal{dir: dir, f: f, lock: lock, torn: scan.torn, packs: map[string]*packFile{}, packed: map[stageTask]journalEntry{}}
	if scan.torn > 0 {
		// The cut must reach the disk before lines appended after it:
		// otherwise a crash could bring the fragment back in front of
		// them.
		err := f.Truncate(scan.end)
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			j.close()
			return nil, fmt.Errorf("flow: journal: cutting a torn last line: %w", err)
		}
	}
	if err := j.loadPacked(scan.entries); err != nil {
		j.close()
		return nil, err
	}
	return j, nil
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
	c := &cursor{b: buf}
	for c.rest() > 0 {
		k, v, err := c.rawRecord()
		if err != nil {
			return fmt.Errorf("%w: pack %s task %d: %v", ErrMalformed, stage, task, err)
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	err := j.flushLocked()
	j.closed = true
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	for _, p := range j.packs {
		p.f.Close()
	}
	j.lock.Close()
	return err
}

func (j *journal) stageDir(stage string) string { return filepath.Join(j.dir, "stages", stage) }
func (j *journal) tmpDir(stage string) string   { return filepath.Join(j.dir, "stages", stage, "tmp") }

func (j *journal) taskPath(stage string, task int) string {
	return filepath.Join(j.stageDir(stage), fmt.Sprintf("task-%06d.rec", task))
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

// record appends e to journal.jsonl. The line is queued: it is written
// within journalDelay, not before record returns, and only then survives
// the process being killed; sync writes it at once and makes it survive
// the machine going down.
func (j *journal) record(e journalEntry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.writeLine(line)
}

func (j *journal) writeLocked(e journalEntry) error {
	j.line = appendEntry(j.line[:0], e)
	return j.writeLine(j.line)
}

// appendEntry appends e as JSON, as json.Marshal writes it, without
// reflection for the usual stage names: a line per committed task.
func appendEntry(b []byte, e journalEntry) []byte {
	if !plainJSON(e.Stage) {
		line, _ := json.Marshal(e)
		return append(b, line...)
	}
	b = append(b, `{"stage":"`...)
	b = append(b, e.Stage...)
	b = append(b, `","task":`...)
	b = strconv.AppendInt(b, int64(e.Task), 10)
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(e.Attempt), 10)
	b = append(b, `,"in":`...)
	b = strconv.AppendInt(b, e.RecordsIn, 10)
	b = append(b, `,"out":`...)
	b = strconv.AppendInt(b, e.RecordsOut, 10)
	b = append(b, `,"ms":`...)
	b = strconv.AppendInt(b, e.Millis, 10)
	if e.Packed {
		b = append(b, `,"packed":true`...)
	}
	if e.Offset != 0 {
		b = append(b, `,"off":`...)
		b = strconv.AppendInt(b, e.Offset, 10)
	}
	if e.Length != 0 {
		b = append(b, `,"len":`...)
		b = strconv.AppendInt(b, e.Length, 10)
	}
	if e.CRC != 0 {
		b = append(b, `,"crc":`...)
		b = strconv.AppendUint(b, uint64(e.CRC), 10)
	}
	return append(b, '}')
}

// plainJSON reports whether s needs no escaping in a JSON string, as
// encoding/json escapes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// writeLine queues a line; j.mu is held.
func (j *journal) writeLine(line []byte) error {
	if err := j.werr; err != nil {
		return err
	}
	j.pending = append(append(j.pending, line...), '\n')
	if len(j.pending) >= journalGroup {
		return j.flushLocked()
	}
	if !j.timed {
		j.timed = true
		time.AfterFunc(journalDelay, func() {
			j.mu.Lock()
			defer j.mu.Unlock()
			j.timed = false
			if !j.closed && j.werr == nil {
				_ = j.flushLocked() // sets werr, which the next call reports
			}
		})
	}
	return nil
}

// flushLocked writes the pending lines; j.mu is held. A failed write
// loses lines whose callers were told they were queued, so it sticks:
// every later journal call reports it.
func (j *journal) flushLocked() error {
	if j.werr != nil {
		return j.werr
	}
	if len(j.pending) == 0 {
		return nil
	}
	_, err := j.f.Write(j.pending)
	j.pending = j.pending[:0]
	if err != nil {
		j.werr = fmt.Errorf("flow: journal: %w", err)
	}
	return j.werr
}

// sync fsyncs the journal and the stage's directory, making the renames
// of its task outputs durable. A task whose rename is lost in a crash is
// simply run again on resume: its output file, not the journal, says
// whether it completed.
func (j *journal) sync(stage string) error {
	j.mu.Lock()
	err := j.flushLocked() // its error says "flow: journal" already
	if err == nil {
		if p := j.packs[stage]; p != nil {
			err = p.f.Sync()
		}
		if err == nil {
			err = j.f.Sync()
		}
		if err != nil {
			err = fmt.Errorf("flow: journal: %w", err)
		}
	}
	j.mu.Unlock()
	if err != nil {
		return err
	}
	if err := syncDir(j.stageDir(stage)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// ErrCorruptJournal is wrapped by the error of a run whose journal.jsonl
// has a line, other than a torn last one, that is not a journal entry.
// The error names the file and the line. Such a run is not resumed:
// which tasks it completed is unknown.
var ErrCorruptJournal = errors.New("flow: corrupt journal")

// maxJournalLine bounds a journal line. Lines are a few hundred bytes;
// a longer one is corrupt.
const maxJournalLine = 1 << 20

// journalScan is what scanJournal found in journal.jsonl.
type journalScan struct {
	entries []journalEntry
	end     int64 // offset just past the last newline
	torn    int64 // bytes after end: a last line without its newline
}

// readJournal reads the entries of the run directory's journal.jsonl
// (none if there is none). A torn last line (without its newline, as a
// process killed mid-write, or a reader racing the writer, sees it) is
// not an entry and not an error; any other line that is not an entry is
// an error wrapping ErrCorruptJournal.
func readJournal(dir string) ([]journalEntry, error) {
	scan, err := scanJournal(filepath.Join(dir, "journal.jsonl"))
	return scan.entries, err
}

// scanJournal reads journal.jsonl at path; see readJournal.
func scanJournal(path string) (journalScan, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return journalScan{}, nil
	}
	if err != nil {
		return journalScan{}, fmt.Errorf("flow: journal: %w", err)
	}
	defer f.Close()
	return parseJournal(f, path)
}

// parseJournal reads journal lines from rd; name, the file's, is for
// errors.
func parseJournal(rd io.Reader, name string) (journalScan, error) {
	var scan journalScan
	r := bufio.NewReaderSize(rd, 64<<10)
	var buf []byte // a line longer than r's buffer
	for n := 1; ; n++ {
		line, err := r.ReadSlice('\n') // valid until the next read
		size := int64(len(line))
		long := false // the line is past maxJournalLine; only its size is kept
		if err == bufio.ErrBufferFull {
			buf = append(buf[:0], line...)
			for err == bufio.ErrBufferFull {
				var part []byte
				part, err = r.ReadSlice('\n')
				size += int64(len(part))
				if long = long || len(buf)+len(part) > maxJournalLine; !long {
					buf = append(buf, part...)
				}
			}
			line = buf
		}
		if err == io.EOF {
			scan.torn = size
			return scan, nil
		}
		if err != nil {
			return journalScan{}, fmt.Errorf("flow: journal: %w", err)
		}
		scan.end += size
		if long {
			return journalScan{}, fmt.Errorf("%w: %s:%d: line longer than %d bytes", ErrCorruptJournal, name, n, maxJournalLine)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e journalEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return journalScan{}, fmt.Errorf("%w: %s:%d: %w", ErrCorruptJournal, name, n, err)
		}
		scan.entries = append(scan.entries, e)
	}
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
