package runtime

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// Handler serves the jobs of one function. Work runs in its own
// goroutine; ctx is cancelled when the function's timeout passes, when the
// connection to the job's server is lost, and when a shutting-down worker
// runs out of patience. A nil error sends the result with WORK_COMPLETE;
// an error sends WORK_FAIL, or WORK_EXCEPTION with the error's text when
// it was marked with Exception. A panic is recovered, logged with its
// stack, and sent as WORK_EXCEPTION.
type Handler interface {
	Work(ctx context.Context, job *Job) ([]byte, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, job *Job) ([]byte, error)

// Work calls f(ctx, job).
func (f HandlerFunc) Work(ctx context.Context, job *Job) ([]byte, error) { return f(ctx, job) }

// WorkerConfig configures a Worker. The zero value of every field except
// Servers is usable.
type WorkerConfig struct {
	// Servers are the job servers, "host:port". Required. The worker
	// connects to every one and serves jobs from all of them.
	Servers []string
	// Concurrency is how many jobs run at once, across all servers. Zero
	// means 1.
	Concurrency int
	// ClientID is sent with SET_CLIENT_ID and shown by the admin
	// "workers" command. Empty sends none.
	ClientID string
	// ShutdownTimeout is how long Run lets running jobs finish after its
	// context ends before cancelling them. Zero means 10s.
	ShutdownTimeout time.Duration
	// DialTimeout bounds connecting to a server. Zero means 5s.
	DialTimeout time.Duration
	// WriteTimeout bounds one write to a server. Zero means 10s.
	WriteTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the exponential backoff (with
	// jitter) between attempts to reach a server. Zero means 50ms and 5s.
	ReconnectMin, ReconnectMax time.Duration
	// MaxPacketSize caps a packet received from a server. Zero means
	// protocol.DefaultMaxPacketSize (64 MiB).
	MaxPacketSize int
	// TLS, when set, makes every connection TLS with this configuration:
	// the server's certificate is verified against RootCAs (and against
	// the address's host unless ServerName is set), and Certificates
	// holds the client certificate of a server that asks for one. Nil
	// means plaintext. The handshake counts against DialTimeout.
	TLS *tls.Config
	// Dial, when set, makes the connections in place of TCP: it is
	// given an address of Servers and returns a connection to it within
	// ctx. An in-process server uses it (see flow's embedded runs). Nil
	// means TCP.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Logger receives connection and job events. Nil discards them.
	Logger *slog.Logger
}

func (cfg WorkerConfig) withDefaults() WorkerConfig {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	cfg.Logger = connDefaults(&cfg.DialTimeout, &cfg.WriteTimeout, &cfg.ReconnectMin, &cfg.ReconnectMax, cfg.Logger)
	cfg.Servers = slices.Clone(cfg.Servers)
	return cfg
}

// Worker serves registered functions to job servers: it connects to each,
// registers every function, and asks for jobs (GRAB_JOB_UNIQ) while it has
// a free slot, sleeping with PRE_SLEEP until a NOOP when there is none.
type Worker struct {
	cfg     WorkerConfig // immutable after NewWorker
	log     *slog.Logger
	backoff backoff
	slots   chan struct{} // semaphore of Concurrency running jobs
	// slotWaiters counts grab loops waiting for a slot. A finishing job
	// hands its slot straight to its own session's loop only when no
	// other session waits, so that one busy server cannot keep every
	// slot from the others.
	slotWaiters atomic.Int32
	jobs        sync.WaitGroup

	mu       sync.Mutex // guards funcs, sessions, running
	funcs    map[string]function
	sessions map[*workerSession]struct{}
	running  bool
}

// function is one registered function.
type function struct {
	handler Handler
	timeout time.Duration
}

// NewWorker returns a worker for cfg.Servers. Register functions with
// Handle, then call Run.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Servers) == 0 {
		return nil, errors.New("runtime: WorkerConfig.Servers is empty")
	}
	return &Worker{
		cfg:      cfg,
		log:      cfg.Logger,
		backoff:  backoff{min: cfg.ReconnectMin, max: cfg.ReconnectMax},
		slots:    make(chan struct{}, cfg.Concurrency),
		funcs:    make(map[string]function),
		sessions: make(map[*workerSession]struct{}),
	}, nil
}

