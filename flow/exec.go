package flow

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
)

// Worker-side batching: a WORK_DATA packet is sent when either limit is
// reached, so the coordinator sees progress without a packet per record.
const (
	batchBytes   = 64 << 10
	batchRecords = 4096
	// combineKeys bounds the distinct keys a map task holds for its
	// combiner before it combines and flushes them.
	combineKeys = 1 << 16
)

// ErrUnknownFunction is returned when a task names a function the
// registry does not hold.
var ErrUnknownFunction = errors.New("flow: unknown function")

// taskIO is how a running task talks back to its coordinator:
// WORK_DATA and WORK_STATUS.
type taskIO struct {
	data   func([]byte) error
	status func(num, den uint64) error
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
	ctx = context.WithValue(ctx, infoKey{}, TaskInfo{Run: t.Run, Stage: t.Stage, Task: t.Task, Attempt: t.Attempt, Params: t.Params})
	defer func() {
		if p := recover(); p != nil {
			err = &FunctionError{Function: name, Err: fmt.Errorf("panic: %v\n%s", p, debug.Stack())}
		}
	}()

	b := &batcher{io: io}
	out := b.emit
	var comb *combiner
	if t.Combine != "" {
		cf, ok := r.lookup(t.Combine)
		if !ok || cf.kind != TaskReduce {
			return nil, fmt.Errorf("%w %q (combiner of %s)", ErrUnknownFunction, t.Combine, name)
		}
		comb = &combiner{ctx: ctx, name: t.Combine, fn: cf.reduce, next: b, keys: make(map[string][][]byte)}
		out = comb.emit
	}
	var in int64
	total := uint64(len(t.Records) + len(t.Groups))
	progress := func() error {
		if in%1024 == 0 {
			return io.status(uint64(in), total)
		}
		return nil
	}
	switch t.Kind {
	case TaskMap:
		for _, rr := range t.Records {
			v, err := DecodeValue(rr.Value)
			if err != nil {
				return nil, err
			}
			if err := f.mapf(ctx, Record{Key: rr.Key, Value: v}, out); err != nil {
				return nil, &FunctionError{Function: name, Err: err}
			}
			in++
			if err := progress(); err != nil {
				return nil, err
			}
		}
	case TaskReduce:
		for _, g := range t.Groups {
			vals, err := decodeValues(g.Values)
			if err != nil {
				return nil, err
			}
			if err := f.reduce(ctx, g.Key, vals, out); err != nil {
				return nil, &FunctionError{Function: name, Err: err}
			}
			in++
			if err := progress(); err != nil {
				return nil, err
			}
		}
	case TaskChunk:
		recs := make([]Record, len(t.Records))
		for i, rr := range t.Records {
			v, err := DecodeValue(rr.Value)
			if err != nil {
				return nil, err
			}
			recs[i] = Record{Key: rr.Key, Value: v}
		}
		if err := f.task(ctx, recs, out); err != nil {
			return nil, &FunctionError{Function: name, Err: err}
		}
		in = int64(len(recs))
	}
	if comb != nil {
		if err := comb.flush(); err != nil {
			return nil, err
		}
	}
	if err := b.flush(); err != nil {
		return nil, err
	}
	if err := io.status(uint64(in), total); err != nil {
		return nil, err
	}
	return appendSummary(nil, Summary{RecordsIn: in, RecordsOut: b.sent, Batches: b.batches}), nil
}

func decodeValues(raw [][]byte) ([]any, error) {
	vals := make([]any, len(raw))
	for i, v := range raw {
		x, err := DecodeValue(v)
		if err != nil {
			return nil, err
		}
		vals[i] = x
	}
	return vals, nil
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
	b.body = appendArrayLen(b.body, 2)
	b.body = appendString(b.body, key)
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

func (b *batcher) flush() error {
	if b.n == 0 {
		return nil
	}
	b.packet = appendArrayLen(b.packet[:0], b.n)
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

// combiner groups a map task's output by key and runs the combine
// function whenever it holds combineKeys keys, and at the end.
type combiner struct {
	ctx  context.Context
	name string
	fn   ReduceFunc
	next *batcher
	keys map[string][][]byte
	slab []byte // encoded values are carved from here, saving an allocation each
}

func (c *combiner) emit(key string, value any) error {
	if cap(c.slab)-len(c.slab) < 64 {
		c.slab = make([]byte, 0, 64<<10)
	}
	n := len(c.slab)
	var err error
	if c.slab, err = appendValue(c.slab, value); err != nil {
		c.slab = c.slab[:n]
		return err
	}
	raw := c.slab[n:len(c.slab):len(c.slab)]
	c.keys[key] = append(c.keys[key], raw)
	if len(c.keys) >= combineKeys {
		return c.flush()
	}
	return nil
}

func (c *combiner) flush() error {
	keys := make([]string, 0, len(c.keys))
	for k := range c.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vals, err := decodeValues(c.keys[k])
		if err != nil {
			return err
		}
		if err := c.fn(c.ctx, k, vals, c.next.emit); err != nil {
			return &FunctionError{Function: c.name, Err: err}
		}
	}
	clear(c.keys)
	return nil
}
