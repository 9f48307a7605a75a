package flow

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/gearflow/gearflow/flow/internal/msgp"
	"github.com/gearflow/gearflow/flow/spec"
	"github.com/gearflow/gearflow/flow/storage"
)

// The worker's side of the data plane: a task with refs reads its input
// from storage (a byte split of an input object, record files, or sorted
// runs to merge) and writes its output there, one file per partition or
// one in all, under its attempt's own prefix. Only the names of those
// files go back to the coordinator.

// mapSpillBudget bounds the bytes of output records a partitioned map
// task holds in memory before it spills a sorted run to local disk.
const mapSpillBudget = 64 << 20

// storeCache opens each store once per process.
type storeCache struct {
	mu     sync.Mutex
	stores map[string]storage.Store
}

func (c *storeCache) get(ctx context.Context, uri string) (storage.Store, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stores[uri]; ok {
		return st, nil
	}
	st, err := storage.Open(ctx, uri)
	if err != nil {
		return nil, err
	}
	if c.stores == nil {
		c.stores = make(map[string]storage.Store)
	}
	c.stores[uri] = st
	return st, nil
}

// recordFunc receives an input record and where it was read.
type recordFunc func(pos Position, key string, value []byte) error

// badLineFunc is told of input that does not read as its format: a line
// that is not JSON, a CSV record with a stray quote. Returning nil skips
// it; a nil badLineFunc fails the task with a *RecordError.
type badLineFunc func(pos Position, line []byte, err error) error

