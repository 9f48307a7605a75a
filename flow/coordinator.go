package flow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/gearflow/gearflow/flow/spec"
	"github.com/gearflow/gearflow/flow/storage"
	"github.com/gearflow/gearflow/runtime"
	"github.com/gearflow/gearflow/server"
)

// Options configures a run. The zero value runs with an embedded job
// server and GOMAXPROCS local workers, keeping state under
// ./.gearflow/runs.
type Options struct {
	// Servers are the job servers ("host:port") to submit tasks to.
	// Empty starts an embedded server on 127.0.0.1 for the run.
	Servers []string
	// Workers is how many tasks the in-process worker runs at once. Zero
	// means GOMAXPROCS with an embedded server and none with Servers
	// (remote workers serve the functions); negative means none.
	Workers int
	// StateDir holds run directories (<StateDir>/<run id>/). Zero means
	// ./.gearflow/runs.
	StateDir string
	// RunID, with Resume, names the run to resume. Without Resume it
	// names the new run; zero means a new random UUID.
	RunID  string
	Resume bool
	// PipelineFile and Params (-p overrides) are recorded in the run's
	// plan, so a resumed run can be told only its id.
	PipelineFile string
	Params       map[string]string
	// Storage is the URI of the run's intermediate data: file:///path (a
	// local folder, or a shared one mounted on every worker) or
	// s3://bucket/prefix. Map tasks then read their input splits and
	// write their partitions there, and reduce tasks merge them from
	// there: the job server carries only references. Empty takes the
	// pipeline's storage:, else, for an embedded run, a folder of the
	// run's directory; a run with Servers and no storage sends its data
	// through the job servers, as do runs with an encoding: raw stage,
	// and runs whose Storage is StorageNone.
	Storage string
	// MemoryBudget bounds the bytes of records a shuffle holds in memory
	// before it spills sorted runs to disk. Zero means 256 MiB.
	MemoryBudget int64
	// SpeculateAfter is the least time a straggler's attempt runs before
	// it gets a backup attempt (in stages with speculative: true, once all
	// their tasks have started, and past twice the median task time).
	// Zero means 5s.
	SpeculateAfter time.Duration
	// OnEvent, if set, receives progress events. It is called from the
	// run's goroutines, one call at a time, and must not block.
	OnEvent func(Event)
	// Logger receives the run's logs. Nil discards them.
	Logger *slog.Logger
}

// StorageNone as Options.Storage sends a run's data through the job
// server even where storage could carry it.
const StorageNone = "none"

// DefaultStateDir is where run directories go when Options.StateDir is
// empty.
const DefaultStateDir = ".gearflow/runs"

// maxPayloadSplit bounds a bytes split whose chunk travels in the task's
// payload (a run without storage).
const maxPayloadSplit = 4 << 20

// maxReduceTaskBytes bounds the encoded key groups of one reduce task: a
// partition larger than this is cut into several tasks by key range.
const maxReduceTaskBytes = 8 << 20