// Handle registers h for function name, replacing any earlier handler.
// It may be called before Run or while it runs (the function is then
// registered live on every connection).
func (w *Worker) Handle(name string, h Handler) { w.HandleTimeout(name, 0, h) }

// HandleTimeout is Handle with a per-job timeout: when timeout > 0 the
// handler's context is cancelled when it passes (the job then ends with
// whatever the handler returns, normally WORK_FAIL), and the servers are
// told with CAN_DO_TIMEOUT, in milliseconds, of timeout plus
// TimeoutGrace. That server-side timer is the backstop for a handler that
// ignores its context: the server requeues the job (it does not fail it),
// and the grace lets the worker's own WORK_FAIL arrive first. gearmand
// waits at least one second.
func (w *Worker) HandleTimeout(name string, timeout time.Duration, h Handler) {
	if timeout < 0 {
		timeout = 0
	}
	w.mu.Lock()
	w.funcs[name] = function{handler: h, timeout: timeout}
	sessions := make([]*workerSession, 0, len(w.sessions))
	for s := range w.sessions {
		sessions = append(sessions, s)
	}
	w.mu.Unlock()
	p := canDo(name, timeout)
	for _, s := range sessions {
		if err := s.conn.write(nil, p); err != nil {
			w.log.Warn("registering function", "server", s.conn.addr, "func", name, "err", err)
			continue
		}
		// gearmand does not wake a sleeping worker that registers a
		// function whose jobs are already queued (and a submission sent
		// later on another connection may be processed first): grab once.
		s.nudge()
	}
}

// TimeoutGrace is added to a function's timeout in CAN_DO_TIMEOUT; see
// HandleTimeout.
const TimeoutGrace = 500 * time.Millisecond

func canDo(name string, timeout time.Duration) protocol.Packet {
	if timeout > 0 {
		ms := (timeout + TimeoutGrace).Milliseconds()
		return protocol.New(protocol.Req, protocol.CanDoTimeout, []byte(name), strconv.AppendInt(nil, ms, 10))
	}
	return protocol.New(protocol.Req, protocol.CanDo, []byte(name))
}

// Run connects to every server and serves jobs until ctx is done. Then it
// stops asking for jobs, lets running jobs finish for up to
// ShutdownTimeout, cancels those still running, waits briefly for them to
// return, closes its connections and returns nil. It returns an error at
// once if the worker is already running.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.running {
		w.mu.Unlock()
		return errors.New("runtime: Worker.Run called twice")
	}
	w.running = true
	w.mu.Unlock()

	// Jobs outlive ctx during the graceful stop; they are cancelled
	// through jobsCtx once the stop runs out of time.
	jobsCtx, cancelJobs := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelJobs(ErrClosed)
	var servers sync.WaitGroup
	for _, addr := range w.cfg.Servers {
		servers.Go(func() { w.serve(ctx, jobsCtx, addr) })
	}
	<-ctx.Done()
	servers.Wait() // no more grabbing; connections stay open for results
	w.log.Info("worker stopping", "timeout", w.cfg.ShutdownTimeout)
	if !waitTimeout(&w.jobs, w.cfg.ShutdownTimeout) {
		w.log.Warn("cancelling jobs still running at shutdown")
		cancelJobs(ErrClosed)
		if !waitTimeout(&w.jobs, time.Second) {
			w.log.Error("handlers ignored cancellation; leaving them running")
		}
	}
	w.mu.Lock()
	sessions := make([]*workerSession, 0, len(w.sessions))
	for s := range w.sessions {
		sessions = append(sessions, s)
	}
	w.running = false
	w.mu.Unlock()
	for _, s := range sessions {
		s.close(ErrClosed)
		<-s.done
	}
	return nil
}

// waitTimeout waits for wg up to d and reports whether it finished.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// serve keeps a session with addr alive until ctx is done, reconnecting
// with backoff. The session live at that moment is left open (it is
// closed by Run once its jobs are done).
func (w *Worker) serve(ctx, jobsCtx context.Context, addr string) {
	connect := func(ctx context.Context) (*conn, error) {
		return dial(ctx, addr, w.cfg.connOpts())
	}
	onDialError := func(err error, attempt int) {
		w.log.Warn("gearman server unreachable", "server", addr, "err", err, "attempt", attempt)
	}
	redial(ctx, w.backoff, connect, func(c *conn) bool {
		s := w.newSession(jobsCtx, c)
		useful, err := s.grabLoop(ctx)
		if ctx.Err() == nil {
			s.close(err)
			<-s.done
			w.log.Warn("lost gearman server", "server", addr, "err", err)
		}
		return useful
	}, onDialError)
}

