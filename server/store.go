package server

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The durable queue (Config.DataDir): background jobs are kept in a log
// of checksummed records, one file per segment, named by a counter
// ("0000000000000001.log"). A record is
//
//	length uint32 | crc32c(body) uint32 | body
//
// big-endian, and the body is one of:
//
//	put:     1, id, pri, retries, when, flags, fn, unique, reducer, [sched], data
//	delete:  2, id
//	retries: 3, id, retries
//	import:  4, digest, source, jobs, unix time
//	ids:     5, mark
//
// with numbers as uvarints (when as a varint) and strings as a uvarint
// length then the bytes. A job's id is its handle counter, which a
// restart continues, so every record of a job has one key whatever its
// unique ("" and "-" jobs never collide, as they do in gearmand's
// queues). An ids record says that no job id above its mark has been
// issued: ids are reserved a block at a time (reserveIDs), so that a
// restart never issues a handle again, a foreground job's or a finished
// job's included, which a client may still hold. Replay reads the
// segments in order and keeps the last put of each id not deleted
// since; a record cut short or failing its checksum ends the log (a
// torn last write), and is cut off.
//
// One goroutine (run) writes: submissions append their records to a
// buffer under store.mu and wait; the writer takes the whole buffer,
// writes it and syncs once, so the submissions that queued during a
// sync share the next one (group commit). Deletes and retry counts are
// written with the next batch but do not ask for a sync of their own:
// a lost delete re-runs a finished job after a crash (at-least-once).
// Nothing here runs under Server.mu except append, which copies.

const (
	recPut     = 1
	recDelete  = 2
	recRetries = 3
	recImport  = 4 // a queue imported from elsewhere (store_import.go)
	recIDs     = 5 // the high-water mark of the job ids issued

	recHeader = 8
	// maxRecord bounds a record's length as read back: anything larger
	// is a torn or damaged header.
	maxRecord = 1 << 31

	// Compaction: when records of ended jobs are more than compactRatio
	// times the live ones and the log holds more than compactMin bytes,
	// the live records are copied to a new segment and the old removed.
)

// idBlock is how many job ids a reservation covers (reserveIDs). The
// server asks for the next block when half of the current one is
// left, so a reservation costs one sync per idBlock/2 jobs and is
// synced long before the ids run out. A restart skips what is left of
// the block, so handles jump by up to idBlock there.
const idBlock = 1 << 16