func (o Options) withDefaults() Options {
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.Workers == 0 {
		if len(o.Servers) == 0 {
			o.Workers = goruntime.GOMAXPROCS(0)
		} else {
			o.Workers = -1
		}
	}
	if o.MemoryBudget <= 0 {
		o.MemoryBudget = 256 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// RunDir returns the directory of run id under stateDir ("" = the
// default).
func RunDir(stateDir, id string) string {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	return filepath.Join(stateDir, id)
}

// coordinator runs one pipeline run.
type coordinator struct {
	p      *spec.Pipeline
	reg    *Registry
	opts   Options
	run    string
	j      *journal
	client *runtime.Client
	log    *slog.Logger

	stages   map[string]*stageRun
	inputs   inputFiles
	fleet    *fleet        // worker slots per function, for stages that follow the fleet
	store    storage.Store // the run's storage; nil sends data through the job server
	storeURI string

	mu     sync.Mutex // guards the stageRun counters and serializes OnEvent
	failed []TaskFailure
}

// stageRun is one stage's state in a run.
type stageRun struct {
	st     *spec.Stage
	done   chan struct{} // closed when the stage ended
	err    error         // set before done is closed
	chunks []chunk
	// outCounts[i] is task i's output records; -1 until known.
	outCounts []int64
	// files[i] are the files task i's committed attempt wrote (with
	// storage), guarded by coordinator.mu.
	files [][]outFile

	// guarded by coordinator.mu:
	res          StageResult
	start        time.Time
	running      map[int]uint64 // task -> input records its latest attempt reported done
	lastProgress time.Time
}

// Run runs pipeline p with the functions of reg and returns a summary. A
// failed run returns a *RunError naming the failed tasks; its directory
// stays, so Options.Resume can finish it.
func Run(ctx context.Context, p *spec.Pipeline, reg *Registry, opts Options) (*Result, error) {
	opts = opts.withDefaults()
	begin := time.Now()
	c := &coordinator{p: p, reg: reg, opts: opts, log: opts.Logger, stages: make(map[string]*stageRun)}
	if err := c.open(); err != nil {
		return nil, err
	}
	defer c.j.close()
	defer c.inputs.close()
	c.log = c.log.With("run", c.run)
	if c.storeURI != "" {
		st, err := storage.Open(ctx, c.storeURI)
		if err != nil {
			return nil, &RunError{Run: c.run, Err: fmt.Errorf("storage: %w", err)}
		}
		c.store = st
	}
	if err := c.checkFunctions(); err != nil {
		return nil, &RunError{Run: c.run, Err: err}
	}
	// File inputs are split now, so a missing file fails the run before
	// anything is submitted.
	for _, sr := range c.stages {
		if k := sr.st.Input.From.Kind; k == spec.SourceFile || k == spec.SourceGlob {
			chunks, err := c.stageChunks(ctx, sr)
			if err != nil {
				return nil, &RunError{Run: c.run, Err: fmt.Errorf("stage %s: %w", sr.st.Name, err)}
			}
			sr.chunks = chunks // kept for runStage, which would read them back
		}
	}

	servers := opts.Servers
	if len(servers) == 0 {
		addr, stop, err := c.startServer()
		if err != nil {
			return nil, &RunError{Run: c.run, Err: err}
		}
		defer stop()
		servers = []string{addr}
	}
	if opts.Workers > 0 {
		stop, err := c.startWorkers(ctx, servers)
		if err != nil {
			return nil, &RunError{Run: c.run, Err: err}
		}
		defer stop()
	}
	client, err := runtime.NewClient(runtime.ClientConfig{Servers: servers, Logger: c.log})
	if err != nil {
		return nil, &RunError{Run: c.run, Err: err}
	}
	defer client.Close()
	c.client = client

	c.fleet = &fleet{servers: servers, log: c.log, local: max(opts.Workers, 0)}
	fctx, stopFleet := context.WithCancel(ctx)
	defer stopFleet()
	c.fleet.start(fctx)

	c.emit(Event{Kind: EventRunStarted, Dir: c.j.dir})
	c.log.Info("run started", "pipeline", p.Name, "dir", c.j.dir, "servers", servers)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, sr := range c.stages {
		wg.Go(func() {
			sr.err = c.runStage(ctx, sr)
			if sr.err != nil {
				cancel()
			}
			close(sr.done)
		})
	}
	wg.Wait()

	res := &Result{Run: c.run, Dir: c.j.dir, Output: p.Output.To}
	var firstErr error
	for _, st := range p.Stages {
		sr := c.stages[st.Name]
		res.Stages = append(res.Stages, sr.res)
		if sr.err != nil && !errors.Is(sr.err, errUpstream) && firstErr == nil {
			firstErr = fmt.Errorf("stage %s: %w", st.Name, sr.err)
		}
	}
	res.Failed = c.failed
	if firstErr == nil {
		if err := ctx.Err(); err != nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		res.OutputRecords, firstErr = c.writeResult(ctx)
	}
	res.Elapsed = time.Since(begin)
	done := Event{Kind: EventRunDone, Output: res.Output}
	if firstErr != nil {
		done.Err = firstErr.Error()
		done.Output = ""
	}
	c.emit(done)
	if firstErr != nil {
		c.log.Info("run failed", "failed_tasks", len(c.failed))
		return res, &RunError{Run: c.run, Failed: c.failed, Err: firstErr}
	}
	if c.store != nil {
		c.sweep(ctx)
	}
	// A finished run keeps its plan, journal and task outputs; the
	// scratch space of attempts and the reduce inputs derived from them go.
	for _, st := range p.Stages {
		os.RemoveAll(c.j.tmpDir(st.Name))
		os.RemoveAll(filepath.Join(c.j.stageDir(st.Name), "input"))
	}
	c.log.Info("run finished", "output", res.Output, "records", res.OutputRecords, "elapsed", res.Elapsed)
	return res, nil
}

var errUpstream = errors.New("flow: a stage this one needs failed")

// open creates or reopens the run directory and loads or writes the plan.
func (c *coordinator) open() error {
	o := c.opts
	if o.Resume {
		if o.RunID == "" {
			return fmt.Errorf("%w: resume needs a run id", ErrNoRun)
		}
		dir := RunDir(o.StateDir, o.RunID)
		pl, err := readPlan(dir)
		if err != nil {
			return err
		}
		if pl.Pipeline != c.p.Name {
			return fmt.Errorf("flow: run %s is of pipeline %q, not %q", o.RunID, pl.Pipeline, c.p.Name)
		}
		c.run = pl.Run
		c.storeURI = pl.Storage
		if c.j, err = openJournal(dir); err != nil {
			return err
		}
		if c.j.torn > 0 {
			c.log.Warn("journal ended in a torn line, cut off; its task runs again", "run", c.run, "bytes", c.j.torn)
		}
	} else {
		c.run = o.RunID
		if c.run == "" {
			c.run = uuid.NewString()
		}
		dir := RunDir(o.StateDir, c.run)
		if _, err := os.Stat(filepath.Join(dir, "plan.json")); err == nil {
			return fmt.Errorf("flow: run %s already exists in %s (resume it, or pick another id)", c.run, dir)
		}
		var err error
		if c.j, err = openJournal(dir); err != nil {
			return err
		}
		file := o.PipelineFile
		if file != "" {
			if abs, err := filepath.Abs(file); err == nil {
				file = abs
			}
		}
		c.storeURI = c.chooseStorage(dir)
		pl := &plan{Run: c.run, Pipeline: c.p.Name, File: file, Params: o.Params, Created: time.Now().UTC(), Storage: c.storeURI}
		for _, st := range c.p.Stages {
			pl.Stages = append(pl.Stages, plannedStage{Name: st.Name})
		}
		if err := c.j.writePlan(pl); err != nil {
			c.j.close()
			return err
		}
	}
	for _, st := range c.p.Stages {
		c.stages[st.Name] = &stageRun{st: st, done: make(chan struct{}),
			res: StageResult{Name: st.Name, Function: st.Function}}
	}
	return nil
}

// chooseStorage returns the storage URI of a new run in dir, or "" for
// data through the job server.
func (c *coordinator) chooseStorage(dir string) string {
	for _, st := range c.p.Stages {
		if st.Encoding == spec.EncodingRaw {
			if c.opts.Storage != "" || c.p.Storage != "" {
				c.log.Warn("a stage has encoding: raw, so the run's data goes through the job server, not its storage", "stage", st.Name)
			}
			return ""
		}
	}
	switch {
	case c.opts.Storage == StorageNone:
		return ""
	case c.opts.Storage != "":
		return c.opts.Storage
	case c.p.Storage != "":
		return c.p.Storage
	case len(c.opts.Servers) == 0:
		return defaultStorage(dir)
	}
	return ""
}

// checkFunctions fails early when the in-process worker would be asked
// for a function the registry lacks or has with the wrong shape.
func (c *coordinator) checkFunctions() error {
	for _, st := range c.p.Stages {
		if st.Kind == spec.KindReduce && st.Encoding == spec.EncodingRaw {
			return fmt.Errorf("stage %s: reduce stages need the msgpack encoding", st.Name)
		}
		if st.Encoding == spec.EncodingRaw {
			kind, ok := c.reg.Kind(st.Function)
			if ok && kind != TaskRaw {
				return fmt.Errorf("stage %s: function %q is a %s function; a raw stage needs a raw function or an outside worker", st.Name, st.Function, kind)
			}
			if !ok && len(c.opts.Servers) == 0 {
				c.log.Warn("no Go function registered for a raw stage; waiting for an outside worker", "stage", st.Name, "func", st.Function)
			}
			continue
		}
		if c.opts.Workers <= 0 {
			continue
		}
		want := taskKindOf(st.Kind)
		kind, ok := c.reg.Kind(st.Function)
		if !ok && len(c.opts.Servers) == 0 {
			return fmt.Errorf("stage %s: function %q is not registered (registered: %v)", st.Name, st.Function, c.reg.Names())
		}
		if ok && kind != want {
			return fmt.Errorf("stage %s: function %q is a %s function, the stage is a %s stage", st.Name, st.Function, kind, st.Kind)
		}
		if st.Combine != "" {
			if kind, ok := c.reg.Kind(st.Combine); (ok || len(c.opts.Servers) == 0) && kind != TaskReduce {
				return fmt.Errorf("stage %s: combiner %q must be a registered reduce function", st.Name, st.Combine)
			}
		}
	}
	return nil
}

func (c *coordinator) startServer() (string, func(), error) {
	srv, err := server.New(server.Config{Logger: c.log})
	if err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("flow: embedded server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
	}
	return l.Addr().String(), stop, nil
}

// maxWorkerConns bounds the connections of the in-process worker to
// each server.
const maxWorkerConns = 4

// startWorkers starts the in-process worker: Options.Workers slots, over
// up to maxWorkerConns runtime workers (a connection each per server).
// One connection asks for its jobs one round trip at a time, which caps
// short tasks at one per round trip; several share that wait.
func (c *coordinator) startWorkers(ctx context.Context, servers []string) (func(), error) {
	conns := min(c.opts.Workers, maxWorkerConns)
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		slots := c.opts.Workers / conns
		if i < c.opts.Workers%conns {
			slots++
		}
		w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: servers, Concurrency: slots,
			ClientID: WorkerClientID(fmt.Sprintf("gearflow-run-%s-%d", c.run, i), slots), Logger: c.log, ShutdownTimeout: time.Second})
		if err != nil {
			cancel()
			wg.Wait()
			return nil, err
		}
		c.reg.Register(w)
		wg.Go(func() { w.Run(wctx) })
	}
	return func() { cancel(); wg.Wait() }, nil
}

