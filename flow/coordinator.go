package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/gearflow/gearflow/flow/spec"
	"github.com/gearflow/gearflow/flow/storage"
	"github.com/gearflow/gearflow/runtime"
)

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
	outStore storage.Store // the output folder's store, when the output is part files
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

	// shuffled counts the records the coordinator's shuffle for this
	// reduce stage has read, for its progress.
	shuffled atomic.Int64

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
	if p.Output.Dir {
		st, err := storage.Open(ctx, p.Output.To)
		if err != nil {
			return nil, &RunError{Run: c.run, Err: fmt.Errorf("output: %w", err)}
		}
		c.outStore = st
	}
	if err := c.checkFunctions(); err != nil {
		return nil, &RunError{Run: c.run, Err: err}
	}
	// File inputs are split now, so a missing file fails the run before
	// anything is submitted.
	for _, sr := range c.stages {
		if sr.st.CoGroup() && c.store == nil {
			return nil, &RunError{Run: c.run, Err: errCoGroupNeedsStorage(sr.st)}
		}
		if readsOnlyFiles(sr.st) {
			chunks, err := c.stageChunks(ctx, sr)
			if err != nil {
				return nil, &RunError{Run: c.run, Err: fmt.Errorf("stage %s: %w", sr.st.Name, err)}
			}
			sr.chunks = chunks // kept for runStage, which would read them back
		}
	}

	sc := serverConns{servers: opts.Servers, tls: opts.TLS}
	if len(opts.Servers) == 0 {
		embedded, stop, err := c.startServer()
		if err != nil {
			return nil, &RunError{Run: c.run, Err: err}
		}
		defer stop()
		sc = embedded
	}
	servers := sc.servers
	if opts.Workers > 0 {
		stop, err := c.startWorkers(ctx, sc)
		if err != nil {
			return nil, &RunError{Run: c.run, Err: err}
		}
		defer stop()
	}
	client, err := runtime.NewClient(sc.clientConfig(c.log))
	if err != nil {
		return nil, &RunError{Run: c.run, Err: err}
	}
	defer client.Close()
	c.client = client

	c.fleet = &fleet{servers: servers, admin: sc.admin(), local: max(opts.Workers, 0)}
	fctx, stopFleet := context.WithCancel(ctx)
	defer stopFleet()
	c.fleet.start(fctx)

	c.emit(Event{Kind: EventRunStarted, Dir: c.j.dir})
	c.log.Info("run started", "pipeline", p.Name, "dir", c.j.dir, "servers", servers)
	wctx, stopWatch := context.WithCancel(fctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		c.watchWorkers(wctx)
	}()
	defer func() { stopWatch(); <-watched }()

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
	stopWatch()
	<-watched // no warning follows the stages' end

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
		if err := c.j.writeOutcome(res, firstErr); err != nil {
			c.log.Warn("could not record the run's outcome", "err", err)
		}
		return res, &RunError{Run: c.run, Failed: c.failed, Err: firstErr}
	}
	if c.store != nil {
		c.sweep(ctx)
	}
	// A finished run keeps its plan and journal; the scratch space of
	// attempts and the reduce inputs derived from them go, and so do the
	// task outputs unless asked to keep them.
	for _, st := range p.Stages {
		os.RemoveAll(c.j.tmpDir(st.Name))
		os.RemoveAll(filepath.Join(c.j.stageDir(st.Name), "input"))
	}
	if !c.opts.KeepData {
		if err := c.removeData(ctx); err != nil {
			c.log.Warn("could not remove the finished run's intermediate data", "err", err)
		} else {
			c.j.dataRemoved = true
		}
	}
	if err := c.j.writeOutcome(res, nil); err != nil {
		c.log.Warn("could not record the run's outcome", "err", err)
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
		if out, err := readOutcome(dir); err == nil && out.DataRemoved {
			return fmt.Errorf("flow: run %s finished on %s and its intermediate data was removed: there is nothing to resume (its output: %s; keep the data of later runs with --keep-data)",
				o.RunID, out.Ended.Local().Format(time.RFC3339), out.Output)
		}
		if c.j, err = openJournal(dir); err != nil {
			return err
		}
		os.Remove(filepath.Join(dir, resultFile)) // the outcome of an earlier attempt no longer holds
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
	embedded := len(c.opts.Servers) == 0
	if embedded && c.opts.Workers <= 0 {
		return errors.New("an embedded run needs workers of its own (Workers > 0): its job server is reachable from this process only, so no outside worker can join it; name job servers to run on outside workers")
	}
	for _, st := range c.p.Stages {
		if st.Kind == spec.KindReduce && st.Encoding == spec.EncodingRaw {
			return fmt.Errorf("stage %s: reduce stages need the msgpack encoding", st.Name)
		}
		if st.Encoding == spec.EncodingRaw {
			kind, ok := c.reg.Kind(st.Function)
			if ok && kind != TaskRaw {
				return fmt.Errorf("stage %s: function %q is a %s function; a raw stage needs a raw function or an outside worker", st.Name, st.Function, kind)
			}
			if !ok && embedded {
				return fmt.Errorf("stage %s: raw function %q is not registered (registered: %v); an embedded run's job server is reachable from this process only, so no outside worker can serve it: register it, or name job servers", st.Name, st.Function, c.reg.Names())
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
		shuffled := c.showShuffle(sr)
		var err error
		chunks, err = c.stageChunks(ctx, sr)
		shuffled()
		if err != nil {
			return err
		}
		sr.chunks = chunks
	}
	for _, in := range st.InputList() {
		if in.From.Kind == spec.SourceStage && st.Kind != spec.KindReduce && c.store == nil {
			if _, err := c.upstreamCounts(c.stages[in.From.Value]); err != nil {
				return err
			}
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
			addCounters(&sr.res.Counters, e.Counters)
			sr.outCounts[i] = e.RecordsOut
		}
	}
	c.emitLocked(Event{Kind: EventStageStarted, Stage: st.Name})
	if k := st.Input.From.Kind; len(todo) > 0 && (k == spec.SourceFile || k == spec.SourceGlob) {
		for _, w := range sizeWarnings(st, chunks) {
			c.warnLocked(Event{Stage: st.Name, Function: st.Function, Message: w})
		}
	}
	c.mu.Unlock()
	c.log.Info("stage started", "stage", st.Name, "tasks", len(chunks), "todo", len(todo))

	s := &schedule{
		tasks: todo, total: len(chunks), concurrency: st.Concurrency, retry: st.Retry, jitter: retryJitter,
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
	// A gearflow worker reports a task with storage as it starts it
	// (WORK_STATUS), so its timeout counts from there, not from its wait
	// in the server's queue.
	s.startOnReport = c.store != nil && st.Encoding != spec.EncodingRaw
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

// watchWorkers says, at once and then every unservedEvery, which
// functions of the stages still to run no worker serves: their tasks
// wait in the job servers' queues until one does. It returns when ctx
// is done.
func (c *coordinator) watchWorkers(ctx context.Context) {
	w := unservedWatch{every: unservedEvery}
	for {
		var unserved []string
		stages := map[string][]*stageRun{}
		for _, st := range c.p.Stages {
			sr := c.stages[st.Name]
			select {
			case <-sr.done:
				continue
			default:
			}
			_, local := c.reg.Kind(st.Function)
			known, ok := c.fleet.served(st.Function, local)
			if !known || ok {
				continue
			}
			if stages[st.Function] == nil {
				unserved = append(unserved, st.Function)
			}
			stages[st.Function] = append(stages[st.Function], sr)
		}
		due := w.due(time.Now(), unserved)
		c.mu.Lock()
		for _, fn := range unserved {
			d, ok := due[fn]
			if !ok {
				continue
			}
			var names []string
			waiting := 0
			for _, sr := range stages[fn] {
				names = append(names, sr.st.Name)
				if sr.res.Tasks > 0 {
					waiting += sr.res.Tasks - sr.res.Done - sr.res.Failed
				}
			}
			where := strings.Join(c.fleet.servers, ",")
			msg := fmt.Sprintf("no worker serves %s (stage %s) on %s; its tasks wait until one does", fn, strings.Join(names, ", "), where)
			if d > 0 {
				msg = fmt.Sprintf("still no worker serves %s (stage %s) on %s after %v; %d tasks wait for one",
					fn, strings.Join(names, ", "), where, d.Round(time.Second), waiting)
			}
			c.warnLocked(Event{Stage: names[0], Function: fn, Message: msg})
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(fleetPoll):
		}
	}
}

// showShuffle reports the shuffle the coordinator runs before reduce
// stage sr (a run without storage, whose map output it partitions
// itself): an event as it starts, progress twice a second, and one as
// it ends, when the returned function is called.
func (c *coordinator) showShuffle(sr *stageRun) (done func()) {
	st := sr.st
	if st.Kind != spec.KindReduce || c.store != nil {
		return func() {}
	}
	if _, err := os.Stat(filepath.Join(c.j.stageDir(st.Name), "chunks.json")); err == nil {
		return func() {} // shuffled by an earlier attempt of the run
	}
	up := c.stages[st.Input.From.Value]
	if up == nil {
		return func() {}
	}
	begin := time.Now()
	c.mu.Lock()
	total := up.res.RecordsOut
	c.emitLocked(Event{Kind: EventShuffleStarted, Stage: st.Name, ShuffleTotal: total})
	c.mu.Unlock()
	c.log.Info("shuffle started", "stage", st.Name, "records", total)
	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				c.emit(Event{Kind: EventShuffleProgress, Stage: st.Name, Shuffled: sr.shuffled.Load(), ShuffleTotal: total})
			}
		}
	}()
	return func() {
		close(stop)
		<-stopped
		el := time.Since(begin)
		c.emit(Event{Kind: EventShuffleDone, Stage: st.Name, Shuffled: sr.shuffled.Load(), ShuffleTotal: total, Duration: el})
		c.log.Info("shuffle done", "stage", st.Name, "records", sr.shuffled.Load(), "elapsed", el)
	}
}
