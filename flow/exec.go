package flow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gearflow/gearflow/flow/internal/msgp"
)

// Worker-side batching: a WORK_DATA packet is sent when either limit is
// reached, so the coordinator sees progress without a packet per record.
const (
	batchBytes   = 64 << 10
	batchRecords = 4096
	// statusEvery is the least time between two WORK_STATUS packets of
	// a task.
	statusEvery = 100 * time.Millisecond
	// combineKeys bounds the distinct keys a map task holds for its
	// combiner before it combines and flushes them.
	combineKeys = 1 << 16
)

// lateReport is how long past its attempt's deadline a task function may
// return before the worker reports it as ignoring its context.
const lateReport = time.Second

// ErrUnknownFunction is returned when a task names a function the
// registry does not hold.
var ErrUnknownFunction = errors.New("flow: unknown function")

// taskIO is how a running task talks back to its coordinator:
// WORK_DATA and WORK_STATUS.
type taskIO struct {
	data   func([]byte) error
	status func(num, den uint64) error
	worker string // who runs the task, for the summary ("" = unsaid)
}

// execute runs the task in payload with the function called name and
// returns the WORK_COMPLETE data (an encoded Summary).
func (r *Registry) execute(ctx context.Context, name string, payload []byte, io taskIO) (result []byte, err error) {
	f, ok := r.lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownFunction, name)
	}
	t, err := decodeTask(payload)
	if err != nil {
		return nil, err
	}
	if t.Kind != f.kind {
		return nil, fmt.Errorf("flow: %s is a %s function, the task is a %s task", name, f.kind, t.Kind)
	}
	// Each task's start and end, at Debug: "gearflow worker -v" shows them.
	if log := r.logger(); log.Enabled(ctx, slog.LevelDebug) {
		begin := time.Now()
		attrs := []any{"function", name, "run", t.Run, "stage", t.Stage, "task", t.Task, "attempt", t.Attempt}
		log.Debug("task started", attrs...)
		defer func() {
			attrs = append(attrs, "took", time.Since(begin).Round(time.Millisecond))
			if err != nil {
				log.Debug("task failed", append(attrs, "err", err)...)
			} else {
				log.Debug("task done", attrs...)
			}
		}()
	}
	if t.Refs != nil && t.Refs.TimeoutMillis > 0 {
		limit := time.Duration(t.Refs.TimeoutMillis) * time.Millisecond
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
		deadline, _ := ctx.Deadline()
		defer func() {
			if err != nil && !time.Now().Before(deadline) {
				// Said here, since the coordinator may hear of the
				// failure before its own clock for the attempt runs out.
				err = fmt.Errorf("attempt timed out after %v on its worker: %w", limit, err)
			}
			// The slot was busy past the deadline: the fleet's capacity
			// was less than it looked, and the operator should know.
			if over := time.Since(deadline); over >= lateReport {
				r.logger().Warn("a task function ignored its context: it returned long after its attempt's deadline, holding its worker slot",
					"function", name, "run", t.Run, "stage", t.Stage, "task", t.Task, "attempt", t.Attempt,
					"timeout", limit, "over", over.Round(time.Millisecond))
			}
		}()
	}
	state := &taskState{info: TaskInfo{Run: t.Run, Stage: t.Stage, Task: t.Task, Attempt: t.Attempt, Params: t.Params}}
	ctx = context.WithValue(ctx, infoKey{}, state)
	defer func() {
		if p := recover(); p != nil {
			err = &FunctionError{Function: name, Err: fmt.Errorf("panic: %v\n%s", p, debug.Stack())}
		}
	}()

	// Output: WORK_DATA batches, or files in storage.
	var sink outputSink
	if t.Refs != nil {
		// The coordinator times the attempt from this first report.
		if err := io.status(0, 0); err != nil {
			return nil, err
		}
		if sink, err = r.newStorageSink(ctx, t); err != nil {
			return nil, err
		}
	} else {
		sink = &batcher{io: io}
	}
	defer sink.abort()
	out := sink.emit
	var comb interface{ flush() error }
	if t.Combine != "" {
		cf, ok := r.lookup(t.Combine)
		if !ok || cf.kind != TaskReduce || cf.reduce == nil {
			return nil, fmt.Errorf("%w %q (combiner of %s)", ErrUnknownFunction, t.Combine, name)
		}
		if cf.sum {
			c := newSumCombiner(sink)
			defer c.release()
			comb, out = c, c.emit
		} else {
			c := newCombiner(ctx, t.Combine, cf.reduce, sink)
			defer c.release()
			comb, out = c, c.emit
		}
	}
	var in int64
	total := uint64(len(t.Records) + len(t.BadLines) + len(t.Groups))
	lastStatus := time.Now()
	sentStatus := false
	progress := func() error {
		in++
		if in%1024 == 0 && time.Since(lastStatus) >= statusEvery {
			lastStatus, sentStatus = time.Now(), true
			return io.status(uint64(in), total)
		}
		return nil
	}
	limit, err := parseBadLimit(t.SkipBad)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	bad := &badRecords{limit: limit}
	switch t.Kind {
	case TaskMap:
		err = r.eachInput(ctx, t, func(pos Position, key string, value []byte) error {
			v, err := DecodeValue(value)
			if err != nil {
				return err
			}
			rec := Record{Key: key, Value: v, Source: t.Source, Pos: pos}
			if err := f.mapf(ctx, rec, out); err != nil {
				where := t.where(pos, in)
				if bad.skip(where, err, recordText(rec)) {
					in++
					return nil
				}
				return &FunctionError{Function: name, Err: &RecordError{Where: where, Err: err}}
			}
			return progress()
		}, bad.lineFunc(t, &in))
		if err == nil {
			err = bad.check(in)
		}
		if err == nil && len(bad.list) > 0 {
			// Shown with the stage's counters; like them, only the
			// winning attempt's count.
			Count(ctx, BadRecordsCounter, int64(len(bad.list)))
		}
	case TaskReduce:
		err = r.eachGroup(ctx, t, func(key string, values iter.Seq[[]byte], source func() string) error {
			var decodeErr error
			if f.cogroup != nil {
				groups, err := cogroupValues(values, source, t.Source)
				if err != nil {
					return err
				}
				if err := f.cogroup(ctx, key, groups, out); err != nil {
					return &FunctionError{Function: name, Err: err}
				}
				return progress()
			}
			if err := f.reduce(ctx, key, decodedValues(values, &decodeErr), out); err != nil {
				return &FunctionError{Function: name, Err: err}
			}
			if decodeErr != nil {
				return decodeErr
			}
			return progress()
		})
	case TaskChunk:
		var recs []Record
		err = r.eachInput(ctx, t, func(pos Position, key string, value []byte) error {
			v, err := DecodeValue(value)
			if err != nil {
				return err
			}
			recs = append(recs, Record{Key: key, Value: v, Source: t.Source, Pos: pos})
			return nil
		}, nil)
		if err == nil {
			if err = f.task(ctx, recs, out); err != nil {
				err = &FunctionError{Function: name, Err: err}
			}
			in = int64(len(recs))
		}
	}
	if err != nil {
		return nil, err
	}
	if comb != nil {
		if err := comb.flush(); err != nil {
			return nil, err
		}
	}
	sum, err := sink.finish()
	if err != nil {
		return nil, err
	}
	sum.Bad = bad.list
	sum.RecordsIn = in
	sum.Counters, sum.Worker = state.counters.snapshot(), io.worker
	// A task that reported progress reports its end too; for a short one
	// WORK_COMPLETE, whose summary counts the input, says it all.
	if sentStatus {
		if err := io.status(uint64(in), total); err != nil {
			return nil, err
		}
	}
	return appendSummary(nil, sum), nil
}