// workerSession is one connection of a worker to a server. Its read loop
// is the only reader; the grab loop, the running jobs and live Handle
// calls all write through conn.
type workerSession struct {
	w    *Worker
	conn *conn

	ctx    context.Context // parent of its jobs' contexts; cancelled when the connection ends
	cancel context.CancelCauseFunc

	replies chan protocol.Packet // NO_JOB / JOB_ASSIGN_UNIQ for the one outstanding grab
	wake    chan struct{}        // a NOOP arrived (capacity 1)
	// A finishing job passes its slot straight to the grab loop while
	// the loop waits for one (wantSlot), and sends the next
	// GRAB_JOB_UNIQ in the same write as its result; handoff (capacity
	// 1) tells the loop so.
	handoffMu sync.Mutex
	wantSlot  bool            // guarded by handoffMu
	grabCtx   context.Context // the grab loop's ctx while wantSlot; guarded by handoffMu
	handoff   chan struct{}
	done      chan struct{} // closed when the read loop has ended

	mu  sync.Mutex // guards err
	err error      // why the read loop ended
}

func (w *Worker) newSession(jobsCtx context.Context, c *conn) *workerSession {
	ctx, cancel := context.WithCancelCause(jobsCtx)
	s := &workerSession{
		w: w, conn: c, ctx: ctx, cancel: cancel,
		replies: make(chan protocol.Packet, 1),
		wake:    make(chan struct{}, 1),
		handoff: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	go s.readLoop()
	return s
}

// nudge wakes the grab loop as a NOOP would.
func (s *workerSession) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *workerSession) close(reason error) {
	if reason == nil {
		reason = ErrClosed
	}
	s.cancel(reason)
	s.conn.close()
}

// readLoop reads packets until the connection ends, handing grab replies
// and NOOPs to the grab loop. NOOP is accepted at any time.
func (s *workerSession) readLoop() {
	var err error
	for {
		var p protocol.Packet
		p, err = s.conn.readPacket()
		if err != nil {
			break
		}
		if s.w.log.Enabled(context.Background(), slog.LevelDebug) {
			s.w.log.Debug("packet", "server", s.conn.addr, "type", p.Type)
		}
		switch p.Type {
		case protocol.Noop:
			s.nudge()
		case protocol.NoJob, protocol.JobAssignUniq, protocol.JobAssign, protocol.JobAssignAll:
			args := make([][]byte, len(p.Args))
			for i, a := range p.Args {
				args[i] = bytes.Clone(a)
			}
			select {
			case s.replies <- protocol.Packet{Magic: p.Magic, Type: p.Type, Args: args}:
			default:
				s.w.log.Warn("unsolicited packet from gearman server", "server", s.conn.addr, "type", p.Type)
			}
		case protocol.Error:
			// gearmand answers a result for a job it no longer assigns
			// to us (after a CAN_DO_TIMEOUT requeue) with JOB_NOT_FOUND.
			s.w.log.Warn("gearman server error", "server", s.conn.addr, "err", protocol.ParseError(p))
		default:
			s.w.log.Warn("unexpected packet from gearman server", "server", s.conn.addr, "type", p.Type)
		}
	}
	s.mu.Lock()
	s.err = errorf(ErrConnectionLost, "%s: %v", s.conn.addr, err)
	s.mu.Unlock()
	s.cancel(s.err)
	s.conn.close()
	// done closes before the session leaves the set, and grabLoop joins
	// the set only while done is open, so no dead session stays there.
	close(s.done)
	s.w.mu.Lock()
	delete(s.w.sessions, s)
	s.w.mu.Unlock()
}

func (s *workerSession) lostErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		return ErrConnectionLost
	}
	return s.err
}

