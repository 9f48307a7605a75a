package flow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gearflow/gearflow/internal/retry"

	"github.com/gearflow/gearflow/flow/spec"
)

// Straggler detection: once every task of a stage has been started, a
// task whose only attempt has run longer than speculateFactor times the
// median duration of the stage's completed tasks (and at least
// speculateAfter, by default speculateMin) gets one backup attempt. The
// first to complete wins.
const (
	speculateFactor = 2
	speculateMin    = 5 * time.Second
)

// errCanceledAttempt is how an attempt the scheduler gave up on (its task
// completed by another attempt) is told apart from a failure.
var errCanceledAttempt = errors.New("flow: attempt canceled")

// errAttemptLost marks an attempt that ended because its job server was
// lost or none could take the job: not the task's failure, so the task
// runs again without using up one of its attempts, up to maxLost times.
var errAttemptLost = errors.New("flow: attempt lost with its job server")

// maxLost bounds the lost attempts a task may have before further losses
// count as failures, so that a job that brings its server down every
// time cannot keep a run going for ever.
const maxLost = 10

// attemptOutcome is what one attempt of a task produced. On success the
// scheduler calls exactly one of commit (this attempt won) or discard;
// on failure it calls discard.
type attemptOutcome struct {
	err     error
	commit  func() error
	discard func()
	worker  string // who ran the attempt, as its summary says
}

func (o attemptOutcome) drop() {
	if o.discard != nil {
		o.discard()
	}
}

// attemptFunc runs attempt number attempt (1-based) of task. It must
// return soon after ctx is done.
type attemptFunc func(ctx context.Context, task, attempt int) attemptOutcome

// schedEventKind says what happened to a task.
type schedEventKind int

const (
	schedStart   schedEventKind = iota + 1 // an attempt was submitted
	schedBackup                            // a backup attempt of a straggler was submitted
	schedRetry                             // an attempt failed; another follows after Wait
	schedDone                              // the task completed (Attempt won)
	schedFailed                            // the task ran out of attempts
	schedDropped                           // an attempt failed while another of the task runs
	schedLost                              // an attempt was lost with its server; not counted
)

type schedEvent struct {
	kind    schedEventKind
	task    int
	attempt int
	err     error
	wait    time.Duration // schedRetry: backoff before the next attempt
	elapsed time.Duration // schedDone: the winning attempt's run time
	worker  string        // schedDone: who ran it
}

// taskFailure is a task that ran out of attempts.
type taskFailure struct {
	task     int
	attempts int
	err      error
}

// schedule runs a stage's tasks: at most concurrency attempts at once,
// failed attempts retried with backoff up to retry.MaxAttempts, each
// attempt bounded by timeout, stragglers backed up when speculative.
type schedule struct {
	tasks       []int // tasks to run, in submission order
	total       int   // tasks in the stage, for a tolerated fraction
	concurrency int
	retry       spec.Retry
	// jitter is the share of a retry's wait taken off at random
	// (retryJitter in a run; zero waits exactly).
	jitter      float64
	timeout     time.Duration
	speculative bool
	// speculateAfter is the least run time before a backup; zero means
	// speculateMin.
	speculateAfter time.Duration
	policy         spec.FailurePolicy
	// backupSlots, when positive, is how many attempts the workers can
	// run at once: a backup starts only while fewer are in flight, since
	// otherwise it waits behind its own straggler and then competes with
	// it for the same cores.
	backupSlots int
	// startOnReport starts an attempt's timeout when the attempt calls
	// attemptStarted, not when it is launched: a task queued at the job
	// server behind a busy slot has not begun to use its time.
	startOnReport bool
	// limit, when set, is asked for the concurrency before each launch
	// instead of concurrency, and looked at again every limitPoll.
	limit   func() int
	run     attemptFunc
	observe func(schedEvent) // called from the scheduling goroutine; nil = none
}