// Compaction thresholds (variables for tests).
var (
	compactRatio int64 = 4
	compactMin   int64 = 32 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// storedJob is a job as the store keeps it.
type storedJob struct {
	id       uint64
	pri      priority
	retries  uint16
	when     int64 // unix nanoseconds; 0 = runnable now
	fn       string
	unique   string
	reducer  string
	schedule *schedule
	data     []byte
}

// recLoc is where a live job's put record is on disk.
type recLoc struct {
	seg uint64
	off int64
	n   int64 // whole record, header included
	// retries is the job's retry count when a retries record came after
	// the put (compaction writes it again after the put), else 0.
	retries uint16
}

// store is the durable queue of one data directory.
type store struct {
	dir string

	mu      sync.Mutex
	cond    *sync.Cond // signalled when synced or err changes, or work arrives
	buf     []byte     // records waiting for the writer
	bufIDs  []pendingPut
	seq     uint64 // last record appended
	needSeq uint64 // last appended record that must be synced
	synced  uint64 // every record up to here is on disk (synced if asked)
	err     error  // the log cannot be written: the store takes no more jobs
	// failures are the tickets of batches whose write failed (a full
	// disk) and was undone, oldest first, adjacent ones merged.
	failures []failedBatch
	closing  bool
	live     map[uint64]recLoc // live jobs; off -1 while still in buf
	dead     int64             // bytes of records no live job needs
	total    int64             // bytes in the segments
	// mark is the highest job id reserved (reserveIDs): no id above it
	// has been issued. Written at the head of every new segment.
	mark uint64
	// lastID is the highest job id issued before the store was opened,
	// as far as the log knows (its marks and the ids of its jobs): the
	// server issues ids after it. Immutable.
	lastID uint64

	// Owned by the writer goroutine:
	files  map[uint64]*os.File // open segments, for reading in compaction
	active uint64              // the segment being appended to
	f      *os.File
	size   int64 // of the active segment
	// noCompactUntil: a compaction that failed (for want of space) is
	// not tried again before then.
	noCompactUntil time.Time
	// compactDue: the store started on the old segments, as the disk
	// had no room to rewrite them (reuseSegments): compact as soon as
	// there is room.
	compactDue bool

	syncs atomic.Int64 // fsyncs of the log, for tests

	syncTime latencyHist // time each fsync of the log took (metrics.go)
	// imports are the import records replayed, written again at the
	// head of every new segment so that compaction keeps them. Set
	// before the writer starts; read only by it after.
	imports       []byte
	importDigests map[string]bool

	done chan struct{} // closed when the writer has ended
	lock *os.File      // holds the directory's lock until close
}

// failedBatch is a range of tickets, first to last, whose records could
// not be written: their submissions get err.
type failedBatch struct {
	first, last uint64
	err         error
}

// maxFailures bounds the failed ranges kept. Each outage of the disk
// merges into one range, and a submission looks its ticket up right
// after its batch, so only the newest few are ever asked for.
const maxFailures = 1024

// retryDelay is how long the writer waits after a failed write before
// it tries the records it still holds (deletes, retry counts) again.
const retryDelay = 50 * time.Millisecond

// pendingPut is a put record in buf: its id and where in buf it starts.
type pendingPut struct {
	id  uint64
	off int
	n   int
}

func segName(n uint64) string { return fmt.Sprintf("%016d.log", n) }

// openStore opens (creating) the queue in dir and returns it with the
// jobs it holds, in id order.
func openStore(dir string) (*store, []storedJob, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("server: data directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, nil, err
	}
	st, jobs, err := openLocked(dir)
	if err != nil {
		lock.Close()
		return nil, nil, err
	}
	st.lock = lock
	go st.run()
	return st, jobs, nil
}

func openLocked(dir string) (*store, []storedJob, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return nil, nil, err
	}
	rs := replayState{jobs: make(map[uint64]storedJob), imports: make(map[string]bool), locs: make(map[uint64]recLoc)}
	var total int64
	for i, n := range segs {
		rs.seg = n
		size, err := replaySegment(filepath.Join(dir, segName(n)), i == len(segs)-1, &rs)
		if err != nil {
			return nil, nil, err
		}
		total += size
	}
	list := make([]storedJob, 0, len(rs.jobs))
	for _, j := range rs.jobs {
		list = append(list, j)
	}
	slices.SortFunc(list, func(a, b storedJob) int { return cmp.Compare(a.id, b.id) })

	st := &store{dir: dir, live: make(map[uint64]recLoc, len(list)), files: make(map[uint64]*os.File), done: make(chan struct{}),
		imports: rs.importRecs, importDigests: rs.imports}
	st.cond = sync.NewCond(&st.mu)
	st.lastID = rs.mark
	if len(list) > 0 {
		st.lastID = max(st.lastID, list[len(list)-1].id)
	}
	st.mark = st.lastID + idBlock
	err = st.rewrite(segs, list)
	if err != nil && noSpace(err) {
		err = st.reuseSegments(segs, list, rs.locs, total)
	}
	if err != nil {
		st.closeFiles()
		return nil, nil, err
	}
	return st, list, nil
}

