package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// ImportedJob is a background job brought into a durable queue from
// another server's queue by ImportJobs.
type ImportedJob struct {
	Function string
	Unique   string
	// Priority is gearmand's number: 0 high, 1 normal, 2 low.
	Priority int
	Data     []byte
	// RunAt is when the job may run (SUBMIT_JOB_EPOCH's time); the zero
	// time, or one past, means now.
	RunAt time.Time
}

// ImportResult says what ImportJobs did.
type ImportResult struct {
	// Jobs is how many jobs were added: 0 when the queue had been
	// imported before.
	Jobs int
	// Already is true when a queue with the same jobs had been imported
	// into the directory before, from Source at Time.
	Already bool
	Source  string
	Time    time.Time
	// Digest identifies the imported queue: a SHA-256 of its jobs, in
	// any order.
	Digest string
}

// importTemp is where an import is written before it becomes a segment.
const importTemp = "import.tmp"

// ImportJobs adds jobs to the durable queue in dir (created if need
// be), after the jobs it holds and in the order given, once: the queue
// is identified by a digest of its jobs (the same jobs in any order),
// recorded in dir with source and the time, and a second import of the
// same jobs adds nothing. A server must not be running on dir (its lock
// is taken; ImportJobs fails if another process holds it).
//
// The jobs and the record of their import are written to a file of
// their own, synced, and renamed into the queue as its newest segment:
// a crash leaves either all of them or none.
func ImportJobs(dir, source string, jobs []ImportedJob) (ImportResult, error) {
	res := ImportResult{Source: source}
	for i, j := range jobs {
		if j.Function == "" {
			return res, fmt.Errorf("server: import from %s: job %d has no function name", source, i+1)
		}
		if j.Priority < 0 || j.Priority >= int(numPriorities) {
			return res, fmt.Errorf("server: import from %s: job %d (function %q, unique %q) has priority %d, want 0 (high), 1 (normal) or 2 (low)",
				source, i+1, j.Function, j.Unique, j.Priority)
		}
	}
	digest := importDigest(jobs)
	res.Digest = hex.EncodeToString(digest)

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("server: data directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return res, err
	}
	defer lock.Close()
	// A temporary file left by an import a crash cut short holds no job
	// the queue has.
	if err := os.Remove(filepath.Join(dir, importTemp)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("server: data directory: %w", err)
	}
	st, _, err := openLocked(dir)
	if err != nil {
		return res, err
	}
	defer st.closeFiles()
	if st.importDigests[string(digest)] {
		res.Already = true
		res.Source, res.Time = findImport(st.imports, digest)
		return res, nil
	}

	// The ids follow every id the queue has issued, not only those of
	// its live jobs: a handle a client got is never given to another job.
	next := st.lastID
	b := appendImport(nil, digest, source, len(jobs), time.Now())
	for _, ij := range jobs {
		next++
		var when int64
		if !ij.RunAt.IsZero() {
			when = ij.RunAt.UnixNano()
		}
		b = appendPut(b, storedJob{id: next, pri: priority(ij.Priority), when: when,
			fn: ij.Function, unique: ij.Unique, data: ij.Data})
	}
	tmp := filepath.Join(dir, importTemp)
	if err := writeFileSync(tmp, b); err != nil {
		os.Remove(tmp)
		return res, fmt.Errorf("server: data directory: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, segName(st.active+1))); err != nil {
		os.Remove(tmp)
		return res, fmt.Errorf("server: data directory: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return res, err
	}
	res.Jobs = len(jobs)
	return res, nil
}

// importDigest is a SHA-256 of jobs that does not depend on their
// order: sqlite may renumber rows (VACUUM), and gearmand's queue has no
// order.
func importDigest(jobs []ImportedJob) []byte {
	sums := make([][sha256.Size]byte, len(jobs))
	var b []byte
	for i, j := range jobs {
		b = appendString(b[:0], j.Function)
		b = appendString(b, j.Unique)
		b = binary.AppendVarint(b, int64(j.Priority))
		var when int64
		if !j.RunAt.IsZero() {
			when = j.RunAt.Unix()
		}
		b = binary.AppendVarint(b, when)
		b = appendString(b, string(j.Data))
		sums[i] = sha256.Sum256(b)
	}
	slices.SortFunc(sums, func(a, b [sha256.Size]byte) int { return bytes.Compare(a[:], b[:]) })
	h := sha256.New()
	for _, s := range sums {
		h.Write(s[:])
	}
	return h.Sum(nil)
}

func appendImport(b []byte, digest []byte, source string, jobs int, at time.Time) []byte {
	start := len(b)
	b = append(b, make([]byte, recHeader)...)
	b = append(b, recImport)
	b = appendString(b, string(digest))
	b = appendString(b, source)
	b = binary.AppendUvarint(b, uint64(jobs))
	b = binary.AppendVarint(b, at.Unix())
	return frameRecord(b, start)
}

// findImport returns the source and time of the import record of digest
// among recs.
func findImport(recs []byte, digest []byte) (string, time.Time) {
	for len(recs) > 0 {
		body, ok := readRecord(recs)
		if !ok {
			break
		}
		recs = recs[recHeader+len(body):]
		d := decoder{b: body[1:]}
		dg, src := d.bytes(), d.bytes()
		d.uvarint()
		at := d.varint()
		if d.err == nil && bytes.Equal(dg, digest) {
			return string(src), time.Unix(at, 0)
		}
	}
	return "", time.Time{}
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