// eachRefRecord calls fn with every input record a task's refs name.
func (r *Registry) eachRefRecord(ctx context.Context, refs *taskRefs, fn recordFunc, bad badLineFunc) error {
	if sp := refs.Split; sp != nil {
		return r.eachSplitRecord(ctx, sp, fn, bad)
	}
	for _, o := range refs.Whole {
		st, err := r.stores.get(ctx, o.Store)
		if err != nil {
			return err
		}
		rc, err := storage.OpenInput(ctx, st, o.Key)
		if err != nil {
			return fmt.Errorf("flow: input %s: %w", o.URI(), err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("flow: input %s: %w", o.URI(), err)
		}
		if err := fn(Position{File: o.URI(), Line: 1}, path.Base(o.Key), msgp.AppendStringBytes(nil, data)); err != nil {
			return err
		}
	}
	if len(refs.Files) == 0 {
		return nil
	}
	st, err := r.stores.get(ctx, refs.Store)
	if err != nil {
		return err
	}
	for _, key := range refs.Files {
		pos := Position{File: joinURI(st.URI(), key)}
		err := eachStoredRecord(ctx, st, key, func(key string, value []byte) error {
			err := fn(pos, key, value)
			pos.Offset++
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// eachStoredRecord calls fn with every record of the record file at key.
func eachStoredRecord(ctx context.Context, st storage.Store, key string, fn func(key string, value []byte) error) error {
	rc, err := st.Open(ctx, key, 0, -1)
	if err != nil {
		return fmt.Errorf("flow: %s: %w", joinURI(st.URI(), key), err)
	}
	defer rc.Close()
	rr := newRecReader(rc, joinURI(st.URI(), key))
	for {
		k, v, err := rr.nextRaw()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(string(k), v); err != nil {
			return err
		}
	}
}

// eachSplitRecord reads the lines of a split and turns each into a
// record as its format says: text (the line), json (the decoded value;
// blank lines skipped) or csv (the fields, or a map by the header; a
// quoted field may span lines).
func (r *Registry) eachSplitRecord(ctx context.Context, sp *splitRef, fn recordFunc, bad badLineFunc) error {
	st, err := r.stores.get(ctx, sp.Store)
	if err != nil {
		return err
	}
	var rc io.ReadCloser
	base := sp.Off // the offset of the first line read
	switch {
	case sp.Data != nil:
		rc = io.NopCloser(bytes.NewReader(sp.Data))
	case sp.Len < 0:
		rc, err = storage.OpenInput(ctx, st, sp.Key)
		base = 0
	default:
		rc, err = storage.OpenSplit(ctx, st, sp.Key, sp.Off, sp.Len, sp.Size)
		if s, ok := rc.(interface{ Start() int64 }); ok {
			base = s.Start()
		}
	}
	if err != nil {
		return fmt.Errorf("flow: input %s: %w", sp, err)
	}
	defer rc.Close()
	br := readBuffers.Get().(*bufio.Reader)
	br.Reset(rc)
	defer func() {
		br.Reset(nil)
		readBuffers.Put(br)
	}()
	return readRecords(br, sp.URI(), sp, base, fn, bad)
}

// readRecords reads the records of a split from br, which starts at
// byte base of the object called name, as sp's Format, FirstLine and
// Header say.
func readRecords(br *bufio.Reader, name string, sp *splitRef, base int64, fn recordFunc, bad badLineFunc) error {
	if bad == nil {
		bad = failLine
	}
	if sp.Format == "csv" {
		return eachCSVRecord(br, name, sp, base, fn, bad)
	}
	var long []byte // a line longer than br's buffer, gathered
	var value []byte
	n := int64(0) // lines read
	off := base
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long, line...)
			continue
		}
		if err != nil && err != io.EOF {
			return err
		}
		if long != nil {
			line = append(long, line...)
			long = nil
		}
		if len(line) == 0 {
			return nil
		}
		n++
		pos := Position{File: name, Offset: off}
		if sp.FirstLine > 0 {
			pos.Line = sp.FirstLine + n - 1
		}
		off += int64(len(line))
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte{'\n'}), []byte{'\r'})
		var ok bool
		var lerr error
		if value, ok, lerr = appendLineValue(value[:0], sp.Format, line); lerr != nil {
			if berr := bad(pos, line, lerr); berr != nil {
				return berr
			}
		} else if ok {
			if ferr := fn(pos, "", value); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

// eachCSVRecord reads a CSV split record by record: a quoted field may
// span lines (the planner cuts CSV only between records). With a header,
// a record is a map from the header's names to its fields, and the
// split that starts the object skips the header itself.
func eachCSVRecord(br *bufio.Reader, name string, sp *splitRef, base int64, fn recordFunc, bad badLineFunc) error {
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	skipHeader := sp.Header != nil && base == 0
	var value []byte
	for {
		start := cr.InputOffset()
		fields, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		pos := Position{File: name, Offset: base + start}
		var line int
		var pe *csv.ParseError
		switch {
		case errors.As(err, &pe):
			line = pe.StartLine
		case err != nil:
			return err
		default:
			line, _ = cr.FieldPos(0)
		}
		if sp.FirstLine > 0 {
			pos.Line = sp.FirstLine + int64(line) - 1
		}
		if err != nil {
			if berr := bad(pos, nil, err); berr != nil {
				return berr
			}
			continue
		}
		if skipHeader {
			skipHeader = false
			continue
		}
		if sp.Header != nil {
			if len(fields) != len(sp.Header) {
				rec, _ := json.Marshal(fields)
				if berr := bad(pos, rec, fmt.Errorf("a record of %d fields under a header of %d", len(fields), len(sp.Header))); berr != nil {
					return berr
				}
				continue
			}
			value = msgp.AppendMapLen(value[:0], len(fields))
			for i, f := range fields {
				value = msgp.AppendString(value, sp.Header[i])
				value = msgp.AppendString(value, f)
			}
		} else {
			value = msgp.AppendArrayLen(value[:0], len(fields))
			for _, f := range fields {
				value = msgp.AppendString(value, f)
			}
		}
		if err := fn(pos, "", value); err != nil {
			return err
		}
	}
}

// mergeRuns merges a reduce task's sorted runs and calls fn with each
// key and an iterator over its values, read from the runs as fn goes: a
// key's values are never all in memory. source, called while the values
// are read, names the input the value just read is of (refs.Sources),
// or returns "" when the refs do not say.
func (r *Registry) mergeRuns(ctx context.Context, refs *taskRefs, fn func(key string, values iter.Seq[[]byte], source func() string) error) error {
	if len(refs.Runs) == 0 {
		return nil
	}
	st, err := r.stores.get(ctx, refs.Store)
	if err != nil {
		return err
	}
	srcs := make([]mergeSource, 0, len(refs.Runs))
	for _, key := range refs.Runs {
		rc, err := st.Open(ctx, key, 0, -1)
		if err != nil {
			return fmt.Errorf("flow: %s: %w", joinURI(st.URI(), key), err)
		}
		defer rc.Close()
		srcs = append(srcs, &fileSource{r: newRecReader(rc, joinURI(st.URI(), key))})
	}
	m, err := newMerger(srcs)
	if err != nil {
		return err
	}
	source := func() string {
		if m.last < len(refs.Sources) {
			return refs.Sources[m.last]
		}
		return ""
	}
	for m.more() {
		key := m.key()
		if err := fn(key, m.values(key), source); err != nil {
			return err
		}
		// Values the function did not read are skipped.
		for range m.values(key) {
		}
		if m.err != nil {
			return m.err
		}
	}
	return m.err
}

// merger is a k-way merge of sorted sources, read key by key.
type merger struct {
	srcs []mergeSource
	h    mergeHeap
	err  error
	last int // the source of the value values yielded last
}

func newMerger(srcs []mergeSource) (*merger, error) {
	m := &merger{srcs: srcs}
	for i, src := range srcs {
		rec, ok, err := src.next()
		if err != nil {
			return nil, err
		}
		if ok {
			m.h.items = append(m.h.items, mergeItem{rec: rec, src: i})
		}
	}
	m.h.init()
	return m, nil
}

func (m *merger) more() bool { return m.err == nil && m.h.Len() > 0 }

func (m *merger) key() string { return m.h.items[0].rec.Key }

// values yields the values of key while the smallest record has it.
func (m *merger) values(key string) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for m.err == nil && m.h.Len() > 0 && m.h.items[0].rec.Key == key {
			it := m.h.items[0]
			rec, ok, err := m.srcs[it.src].next()
			if err != nil {
				m.err = err
				return
			}
			if ok {
				m.h.items[0].rec = rec
				m.h.fixTop()
			} else {
				m.h.popTop()
			}
			m.last = it.src
			if !yield(it.rec.Value) {
				return
			}
		}
	}
}

// storageSink writes a task's output to storage: records in emission
// order to one file, or partitioned by key hash, each partition sorted
// by key (spilling sorted runs to local disk past mapSpillBudget) and
// combined once more as it is written when the task has a combiner.
type storageSink struct {
	ctx    context.Context
	st     storage.Store
	prefix string
	parts  int
	value  []byte // scratch encoding of a value

	// one file:
	w   *recordFile
	out int64

	// a published part file:
	part *partFile

	// partitioned:
	sorter  *partSorter
	combine func(key string, values [][]byte, emit func(key string, value []byte) error) error

	files []outFile
	done  bool
}

func (r *Registry) newStorageSink(ctx context.Context, t *task) (*storageSink, error) {
	st, err := r.stores.get(ctx, t.Refs.Store)
	if err != nil {
		return nil, err
	}
	s := &storageSink{ctx: ctx, st: st, prefix: t.Refs.Out, parts: t.Refs.Parts}
	if pub := t.Refs.Publish; pub != nil && s.parts <= 0 {
		s.part, err = r.createPartFile(ctx, pub)
		return s, err
	}
	if s.parts <= 0 {
		return s, nil // out.rec is created by the first record
	}
	s.sorter = newPartSorter(s.parts, mapSpillBudget)
	if t.Combine != "" {
		if cf, ok := r.lookup(t.Combine); ok && cf.kind == TaskReduce && cf.reduce != nil {
			s.combine = func(key string, values [][]byte, emit func(key string, value []byte) error) error {
				var decodeErr error
				err := cf.reduce(ctx, key, decodedValues(slices.Values(values), &decodeErr), func(k string, v any) error {
					b, err := appendValue(nil, v)
					if err != nil {
						return err
					}
					return emit(k, b)
				})
				if err == nil {
					err = decodeErr
				}
				return err
			}
		}
	}
	return s, nil
}

func (s *storageSink) emit(key string, value any) error {
	if s.part != nil {
		return s.part.write(key, value)
	}
	var err error
	if s.value, err = appendValue(s.value[:0], value); err != nil {
		return err
	}
	if s.sorter != nil {
		return s.sorter.add(key, s.value)
	}
	if s.w == nil {
		if s.w, err = createRecordFile(s.ctx, s.st, outKey(s.prefix)); err != nil {
			return err
		}
	}
	s.out++
	return s.w.write(key, s.value)
}

func (s *storageSink) finish() (Summary, error) {
	s.done = true
	if s.part != nil {
		f, err := s.part.commit()
		if err != nil {
			return Summary{}, err
		}
		return Summary{RecordsOut: f.Records, Files: []outFile{f}}, nil
	}
	if s.sorter == nil {
		if s.w == nil {
			return Summary{}, nil // no records, no file
		}
		f, err := s.w.commit(0)
		if err != nil {
			return Summary{}, err
		}
		return Summary{RecordsOut: s.out, Files: []outFile{f}}, nil
	}
	defer s.sorter.cleanup()
	var sum Summary
	for p := 0; p < s.parts; p++ {
		var w *recordFile
		write := func(key string, value []byte) error {
			if w == nil {
				var err error
				if w, err = createRecordFile(s.ctx, s.st, partKey(s.prefix, p)); err != nil {
					return err
				}
			}
			return w.write(key, value)
		}
		var err error
		if s.combine != nil {
			err = s.sorter.groups(p, func(key string, values [][]byte) error {
				if len(values) == 1 {
					return write(key, values[0]) // nothing to combine
				}
				return s.combine(key, values, write)
			})
		} else {
			err = s.sorter.each(p, write)
		}
		if err != nil {
			if w != nil {
				w.abort()
			}
			return Summary{}, err
		}
		if w == nil {
			continue // an empty partition has no file
		}
		f, err := w.commit(p)
		if err != nil {
			return Summary{}, err
		}
		sum.Files = append(sum.Files, f)
		sum.RecordsOut += f.Records
	}
	return sum, nil
}

func (s *storageSink) abort() {
	if s.done {
		return
	}
	s.done = true
	if s.w != nil {
		s.w.abort()
	}
	if s.part != nil {
		s.part.w.Abort()
	}
	if s.sorter != nil {
		s.sorter.cleanup()
	}
}

// recordFile is a record file being written to storage.
type recordFile struct {
	key     string
	w       storage.Writer
	bw      *bufio.Writer
	buf     []byte
	records int64
	bytes   int64
}

func createRecordFile(ctx context.Context, st storage.Store, key string) (*recordFile, error) {
	w, err := st.Create(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("flow: %s: %w", joinURI(st.URI(), key), err)
	}
	bw := writeBuffers.Get().(*bufio.Writer)
	bw.Reset(w)
	return &recordFile{key: key, w: w, bw: bw}, nil
}

// writeBuffers and readBuffers are the buffers of record files and
// splits, reused from task to task: a short task would otherwise
// allocate more for them than for all else it does.
var (
	writeBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}
	readBuffers  = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}
)