// rewrite starts afresh: the live jobs go to a new segment, after the
// imports and the reservation of the first block of ids, and the old
// segments go. When it fails before removing any (a full disk) the new
// segment is removed and the log is as it was.
func (st *store) rewrite(segs []uint64, list []storedJob) error {
	next := uint64(1)
	if len(segs) > 0 {
		next = segs[len(segs)-1] + 1
	}
	if err := st.openSegment(next); err != nil {
		return err
	}
	b := slices.Clone(st.imports)
	b = appendIDs(b, st.mark)
	for _, j := range list {
		start := len(b)
		b = appendPut(b, j)
		st.live[j.id] = recLoc{seg: next, off: int64(start), n: int64(len(b) - start)}
	}
	if err := st.writeSync(b); err != nil {
		st.f.Close()
		delete(st.files, next)
		st.f = nil
		clear(st.live)
		if rerr := os.Remove(filepath.Join(st.dir, segName(next))); rerr != nil {
			return fmt.Errorf("server: data directory: %w; removing the new segment: %w", err, rerr)
		}
		return fmt.Errorf("server: data directory: %w", err)
	}
	for _, n := range segs {
		if err := os.Remove(filepath.Join(st.dir, segName(n))); err != nil {
			return fmt.Errorf("server: data directory: %w", err)
		}
	}
	if err := syncDir(st.dir); err != nil {
		return err
	}
	st.total = st.size
	return nil
}

// reuseSegments starts on the segments as they are, when the disk has
// no room to rewrite them: new records are appended to the last one,
// and the writer compacts as soon as there is room (compactDue). The
// reservation of ids is the first record the writer writes, retried
// until there is room for it.
func (st *store) reuseSegments(segs []uint64, list []storedJob, locs map[uint64]recLoc, total int64) error {
	if len(segs) == 0 {
		if err := st.openSegment(1); err != nil {
			return err
		}
	}
	for _, n := range segs {
		f, err := os.OpenFile(filepath.Join(st.dir, segName(n)), os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("server: data directory: %w", err)
		}
		st.files[n] = f
	}
	if len(segs) > 0 {
		last := segs[len(segs)-1]
		f := st.files[last]
		size, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return fmt.Errorf("server: data directory: %w", err)
		}
		st.active, st.f, st.size = last, f, size
	}
	var live int64
	for _, j := range list {
		loc := locs[j.id]
		st.live[j.id] = loc
		live += loc.n
	}
	st.total, st.dead = total, max(total-live, 0)
	st.compactDue = true
	st.buf = appendIDs(st.buf, st.mark)
	st.seq, st.needSeq = 1, 1
	return nil
}

// noSpace reports whether err says the disk (or the user's quota) is
// full.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// closeFiles closes the segments the store has open.
func (st *store) closeFiles() {
	for n, f := range st.files {
		f.Close()
		delete(st.files, n)
	}
}

func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("server: data directory: %w", err)
	}
	var segs []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, n)
	}
	slices.Sort(segs)
	return segs, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("server: data directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("server: data directory: %w", err)
	}
	return nil
}

// replaySegment applies the records of one segment (rs.seg) to rs and
// returns the segment's size. A torn or damaged record ends it; in the
// last segment that is the write a crash cut short, and the file is
// truncated there.
func replaySegment(path string, last bool, rs *replayState) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("server: data directory: %w", err)
	}
	off := 0
	for off < len(b) {
		body, ok := readRecord(b[off:])
		if !ok {
			break
		}
		rs.off = int64(off)
		if err := rs.apply(b[off:off+recHeader+len(body)], body); err != nil {
			return 0, fmt.Errorf("server: %s at offset %d: %w", path, off, err)
		}
		off += recHeader + len(body)
	}
	if off < len(b) {
		if !last {
			return 0, fmt.Errorf("server: %s: damaged record at offset %d of %d bytes (not the last segment, so not a torn write)", path, off, len(b))
		}
		// New records follow the whole ones: in a new segment, or in
		// this one when there is no room for a new one.
		if err := os.Truncate(path, int64(off)); err != nil {
			return 0, fmt.Errorf("server: data directory: %w", err)
		}
	}
	return int64(off), nil
}

// readRecord returns the body of the record at the start of b, or false
// when it is cut short or fails its checksum.
func readRecord(b []byte) ([]byte, bool) {
	if len(b) < recHeader {
		return nil, false
	}
	n := binary.BigEndian.Uint32(b)
	if n == 0 || n >= maxRecord || uint64(n) > uint64(len(b)-recHeader) {
		return nil, false
	}
	body := b[recHeader : recHeader+int(n)]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(b[4:]) {
		return nil, false
	}
	return body, true
}