// outputSink is where a task's emitted records go: WORK_DATA batches
// (batcher) or files in storage (storageSink).
type outputSink interface {
	emit(key string, value any) error
	// finish sends or commits what is left and returns the summary's
	// output counts.
	finish() (Summary, error)
	// abort drops whatever was not finished; a no-op after finish.
	abort()
}

// eachInput calls fn with every input record of a map or task-kind task:
// the payload's own records, or those its refs name.
func (r *Registry) eachInput(ctx context.Context, t *task, fn recordFunc, bad badLineFunc) error {
	if t.Refs != nil {
		return r.eachRefRecord(ctx, t.Refs, fn, bad)
	}
	if bad == nil {
		bad = failLine
	}
	// The lines the coordinator could not read come in their place
	// among the records, as a task reading the file would meet them.
	lines := t.BadLines
	badLines := func(before int) error {
		for len(lines) > 0 && lines[0].Before <= before {
			l := lines[0]
			lines = lines[1:]
			pos := Position{File: t.File, Line: l.Line, Offset: l.Offset}
			if err := bad(pos, []byte(l.Text), errors.New(l.Err)); err != nil {
				return err
			}
		}
		return nil
	}
	for i, rr := range t.Records {
		if err := badLines(i); err != nil {
			return err
		}
		if err := fn(t.recordPos(i), rr.Key, rr.Value); err != nil {
			return err
		}
	}
	return badLines(len(t.Records))
}