func (c *coordinator) emit(e Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.emitLocked(e)
}

func (c *coordinator) emitLocked(e Event) {
	if c.opts.OnEvent == nil {
		return
	}
	e.Time = time.Now()
	e.Run = c.run
	if sr := c.stages[e.Stage]; sr != nil {
		e.TasksDone, e.TasksFailed, e.TasksTotal = sr.res.Done, sr.res.Failed, sr.res.Tasks
		e.Retries, e.RecordsIn, e.RecordsOut = sr.res.Retries, sr.res.RecordsIn, sr.res.RecordsOut
		for _, n := range sr.running {
			e.RecordsRunning += int64(n)
		}
	}
	c.opts.OnEvent(e)
}

// runStage waits for the stage's needs, works out its tasks, runs those
// not already completed, and records failures.
func (c *coordinator) runStage(ctx context.Context, sr *stageRun) error {
	st := sr.st
	for _, n := range st.Needs {
		up := c.stages[n]
		select {
		case <-up.done:
			if up.err != nil {
				return errUpstream
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := os.MkdirAll(c.j.tmpDir(st.Name), 0o755); err != nil {
		return err
	}
	chunks := sr.chunks
	if chunks == nil {
		var err error
		if chunks, err = c.stageChunks(ctx, sr); err != nil {
			return err
		}
		sr.chunks = chunks
	}
	if st.Input.From.Kind == spec.SourceStage && st.Kind != spec.KindReduce && c.store == nil {
		if _, err := c.upstreamCounts(c.stages[st.Input.From.Value]); err != nil {
			return err
		}
	}
	sr.outCounts = make([]int64, len(chunks))
	counts := c.journalCounts(st.Name)
	var done map[int]bool
	if c.store != nil {
		// A task is done when the journal names its committed files.
		done = make(map[int]bool)
		c.mu.Lock()
		sr.files = make([][]outFile, len(chunks))
		for i, e := range counts {
			if e.Stored && i >= 0 && i < len(chunks) {
				done[i] = true
				sr.files[i] = e.Files
			}
		}
		c.mu.Unlock()
	} else {
		var err error
		if done, err = c.j.doneTasks(st.Name); err != nil {
			return err
		}
	}
	var todo []int
	c.mu.Lock()
	sr.start = time.Now()
	sr.res.Tasks = len(chunks)
	for i := range chunks {
		sr.outCounts[i] = -1
		if !done[i] {
			todo = append(todo, i)
			continue
		}
		sr.res.Done++
		sr.res.Resumed++
		if e, ok := counts[i]; ok {
			sr.res.RecordsIn += e.RecordsIn
			sr.res.RecordsOut += e.RecordsOut
			sr.outCounts[i] = e.RecordsOut
		}
	}
	c.emitLocked(Event{Kind: EventStageStarted, Stage: st.Name})
	c.mu.Unlock()
	c.log.Info("stage started", "stage", st.Name, "tasks", len(chunks), "todo", len(todo))

	s := &schedule{
		tasks: todo, total: len(chunks), concurrency: st.Concurrency, retry: st.Retry,
		timeout: st.Timeout, speculative: st.Speculative, speculateAfter: c.opts.SpeculateAfter, policy: st.OnFailure,
		run: func(ctx context.Context, task, attempt int) attemptOutcome {
			if c.store != nil {
				return c.storedAttempt(ctx, sr, task, attempt)
			}
			return c.attempt(ctx, sr, task, attempt)
		},
		observe: func(e schedEvent) { c.observe(sr, e) },
	}
	if st.Concurrency == 0 {
		s.limit = func() int { return c.fleet.capacity(st.Function) }
	}
	if len(c.opts.Servers) == 0 && c.opts.Workers > 0 {
		// Only the in-process worker serves the embedded server.
		s.backupSlots = c.opts.Workers
	}
	failures, err := s.execute(ctx)
	// Task outputs were renamed into place and journaled without an
	// fsync each; one for the directory and the journal makes them all
	// durable.
	if serr := c.j.sync(st.Name); serr != nil && err == nil {
		err = serr
	}
	c.mu.Lock()
	sr.res.Elapsed = time.Since(sr.start)
	var tfs []TaskFailure
	for _, f := range failures {
		tf := TaskFailure{Stage: st.Name, Task: f.task, Function: st.Function, Attempts: f.attempts,
			Err: f.err.Error(), Input: chunks[f.task].String()}
		tfs = append(tfs, tf)
		c.failed = append(c.failed, tf)
	}
	c.emitLocked(Event{Kind: EventStageDone, Stage: st.Name})
	c.mu.Unlock()
	if len(tfs) > 0 {
		if derr := c.deadLetter(st, tfs); derr != nil && err == nil {
			err = derr
		}
	}
	return err
}

// observe turns scheduler events into counters and Events.
func (c *coordinator) observe(sr *stageRun, e schedEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.kind == schedLost {
		c.log.Warn("task attempt lost with its job server; running it again", "stage", sr.st.Name, "task", e.task, "attempt", e.attempt, "err", e.err)
	}
	if e.kind == schedStart || e.kind == schedDropped || e.kind == schedLost {
		return
	}
	ev := Event{Stage: sr.st.Name, Task: e.task, Attempt: e.attempt}
	if c.opts.OnEvent != nil || e.kind != schedDone {
		ev.Input = sr.chunks[e.task].String()
	}
	if e.err != nil {
		ev.Err = e.err.Error()
	}
	switch e.kind {
	case schedBackup:
		sr.res.Backups++
		ev.Kind = EventTaskBackup
	case schedRetry:
		sr.res.Retries++
		ev.Kind, ev.Wait = EventTaskRetry, e.wait
		c.log.Warn("task attempt failed; retrying", "stage", sr.st.Name, "task", e.task, "attempt", e.attempt, "wait", e.wait, "err", e.err)
	case schedDropped:
		return
	case schedDone:
		sr.res.Done++
		ev.Kind = EventTaskDone
	case schedFailed:
		sr.res.Failed++
		ev.Kind = EventTaskFailed
		c.log.Warn("task failed", "stage", sr.st.Name, "task", e.task, "attempts", e.attempt, "err", e.err)
	}
	c.emitLocked(ev)
}

// deadLetter appends failed tasks to the run's failed.jsonl and to the
// stage's dead-letter file, if it names one.
func (c *coordinator) deadLetter(st *spec.Stage, fs []TaskFailure) error {
	paths := []string{filepath.Join(c.j.dir, "failed.jsonl")}
	if st.DeadLetter != "" && st.OnFailure.Mode != spec.FailFast {
		paths = append(paths, st.DeadLetter)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, f := range fs {
		type deadLetter struct {
			Run string `json:"run"`
			TaskFailure
		}
		enc.Encode(deadLetter{Run: c.run, TaskFailure: f})
	}
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("flow: dead letter: %w", err)
		}
		_, err = f.Write(buf.Bytes())
		if err == nil {
			err = f.Sync()
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("flow: dead letter: %w", err)
		}
	}
	return nil
}

func (c *coordinator) journalCounts(stage string) map[int]journalEntry {
	entries, err := readJournal(c.j.dir)
	if err != nil {
		c.log.Warn("journal unreadable; recounting outputs", "err", err)
	}
	m := make(map[int]journalEntry)
	for _, e := range entries {
		if e.Stage == stage {
			m[e.Task] = e
		}
	}
	return m
}

// stageChunks returns the stage's task inputs, from its chunks.json when
// an earlier run of this run id prepared them, else by planning them now
// (and recording them).
func (c *coordinator) stageChunks(ctx context.Context, sr *stageRun) ([]chunk, error) {
	st := sr.st
	path := filepath.Join(c.j.stageDir(st.Name), "chunks.json")
	if data, err := os.ReadFile(path); err == nil {
		var chunks []chunk
		if err := json.Unmarshal(data, &chunks); err == nil {
			return chunks, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var chunks []chunk
	var err error
	if c.store != nil {
		chunks, err = c.storedPlan(ctx, sr)
	} else {
		chunks, err = c.planStage(sr)
	}
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.j.stageDir(st.Name), 0o755); err != nil {
		return nil, err
	}
	data, err := json.Marshal(chunks)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, data); err != nil {
		return nil, err
	}
	return chunks, nil
}

func (c *coordinator) planStage(sr *stageRun) ([]chunk, error) {
	st := sr.st
	from := st.Input.From
	switch {
	case st.Kind == spec.KindReduce:
		return c.prepareReduce(sr)
	case from.Kind == spec.SourceFile || from.Kind == spec.SourceGlob:
		split := st.Input.Split
		if split.By == spec.SplitBytes && split.N > maxPayloadSplit {
			// The chunk travels in the job's payload: keep it well
			// inside a packet.
			split.N = maxPayloadSplit
		}
		return planFiles(from, split)
	case from.Kind == spec.SourceStage:
		up := c.stages[from.Value]
		total, err := c.upstreamCounts(up)
		if err != nil {
			return nil, err
		}
		n := int64(st.Input.Split.N)
		if n <= 0 {
			n = spec.DefaultSplitRecords
		}
		var chunks []chunk
		for start := int64(0); start < total; start += n {
			chunks = append(chunks, chunk{Stage: from.Value, Start: start, Count: min(n, total-start)})
		}
		if len(chunks) == 0 {
			chunks = []chunk{{Stage: from.Value}}
		}
		return chunks, nil
	}
	return []chunk{{}}, nil // a task stage with no input runs once
}

// upstreamCounts fills up.outCounts (counting records of task files whose
// count the journal lacks) and returns the total.
func (c *coordinator) upstreamCounts(up *stageRun) (int64, error) {
	var total int64
	for i := range up.outCounts {
		if up.outCounts[i] < 0 {
			var n int64
			err := c.j.eachTaskRecord(up.st.Name, i, func(rawRecord) error { n++; return nil })
			if errors.Is(err, fs.ErrNotExist) {
				err = nil // a failed task under continue: no output
			}
			if err != nil {
				return 0, err
			}
			up.outCounts[i] = n
		}
		total += up.outCounts[i]
	}
	return total, nil
}

// eachOutput calls fn with every record of stage sr's output, in task
// order (failed tasks have none).
func (c *coordinator) eachOutput(sr *stageRun, fn func(rawRecord) error) error {
	return c.eachOutputRaw(sr, func(key, value []byte) error {
		return fn(rawRecord{Key: string(key), Value: value})
	})
}

// eachOutputRaw is eachOutput with keys as bytes valid only during the
// call (see journal.eachTaskRaw).
func (c *coordinator) eachOutputRaw(sr *stageRun, fn func(key, value []byte) error) error {
	for i := range sr.chunks {
		err := c.j.eachTaskRaw(sr.st.Name, i, fn)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var errStop = errors.New("stop")

// stageChunkRecords reads a stage chunk's records from the upstream
// stage's task outputs.
func (c *coordinator) stageChunkRecords(ch chunk) ([]rawRecord, error) {
	up := c.stages[ch.Stage]
	recs := make([]rawRecord, 0, ch.Count)
	var base int64
	for i := range up.chunks {
		n := up.outCounts[i]
		if base+n <= ch.Start {
			base += n
			continue
		}
		idx := base
		err := c.j.eachTaskRecord(up.st.Name, i, func(r rawRecord) error {
			if idx >= ch.Start && idx < ch.Start+ch.Count {
				recs = append(recs, r)
			}
			idx++
			if idx >= ch.Start+ch.Count {
				return errStop
			}
			return nil
		})
		if err != nil && err != errStop && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		base += n
		if int64(len(recs)) >= ch.Count {
			break
		}
	}
	return recs, nil
}

// prepareReduce shuffles the needed stage's output into its partitions
// (spilling beyond the memory budget) and writes each partition's key
// groups as reduce task inputs, cutting a partition into several tasks
// by key range when its groups exceed maxReduceTaskBytes.
func (c *coordinator) prepareReduce(sr *stageRun) ([]chunk, error) {
	up := c.stages[sr.st.Input.From.Value]
	parts := max(up.st.Partition.Count, 1)
	tmp := c.j.tmpDir(sr.st.Name)
	// The partitions are shared among up to GOMAXPROCS shufflers that
	// run at once, each reading the whole output and keeping the records
	// of its own partitions, and each with its share of the budget.
	n := min(parts, goruntime.GOMAXPROCS(0))
	shs := make([]*shuffler, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range shs {
		sh := newShuffler(filepath.Join(tmp, fmt.Sprintf("shuffle-%d", i)), parts, max(c.opts.MemoryBudget/int64(n), 1))
		sh.copyValues = n > 1 // each keeps a share of what it reads
		defer sh.cleanup()
		shs[i] = sh
		wg.Go(func() {
			errs[i] = c.eachOutputRaw(up, func(key, value []byte) error {
				if p := partitionOfBytes(key, parts); p%n == i {
					return sh.addToPart(p, key, value)
				}
				return nil
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("flow: shuffle: %w", err)
	}
	inDir := filepath.Join(c.j.stageDir(sr.st.Name), "input")
	if err := os.MkdirAll(inDir, 0o755); err != nil {
		return nil, err
	}
	var chunks []chunk
	var body []byte
	var cur chunk
	flush := func() error {
		if cur.Count == 0 {
			return nil
		}
		cur.Groups = filepath.Join(inDir, fmt.Sprintf("groups-%06d.bin", len(chunks)))
		data := appendArrayLen(make([]byte, 0, len(body)+5), int(cur.Count))
		if err := writeFileAtomic(cur.Groups, append(data, body...)); err != nil {
			return err
		}
		chunks = append(chunks, cur)
		body = body[:0]
		return nil
	}
	for p := 0; p < parts; p++ {
		cur = chunk{Partition: p}
		err := shs[p%n].groups(p, func(g group) error {
			if cur.Count > 0 && len(body) >= maxReduceTaskBytes {
				if err := flush(); err != nil {
					return err
				}
				cur = chunk{Partition: p}
			}
			if cur.Count == 0 {
				cur.FirstKey = g.Key
			}
			cur.LastKey = g.Key
			cur.Count++
			body = appendArrayLen(body, 2)
			body = appendString(body, g.Key)
			body = appendArrayLen(body, len(g.Values))
			for _, v := range g.Values {
				body = append(body, v...)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("flow: shuffle: %w", err)
		}
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return chunks, nil
}

// payload encodes attempt's task payload.
func (c *coordinator) payload(sr *stageRun, task, attempt int) ([]byte, error) {
	st := sr.st
	ch := sr.chunks[task]
	var recs []rawRecord
	var err error
	switch {
	case ch.Groups != "":
		h := c.header(sr, task, attempt)
		groups, err := os.ReadFile(ch.Groups)
		if err != nil {
			return nil, err
		}
		b := appendTaskHeader(nil, &h)
		b = appendString(b, "groups")
		return append(b, groups...), nil
	case st.Encoding == spec.EncodingRaw && ch.File != "":
		return c.inputs.readChunk(ch)
	case ch.File != "" && !ch.JSON && !ch.CSV:
		// Text lines go from the file into the payload with no record
		// in between.
		data, err := c.inputs.readChunk(ch)
		if err != nil {
			return nil, err
		}
		h := c.header(sr, task, attempt)
		b := appendTaskHeader(make([]byte, 0, 512+len(data)+4*int(ch.Lines)), &h)
		b = appendString(b, "records")
		return appendTextRecords(b, data), nil
	case ch.File != "" || len(ch.Files) > 0:
		recs, err = fileChunkRecords(ch)
	case ch.Stage != "":
		recs, err = c.stageChunkRecords(ch)
	}
	if err != nil {
		return nil, err
	}
	if st.Encoding == spec.EncodingRaw {
		return rawText(recs), nil
	}
	h := c.header(sr, task, attempt)
	return appendMapPayload(nil, &h, recs), nil
}

func (c *coordinator) header(sr *stageRun, task, attempt int) taskHeader {
	return taskHeader{Run: c.run, Stage: sr.st.Name, Task: task, Attempt: attempt, Kind: taskKindOf(sr.st.Kind),
		Combine: sr.st.Combine, Input: sr.chunks[task].String(), Params: sr.st.Params}
}

// taskKindOf returns the kind of task a stage of kind k runs.
func taskKindOf(k spec.Kind) TaskKind {
	switch k {
	case spec.KindMap:
		return TaskMap
	case spec.KindReduce:
		return TaskReduce
	case spec.KindTask:
		return TaskChunk
	}
	return 0
}

// rawText renders records as the text lines a raw-encoded task gets:
// the value, or key<TAB>value when the key is not empty.
func rawText(recs []rawRecord) []byte {
	var b bytes.Buffer
	for _, r := range recs {
		v, _ := DecodeValue(r.Value)
		if r.Key != "" {
			b.WriteString(r.Key)
			b.WriteByte('\t')
		}
		b.WriteString(FormatValue(v))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// attempt runs one attempt of a task as a Gearman job, streaming its
// WORK_DATA into a file of its own that becomes the task's output only
// if the attempt completes and wins.
func (c *coordinator) attempt(ctx context.Context, sr *stageRun, task, attempt int) attemptOutcome {
	st := sr.st
	payload, err := c.payload(sr, task, attempt)
	if err != nil {
		return attemptOutcome{err: fmt.Errorf("flow: task input: %w", err)}
	}
	w := &attemptOutput{path: func() string {
		return filepath.Join(c.j.tmpDir(st.Name), fmt.Sprintf("task-%06d.a%d.rec", task, attempt))
	}}
	discard := w.discard
	fail := func(err error) attemptOutcome {
		c.mu.Lock()
		delete(sr.running, task)
		c.mu.Unlock()
		return attemptOutcome{err: err, discard: discard}
	}

	job := runtime.Job{Function: st.Function, Payload: payload, Unique: uniqueID(c.run, st.Name, task, attempt),
		Priority: jobPriority(st.Priority)}
	t, err := c.client.Submit(ctx, job)
	if err != nil {
		return fail(lostServer(ctx, err))
	}
	var (
		got, batches int64
		raw          bytes.Buffer
		warning      string
		summary      Summary
		jobErr       error
	)
	for ev := range t.Events() {
		switch ev.Kind {
		case runtime.EventData:
			if st.Encoding == spec.EncodingRaw {
				raw.Write(ev.Data)
				continue
			}
			n, err := writeBatch(w, ev.Data)
			if err != nil {
				jobErr = err
				continue
			}
			got += n
			batches++
		case runtime.EventWarning:
			warning = string(ev.Data)
		case runtime.EventStatus:
			c.progress(sr, task, ev.Numerator)
		case runtime.EventComplete:
			if st.Encoding == spec.EncodingRaw {
				raw.Write(ev.Data)
				recs := rawLines(raw.Bytes())
				for _, r := range recs {
					if err := w.write(r); err != nil {
						jobErr = err
					}
				}
				summary = Summary{RecordsIn: int64(sr.chunks[task].Lines), RecordsOut: int64(len(recs))}
				got, batches = summary.RecordsOut, summary.Batches
				continue
			}
			s, err := decodeSummary(ev.Data)
			if err != nil {
				jobErr = err
				continue
			}
			summary = s
		case runtime.EventFail:
			jobErr = errors.New("job failed (WORK_FAIL)")
			if warning != "" {
				jobErr = fmt.Errorf("job failed (WORK_FAIL): %s", warning)
			}
		case runtime.EventException:
			jobErr = fmt.Errorf("%s", ev.Data)
		case runtime.EventError:
			jobErr = lostServer(ctx, ev.Err)
		}
	}
	if jobErr != nil {
		return fail(jobErr)
	}
	if got != summary.RecordsOut || batches != summary.Batches {
		// The stream does not add up: the job was restarted by the
		// server after its worker was lost, or this coordinator attached
		// to a job that had already streamed data.
		return fail(fmt.Errorf("incomplete stream: received %d records in %d batches, the worker sent %d in %d",
			got, batches, summary.RecordsOut, summary.Batches))
	}
	// A file's data is made durable here, in parallel with other
	// attempts; committing is then a rename and a journal line. Output
	// held in memory is appended to the stage's pack file at commit.
	if err := w.finish(); err != nil {
		w.discard()
		return attemptOutcome{err: err}
	}
	entry := journalEntry{Stage: st.Name, Task: task, Attempt: attempt,
		RecordsIn: summary.RecordsIn, RecordsOut: summary.RecordsOut}
	return attemptOutcome{
		discard: w.discard,
		commit: func() error {
			if w.f == nil {
				if err := c.j.commitPacked(entry, w.mem); err != nil {
					return err
				}
			} else {
				if err := os.Rename(w.name, c.j.taskPath(st.Name, task)); err != nil {
					return err
				}
				if err := c.j.record(entry); err != nil {
					return err
				}
			}
			c.mu.Lock()
			delete(sr.running, task)
			sr.outCounts[task] = summary.RecordsOut
			sr.res.RecordsIn += summary.RecordsIn
			sr.res.RecordsOut += summary.RecordsOut
			c.mu.Unlock()
			return nil
		},
	}
}

// lostServer marks err with errAttemptLost when it says the attempt's job
// server was lost or unreachable, not that the job failed or ctx ended.
func lostServer(ctx context.Context, err error) error {
	if ctx.Err() == nil && (errors.Is(err, runtime.ErrConnectionLost) || errors.Is(err, runtime.ErrNoServers)) {
		return fmt.Errorf("%w: %w", errAttemptLost, err)
	}
	return err
}

// progress records a running task's WORK_STATUS and emits an
// EventProgress now and then.
func (c *coordinator) progress(sr *stageRun, task int, done uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sr.running == nil {
		sr.running = make(map[int]uint64)
	}
	sr.running[task] = done
	if now := time.Now(); now.Sub(sr.lastProgress) >= 500*time.Millisecond {
		sr.lastProgress = now
		c.emitLocked(Event{Kind: EventProgress, Stage: sr.st.Name, Task: task})
	}
}

func jobPriority(p spec.Priority) runtime.Priority {
	switch p {
	case spec.PriorityHigh:
		return runtime.PriorityHigh
	case spec.PriorityLow:
		return runtime.PriorityLow
	}
	return runtime.PriorityNormal
}

// attemptOutput collects an attempt's records: in memory up to
// maxPacked bytes, then in a temporary file of the attempt's own.
type attemptOutput struct {
	path func() string // where the temporary file goes, should there be one
	mem  []byte        // records, while they fit
	f    *recWriter    // the file, past maxPacked
	name string        // its path
}

// writeRecords appends encoded records.
func (o *attemptOutput) writeRecords(b []byte) error {
	if o.f == nil && len(o.mem)+len(b) <= maxPacked {
		o.mem = append(o.mem, b...)
		return nil
	}
	if o.f == nil {
		o.name = o.path()
		w, err := createRecFile(o.name)
		if err != nil {
			return err
		}
		o.f = w
		if _, err := w.w.Write(o.mem); err != nil {
			return err
		}
		o.mem = nil
	}
	_, err := o.f.w.Write(b)
	return err
}

func (o *attemptOutput) write(r rawRecord) error {
	return o.writeRecords(appendRecord(nil, r.Key, r.Value))
}

// finish flushes and fsyncs the file, if there is one.
func (o *attemptOutput) finish() error {
	if o.f == nil {
		return nil
	}
	return o.f.close(true)
}

// discard drops the attempt's records.
func (o *attemptOutput) discard() {
	o.mem = nil
	if o.f != nil {
		o.f.close(false)
		os.Remove(o.name)
	}
}

// writeBatch checks one WORK_DATA batch and appends its records to w.
// A batch's body is already a record file's content, so once every
// record checks out it is written as it came.
func writeBatch(w *attemptOutput, data []byte) (int64, error) {
	c := &cursor{b: data}
	n, err := c.arrayLen()
	if err != nil {
		return 0, malformed("data batch", err)
	}
	body := c.i
	for i := 0; i < n; i++ {
		if err := c.checkRecord(); err != nil {
			return 0, malformed("data batch", fmt.Errorf("record %d: %w", i, err))
		}
	}
	if c.rest() != 0 {
		return 0, malformed("data batch", fmt.Errorf("%d bytes after the records", c.rest()))
	}
	if err := w.writeRecords(data[body:]); err != nil {
		return 0, err
	}
	return int64(n), nil
}

// rawLines turns a raw task's output into records: one per line, with an
// empty key and the line as a string value.
func rawLines(out []byte) []rawRecord {
	var recs []rawRecord
	for len(out) > 0 {
		i := bytes.IndexByte(out, '\n')
		var l []byte
		if i < 0 {
			l, out = out, nil
		} else {
			l, out = out[:i], out[i+1:]
		}
		recs = append(recs, rawRecord{Value: appendString(nil, string(bytes.TrimSuffix(l, []byte{'\r'})))})
	}
	return recs
}

// writeResult writes the output stage's records to the output file:
// sorted by key for a reduce stage (ties in task order), in task order
// otherwise.
func (c *coordinator) writeResult(ctx context.Context) (int64, error) {
	out := c.p.Output
	from := out.From
	if from == "" {
		from = c.p.Stages[len(c.p.Stages)-1].Name
	}
	sr := c.stages[from]
	if sr == nil {
		return 0, fmt.Errorf("flow: output stage %q does not exist", from)
	}
	eachRaw := func(fn func(key, value []byte) error) error { return c.eachOutputRaw(sr, fn) }
	if c.store != nil {
		eachRaw = func(fn func(key, value []byte) error) error {
			return c.eachStoredOutput(ctx, sr, func(key string, value []byte) error { return fn(unsafeBytes(key), value) })
		}
	}
	if sr.st.Kind != spec.KindReduce {
		return writeOutput(ctx, out.To, out.Format, func(fn func(rawRecord) error) error {
			return eachRaw(func(key, value []byte) error { return fn(rawRecord{Key: string(key), Value: value}) })
		})
	}
	sh := newShuffler(filepath.Join(c.j.tmpDir(from), "sort"), 1, c.opts.MemoryBudget)
	defer sh.cleanup()
	if err := eachRaw(sh.addRaw); err != nil {
		return 0, err
	}
	return writeOutput(ctx, out.To, out.Format, func(fn func(rawRecord) error) error {
		return sh.groups(0, func(g group) error {
			for _, v := range g.Values {
				if err := fn(rawRecord{Key: g.Key, Value: v}); err != nil {
					return err
				}
			}
			return nil
		})
	})
}
