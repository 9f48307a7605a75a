package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// ErrTimeout is returned by Run when Config.Timeout ended the run before
// it finished. The Result it returns with it holds the figures until then.
var ErrTimeout = errors.New("loadgen: run timed out")

// Run puts the load described by cfg on the server at cfg.Addr and
// returns what it measured. It blocks until the run ends: every job done,
// cfg.Timeout passed (ErrTimeout), or ctx cancelled (ctx's error).
//
// Job failures (ERROR replies, WORK_FAIL, payloads that come back changed)
// are counted in the Result, not returned. Run returns an error when the
// run could not measure what was asked: an invalid Config (matching
// ErrConfig, with an empty Result), a server it cannot connect or register
// with, a connection lost during the run, or the timeout. Except for an
// invalid Config, the Result is filled in as far as the run went.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Result{}, err
	}
	r := newRun(cfg)
	res := Result{
		Server: cfg.Addr, Mode: cfg.Mode, Function: cfg.Function,
		Clients: cfg.Clients, InFlight: cfg.InFlight, Workers: cfg.Workers,
		PayloadSize: cfg.PayloadSize,
	}
	tctx, cancel := context.WithTimeoutCause(ctx, cfg.Timeout, ErrTimeout)
	defer cancel()
	stop := context.AfterFunc(tctx, r.closeAll)

	switch cfg.Mode {
	case ModeForeground:
		err = r.foreground(tctx, &res)
	case ModeBackground:
		err = r.background(tctx, &res)
	}
	// A run that finished just as the timeout passed did not time out:
	// only a run that closeAll cut short did.
	cutShort := !stop()
	r.closeAll()
	r.wg.Wait()

	if cutShort {
		if cause := context.Cause(tctx); errors.Is(cause, ErrTimeout) {
			res.TimedOut = true
			err = ErrTimeout
		} else {
			err = ctx.Err()
		}
	}
	if first := r.firstError(); first != nil {
		res.Error = first.Error()
		if err == nil {
			err = first
		}
	}
	return res, err
}

// run is the state shared by one run's clients and workers.
type run struct {
	cfg Config
	// Encoded packets that every connection sends unchanged.
	submitPkt, grabPkt, preSleepPkt []byte
	payload                         []byte
	submitType                      protocol.Type
	uniques                         atomic.Int64 // last unique id given (cfg.UniqueKeys)

	// budget
	remaining atomic.Int64 // jobs left to submit when cfg.Jobs > 0
	deadline  time.Time    // no new submissions after it; zero: none

	drained     atomic.Int64 // jobs completed by workers
	drainTarget atomic.Int64 // drained count that ends the drain phase; 0: none
	drainDone   chan struct{}
	drainOnce   sync.Once

	wg sync.WaitGroup // every worker goroutine

	mu       sync.Mutex // guards the fields below
	conns    []net.Conn
	closing  bool  // closeAll was called: read errors are expected
	firstErr error // first unexpected failure
}

func newRun(cfg Config) *run {
	r := &run{cfg: cfg, drainDone: make(chan struct{})}
	r.payload = make([]byte, cfg.PayloadSize)
	for i := range r.payload {
		r.payload[i] = 'a' + byte(i%26)
	}
	typ := protocol.SubmitJob
	if cfg.Mode == ModeBackground {
		typ = protocol.SubmitJobBg
	}
	r.submitType = typ
	r.submitPkt = protocol.AppendPacket(nil, protocol.Req, typ, []byte(cfg.Function), nil, r.payload)
	r.grabPkt = protocol.AppendPacket(nil, protocol.Req, protocol.GrabJobUniq)
	r.preSleepPkt = protocol.AppendPacket(nil, protocol.Req, protocol.PreSleep)
	r.remaining.Store(cfg.Jobs)
	return r
}

// take reserves the next job to submit, reporting false when the job
// count or the duration is used up.
func (r *run) take(now time.Time) bool {
	if !r.deadline.IsZero() && now.After(r.deadline) {
		return false
	}
	if r.cfg.Jobs > 0 {
		return r.remaining.Add(-1) >= 0
	}
	return true
}

// dial connects to the server and registers the connection, so that
// closeAll (on timeout) closes it.
func (r *run) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: r.cfg.DialTimeout}
	c, err := d.DialContext(ctx, "tcp", r.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("loadgen: connect to %s: %w", r.cfg.Addr, err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		c.Close()
		return nil, fmt.Errorf("loadgen: connect to %s: %w", r.cfg.Addr, net.ErrClosed)
	}
	r.conns = append(r.conns, c)
	return c, nil
}