// eachGroup calls fn with every key group of a reduce task, keys
// ascending: the payload's groups, or the merge of the sorted runs its
// refs name. fn's values must be read before it returns.
func (r *Registry) eachGroup(ctx context.Context, t *task, fn func(key string, values iter.Seq[[]byte], source func() string) error) error {
	if t.Refs != nil {
		return r.mergeRuns(ctx, t.Refs, fn)
	}
	noSource := func() string { return "" }
	for _, g := range t.Groups {
		if err := fn(g.Key, slices.Values(g.Values), noSource); err != nil {
			return err
		}
	}
	return nil
}

// decodedValues decodes encoded values as they are read; the first that
// does not decode ends the sequence and is kept in *errp.
func decodedValues(raw iter.Seq[[]byte], errp *error) iter.Seq[any] {
	return func(yield func(any) bool) {
		for b := range raw {
			v, err := DecodeValue(b)
			if err != nil {
				*errp = err
				return
			}
			if !yield(v) {
				return
			}
		}
	}
}

// batcher encodes emitted records and sends them in WORK_DATA batches.
type batcher struct {
	io      taskIO
	body    []byte // encoded records of the batch being filled
	n       int    // records in body
	sent    int64  // records sent so far
	batches int64
	packet  []byte
}

func (b *batcher) emit(key string, value any) error {
	b.body = msgp.AppendArrayLen(b.body, 2)
	b.body = msgp.AppendString(b.body, key)
	var err error
	if b.body, err = appendValue(b.body, value); err != nil {
		return err
	}
	b.n++
	if b.n >= batchRecords || len(b.body) >= batchBytes {
		return b.flush()
	}
	return nil
}

func (b *batcher) emitRaw(key string, value []byte) error {
	b.body = appendRecord(b.body, key, value)
	b.n++
	if b.n >= batchRecords || len(b.body) >= batchBytes {
		return b.flush()
	}
	return nil
}

func (b *batcher) finish() (Summary, error) {
	if err := b.flush(); err != nil {
		return Summary{}, err
	}
	return Summary{RecordsOut: b.sent, Batches: b.batches}, nil
}

func (b *batcher) abort() {}

func (b *batcher) flush() error {
	if b.n == 0 {
		return nil
	}
	b.packet = msgp.AppendArrayLen(b.packet[:0], b.n)
	b.packet = append(b.packet, b.body...)
	if err := b.io.data(b.packet); err != nil {
		return err
	}
	b.sent += int64(b.n)
	b.batches++
	b.n = 0
	b.body = b.body[:0]
	return nil
}