// grabLoop registers the worker's functions and then asks for jobs until
// ctx is done or the connection ends: while a slot is free it sends
// GRAB_JOB_UNIQ; on NO_JOB it sends PRE_SLEEP and waits for a NOOP. It
// reports whether the server answered a grab, so that a server that
// accepts connections and drops them at once still meets the backoff.
func (s *workerSession) grabLoop(ctx context.Context) (useful bool, err error) {
	w := s.w
	w.mu.Lock()
	select {
	case <-s.done:
		w.mu.Unlock()
		return false, s.lostErr()
	default:
	}
	w.sessions[s] = struct{}{}
	var hello []protocol.Packet
	if w.cfg.ClientID != "" {
		hello = append(hello, protocol.New(protocol.Req, protocol.SetClientID, []byte(w.cfg.ClientID)))
	}
	for name, f := range w.funcs {
		hello = append(hello, canDo(name, f.timeout))
	}
	w.mu.Unlock()
	if err := s.conn.write(nil, hello...); err != nil {
		return false, err
	}
	w.log.Info("serving gearman server", "server", s.conn.addr, "functions", len(hello))
	var (
		quick bool // the last wake-up came right after PRE_SLEEP
		spins int  // quick wake-ups in a row that found no job
	)
	for {
		handed, ok, err := s.waitSlot(ctx)
		if !ok {
			return useful, err
		}
		// A NOOP received before this grab is answered by the grab itself.
		select {
		case <-s.wake:
		default:
		}
		if !handed {
			if ctx.Err() != nil { // both were ready: stopping wins
				<-w.slots
				return useful, nil
			}
			if err := s.conn.write(nil, protocol.New(protocol.Req, protocol.GrabJobUniq)); err != nil {
				<-w.slots
				return useful, err
			}
		}
		p, ok := s.grabReply(ctx)
		if !ok {
			<-w.slots
			return useful, s.stopErr(ctx)
		}
		useful = true // the server answers: worth resetting the backoff
		if p.Type != protocol.NoJob {
			spins = 0
			s.start(p)
			continue
		}
		<-w.slots
		if quick {
			spins++
		} else {
			spins = 0
		}
		if spins > maxQuickWakes {
			// The server wakes us at once and then has nothing to hand
			// out (its PRE_SLEEP check and its GRAB disagree about what
			// is runnable): pause instead of spinning.
			if spins == maxQuickWakes+1 {
				w.log.Warn("server wakes the worker without giving it a job; pausing between grabs", "server", s.conn.addr)
			}
			if !s.pause(ctx, w.backoff.delay(spins-maxQuickWakes)) {
				return useful, s.stopErr(ctx)
			}
		}
		if err := s.conn.write(nil, protocol.New(protocol.Req, protocol.PreSleep)); err != nil {
			return useful, err
		}
		slept := time.Now()
		select {
		case <-s.wake:
		case <-ctx.Done():
			return useful, nil
		case <-s.done:
			return useful, s.lostErr()
		}
		quick = time.Since(slept) < quickWake
	}
}

// waitSlot waits for a free job slot; ok reports that the caller owns
// one. handed says a finishing job passed its slot on and sends the
// GRAB_JOB_UNIQ itself: the caller must then read the grab's reply, even
// if ctx has ended. Without a slot the loop stops: err is nil when ctx
// ended and the connection's error when it was lost.
func (s *workerSession) waitSlot(ctx context.Context) (handed, ok bool, err error) {
	w := s.w
	w.slotWaiters.Add(1)
	defer w.slotWaiters.Add(-1)
	s.handoffMu.Lock()
	s.wantSlot, s.grabCtx = true, ctx
	s.handoffMu.Unlock()
	var took bool
	select {
	case w.slots <- struct{}{}:
		took = true
	case <-s.handoff:
		return true, true, nil
	case <-ctx.Done():
	case <-s.done:
		err = s.lostErr()
	}
	s.handoffMu.Lock()
	handed = !s.wantSlot
	s.wantSlot = false
	s.handoffMu.Unlock()
	if handed {
		// A job handed its slot over just as the loop took one or
		// stopped: its GRAB_JOB_UNIQ is on the way, so keep its slot
		// and read the reply (grabReply copes with ctx and a lost
		// connection).
		<-s.handoff
		if took {
			<-w.slots
		}
		return true, true, nil
	}
	return false, took, err
}