// closeAll closes every connection; the loops reading them then end.
func (r *run) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closing = true
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

// fail records err as the run's failure unless the run is closing, in
// which case err is the expected result of closeAll.
func (r *run) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closing && r.firstErr == nil {
		r.firstErr = err
	}
}

func (r *run) isClosing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closing
}

func (r *run) firstError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.firstErr
}

// completeDrained counts one job finished by a worker.
func (r *run) completeDrained() {
	n := r.drained.Add(1)
	if t := r.drainTarget.Load(); t > 0 && n >= t {
		r.drainOnce.Do(func() { close(r.drainDone) })
	}
}

// startWorkers connects and registers cfg.Workers workers, then starts
// their loops, which wait for start to be closed before grabbing jobs.
func (r *run) startWorkers(ctx context.Context, start <-chan struct{}) error {
	workers := make([]*worker, r.cfg.Workers)
	errs := make([]error, len(workers))
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			w, err := r.newWorker(ctx)
			workers[i], errs[i] = w, err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, w := range workers {
		if w == nil {
			continue // the run ended (closeAll) while it registered
		}
		r.wg.Go(func() {
			select {
			case <-start:
			case <-ctx.Done():
				return
			}
			if err := w.loop(); err != nil {
				r.fail(err)
			}
		})
	}
	return nil
}

// startClients connects cfg.Clients clients.
func (r *run) startClients(ctx context.Context) ([]*client, error) {
	clients := make([]*client, r.cfg.Clients)
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c, err := r.dial(ctx)
			if err == nil {
				clients[i] = r.newClient(c)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return clients, errors.Join(errs...)
}

// runClients runs every client's loop until each has nothing in flight
// and nothing left to submit, then merges their counts.
func (r *run) runClients(clients []*client) (jobs, errs, unfinished int64, h *Histogram) {
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			if err := c.loop(); err != nil {
				r.fail(err)
			}
		})
	}
	wg.Wait()
	h = new(Histogram)
	for _, c := range clients {
		jobs += c.completed
		errs += c.errors
		if c.inflight > 0 {
			if c.lost {
				errs += int64(c.inflight)
			} else {
				unfinished += int64(c.inflight)
			}
		}
		h.Merge(&c.hist)
	}
	return jobs, errs, unfinished, h
}

func (r *run) foreground(ctx context.Context, res *Result) error {
	start := make(chan struct{})
	close(start)
	if err := r.startWorkers(ctx, start); err != nil {
		return err
	}
	clients, err := r.startClients(ctx)
	if err != nil {
		return err
	}
	cpu0 := sampleCPU(r.cfg.ServerPID)
	t0 := time.Now()
	if r.cfg.Duration > 0 {
		r.deadline = t0.Add(r.cfg.Duration)
	}
	jobs, errs, unfinished, h := r.runClients(clients)
	elapsed := time.Since(t0)
	p := newPhase("fg", jobs, errs, unfinished, elapsed, r.cfg.PayloadSize, h)
	p.setCPU(cpu0, sampleCPU(r.cfg.ServerPID))
	res.Phases = append(res.Phases, p)
	return nil
}

func (r *run) background(ctx context.Context, res *Result) error {
	clients, err := r.startClients(ctx)
	if err != nil {
		return err
	}
	cpu0 := sampleCPU(r.cfg.ServerPID)
	t0 := time.Now()
	if r.cfg.Duration > 0 {
		r.deadline = t0.Add(r.cfg.Duration)
	}
	jobs, errs, unfinished, h := r.runClients(clients)
	elapsed := time.Since(t0)
	p := newPhase("submit", jobs, errs, unfinished, elapsed, r.cfg.PayloadSize, h)
	p.setCPU(cpu0, sampleCPU(r.cfg.ServerPID))
	res.Phases = append(res.Phases, p)
	if r.cfg.Workers == 0 || jobs == 0 || ctx.Err() != nil {
		return nil
	}

	r.drainTarget.Store(jobs)
	start := make(chan struct{})
	if err := r.startWorkers(ctx, start); err != nil {
		return err
	}
	cpu0 = sampleCPU(r.cfg.ServerPID)
	t0 = time.Now()
	close(start)
	select {
	case <-r.drainDone:
	case <-ctx.Done():
	}
	elapsed = time.Since(t0)
	drained := min(r.drained.Load(), jobs)
	p = newPhase("drain", drained, 0, jobs-drained, elapsed, r.cfg.PayloadSize, nil)
	p.setCPU(cpu0, sampleCPU(r.cfg.ServerPID))
	res.Phases = append(res.Phases, p)
	return nil
}
