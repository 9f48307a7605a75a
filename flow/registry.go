package flow

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"sort"
	"sync"
)

// Emit sends one output record from a map, reduce, combine or task
// function. The value must be msgpack-encodable; Emit returns an error
// when it is not, or when the task's context is done.
type Emit func(key string, value any) error

// MapFunc is a map function: it receives one input record and emits zero
// or more records.
type MapFunc func(ctx context.Context, rec Record, emit Emit) error

// ReduceFunc is a reduce or combine function: it receives a key and the
// values emitted for it, and emits records.
//
// values is read as the loop over it goes: a reduce task merges its
// partition's sorted files from storage, so a key may have more values
// than fit in memory. It can be ranged over once; collect it
// (slices.Collect) to go over the values again. A value that cannot be
// read ends the loop early and fails the task after the function
// returns.
//
// As a combiner it runs map-side on a few values of a key at a time, as
// they gather, any number of times, and its output for a key is fed back
// to it with further values of that key; its records may reach the
// reducer in another order than the keys'. So, as with Hadoop's
// combiners, a combiner must be associative and commutative and must
// accept its own output as input: a sum, a max, a merge of partial
// aggregates all qualify; counting its values does not (emit 1 per map
// record and sum them instead). And it must emit values its reducer
// accepts, since the reducer may see combined and uncombined values
// alike.
type ReduceFunc func(ctx context.Context, key string, values iter.Seq[any], emit Emit) error

// CoGroupFunc is the function of a reduce stage that reads several
// stages together (a cogroup): it gets each key with its values grouped
// by input, under the name of the stage they came from (or the input's
// name: given); an input with no value for the key has no entry. A
// key's values are all in memory at once, as for Spark's cogroup. Join
// builds one from a function of matched pairs.
type CoGroupFunc func(ctx context.Context, key string, groups map[string][]any, emit Emit) error

// TaskFunc is the function of a task stage: it receives a whole input
// chunk at once (empty for a stage with no input) and emits records.
type TaskFunc func(ctx context.Context, recs []Record, emit Emit) error

// RawFunc serves a stage with encoding: raw: it gets the raw input chunk
// (text lines) and returns the output text, one record per line. Any
// plain Gearman worker in any language can serve such a stage instead.
type RawFunc func(ctx context.Context, input []byte) ([]byte, error)

// Registry holds the Go functions a binary can serve, by name. Names are
// the Gearman function names stages refer to ("wc.map"). A Registry is
// safe for concurrent use; register functions before serving them.
type Registry struct {
	mu    sync.RWMutex // guards funcs
	funcs map[string]registered

	stores storeCache // the stores tasks' refs name, opened once

	logMu    sync.Mutex // guards log and workerID
	log      *slog.Logger
	workerID string
}

// SetLogger sets where the registry's workers report trouble that no
// task result carries, such as a function that ignores its context past
// its deadline. The default is slog.Default().
func (r *Registry) SetLogger(l *slog.Logger) {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	r.log = l
}

func (r *Registry) logger() *slog.Logger {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	if r.log == nil {
		return slog.Default()
	}
	return r.log
}

type registered struct {
	kind   TaskKind
	mapf   MapFunc
	reduce ReduceFunc
	task   TaskFunc
	raw    RawFunc
	sum    bool // reduce is SumInt64, registered with Sum
	// cogroup, when set, serves the reduce kind in place of reduce.
	cogroup CoGroupFunc
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{funcs: make(map[string]registered)}
}

// Map registers a map function. It panics if name is empty, f is nil or
// name is already registered, as http.ServeMux.Handle does.
func (r *Registry) Map(name string, f MapFunc) {
	r.add(name, f == nil, registered{kind: TaskMap, mapf: f})
}

// Reduce registers a reduce function, which may also serve as a combiner.
// It panics like Map.
func (r *Registry) Reduce(name string, f ReduceFunc) {
	r.add(name, f == nil, registered{kind: TaskReduce, reduce: f})
}

// Sum registers SumInt64 as the reduce function called name. As a
// combiner it runs with a typed fast path: a map task keeps one running
// sum per key instead of values to combine, so counting costs a map
// task about what a map[string]int64 costs a plain program. It panics
// like Map.
func (r *Registry) Sum(name string) {
	r.add(name, false, registered{kind: TaskReduce, reduce: SumInt64, sum: true})
}

// SumInt64 is a reduce (and combine) function: it emits the key with the
// sum of its values as an int64, each value converted with Int64 (values
// that are not numbers count 0).
func SumInt64(ctx context.Context, key string, values iter.Seq[any], emit Emit) error {
	var n int64
	for v := range values {
		x, _ := Int64(v)
		n += x
	}
	return emit(key, n)
}

// CoGroup registers the function of a reduce stage that reads several
// stages (needs: [a, b] and no input): it is called once per key with
// the key's values grouped by the stage they came from. It panics like
// Map.
func (r *Registry) CoGroup(name string, f CoGroupFunc) {
	r.add(name, f == nil, registered{kind: TaskReduce, cogroup: f})
}

// Task registers a task function. It panics like Map.
func (r *Registry) Task(name string, f TaskFunc) {
	r.add(name, f == nil, registered{kind: TaskChunk, task: f})
}

// Raw registers a function for raw-encoded stages. It panics like Map.
func (r *Registry) Raw(name string, f RawFunc) {
	r.add(name, f == nil, registered{kind: TaskRaw, raw: f})
}

func (r *Registry) add(name string, isNil bool, f registered) {
	if name == "" {
		panic("flow: register: empty function name")
	}
	if isNil {
		panic("flow: register " + name + ": nil function")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.funcs[name]; dup {
		panic("flow: register " + name + ": already registered")
	}
	r.funcs[name] = f
}

// Names returns the registered function names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.funcs))
	for n := range r.funcs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Kind returns what kind of task the function called name serves, and
// whether it is registered.
func (r *Registry) Kind(name string) (TaskKind, bool) {
	f, ok := r.lookup(name)
	return f.kind, ok
}

func (r *Registry) lookup(name string) (registered, bool) {
	if r == nil {
		return registered{}, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.funcs[name]
	return f, ok
}

// TaskInfo describes the task a function is running for; functions get
// it with InfoFrom.
type TaskInfo struct {
	Run     string
	Stage   string
	Task    int
	Attempt int
	// Params are the stage's params from the pipeline file.
	Params map[string]string
}

type infoKey struct{}

// InfoFrom returns the task a function's context belongs to.
func InfoFrom(ctx context.Context) (TaskInfo, bool) {
	if s, ok := ctx.Value(infoKey{}).(*taskState); ok {
		return s.info, true
	}
	return TaskInfo{}, false
}

// FunctionError is an error returned (or a panic raised) by a registered
// function, as the worker reports it.
type FunctionError struct {
	Function string
	Err      error
}

func (e *FunctionError) Error() string { return fmt.Sprintf("%s: %v", e.Function, e.Err) }
func (e *FunctionError) Unwrap() error { return e.Err }