// release gives the file's buffer back; the file is done with.
func (f *recordFile) release() {
	if f.bw != nil {
		f.bw.Reset(nil)
		writeBuffers.Put(f.bw)
		f.bw = nil
	}
}

func (f *recordFile) write(key string, value []byte) error {
	f.buf = appendRecord(f.buf[:0], key, value)
	f.records++
	f.bytes += int64(len(f.buf))
	_, err := f.bw.Write(f.buf)
	return err
}

func (f *recordFile) commit(part int) (outFile, error) {
	defer f.release()
	if err := f.bw.Flush(); err != nil {
		f.w.Abort()
		return outFile{}, err
	}
	if err := f.w.Commit(); err != nil {
		return outFile{}, err
	}
	return outFile{Key: f.key, Part: part, Records: f.records, Bytes: f.bytes}, nil
}

func (f *recordFile) abort() {
	f.w.Abort()
	f.release()
}

// partSorter holds a map task's output by partition and hands each
// partition back sorted by key, values of a key in the order they were
// added. Past its budget it spills every partition, sorted, to a run
// file in a temporary folder; the runs and what is still in memory are
// then merged.
type partSorter struct {
	parts  [][]rawRecord
	bytes  int64
	budget int64
	slab   []byte     // values are copied here
	dir    string     // the spill folder, made at the first spill
	runs   [][]string // per partition: spill files, oldest first
	spills int
}