type taskRun struct {
	launched  int // attempts started
	failures  int
	lost      int // attempts lost with their server (errAttemptLost)
	running   map[int]*runningAttempt
	backedUp  bool
	done      bool
	failed    bool
	readyAt   time.Time // next attempt not before
	lastErr   error
	lastStart time.Time
}

type runningAttempt struct {
	cancel   context.CancelFunc
	start    time.Time
	canceled bool
}

type attemptResult struct {
	task, attempt int
	out           attemptOutcome
	elapsed       time.Duration
}

// backoff returns the wait before the attempt that follows failures
// failed attempts, less up to jitter of it at random.
func backoff(r spec.Retry, failures int, jitter float64) time.Duration {
	return retry.Policy{Initial: r.Initial, Max: r.Max, Fixed: r.Backoff == spec.BackoffFixed, Jitter: jitter}.Delay(failures)
}

// retryJitter is the share of a retry's wait taken off at random, so
// that tasks that failed together (a worker lost with all its tasks) do
// not all come back at the same moment.
const retryJitter = 0.2

// tolerated reports whether failed tasks out of total stay within p.
func tolerated(p spec.FailurePolicy, failed, total int) bool {
	switch p.Mode {
	case spec.Continue:
		return true
	case spec.Tolerate:
		if p.Fraction > 0 || p.Count == 0 {
			return total > 0 && float64(failed)/float64(total) <= p.Fraction
		}
		return failed <= p.Count
	}
	return failed == 0
}

// execute runs the schedule until every task completed or failed. It
// returns the failed tasks, and an error when the failure policy (or
// ctx, or a commit) ended the stage early; then running attempts are
// cancelled and waited for before it returns.
func (s *schedule) execute(ctx context.Context) ([]taskFailure, error) {
	x := &execution{s: s, ctx: ctx, maxAttempts: max(s.retry.MaxAttempts, 1),
		state: make(map[int]*taskRun, len(s.tasks)), queue: slices.Clone(s.tasks), remaining: len(s.tasks),
		results: make(chan attemptResult), work: make(chan func())}
	defer close(x.work)
	for _, t := range s.tasks {
		x.state[t] = &taskRun{running: make(map[int]*runningAttempt)}
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		conc := x.concurrency()
		if x.fatal == nil {
			x.admit(now, conc)
		}
		if x.inflight == 0 && (x.remaining == 0 || x.fatal != nil) {
			break
		}
		wake := time.Hour
		if next := x.nextDue(now, conc); !next.IsZero() {
			wake = max(next.Sub(now), time.Millisecond)
		}
		if s.limit != nil && len(x.queue) > 0 {
			wake = min(wake, limitPoll)
		}
		timer.Reset(wake)
		select {
		case r := <-x.results:
			x.finished(r)
		case <-timer.C:
		case <-ctx.Done():
			if x.fatal == nil {
				x.fatal = ctx.Err()
				x.stopAll()
			}
		}
	}
	return x.failures, x.fatal
}

// execution is one run of a schedule: the state its loop keeps between
// events. Only execute's goroutine touches it; attempts report on
// results.
type execution struct {
	s           *schedule
	ctx         context.Context
	maxAttempts int
	state       map[int]*taskRun
	queue       []int // tasks to launch, in order
	waiting     []int // tasks backing off
	inflight    int
	remaining   int // tasks neither done nor failed
	durations   []time.Duration
	failures    []taskFailure
	fatal       error
	med         time.Duration // median of durations, when it had medianOf of them
	medianOf    int
	results     chan attemptResult
	// work hands attempts to goroutines that stay for the next attempt,
	// which spares a new goroutine (and the growth of its stack) per
	// task.
	work chan func()
}

func (x *execution) concurrency() int {
	if x.s.limit != nil {
		return max(x.s.limit(), 1)
	}
	return max(x.s.concurrency, 1)
}

func (x *execution) observe(e schedEvent) {
	if x.s.observe != nil {
		x.s.observe(e)
	}
}

func (x *execution) spawn(f func()) {
	select {
	case x.work <- f:
	default:
		go func() {
			f()
			for f := range x.work {
				f()
			}
		}()
	}
}

