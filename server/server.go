package server

import (
	"container/heap"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	goruntime "runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("server: closed")

// Server is a Gearman job server. Create it with New, then call Serve
// with a listener; Shutdown stops it.
type Server struct {
	cfg    Config // immutable after New
	log    *slog.Logger
	prefix string // job handle prefix plus ":", immutable

	mu        sync.Mutex // guards the fields below: all job and function state
	jobs      jobTable
	functions map[string]*function
	conns     map[*conn]struct{}
	listeners map[net.Listener]struct{}
	delayed   delayHeap   // jobs waiting for their time, earliest first
	timer     *time.Timer // fires at delayed[0].when
	nextID    uint64      // last job handle counter issued
	idLimit   uint64      // with a durable queue, the ids reserved in it (newIDLocked)
	seq       uint64      // last queueing sequence number
	connID    uint64
	closing   bool          // Shutdown or Close began: no new connections
	draining  bool          // Shutdown began: no new job assignments
	drained   chan struct{} // closed when draining and nothing is running
	running   int           // jobs assigned to workers, server-wide
	core      coreIndex     // registrations, runnable functions, uniques
	stopped   bool          // a stop has finished with the connections; stopDone is closed after

	// stopDone is closed when a Shutdown or Close has finished: every
	// connection is closed and its goroutines have ended. Serve waits
	// for it, so that a program that exits when Serve returns does not
	// cut a graceful shutdown short (one begun by the admin command).
	stopDone chan struct{}

	payloads payloadPool // large request bodies (payload.go)

	// passes write replies queued for other connections (outbox.go):
	// one flusher per processor, a connection always in the same one.
	passes []passFlusher

	store *store // the durable queue (Config.DataDir), or nil; immutable
	// refusals paces the log lines about background jobs the durable
	// queue refused. Guarded by mu.
	refusals refusalLog

	tls *tls.Config // ServeTLS's configuration (Config.TLS, at least TLS 1.2), or nil; immutable

	memReturn memReturner // gives freed payload memory back (memreturn.go)

	metrics metrics // counters for monitoring (metrics.go)

	// goroutines counts the goroutines the server started that have not
	// ended (Stats.Goroutines).
	goroutines atomic.Int64

	// held is what connections hold in partly read packets and unsent
	// replies, as far as counted against MaxBufferBytes (limits.go).
	held atomic.Int64

	wg sync.WaitGroup // connection goroutines
}

// New returns a server with cfg's settings.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if len(cfg.JobHandlePrefix) > 40 {
		return nil, fmt.Errorf("server: job handle prefix %q longer than 40 bytes (handles must fit 63)", cfg.JobHandlePrefix)
	}
	if minOut := cfg.MaxPacketSize + OutboundHeadroom; cfg.MaxOutboundBytes < minOut {
		return nil, fmt.Errorf("server: MaxOutboundBytes %d is below MaxPacketSize %d plus %d bytes: a packet that large could never be sent to a peer (raise MaxOutboundBytes to %d or lower MaxPacketSize)",
			cfg.MaxOutboundBytes, cfg.MaxPacketSize, OutboundHeadroom, minOut)
	}
	if cfg.JobRetries < 0 {
		return nil, fmt.Errorf("server: JobRetries %d is negative (0 means unlimited)", cfg.JobRetries)
	}
	s := &Server{
		passes:    make([]passFlusher, goruntime.GOMAXPROCS(0)),
		cfg:       cfg,
		log:       cfg.Logger,
		prefix:    cfg.JobHandlePrefix + ":",
		functions: make(map[string]*function),
		conns:     make(map[*conn]struct{}),
		listeners: make(map[net.Listener]struct{}),
		stopDone:  make(chan struct{}),
		tls:       tlsConfig(cfg.TLS),
	}
	if cfg.DataDir != "" {
		st, jobs, err := openStore(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		s.store = st
		s.nextID, s.idLimit = st.lastID, st.reserved()
		s.replay(jobs)
	}
	return s, nil
}