// combiner groups a map task's output by key and combines each key's
// values in place: a key's decoded values gather in a small slot, and
// when the slot is full they are handed to the combine function and the
// results replace them. A task thus holds a few values per key however
// many it emits, and an emit costs one map lookup. What is left is
// combined at the end, or when the task holds combineKeys keys, and sent
// on in key order. A combine function may thus see values it produced
// itself, as a reducer may.
type combiner struct {
	ctx  context.Context
	name string
	fn   ReduceFunc
	next emitter
	*combineState
	cur string // key being combined
	out []any  // what the combine function emitted for it
}

// combineState is the memory of a combiner, reused from task to task
// through combineStates.
type combineState struct {
	index map[string]int32 // key -> its slot
	slots []combineSlot
	keys  []string   // keys[i] is the key of slots[i]
	order []keyOrder // slots in key order, for flush
}

// keyOrder is a slot to sort by its key.
type keyOrder struct {
	prefix uint64 // the key's first 8 bytes, big-endian, zero-padded
	slot   int32
}

// keyPrefix returns the first 8 bytes of k as a big-endian number, so
// that prefixes compare as the keys do (up to their 8th byte).
func keyPrefix(k string) uint64 {
	var p uint64
	for i := 0; i < 8; i++ {
		p <<= 8
		if i < len(k) {
			p |= uint64(k[i])
		}
	}
	return p
}

// combineSlot holds one key's values that await combining.
type combineSlot struct {
	n    int32
	vals [combineEvery]any
}

// combineEvery is how many values a key gathers before they are combined.
const combineEvery = 8

var combineStates = sync.Pool{New: func() any {
	return &combineState{index: make(map[string]int32)}
}}

// emitter takes emitted records: a combiner's next step.
type emitter interface {
	emit(key string, value any) error
}

func newCombiner(ctx context.Context, name string, fn ReduceFunc, next emitter) *combiner {
	return &combiner{ctx: ctx, name: name, fn: fn, next: next, combineState: combineStates.Get().(*combineState)}
}

// release drops the combiner's keys and values and returns its memory
// for another task.
func (c *combiner) release() {
	c.reset()
	combineStates.Put(c.combineState)
	c.combineState = nil
}

func (s *combineState) reset() {
	clear(s.index)
	clear(s.slots)
	s.slots = s.slots[:0]
	clear(s.keys)
	s.keys = s.keys[:0]
}

func (c *combiner) emit(key string, value any) error {
	v, err := wireValue(value)
	if err != nil {
		return err
	}
	i, ok := c.index[key]
	if !ok {
		if len(c.slots) >= combineKeys {
			if err := c.flush(); err != nil {
				return err
			}
		}
		i = int32(len(c.slots))
		// The key may be a slice of a much larger string (a line): a
		// copy keeps the line collectable.
		key = strings.Clone(key)
		c.index[key] = i
		c.keys = append(c.keys, key)
		c.slots = append(c.slots, combineSlot{})
	}
	s := &c.slots[i]
	s.vals[s.n] = v
	s.n++
	if s.n == combineEvery {
		return c.combine(c.keys[i], s)
	}
	return nil
}

// combine runs the combine function on a full slot and keeps what it
// emits for the key; records it emits for other keys go on at once. A
// combine function that does not shrink its input much has its output
// sent on too, so that it is not called again on nearly every emit.
func (c *combiner) combine(key string, s *combineSlot) error {
	c.cur, c.out = key, c.out[:0]
	if err := c.fn(c.ctx, key, slices.Values(s.vals[:s.n]), c.collect); err != nil {
		return &FunctionError{Function: c.name, Err: err}
	}
	clear(s.vals[:s.n])
	s.n = 0
	if len(c.out) > combineEvery/2 {
		for _, v := range c.out {
			if err := c.next.emit(key, v); err != nil {
				return err
			}
		}
	} else {
		s.n = int32(copy(s.vals[:], c.out))
	}
	clear(c.out)
	return nil
}