var errRecord = errors.New("malformed record")

// replayState is what the records replayed so far amount to.
type replayState struct {
	jobs       map[uint64]storedJob
	imports    map[string]bool // digests of the queues imported
	importRecs []byte          // their records, header included
	mark       uint64          // the highest ids mark
	// locs is where the live jobs' put records are, and seg and off
	// where the record being applied is.
	locs map[uint64]recLoc
	seg  uint64
	off  int64
}

// apply applies one record: rec is the whole of it, body its body.
func (rs *replayState) apply(rec, body []byte) error {
	jobs := rs.jobs
	d := decoder{b: body[1:]}
	switch body[0] {
	case recImport:
		digest := d.bytes()
		d.bytes() // source
		d.uvarint()
		d.varint()
		if d.err != nil || len(d.b) != 0 {
			return errRecord
		}
		if !rs.imports[string(digest)] {
			rs.imports[string(digest)] = true
			rs.importRecs = append(rs.importRecs, rec...)
		}
	case recIDs:
		mark := d.uvarint()
		if d.err != nil || len(d.b) != 0 {
			return errRecord
		}
		rs.mark = max(rs.mark, mark)
	case recPut:
		j := d.put()
		if d.err != nil {
			return d.err
		}
		jobs[j.id] = j
		rs.locs[j.id] = recLoc{seg: rs.seg, off: rs.off, n: int64(len(rec))}
	case recDelete:
		id := d.uvarint()
		if d.err != nil {
			return d.err
		}
		delete(jobs, id)
		delete(rs.locs, id)
	case recRetries:
		id, r := d.uvarint(), d.uvarint()
		if d.err != nil {
			return d.err
		}
		if j, ok := jobs[id]; ok {
			j.retries = uint16(min(r, 1<<16-1))
			jobs[id] = j
			loc := rs.locs[id]
			loc.retries = j.retries
			rs.locs[id] = loc
		}
	default:
		return errRecord
	}
	return nil
}

// appendRecord frames body (which the caller appended to b at start).
func frameRecord(b []byte, start int) []byte {
	body := b[start+recHeader:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(body)))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(body, crcTable))
	return b
}

func appendPut(b []byte, j storedJob) []byte {
	start := len(b)
	b = append(b, make([]byte, recHeader)...)
	b = append(b, recPut)
	b = binary.AppendUvarint(b, j.id)
	b = append(b, byte(j.pri))
	b = binary.AppendUvarint(b, uint64(j.retries))
	b = binary.AppendVarint(b, j.when)
	var flags byte
	if j.schedule != nil {
		flags |= 1
	}
	b = append(b, flags)
	b = appendString(b, j.fn)
	b = appendString(b, j.unique)
	b = appendString(b, j.reducer)
	if sc := j.schedule; sc != nil {
		for _, v := range [5]int{sc.minute, sc.hour, sc.mday, sc.month, sc.wday} {
			b = binary.AppendVarint(b, int64(v))
		}
	}
	b = binary.AppendUvarint(b, uint64(len(j.data)))
	b = append(b, j.data...)
	return frameRecord(b, start)
}

// appendIDs appends an ids record: no job id above mark was issued.
func appendIDs(b []byte, mark uint64) []byte {
	start := len(b)
	b = append(b, make([]byte, recHeader)...)
	b = append(b, recIDs)
	b = binary.AppendUvarint(b, mark)
	return frameRecord(b, start)
}

// appendRetries appends the retries record of job id.
func appendRetries(b []byte, id uint64, retries uint16) []byte {
	start := len(b)
	b = append(b, make([]byte, recHeader)...)
	b = append(b, recRetries)
	b = binary.AppendUvarint(b, id)
	b = binary.AppendUvarint(b, uint64(retries))
	return frameRecord(b, start)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.err = errRecord
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errRecord
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) put() storedJob {
	var j storedJob
	j.id = d.uvarint()
	j.pri = priority(d.byte())
	j.retries = uint16(min(d.uvarint(), 1<<16-1))
	j.when = d.varint()
	flags := d.byte()
	j.fn = string(d.bytes())
	j.unique = string(d.bytes())
	j.reducer = string(d.bytes())
	if flags&1 != 0 {
		var v [5]int
		for i := range v {
			v[i] = int(d.varint())
		}
		j.schedule = &schedule{minute: v[0], hour: v[1], mday: v[2], month: v[3], wday: v[4]}
	}
	j.data = bytes.Clone(d.bytes()) // not the whole segment's buffer
	if d.err == nil && (j.pri >= numPriorities || len(d.b) != 0) {
		d.err = errRecord
	}
	return j
}

