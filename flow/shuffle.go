package flow

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unsafe"

	"github.com/gearflow/gearflow/flow/internal/msgp"
)

// A record file is a plain concatenation of msgpack [key, value] arrays:
// task outputs, shuffle spills and reduce inputs all use it.

// recWriter appends records to a file through a buffer.
type recWriter struct {
	f   *os.File
	w   *bufio.Writer
	buf []byte
	n   int64
}

func createRecFile(path string) (*recWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &recWriter{f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

func (w *recWriter) write(r rawRecord) error {
	w.buf = appendRecord(w.buf[:0], r.Key, r.Value)
	w.n++
	_, err := w.w.Write(w.buf)
	return err
}

// close flushes and closes the file; with sync it fsyncs first.
func (w *recWriter) close(sync bool) error {
	err := w.w.Flush()
	if err == nil && sync {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// recReader reads a record file through a buffer, without a decoder.
// Keys and values it returns are its own copies.
type recReader struct {
	src  io.Reader
	name string   // for errors
	f    *os.File // closed by close; nil when reading another source
	buf  []byte
	off  int
	eof  bool
	slab []byte // values are carved from here, saving an allocation each
}

func openRecFile(path string) (*recReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r := newRecReader(f, path)
	r.f = f
	return r, nil
}

func newRecReader(src io.Reader, name string) *recReader {
	return &recReader{src: src, name: name, buf: make([]byte, 0, 64<<10)}
}

// next returns the next record, or io.EOF at the end.
func (r *recReader) next() (rawRecord, error) {
	key, value, err := r.nextRaw()
	if err != nil {
		return rawRecord{}, err
	}
	return rawRecord{Key: string(key), Value: value}, nil
}

// nextRaw returns the next record's key, valid until the next call, and
// its value, which is the caller's to keep; or io.EOF at the end.
func (r *recReader) nextRaw() (key, value []byte, err error) {
	for {
		if r.off < len(r.buf) {
			c := msgp.NewCursorAt(r.buf, r.off)
			key, value, err := c.RawRecord()
			if err == nil {
				r.off = c.Pos()
				if len(value) > cap(r.slab)-len(r.slab) {
					r.slab = make([]byte, 0, max(64<<10, len(value)))
				}
				n := len(r.slab)
				r.slab = append(r.slab, value...)
				return key, r.slab[n:len(r.slab):len(r.slab)], nil
			}
			if err != msgp.ErrShort || r.eof {
				return nil, nil, fmt.Errorf("%w: %s: %v", ErrMalformed, r.name, err)
			}
		} else if r.eof {
			return nil, nil, io.EOF
		}
		// Keep the unread tail, grow when a record exceeds the buffer,
		// and read more.
		n := copy(r.buf[:cap(r.buf)], r.buf[r.off:])
		r.buf, r.off = r.buf[:n], 0
		if n == cap(r.buf) {
			r.buf = append(r.buf, make([]byte, n)...)[:n]
		}
		m, err := r.src.Read(r.buf[n:cap(r.buf)])
		r.buf = r.buf[:n+m]
		if err == io.EOF {
			r.eof = true
		} else if err != nil {
			return nil, nil, err
		}
	}
}

func (r *recReader) close() error {
	if r.f == nil {
		return nil
	}
	return r.f.Close()
}

// eachRawRecord calls fn for every record of the file at path, with
// the key valid only during the call and the value the callee's to keep.
func eachRawRecord(path string, fn func(key, value []byte) error) error {
	r, err := openRecFile(path)
	if err != nil {
		return err
	}
	defer r.close()
	for {
		k, v, err := r.nextRaw()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
}

// eachRecord calls fn for every record of the file at path.
func eachRecord(path string, fn func(rawRecord) error) error {
	r, err := openRecFile(path)
	if err != nil {
		return err
	}
	defer r.close()
	for {
		rec, err := r.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

// partitionOf returns the partition of key among n: FNV-1a of the key
// modulo n, so every coordinator and language agrees.
func partitionOf(key string, n int) int {
	return partitionOfBytes(unsafeBytes(key), n)
}

func partitionOfBytes(key []byte, n int) int {
	if n <= 1 {
		return 0
	}
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for _, c := range key {
		h ^= uint32(c)
		h *= prime32
	}
	return int(h % uint32(n))
}

// unsafeBytes returns the bytes of s without copying them, for reading
// only.
func unsafeBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// recordOverhead approximates the memory a buffered record costs beyond
// its key and value bytes.
const recordOverhead = 64

// shuffler partitions records by key hash and groups each partition by
// key, in key order. It keeps up to budget bytes in memory and spills
// sorted runs to files in dir beyond it, so a shuffle can exceed RAM.
// Values of one key keep the order they were added in.
type shuffler struct {
	dir    string
	parts  int
	budget int64

	mem      []memPart // per partition
	memBytes int64
	runs     [][]string // per partition: spill files, oldest first
	spills   int

	// copyValues makes the shuffler copy the values it keeps into slab.
	// It is set when the shuffler keeps only some of the records it is
	// shown: the buffers those records arrive in (a task's packed
	// output, a reader's slab) would otherwise stay alive for the few
	// values kept, outside the budget.
	copyValues bool
	slab       []byte
}

// memPart is a partition's records in memory, grouped by key as they
// arrive: a record costs a map lookup, and only the distinct keys need
// sorting.
type memPart struct {
	index  map[string]int32 // key -> its group
	groups []group          // in order of first appearance
}

// add adds a record; key is copied only when it is new to the
// partition, value is kept.
func (m *memPart) add(key []byte, value []byte) {
	i, ok := m.index[string(key)]
	if !ok {
		if m.index == nil {
			m.index = make(map[string]int32)
		}
		k := string(key)
		i = int32(len(m.groups))
		m.index[k] = i
		m.groups = append(m.groups, group{Key: k})
	}
	m.groups[i].Values = append(m.groups[i].Values, value)
}

// sorted returns the partition's groups in key order and empties it.
func (m *memPart) sorted() []group {
	gs := m.groups
	*m = memPart{}
	slices.SortFunc(gs, func(a, b group) int { return strings.Compare(a.Key, b.Key) })
	return gs
}

func newShuffler(dir string, parts int, budget int64) *shuffler {
	if parts < 1 {
		parts = 1
	}
	return &shuffler{dir: dir, parts: parts, budget: budget,
		mem: make([]memPart, parts), runs: make([][]string, parts)}
}

func (s *shuffler) add(r rawRecord) error {
	return s.addRaw(unsafeBytes(r.Key), r.Value)
}

// addRaw adds a record whose key is valid only during the call; the
// shuffler keeps value.
func (s *shuffler) addRaw(key, value []byte) error {
	return s.addToPart(partitionOfBytes(key, s.parts), key, value)
}

// addToPart is addRaw for a record known to be of partition p.
func (s *shuffler) addToPart(p int, key, value []byte) error {
	if s.copyValues {
		if len(value) > cap(s.slab)-len(s.slab) {
			s.slab = make([]byte, 0, max(64<<10, len(value)))
		}
		n := len(s.slab)
		s.slab = append(s.slab, value...)
		value = s.slab[n:len(s.slab):len(s.slab)]
	}
	s.mem[p].add(key, value)
	s.memBytes += int64(len(key)+len(value)) + recordOverhead
	if s.memBytes > s.budget {
		return s.spill()
	}
	return nil
}

// spill writes every partition's buffer as a sorted run.
func (s *shuffler) spill() error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	for p := range s.mem {
		if len(s.mem[p].groups) == 0 {
			continue
		}
		groups := s.mem[p].sorted()
		path := filepath.Join(s.dir, fmt.Sprintf("spill-p%05d-%06d.rec", p, s.spills))
		s.spills++
		w, err := createRecFile(path)
		if err != nil {
			return err
		}
		for _, g := range groups {
			for _, v := range g.Values {
				if err := w.write(rawRecord{Key: g.Key, Value: v}); err != nil {
					w.close(false)
					return err
				}
			}
		}
		if err := w.close(false); err != nil {
			return err
		}
		s.runs[p] = append(s.runs[p], path)
	}
	s.memBytes = 0
	s.slab = nil // the spilled values' memory goes with them
	return nil
}

// groups calls fn with every key of partition p and its values, in key
// order. It consumes the partition's buffer; call it once per partition
// (and not with each).
func (s *shuffler) groups(p int, fn func(group) error) error {
	if len(s.runs[p]) == 0 {
		for _, g := range s.mem[p].sorted() {
			if err := fn(g); err != nil {
				return err
			}
		}
		return nil
	}
	var cur *group
	err := s.each(p, func(key string, value []byte) error {
		if cur != nil && cur.Key != key {
			if err := fn(*cur); err != nil {
				return err
			}
			cur = nil
		}
		if cur == nil {
			cur = &group{Key: key}
		}
		cur.Values = append(cur.Values, value)
		return nil
	})
	if err == nil && cur != nil {
		err = fn(*cur)
	}
	return err
}

// each calls fn with every record of partition p in key order, values of
// one key in the order they were added, without holding a key's values
// together: a key may have more values than fit in memory. It consumes
// the partition's buffer; call it once per partition (and not with
// groups).
func (s *shuffler) each(p int, fn func(key string, value []byte) error) error {
	return mergeSpills(s.runs[p], &groupSource{groups: s.mem[p].sorted()}, fn)
}

// mergeSpills calls fn with the records of the sorted run files at paths
// and of mem, merged in key order; records of equal keys come in the
// order of the files, then mem.
func mergeSpills(paths []string, mem mergeSource, fn func(key string, value []byte) error) error {
	var srcs []mergeSource
	for _, path := range paths {
		r, err := openRecFile(path)
		if err != nil {
			return err
		}
		defer r.close()
		srcs = append(srcs, &fileSource{r: r})
	}
	srcs = append(srcs, mem)
	return mergeRecords(srcs, func(r rawRecord) error { return fn(r.Key, r.Value) })
}

// mergeRecords merges sources sorted by key into one stream sorted by
// key; records of equal keys come in source order.
func mergeRecords(srcs []mergeSource, fn func(rawRecord) error) error {
	h := &mergeHeap{}
	for i, src := range srcs {
		rec, ok, err := src.next()
		if err != nil {
			return err
		}
		if ok {
			h.items = append(h.items, mergeItem{rec: rec, src: i})
		}
	}
	h.init()
	for h.Len() > 0 {
		it := h.items[0]
		if err := fn(it.rec); err != nil {
			return err
		}
		rec, ok, err := srcs[it.src].next()
		if err != nil {
			return err
		}
		if ok {
			h.items[0].rec = rec
			h.fixTop()
		} else {
			h.popTop()
		}
	}
	return nil
}

// cleanup removes the spill files.
func (s *shuffler) cleanup() {
	for _, runs := range s.runs {
		for _, path := range runs {
			os.Remove(path)
		}
	}
}

type mergeSource interface {
	next() (rawRecord, bool, error)
}

type fileSource struct{ r *recReader }

func (f *fileSource) next() (rawRecord, bool, error) {
	rec, err := f.r.next()
	if err == io.EOF {
		return rawRecord{}, false, nil
	}
	return rec, err == nil, err
}

// groupSource yields the records of sorted groups, one at a time.
type groupSource struct {
	groups []group
	i      int // next value of groups[0]
}

func (s *groupSource) next() (rawRecord, bool, error) {
	for len(s.groups) > 0 && s.i >= len(s.groups[0].Values) {
		s.groups, s.i = s.groups[1:], 0
	}
	if len(s.groups) == 0 {
		return rawRecord{}, false, nil
	}
	g := &s.groups[0]
	s.i++
	return rawRecord{Key: g.Key, Value: g.Values[s.i-1]}, true, nil
}

type mergeItem struct {
	rec rawRecord
	src int // index of the source: ties go to the older source, keeping insertion order
}

// mergeHeap is a min-heap of the sources' next records, by key, then by
// source. It is written out rather than through container/heap: a merge
// fixes its top once per record, and the interface calls cost a reduce
// a noticeable share of its time.
type mergeHeap struct{ items []mergeItem }

func (h *mergeHeap) Len() int { return len(h.items) }

func (h *mergeHeap) less(i, j int) bool {
	a, b := &h.items[i], &h.items[j]
	if a.rec.Key != b.rec.Key {
		return a.rec.Key < b.rec.Key
	}
	return a.src < b.src
}

func (h *mergeHeap) init() {
	for i := len(h.items)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// fixTop restores the heap after the top item changed.
func (h *mergeHeap) fixTop() { h.down(0) }

// popTop removes the top item.
func (h *mergeHeap) popTop() {
	n := len(h.items) - 1
	h.items[0] = h.items[n]
	h.items = h.items[:n]
	if n > 0 {
		h.down(0)
	}
}

func (h *mergeHeap) down(i int) {
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
}