// grabReply waits for the answer to a GRAB. When ctx ends meanwhile it
// still waits a moment, so a job assigned just then is run (as part of
// the graceful stop) rather than held until the connection closes.
func (s *workerSession) grabReply(ctx context.Context) (protocol.Packet, bool) {
	select {
	case p := <-s.replies:
		return p, true
	case <-s.done:
		return protocol.Packet{}, false
	case <-ctx.Done():
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case p := <-s.replies:
		return p, true
	case <-s.done:
	case <-t.C:
	}
	return protocol.Packet{}, false
}

// A wake-up within quickWake of PRE_SLEEP that then finds no job is a
// "quick wake"; more than maxQuickWakes in a row make the worker pause.
const (
	quickWake     = 5 * time.Millisecond
	maxQuickWakes = 8
)

// pause waits d, or until ctx is done or the connection ends; it reports
// whether d passed.
func (s *workerSession) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.done:
	}
	return false
}

// stopErr is grabLoop's result when it stops early: nil when ctx ended,
// the connection's error otherwise.
func (s *workerSession) stopErr(ctx context.Context) error {
	if ctx.Err() != nil {
		return nil
	}
	return s.lostErr()
}

// start runs an assigned job in its own goroutine, which owns one slot.
func (s *workerSession) start(p protocol.Packet) {
	job := &Job{served: &served{sess: s}, Handle: string(p.Arg(0)), Function: string(p.Arg(1))}
	switch p.Type {
	case protocol.JobAssignUniq:
		job.Unique, job.Payload = string(p.Arg(2)), p.Arg(3)
	case protocol.JobAssignAll:
		job.Unique, job.Reducer, job.Payload = string(p.Arg(2)), string(p.Arg(3)), p.Arg(4)
	default:
		job.Payload = p.Arg(2)
	}
	s.w.mu.Lock()
	f, ok := s.w.funcs[job.Function]
	s.w.mu.Unlock()
	s.w.jobs.Add(1)
	go func() {
		defer s.w.jobs.Done()
		var result []byte
		var err error
		if ok {
			result, err = s.run(f, job)
		} else {
			s.w.log.Error("job for an unregistered function", "server", s.conn.addr, "func", job.Function, "handle", job.Handle)
			err = fmt.Errorf("runtime: no handler for %q", job.Function)
		}
		if !s.report(job, result, err) {
			<-s.w.slots
		}
	}()
}

// run calls the handler, turning a panic into an exception.
func (s *workerSession) run(f function, job *Job) (result []byte, err error) {
	ctx := s.ctx
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	defer func() {
		if v := recover(); v != nil {
			s.w.log.Error("handler panicked", "func", job.Function, "handle", job.Handle,
				"panic", v, "stack", string(debug.Stack()))
			result, err = nil, Exception(fmt.Errorf("panic: %v", v))
		}
	}()
	return f.handler.Work(ctx, job)
}

// report sends the job's outcome. When the session's grab loop is
// waiting for a free slot, report hands it the job's slot and sends the
// next GRAB_JOB_UNIQ in the same write, saving the server a read and the
// worker a write and a wake-up per job; it returns whether it did.
func (s *workerSession) report(job *Job, result []byte, err error) (handed bool) {
	job.served.reported.Store(true)
	h := []byte(job.Handle)
	var p protocol.Packet
	switch {
	case err == nil:
		p = protocol.New(protocol.Req, protocol.WorkComplete, h, result)
	case isException(err):
		p = protocol.New(protocol.Req, protocol.WorkException, h, []byte(err.Error()))
	default:
		s.w.log.Info("job failed", "func", job.Function, "handle", job.Handle, "err", err)
		p = protocol.New(protocol.Req, protocol.WorkFail, h)
	}
	pkts := [2]protocol.Packet{p, protocol.New(protocol.Req, protocol.GrabJobUniq)}
	n := 1
	s.handoffMu.Lock()
	// No hand-off once the stop has begun: the grab loop's own path
	// lets stopping win, and so must this one.
	if s.wantSlot && s.grabCtx.Err() == nil && s.w.slotWaiters.Load() <= 1 {
		s.wantSlot = false
		s.handoff <- struct{}{}
		handed, n = true, 2
	}
	s.handoffMu.Unlock()
	if werr := s.conn.write(nil, pkts[:n]...); werr != nil {
		s.w.log.Warn("job result not delivered", "func", job.Function, "handle", job.Handle, "err", werr)
	}
	return handed
}