// admit moves retries whose backoff has passed to the front of the
// queue and launches queued tasks while there is room.
func (x *execution) admit(now time.Time, conc int) {
	kept := x.waiting[:0]
	for _, t := range x.waiting {
		if !x.state[t].readyAt.After(now) {
			x.queue = append([]int{t}, x.queue...)
		} else {
			kept = append(kept, t)
		}
	}
	x.waiting = kept
	for x.inflight < conc && len(x.queue) > 0 {
		t := x.queue[0]
		x.queue = x.queue[1:]
		x.launch(t, false)
	}
}

// launch starts an attempt of task: a backup of a straggler, or its next
// attempt.
func (x *execution) launch(task int, backup bool) {
	s := x.s
	st := x.state[task]
	st.launched++
	attempt := st.launched
	cctx, cancelCause := context.WithCancelCause(x.ctx)
	clock := &attemptClock{timeout: s.timeout, cancel: cancelCause}
	actx := context.WithValue(cctx, clockKey{}, clock)
	cancel := func() {
		clock.stop()
		cancelCause(context.Canceled)
	}
	if !s.startOnReport {
		clock.start()
	}
	now := time.Now()
	st.running[attempt] = &runningAttempt{cancel: cancel, start: now}
	st.lastStart = now
	x.inflight++
	kind := schedStart
	if backup {
		kind = schedBackup
		st.backedUp = true
	}
	x.observe(schedEvent{kind: kind, task: task, attempt: attempt})
	ctx := x.ctx
	x.spawn(func() {
		out := s.run(actx, task, attempt)
		// The worker cancels the function at the same deadline (it
		// travels with the task), so its error may come back before the
		// clock's timer has cancelled the attempt: the clock decides.
		if out.err != nil && clock.expired() && ctx.Err() == nil {
			out.err = fmt.Errorf("attempt timed out after %v: %w", s.timeout, out.err)
		}
		cancel()
		x.results <- attemptResult{task: task, attempt: attempt, out: out, elapsed: time.Since(now)}
	})
}

// stopAll cancels every running attempt.
func (x *execution) stopAll() {
	for _, st := range x.state {
		for _, ra := range st.running {
			ra.canceled = true
			ra.cancel()
		}
	}
}