func (c *combiner) collect(key string, value any) error {
	if key != c.cur {
		return c.next.emit(key, value)
	}
	v, err := wireValue(value)
	if err != nil {
		return err
	}
	c.out = append(c.out, v)
	return nil
}

// flush combines every key's remaining values and sends the results on,
// in key order.
func (c *combiner) flush() error {
	c.order = c.order[:0]
	for i := range c.slots {
		if c.slots[i].n > 0 {
			c.order = append(c.order, keyOrder{prefix: keyPrefix(c.keys[i]), slot: int32(i)})
		}
	}
	// Comparing the first eight bytes as a number settles most pairs
	// without touching the keys.
	slices.SortFunc(c.order, func(a, b keyOrder) int {
		if a.prefix != b.prefix {
			return cmp.Compare(a.prefix, b.prefix)
		}
		return strings.Compare(c.keys[a.slot], c.keys[b.slot])
	})
	for _, o := range c.order {
		i := o.slot
		s := &c.slots[i]
		if err := c.fn(c.ctx, c.keys[i], slices.Values(s.vals[:s.n]), c.next.emit); err != nil {
			return &FunctionError{Function: c.name, Err: err}
		}
	}
	c.reset()
	return nil
}

// sumCombiner is the combiner of a function registered with
// Registry.Sum: it keeps one running int64 per key, as SumInt64 would
// compute it, so an emit costs one map update and nothing is combined
// twice. At the end it sends each key with its sum, in key order: the
// records SumInt64 run as a combiner would send.
type sumCombiner struct {
	next emitter
	*sumState
}

// sumState is the memory of a sumCombiner, reused from task to task.
type sumState struct {
	sums  map[string]int64
	order []sumKey
}

type sumKey struct {
	prefix uint64
	key    string
	sum    int64
}

var sumStates = sync.Pool{New: func() any { return &sumState{sums: make(map[string]int64)} }}

func newSumCombiner(next emitter) *sumCombiner {
	return &sumCombiner{next: next, sumState: sumStates.Get().(*sumState)}
}

func (c *sumCombiner) release() {
	clear(c.sums)
	clear(c.order)
	c.order = c.order[:0]
	sumStates.Put(c.sumState)
	c.sumState = nil
}

func (c *sumCombiner) emit(key string, value any) error {
	var n int64
	switch x := value.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	default:
		v, err := wireValue(value)
		if err != nil {
			return err
		}
		n, _ = Int64(v)
	}
	if len(c.sums) >= combineKeys {
		if _, held := c.sums[key]; !held {
			if err := c.flush(); err != nil {
				return err
			}
		}
	}
	// A new key is stored as given: it may hold on to the string it was
	// cut from (a line) until the task ends, when the map is cleared.
	c.sums[key] += n
	return nil
}

func (c *sumCombiner) flush() error {
	c.order = c.order[:0]
	for k, n := range c.sums {
		c.order = append(c.order, sumKey{prefix: keyPrefix(k), key: k, sum: n})
	}
	slices.SortFunc(c.order, func(a, b sumKey) int {
		if a.prefix != b.prefix {
			return cmp.Compare(a.prefix, b.prefix)
		}
		return strings.Compare(a.key, b.key)
	})
	for _, k := range c.order {
		if err := c.next.emit(k.key, k.sum); err != nil {
			return err
		}
	}
	clear(c.sums)
	clear(c.order)
	return nil
}

// cogroupValues reads a key's values into groups by the input each is
// of: the one source names, else the task's own input.
func cogroupValues(values iter.Seq[[]byte], source func() string, input string) (map[string][]any, error) {
	groups := make(map[string][]any, 2)
	for b := range values {
		v, err := DecodeValue(b)
		if err != nil {
			return nil, err
		}
		src := source()
		if src == "" {
			src = input
		}
		groups[src] = append(groups[src], v)
	}
	return groups, nil
}