// replay queues the jobs of the durable queue, in id order (their order
// of submission): priorities, order within a priority, EPOCH times,
// schedules, reducers and retry counts are kept, and so are their
// handles, as new jobs take ids after every id issued before (the
// durable queue's mark, newIDLocked).
func (s *Server) replay(jobs []storedJob) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sj := range jobs {
		fn := s.functionLocked(sj.fn)
		j := &job{
			id:         sj.id,
			fn:         fn,
			unique:     sj.unique,
			data:       sj.data,
			pri:        sj.pri,
			retries:    sj.retries,
			when:       sj.when,
			background: true,
			stored:     true,
			heapIdx:    -1,
		}
		if j.data == nil {
			j.data = []byte{}
		}
		if sj.reducer != "" || sj.schedule != nil {
			j.extra = &jobExtra{reducer: sj.reducer, schedule: sj.schedule}
		}
		s.nextID = max(s.nextID, j.id)
		s.jobs.put(j)
		fn.total++
		fn.counts.restored++
		s.indexLocked(j)
		s.placeLocked(nil, j)
	}
	if len(jobs) > 0 {
		s.log.Info("durable queue replayed", "jobs", len(jobs), "dir", s.cfg.DataDir)
	}
}

// newIDLocked issues the next job id. With a durable queue, ids are
// reserved in it a block at a time, the next block when half the
// current one is left, and a restart issues ids after the reserved
// ones: no handle a client got (a finished job's, a foreground job's)
// names another job after a restart, and no job waits for a sync of its
// own.
func (s *Server) newIDLocked() uint64 {
	s.nextID++
	if s.store != nil && s.nextID+idBlock/2 > s.idLimit {
		s.idLimit = s.nextID + idBlock
		s.store.reserveIDs(s.idLimit)
	}
	return s.nextID
}

// storedJobLocked is j as the durable queue keeps it.
func (s *Server) storedJobLocked(j *job) storedJob {
	return storedJob{id: j.id, pri: j.pri, retries: j.retries, when: j.when, fn: j.fn.name,
		unique: j.unique, reducer: j.reducer(), schedule: j.sched(), data: j.data}
}

// Serve accepts connections on l and serves each in its own goroutine.
// It blocks until l fails or the server is shut down, and always returns
// a non-nil error: ErrServerClosed after Shutdown or Close, once they
// have finished (unlike net/http's Serve, which returns when its
// listener closes): a graceful shutdown begun by the admin command is
// not cut short by a program that exits when Serve returns.
func (s *Server) Serve(l net.Listener) error { return s.serve(l, false) }

// serve is Serve; isTLS says l makes TLS connections, for the log.
func (s *Server) serve(l net.Listener, isTLS bool) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		<-s.stopDone
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	s.log.Info("listening", "addr", l.Addr().String(), "tls", isTLS)

	var tempDelay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				<-s.stopDone
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			if tempDelay == 0 {
				tempDelay = 5 * time.Millisecond
			} else if tempDelay *= 2; tempDelay > time.Second {
				tempDelay = time.Second
			}
			s.log.Warn("accept failed; retrying", "err", err, "delay", tempDelay)
			time.Sleep(tempDelay)
			continue
		}
		tempDelay = 0
		s.startConn(nc)
	}
}

// ListenAndServe listens on addr ("host:port") and serves it.
func (s *Server) ListenAndServe(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

func (s *Server) startConn(nc net.Conn) {
	tc, isTLS := nc.(*tls.Conn)
	var wrapped *tlsConn
	if isTLS {
		wrapped = &tlsConn{Conn: tc}
		nc = wrapped
	}
	s.mu.Lock()
	if s.closing || len(s.conns) >= s.cfg.MaxConnections {
		full := !s.closing
		s.mu.Unlock()
		if full {
			s.log.Warn("connection limit reached; closing new connection",
				"remote", nc.RemoteAddr().String(), "limit", s.cfg.MaxConnections)
		}
		nc.Close()
		return
	}
	s.connID++
	c := newConn(s, nc, s.connID)
	s.conns[c] = struct{}{}
	s.wg.Add(2)
	s.mu.Unlock()
	s.goroutines.Add(2)
	go func() {
		defer s.wg.Done()
		defer s.goroutines.Add(-1)
		if wrapped != nil {
			c.handshake(wrapped)
		}
		c.serve()
	}()
	go func() { defer s.wg.Done(); defer s.goroutines.Add(-1); c.writeLoop() }()
}

// Shutdown stops the server gracefully: it stops accepting connections,
// stops handing out jobs, waits until the jobs workers are running end
// (or ctx is done), then closes every connection and waits for their
// goroutines. Queued jobs are lost unless Config.DataDir keeps the
// background ones. It returns ctx.Err() if ctx ended before running jobs did.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.draining = true
	for l := range s.listeners {
		l.Close()
	}
	if s.drained == nil {
		s.drained = make(chan struct{})
		if s.running == 0 {
			close(s.drained)
		}
	}
	drained := s.drained
	s.mu.Unlock()

	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = ctx.Err()
	}
	// Replies already queued (the last WORK_COMPLETEs) still go out.
	s.closeAll(true)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
		s.closeAll(false)
		<-done
	}
	s.log.Info("shut down", "err", err)
	s.markStopped()
	return err
}