// nextDue returns the next moment something may become due: a retry's
// backoff ending, or a straggler crossing the backup threshold (and
// launches the backups already due); zero for none.
func (x *execution) nextDue(now time.Time, conc int) time.Time {
	s := x.s
	var next time.Time
	for _, t := range x.waiting {
		if next.IsZero() || x.state[t].readyAt.Before(next) {
			next = x.state[t].readyAt
		}
	}
	if x.fatal != nil || !s.speculative || len(x.queue) > 0 || len(x.waiting) > 0 || len(x.durations) == 0 {
		return next
	}
	floor := s.speculateAfter
	if floor <= 0 {
		floor = speculateMin
	}
	// The median moves little as the last tasks finish: it is taken
	// again once there are a tenth more durations.
	if len(x.durations) >= x.medianOf+max(x.medianOf/10, 1) {
		x.med, x.medianOf = median(x.durations), len(x.durations)
	}
	threshold := max(speculateFactor*x.med, floor)
	for t, st := range x.state {
		if st.done || st.failed || st.backedUp || len(st.running) != 1 {
			continue
		}
		due := st.lastStart.Add(threshold)
		if !due.After(now) {
			if x.inflight < conc && (s.backupSlots <= 0 || x.inflight < s.backupSlots) {
				x.launch(t, true)
				continue
			}
		} else if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return next
}

// finished takes an attempt's result: commit it if it is the task's
// first success, drop it if the task is settled or the attempt was
// cancelled, or count the failure and retry or fail the task.
func (x *execution) finished(r attemptResult) {
	s := x.s
	x.inflight--
	st := x.state[r.task]
	ra := st.running[r.attempt]
	delete(st.running, r.attempt)
	switch {
	case st.done || st.failed || x.fatal != nil:
		r.out.drop()
	case r.out.err == nil:
		if err := r.out.commit(); err != nil {
			x.fatal = err
			x.stopAll()
			return
		}
		st.done = true
		x.remaining--
		x.durations = append(x.durations, r.elapsed)
		for _, other := range st.running {
			other.canceled = true
			other.cancel()
		}
		x.observe(schedEvent{kind: schedDone, task: r.task, attempt: r.attempt, elapsed: r.elapsed, worker: r.out.worker})
	case ra != nil && ra.canceled:
		r.out.drop()
	case errors.Is(r.out.err, errAttemptLost) && st.lost < maxLost:
		// The server went away, not the task: it runs again (at once the
		// first time, since the client fails over to another server)
		// without using up an attempt.
		r.out.drop()
		st.lost++
		x.observe(schedEvent{kind: schedLost, task: r.task, attempt: r.attempt, err: r.out.err})
		if len(st.running) == 0 {
			st.readyAt = time.Now()
			if st.lost > 1 {
				st.readyAt = st.readyAt.Add(backoff(s.retry, st.lost-1, s.jitter))
			}
			x.waiting = append(x.waiting, r.task)
		}
	default:
		r.out.drop()
		st.failures++
		st.lastErr = r.out.err
		if len(st.running) > 0 {
			x.observe(schedEvent{kind: schedDropped, task: r.task, attempt: r.attempt, err: r.out.err})
			return
		}
		if st.failures < x.maxAttempts && !errors.Is(r.out.err, ErrPermanent) {
			wait := backoff(s.retry, st.failures, s.jitter)
			st.readyAt = time.Now().Add(wait)
			x.waiting = append(x.waiting, r.task)
			x.observe(schedEvent{kind: schedRetry, task: r.task, attempt: r.attempt, err: r.out.err, wait: wait})
			return
		}
		st.failed = true
		x.remaining--
		x.failures = append(x.failures, taskFailure{task: r.task, attempts: st.launched, err: r.out.err})
		x.observe(schedEvent{kind: schedFailed, task: r.task, attempt: r.attempt, err: r.out.err})
		if !tolerated(s.policy, len(x.failures), s.total) {
			x.fatal = fmt.Errorf("%w (%d of %d tasks failed; on_failure: %s)", errPolicy, len(x.failures), s.total, s.policy)
			x.stopAll()
		}
	}
}

// attemptClock times an attempt: from its launch, or from when it
// reports that it started (schedule.startOnReport).
type attemptClock struct {
	timeout time.Duration
	cancel  context.CancelCauseFunc

	mu       sync.Mutex
	started  bool
	timer    *time.Timer
	deadline time.Time
}

// errAttemptDeadline ends an attempt whose time ran out.
var errAttemptDeadline = errors.New("flow: attempt deadline")

func (k *attemptClock) start() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.started {
		return
	}
	k.started = true
	if k.timeout > 0 {
		k.deadline = time.Now().Add(k.timeout)
		k.timer = time.AfterFunc(k.timeout, func() { k.cancel(errAttemptDeadline) })
	}
}

func (k *attemptClock) stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.timer != nil {
		k.timer.Stop()
	}
}

// expired reports whether the attempt's time has run out.
func (k *attemptClock) expired() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.started && k.timeout > 0 && !time.Now().Before(k.deadline)
}

type clockKey struct{}

// attemptStarted starts the timeout of the attempt whose context is ctx,
// if it waits for that (schedule.startOnReport); later calls do nothing.
func attemptStarted(ctx context.Context) {
	if k, ok := ctx.Value(clockKey{}).(*attemptClock); ok {
		k.start()
	}
}

// limitPoll is how often a schedule with a limit looks at it again while
// tasks wait for room.
const limitPoll = time.Second

// errPolicy ends a stage whose failed tasks exceed its failure policy.
var errPolicy = errors.New("flow: tasks ran out of attempts")

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
