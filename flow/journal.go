package flow

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

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
	// Counters are the winning attempt's counters.
	Counters map[string]int64 `json:"counters,omitempty"`
}

type stageTask struct {
	stage string
	task  int
}

// journal is a run's directory.
type journal struct {
	dir  string
	lock *os.File // holds the run's flock while open
	torn int64    // bytes of a torn last line cut from journal.jsonl at open
	// dataRemoved: the finished run's task outputs were removed; its
	// outcome says so (runOutcome.DataRemoved).
	dataRemoved bool

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
	if !plainJSON(e.Stage) || e.Stored || len(e.Files) > 0 || !plainNames(e.Counters) {
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
	if len(e.Counters) > 0 {
		b = append(b, `,"counters":{`...)
		for i, k := range sortedNames(e.Counters) {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, k...)
			b = append(b, `":`...)
			b = strconv.AppendInt(b, e.Counters[k], 10)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// plainNames reports whether every name of m needs no escaping in JSON.
func plainNames(m map[string]int64) bool {
	for k := range m {
		if !plainJSON(k) {
			return false
		}
	}
	return true
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