// markStopped closes stopDone, once. Every connection is gone: the jobs
// left in memory are lost with the server, and give back the pooled
// buffers they hold.
func (s *Server) markStopped() {
	s.mu.Lock()
	for _, j := range s.jobs.all() {
		if j.pbuf != nil {
			j.pbuf.unref()
			j.pbuf, j.data = nil, nil
		}
	}
	first := !s.stopped
	s.stopped = true
	s.mu.Unlock()
	if !first {
		return
	}
	if s.store != nil {
		// Every connection is gone: nothing queues records any more.
		// What is queued (deletes) is written before Serve returns, so
		// a new server may open the directory then.
		if err := s.store.close(); err != nil {
			s.log.Error("durable queue", "err", err)
		}
	}
	close(s.stopDone)
}

// Close stops the server at once: listeners and connections are closed
// and running jobs are abandoned. It waits for connection goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	s.closeAll(false)
	s.wg.Wait()
	s.markStopped()
	return nil
}

// closeAll closes every connection: after flushing what is queued for
// it when flush is set, at once otherwise.
func (s *Server) closeAll(flush bool) {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	for _, c := range conns {
		if flush {
			c.closeAfterFlush(errShutdown)
		} else {
			c.close(errShutdown)
		}
	}
}

// runningChangedLocked closes drained once a draining server has no
// running jobs left.
func (s *Server) runningChangedLocked() {
	if s.draining && s.running == 0 && s.drained != nil {
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
	}
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	Connections int
	Functions   int
	Jobs        int // queued, delayed and running
	Running     int
	// Buffered is what connections hold in packets being read and
	// replies not yet written, as counted against MaxBufferBytes.
	Buffered int64
	// PooledRefs is the references held on pooled body buffers: zero
	// once every job and queued write holding one is gone (and after
	// Close or Shutdown).
	PooledRefs int64
	// Goroutines is the goroutines the server started that are still
	// running: zero after Close or Shutdown.
	Goroutines int64
	// MemoryReturns counts the times the server gave free memory back
	// to the OS after releasing large payloads (debug.FreeOSMemory).
	MemoryReturns int64
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Connections: len(s.conns), Functions: len(s.functions), Jobs: s.jobs.len(), Running: s.running, Buffered: s.held.Load(),
		PooledRefs: s.payloads.live.Load(), Goroutines: s.goroutines.Load(),
		MemoryReturns: s.memReturn.returns.Load()}
}

// delayHeap orders delayed jobs by when they become runnable.
type delayHeap []*job

func (h delayHeap) Len() int           { return len(h) }
func (h delayHeap) Less(i, j int) bool { return h[i].when < h[j].when }
func (h delayHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = int32(i)
	h[j].heapIdx = int32(j)
}
func (h *delayHeap) Push(x any) {
	j := x.(*job)
	j.heapIdx = int32(len(*h))
	*h = append(*h, j)
}
func (h *delayHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	j.heapIdx = -1
	return j
}

// delayLocked parks j until j.when and arms the timer.
func (s *Server) delayLocked(j *job) {
	j.state = jobDelayed
	j.fn.delayed++
	heap.Push(&s.delayed, j)
	s.armTimerLocked()
}

// undelayLocked takes j out of the delay heap.
func (s *Server) undelayLocked(j *job) {
	if j.heapIdx >= 0 {
		heap.Remove(&s.delayed, int(j.heapIdx))
	}
	j.fn.delayed--
}

func (s *Server) armTimerLocked() {
	if len(s.delayed) == 0 || s.closing {
		return
	}
	d := time.Until(time.Unix(0, s.delayed[0].when))
	if s.timer == nil {
		s.timer = time.AfterFunc(d, s.wakeDelayed)
	} else {
		s.timer.Reset(d)
	}
}

// wakeDelayed moves every job whose time has come to its queue, waking
// sleeping workers: epoch jobs run at their time even on an idle server.
func (s *Server) wakeDelayed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UnixNano()
	for len(s.delayed) > 0 && s.delayed[0].when <= now {
		j := heap.Pop(&s.delayed).(*job)
		j.fn.delayed--
		s.enqueueLocked(nil, j)
	}
	s.armTimerLocked()
}

// appendHandle appends the handle of job id: PREFIX:id.
func (s *Server) appendHandle(b []byte, id uint64) []byte {
	b = append(b, s.prefix...)
	return strconv.AppendUint(b, id, 10)
}

// handleBuf is room for a handle on the stack.
type handleBuf [64]byte
