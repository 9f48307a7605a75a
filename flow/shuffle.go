package flow

import (
	"bufio"
	"container/heap"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"sort"
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
	for {
		if r.off < len(r.buf) {
			c := &cursor{b: r.buf, i: r.off}
			rec, err := c.record()
			if err == nil {
				r.off = c.i
				if len(rec.Value) > cap(r.slab)-len(r.slab) {
					r.slab = make([]byte, 0, max(64<<10, len(rec.Value)))
				}
				n := len(r.slab)
				r.slab = append(r.slab, rec.Value...)
				rec.Value = r.slab[n:len(r.slab):len(r.slab)]
				return rec, nil
			}
			if err != errShort || r.eof {
				return rawRecord{}, fmt.Errorf("%w: %s: %v", ErrMalformed, r.name, err)
			}
		} else if r.eof {
			return rawRecord{}, io.EOF
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
			return rawRecord{}, err
		}
	}
}

func (r *recReader) close() error {
	if r.f == nil {
		return nil
	}
	return r.f.Close()
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
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// recordOverhead approximates the memory a buffered record costs beyond
// its key and value bytes.
const recordOverhead = 64

// shuffler partitions records by key hash and sorts each partition by
// key. It keeps up to budget bytes in memory and spills sorted runs to
// files in dir beyond it, so a shuffle can exceed RAM. Values of one key
// keep the order they were added in.
type shuffler struct {
	dir    string
	parts  int
	budget int64

	mem      [][]rawRecord // per partition, in insertion order
	memBytes int64
	runs     [][]string // per partition: spill files, oldest first
	spills   int
}

func newShuffler(dir string, parts int, budget int64) *shuffler {
	if parts < 1 {
		parts = 1
	}
	return &shuffler{dir: dir, parts: parts, budget: budget,
		mem: make([][]rawRecord, parts), runs: make([][]string, parts)}
}

func (s *shuffler) add(r rawRecord) error {
	p := partitionOf(r.Key, s.parts)
	s.mem[p] = append(s.mem[p], r)
	s.memBytes += int64(len(r.Key)+len(r.Value)) + recordOverhead
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
	for p, recs := range s.mem {
		if len(recs) == 0 {
			continue
		}
		sortRecords(recs)
		path := filepath.Join(s.dir, fmt.Sprintf("spill-p%05d-%06d.rec", p, s.spills))
		s.spills++
		w, err := createRecFile(path)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := w.write(r); err != nil {
				w.close(false)
				return err
			}
		}
		if err := w.close(false); err != nil {
			return err
		}
		s.runs[p] = append(s.runs[p], path)
		s.mem[p] = nil
	}
	s.memBytes = 0
	return nil
}

func sortRecords(recs []rawRecord) {
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Key < recs[j].Key })
}

// groups calls fn with every key of partition p and its values, in key
// order. It consumes the partition's buffer; call it once per partition.
func (s *shuffler) groups(p int, fn func(group) error) error {
	mem := s.mem[p]
	s.mem[p] = nil
	sortRecords(mem)
	var srcs []mergeSource
	for _, path := range s.runs[p] {
		r, err := openRecFile(path)
		if err != nil {
			return err
		}
		defer r.close()
		srcs = append(srcs, &fileSource{r: r})
	}
	srcs = append(srcs, &sliceSource{recs: mem})
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
	heap.Init(h)
	var cur *group
	for h.Len() > 0 {
		it := h.items[0]
		if cur != nil && cur.Key != it.rec.Key {
			if err := fn(*cur); err != nil {
				return err
			}
			cur = nil
		}
		if cur == nil {
			cur = &group{Key: it.rec.Key}
		}
		cur.Values = append(cur.Values, it.rec.Value)
		rec, ok, err := srcs[it.src].next()
		if err != nil {
			return err
		}
		if ok {
			h.items[0].rec = rec
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	if cur != nil {
		return fn(*cur)
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

type sliceSource struct{ recs []rawRecord }

func (s *sliceSource) next() (rawRecord, bool, error) {
	if len(s.recs) == 0 {
		return rawRecord{}, false, nil
	}
	r := s.recs[0]
	s.recs = s.recs[1:]
	return r, true, nil
}

type mergeItem struct {
	rec rawRecord
	src int // index of the source: ties go to the older source, keeping insertion order
}

type mergeHeap struct{ items []mergeItem }

func (h *mergeHeap) Len() int { return len(h.items) }
func (h *mergeHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if a.rec.Key != b.rec.Key {
		return a.rec.Key < b.rec.Key
	}
	return a.src < b.src
}
func (h *mergeHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *mergeHeap) Push(x any)    { h.items = append(h.items, x.(mergeItem)) }
func (h *mergeHeap) Pop() any {
	it := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return it
}