func newPartSorter(parts int, budget int64) *partSorter {
	return &partSorter{parts: make([][]rawRecord, parts), budget: budget, runs: make([][]string, parts)}
}

// add adds a record, copying its key and value: a key cut from a longer
// string would keep all of it alive outside the budget.
func (s *partSorter) add(key string, value []byte) error {
	if need := len(key) + len(value); need > cap(s.slab)-len(s.slab) {
		s.slab = make([]byte, 0, max(256<<10, need))
	}
	n := len(s.slab)
	s.slab = append(append(s.slab, key...), value...)
	k := unsafe.String(unsafe.SliceData(s.slab[n:]), len(key))
	p := partitionOf(key, len(s.parts))
	s.parts[p] = append(s.parts[p], rawRecord{Key: k, Value: s.slab[n+len(key) : len(s.slab) : len(s.slab)]})
	s.bytes += int64(len(key)+len(value)) + recordOverhead
	if s.bytes > s.budget {
		return s.spill()
	}
	return nil
}

func sortRecords(recs []rawRecord) {
	slices.SortStableFunc(recs, func(a, b rawRecord) int { return strings.Compare(a.Key, b.Key) })
}

// spill writes every partition's records, sorted, to a run file.
func (s *partSorter) spill() error {
	if s.dir == "" {
		dir, err := os.MkdirTemp("", "gearflow-spill-")
		if err != nil {
			return fmt.Errorf("flow: spill folder: %w", err)
		}
		s.dir = dir
	}
	for p, recs := range s.parts {
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
		clear(recs)
		s.parts[p] = recs[:0]
	}
	s.bytes = 0
	s.slab = nil
	return nil
}