// put queues j's record and returns the ticket to wait for. Called
// under Server.mu: it only copies.
func (st *store) put(j storedJob) uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err != nil {
		return st.seq + 1 // never synced: wait returns the error
	}
	start := len(st.buf)
	st.buf = appendPut(st.buf, j)
	st.bufIDs = append(st.bufIDs, pendingPut{id: j.id, off: start, n: len(st.buf) - start})
	st.live[j.id] = recLoc{off: -1}
	st.seq++
	st.needSeq = st.seq
	st.cond.Broadcast()
	return st.seq
}

// del queues the delete record of job id, without asking for a sync.
func (st *store) del(id uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	loc, ok := st.live[id]
	if !ok || st.err != nil {
		return
	}
	delete(st.live, id)
	start := len(st.buf)
	st.buf = append(st.buf, make([]byte, recHeader)...)
	st.buf = append(st.buf, recDelete)
	st.buf = binary.AppendUvarint(st.buf, id)
	st.buf = frameRecord(st.buf, start)
	st.dead += loc.n + int64(len(st.buf)-start)
	st.seq++
	st.cond.Broadcast()
}

// setRetries queues job id's new retry count, without asking for a sync.
func (st *store) setRetries(id uint64, retries uint16) {
	st.mu.Lock()
	defer st.mu.Unlock()
	loc, ok := st.live[id]
	if !ok || st.err != nil {
		return
	}
	loc.retries = retries // for compaction, which copies the put
	st.live[id] = loc
	start := len(st.buf)
	st.buf = appendRetries(st.buf, id, retries)
	st.dead += int64(len(st.buf) - start) // the put record still holds the job
	st.seq++
	st.cond.Broadcast()
}

// reserveIDs records that job ids up to mark may be issued, and asks
// for a sync. Called under Server.mu: it only copies.
func (st *store) reserveIDs(mark uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if mark <= st.mark || st.err != nil {
		return
	}
	st.mark = mark
	st.buf = appendIDs(st.buf, mark)
	st.seq++
	st.needSeq = st.seq
	st.cond.Broadcast()
}

// reserved returns the highest job id reserved.
func (st *store) reserved() uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.mark
}

// last returns the ticket of the last record queued: waiting for it
// waits for every record queued so far.
func (st *store) last() uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.seq
}

// wait blocks until the record of ticket seq is synced.
func (st *store) wait(seq uint64) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	for st.synced < seq && st.err == nil {
		st.cond.Wait()
	}
	if st.synced >= seq {
		for i := len(st.failures) - 1; i >= 0 && st.failures[i].last >= seq; i-- {
			if f := st.failures[i]; f.first <= seq {
				return f.err
			}
		}
		return nil
	}
	return st.err
}

// run is the writer goroutine.
//
// A write that fails (ENOSPC: the disk is full) is undone: the segment
// is cut back to where the batch began, the submissions of the batch
// get the error, and the other records of the batch (deletes, retry
// counts: nobody waits for them) are kept for the next batch. The
// store goes on, so it recovers by itself when space comes back. Only
// a log that cannot be cut back, or a failed sync (after which the
// kernel may have dropped the written pages), stops the store.
func (st *store) run() {
	defer close(st.done)
	var spare []byte
	var spareIDs []pendingPut
	for {
		st.mu.Lock()
		for len(st.buf) == 0 && !st.closing {
			st.cond.Wait()
		}
		if len(st.buf) == 0 && st.closing {
			st.mu.Unlock()
			return
		}
		buf, ids, seq, first := st.buf, st.bufIDs, st.seq, st.synced+1
		mustSync := st.needSeq > st.synced || st.closing
		st.buf, st.bufIDs = spare[:0], spareIDs[:0]
		compact := (st.compactDue || st.dead > compactMin && st.dead > compactRatio*(st.total-st.dead)) &&
			time.Now().After(st.noCompactUntil)
		st.mu.Unlock()

		if compact {
			if err := st.compact(); err != nil {
				if !errors.Is(err, errCompactUndone) {
					st.stop(err)
					return
				}
				// The batch may still fit the active segment.
				st.noCompactUntil = time.Now().Add(10 * time.Second)
			} else {
				st.compactDue = false
			}
		}
		base := st.size
		var err error
		if mustSync {
			err = st.writeSync(buf)
		} else {
			err = st.write(buf)
		}
		if err != nil && !errors.Is(err, errSync) {
			if uerr := st.truncate(base); uerr != nil {
				err = fmt.Errorf("%w; cutting the failed write off: %w", err, uerr)
			} else {
				if !st.failed(buf, ids, first, seq, err) {
					st.stop(err)
					return
				}
				spare, spareIDs = nil, nil
				time.Sleep(retryDelay)
				continue
			}
		}
		if err != nil {
			st.stop(err)
			return
		}
		st.mu.Lock()
		for _, p := range ids {
			if loc, ok := st.live[p.id]; ok && loc.off < 0 {
				st.live[p.id] = recLoc{seg: st.active, off: base + int64(p.off), n: int64(p.n), retries: loc.retries}
			}
		}
		st.total += int64(len(buf))
		st.synced = seq
		st.cond.Broadcast()
		st.mu.Unlock()
		if cap(buf) <= 4<<20 {
			spare, spareIDs = buf, ids
		} else {
			spare, spareIDs = nil, nil
		}
	}
}

// errSync marks a failed fsync (writeSync).
var errSync = errors.New("sync")

// failed settles a batch whose write failed and was cut off: its
// submissions (tickets first to seq) get err, their jobs leave live,
// and its other records go back to the head of buf. It reports false
// when the store is closing: nothing more will try them.
func (st *store) failed(buf []byte, ids []pendingPut, first, seq uint64, err error) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closing {
		return false
	}
	for _, p := range ids {
		if loc, ok := st.live[p.id]; ok && loc.off < 0 {
			delete(st.live, p.id)
		}
	}
	var keep []byte
	for off := 0; off < len(buf); {
		body, _ := readRecord(buf[off:]) // framed here: always whole
		n := recHeader + len(body)
		if body[0] != recPut {
			keep = append(keep, buf[off:off+n]...)
		}
		off += n
	}
	if len(keep) > 0 {
		for i := range st.bufIDs {
			st.bufIDs[i].off += len(keep)
		}
		st.buf = append(keep, st.buf...)
	}
	err = fmt.Errorf("server: durable queue: %w", err)
	if n := len(st.failures); n > 0 && st.failures[n-1].last+1 == first {
		st.failures[n-1].last = seq
	} else {
		if n == maxFailures {
			st.failures = slices.Delete(st.failures, 0, 1)
		}
		st.failures = append(st.failures, failedBatch{first: first, last: seq, err: err})
	}
	st.synced = seq
	st.cond.Broadcast()
	return true
}

// stop ends the store after an error it cannot undo: waiters get it.
func (st *store) stop(err error) {
	st.mu.Lock()
	if st.err == nil {
		st.err = fmt.Errorf("server: durable queue: %w", err)
	}
	st.cond.Broadcast()
	st.mu.Unlock()
	st.fail()
}

// truncate cuts the active segment back to size after a failed write.
func (st *store) truncate(size int64) error {
	if err := st.f.Truncate(size); err != nil {
		return err
	}
	if _, err := st.f.Seek(size, io.SeekStart); err != nil {
		return err
	}
	st.size = size
	return nil
}

// fail ends the writer after a write error: waiters get the error.
func (st *store) fail() {
	for _, f := range st.files {
		f.Close()
	}
}