// each calls fn with partition p's records in key order. Call it (or
// groups) once per partition.
func (s *partSorter) each(p int, fn func(key string, value []byte) error) error {
	recs := s.parts[p]
	sortRecords(recs)
	s.parts[p] = nil
	if len(s.runs[p]) == 0 {
		for _, r := range recs {
			if err := fn(r.Key, r.Value); err != nil {
				return err
			}
		}
		return nil
	}
	return mergeSpills(s.runs[p], &sliceSource{recs: recs}, fn)
}

// groups calls fn with each key of partition p and its values, in key
// order.
func (s *partSorter) groups(p int, fn func(key string, values [][]byte) error) error {
	var key string
	var values [][]byte
	err := s.each(p, func(k string, v []byte) error {
		if len(values) > 0 && k != key {
			if err := fn(key, values); err != nil {
				return err
			}
			values = values[:0]
		}
		key = k
		values = append(values, v)
		return nil
	})
	if err == nil && len(values) > 0 {
		err = fn(key, values)
	}
	return err
}

func (s *partSorter) cleanup() {
	if s.dir != "" {
		os.RemoveAll(s.dir)
		s.dir = ""
	}
}

// sliceSource yields sorted records from a slice.
type sliceSource struct {
	recs []rawRecord
}

func (s *sliceSource) next() (rawRecord, bool, error) {
	if len(s.recs) == 0 {
		return rawRecord{}, false, nil
	}
	r := s.recs[0]
	s.recs = s.recs[1:]
	return r, true, nil
}

// partFile is an output part file being written by its task, in the
// output's format.
type partFile struct {
	ref     *publishRef
	w       storage.Writer
	n       countingWriter
	rw      recordWriter
	records int64
}

func (r *Registry) createPartFile(ctx context.Context, ref *publishRef) (*partFile, error) {
	format, err := spec.ParseFormat(ref.Format)
	if err != nil {
		return nil, err
	}
	st, err := r.stores.get(ctx, ref.Store)
	if err != nil {
		return nil, err
	}
	w, err := st.Create(ctx, ref.Key)
	if err != nil {
		return nil, fmt.Errorf("flow: %s: %w", ref.URI(), err)
	}
	p := &partFile{ref: ref, w: w, n: countingWriter{w: w}}
	if p.rw, err = newRecordWriter(&p.n, format); err != nil {
		w.Abort()
		return nil, err
	}
	return p, nil
}

// write writes a record as the single output file would show it: its
// value as it reads after a trip through the wire.
func (p *partFile) write(key string, value any) error {
	v, err := wireValue(value)
	if err != nil {
		return err
	}
	p.records++
	return p.rw.write(key, v)
}

func (p *partFile) commit() (outFile, error) {
	if err := p.rw.flush(); err != nil {
		p.w.Abort()
		return outFile{}, err
	}
	if err := p.w.Commit(); err != nil {
		return outFile{}, err
	}
	return outFile{Store: p.ref.Store, Key: p.ref.Key, Records: p.records, Bytes: p.n.n}, nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