func (st *store) openSegment(n uint64) error {
	f, err := os.OpenFile(filepath.Join(st.dir, segName(n)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("server: data directory: %w", err)
	}
	st.files[n] = f
	st.active, st.f, st.size = n, f, 0
	return nil
}

func (st *store) write(b []byte) error {
	n, err := st.f.Write(b)
	st.size += int64(n)
	return err
}

func (st *store) writeSync(b []byte) error {
	if err := st.write(b); err != nil {
		return err
	}
	st.syncs.Add(1)
	start := nowNanos()
	err := st.f.Sync()
	st.syncTime.observe(nowNanos() - start)
	if err != nil {
		return fmt.Errorf("%w: %w", errSync, err)
	}
	return nil
}

// errCompactUndone marks a compaction that failed before it removed
// anything (a full disk): the new segment is gone and the log is as it
// was.
var errCompactUndone = errors.New("compaction undone")

// compact copies the live records to a new segment and removes the
// older ones. Records queued meanwhile wait in buf and are written
// after, into the new segment, so a delete always follows its put.
func (st *store) compact() error {
	st.mu.Lock()
	deadBefore := st.dead
	mark := st.mark
	type item struct {
		id  uint64
		loc recLoc
	}
	items := make([]item, 0, len(st.live))
	for id, loc := range st.live {
		if loc.off >= 0 {
			items = append(items, item{id, loc})
		}
	}
	st.mu.Unlock()
	slices.SortFunc(items, func(a, b item) int { return cmp.Compare(a.id, b.id) })

	old := make([]uint64, 0, len(st.files))
	for n := range st.files {
		old = append(old, n)
	}
	prevActive, prevF, prevSize := st.active, st.f, st.size
	if err := st.openSegment(st.active + 1); err != nil {
		return fmt.Errorf("%w: %w", errCompactUndone, err)
	}
	moved := make(map[uint64]recLoc, len(items))
	copyLive := func() error {
		if err := st.write(appendIDs(slices.Clone(st.imports), mark)); err != nil {
			return err
		}
		var rec []byte
		for _, it := range items {
			rec = slices.Grow(rec[:0], int(it.loc.n))[:it.loc.n]
			if _, err := st.files[it.loc.seg].ReadAt(rec, it.loc.off); err != nil {
				return err
			}
			moved[it.id] = recLoc{seg: st.active, off: st.size, n: it.loc.n, retries: it.loc.retries}
			if it.loc.retries != 0 {
				rec = appendRetries(rec, it.id, it.loc.retries)
			}
			if err := st.write(rec); err != nil {
				return err
			}
		}
		return st.f.Sync()
	}
	if err := copyLive(); err != nil {
		// Back to the segment being appended to; the new one goes.
		name := filepath.Join(st.dir, segName(st.active))
		st.f.Close()
		delete(st.files, st.active)
		st.active, st.f, st.size = prevActive, prevF, prevSize
		if rerr := os.Remove(name); rerr != nil {
			return fmt.Errorf("compaction: %w; removing %s: %w", err, name, rerr)
		}
		return fmt.Errorf("%w: %w", errCompactUndone, err)
	}
	for _, n := range old {
		st.files[n].Close()
		delete(st.files, n)
		if err := os.Remove(filepath.Join(st.dir, segName(n))); err != nil {
			return err
		}
	}
	if err := syncDir(st.dir); err != nil {
		return err
	}
	st.mu.Lock()
	for id, loc := range moved {
		if cur, ok := st.live[id]; ok && cur.off >= 0 {
			loc.retries = cur.retries // a setRetries meanwhile is in buf
			st.live[id] = loc
		}
	}
	st.total, st.dead = st.size, st.dead-deadBefore
	st.mu.Unlock()
	return nil
}

// close writes and syncs what is queued and closes the files.
func (st *store) close() error {
	st.mu.Lock()
	st.closing = true
	st.cond.Broadcast()
	st.mu.Unlock()
	<-st.done
	st.closeFiles()
	st.lock.Close()
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.err
}
