package server

import (
	goruntime "runtime"
	"strconv"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// Workers: abilities, sleep, grab.

// registration is one function a worker connection can do, and the
// jobs it runs for it. Guarded by Server.mu. It is listed in its
// connection's regs, its function's workers (at idx) and coreIndex.regs,
// so that registering, unregistering and finding it cost no scan of
// the others.
type registration struct {
	c       *conn
	fn      *function
	idx     int           // position in fn.workers
	timeout time.Duration // CAN_DO_TIMEOUT; 0 = none
	running jobList       // the jobs c runs for fn, oldest assignment first
}

// lockBatch is how many jobs or registrations a worker's departure
// (disconnect, CANT_DO, RESET_ABILITIES) releases per hold of the server
// lock: a worker with 200k jobs must not stall every other connection
// until all of them are requeued.
const lockBatch = 256

// lockBudget spreads a long release over several holds of Server.mu.
type lockBudget struct {
	s *Server
	n int
}

// spend counts one unit of work; every lockBatch units it lets the
// lock go, so other connections are served, and takes it back.
func (b *lockBudget) spend() {
	if b.n++; b.n < lockBatch {
		return
	}
	b.n = 0
	b.s.mu.Unlock()
	goruntime.Gosched()
	b.s.mu.Lock()
}

func (s *Server) canDo(c *conn, name []byte, timeout time.Duration) error {
	if err := checkFunctionName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fn := s.functionBytesLocked(name)
	key := regKey{c, fn}
	if r := s.core.regs[key]; r != nil {
		// gearmand registers a second time; one connection is one
		// worker, so we only update the timeout.
		r.timeout = timeout
		return nil
	}
	if s.core.regs == nil {
		s.core.regs = make(map[regKey]*registration)
	}
	r := &registration{c: c, fn: fn, idx: len(fn.workers), timeout: timeout}
	s.core.regs[key] = r
	c.regs = append(c.regs, r)
	fn.workers = append(fn.workers, r)
	return nil
}

// minJobTimeout is gearmand's floor for CAN_DO_TIMEOUT: it arms its
// timer for max(timeout, 1000) ms. Worker libraries written when the
// value meant seconds still send 3 or 10, and must not lose their job
// after that many milliseconds.
const minJobTimeout = time.Second

func (s *Server) canDoTimeout(c *conn, p protocol.Packet) error {
	raw := p.Args[1]
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if len(raw) > maxTimeoutChars || err != nil || ms < 0 || ms > int64(1<<63-1)/int64(time.Millisecond) {
		// gearmand drops such a request without a reply.
		return refuse(protocol.CodeInvalidArgument, "CAN_DO_TIMEOUT timeout must be a decimal count of milliseconds")
	}
	d := time.Duration(ms) * time.Millisecond
	if d > 0 && d < minJobTimeout {
		d = minJobTimeout
	}
	return s.canDo(c, p.Args[0], d)
}

func (s *Server) cantDo(c *conn, name []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn := s.functions[string(name)]
	if fn == nil {
		return
	}
	r := s.core.regs[regKey{c, fn}]
	if r == nil {
		return
	}
	// As in gearmand, the jobs go back while c is still registered, so
	// their wake-up may NOOP c itself if it sleeps. Only c's read loop
	// (this one) adds jobs to r or removes it, so r stays valid while
	// the lock is let go between batches.
	b := lockBudget{s: s}
	for r.running.tail != nil {
		s.requeueLocked(r.running.tail) // newest assignment first, as gearmand
		b.spend()
	}
	s.unregisterLocked(r)
}

func (s *Server) resetAbilities(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseRegistrationsLocked(c)
}

// releaseRegistrationsLocked removes every registration of c, newest
// first, and requeues the jobs each runs, newest assignment first, as
// gearmand does. A registration goes before its jobs, so their
// wake-ups reach other workers. The lock is let go between batches.
func (s *Server) releaseRegistrationsLocked(c *conn) {
	b := lockBudget{s: s}
	for len(c.regs) > 0 {
		r := c.regs[len(c.regs)-1]
		s.unregisterLocked(r)
		for r.running.tail != nil {
			s.requeueLocked(r.running.tail)
			b.spend()
		}
		b.spend()
	}
}

// unregisterLocked removes r from every index. Its jobs must have been
// requeued, or are requeued by the caller.
func (s *Server) unregisterLocked(r *registration) {
	c, fn := r.c, r.fn
	for i := len(c.regs) - 1; i >= 0; i-- { // usually the last one
		if c.regs[i] == r {
			copy(c.regs[i:], c.regs[i+1:])
			c.regs[len(c.regs)-1] = nil
			c.regs = c.regs[:len(c.regs)-1]
			break
		}
	}
	copy(fn.workers[r.idx:], fn.workers[r.idx+1:])
	fn.workers[len(fn.workers)-1] = nil
	fn.workers = fn.workers[:len(fn.workers)-1]
	for _, o := range fn.workers[r.idx:] {
		o.idx--
	}
	if fn.cursor > r.idx {
		fn.cursor--
	}
	delete(s.core.regs, regKey{c, fn})
}

func (s *Server) preSleep(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runnableForLocked(c) {
		// Work arrived between NO_JOB and PRE_SLEEP: wake at once. As
		// in gearmand the sleep flags stay as they were, so a job queued
		// before the worker's GRAB NOOPs a sleeping worker again.
		c.send(protocol.Noop)
		return
	}
	c.sleeping = true
	c.noopSent = false
}

// withWorkLocked calls f for each registration of c whose function has
// queued jobs, until f returns false. It walks c's registrations or the
// functions with queued jobs, whichever list is shorter, so a worker
// registered for 200k functions does not pay for them at every grab.
func (s *Server) withWorkLocked(c *conn, f func(*registration) bool) {
	if len(c.regs) <= len(s.core.runnable) {
		for _, r := range c.regs {
			if r.fn.runnable() && !f(r) {
				return
			}
		}
		return
	}
	for _, fn := range s.core.runnable {
		if r := s.core.regs[regKey{c, fn}]; r != nil && !f(r) {
			return
		}
	}
}

func (s *Server) runnableForLocked(c *conn) bool {
	if s.draining {
		return false
	}
	found := false
	s.withWorkLocked(c, func(*registration) bool {
		found = true
		return false
	})
	return found
}

func (s *Server) grab(c *conn, t protocol.Type) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.sleeping = false
	c.noopSent = false
	j, r := s.pickLocked(c)
	if j == nil {
		c.send(protocol.NoJob)
		return
	}
	s.unqueueLocked(j)
	now := nowNanos()
	s.metrics.wait.observe(now - j.when)
	j.when = now // for the run time
	j.state = jobRunning
	j.worker = r
	r.running.pushBack(j)
	j.fn.running++
	j.fn.wakeRound = 0 // a woken worker came for the work
	s.running++
	if r.timeout > 0 {
		s.armJobTimerLocked(j, r, r.timeout)
	}
	var hb handleBuf
	h := s.appendHandle(hb[:0], j.id)
	switch {
	case t == protocol.GrabJob:
		c.sendShared(protocol.JobAssign, j.pbuf, [][]byte{h, j.fn.nameB}, j.data)
	case t == protocol.GrabJobAll && j.reducer() != "":
		c.sendAssign(protocol.JobAssignAll, h, j.fn.nameB, j.unique, j.reducer(), j.data, j.pbuf)
	default:
		c.sendAssign(protocol.JobAssignUniq, h, j.fn.nameB, j.unique, "", j.data, j.pbuf)
	}
	if j.fn.runnable() {
		// More work waits: wake one more sleeper, so wake-ups grow with
		// demand instead of stampeding every idle worker at once.
		s.wakeLocked(c, j.fn, 1)
	}
}

// pickLocked chooses the job c gets: the highest priority across all
// of c's functions, the oldest within a priority (gearmand 2.0 order).
func (s *Server) pickLocked(c *conn) (*job, *registration) {
	if s.draining {
		return nil, nil
	}
	var best *job
	var bestReg *registration
	s.withWorkLocked(c, func(r *registration) bool {
		for p := priHigh; p < numPriorities; p++ {
			if h := r.fn.queues[p].head; h != nil {
				if best == nil || p < best.pri || p == best.pri && h.seq < best.seq {
					best, bestReg = h, r
				}
				break
			}
		}
		return true
	})
	return best, bestReg
}

// armJobTimerLocked starts j's CAN_DO_TIMEOUT timer. The timer is per
// job and stopped when the job ends or leaves the worker, so it can
// never fire against a later job (gearmand's per-connection timer can).
func (s *Server) armJobTimerLocked(j *job, r *registration, d time.Duration) {
	j.more().timer = time.AfterFunc(d, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if j.state != jobRunning || j.worker != r {
			return
		}
		r.c.log.Info("job timed out; requeueing", "handle", s.handleString(j), "func", j.fn.name, "timeout", d)
		s.requeueLocked(j)
	})
}

// wakeRecheck is how long the workers woken for waiting jobs have to
// come for them before more sleeping workers are woken. A woken worker
// may be connected but never answer (a client library that connects in
// a parent process and works in a forked child leaves one behind); one
// NOOP per job must then not strand the job while another worker sleeps.
const wakeRecheck = 20 * time.Millisecond

// wakeLocked sends NOOP to up to n sleeping workers of fn that have not
// been woken yet, starting at a rotating cursor, and returns how many
// it woke. via is the connection whose read loop runs this, nil for any
// other goroutine (see sendVia).
func (s *Server) wakeLocked(via *conn, fn *function, n int) int {
	count := len(fn.workers)
	if n <= 0 || count == 0 {
		return 0
	}
	start := fn.cursor % count
	woken := 0
	for i := 0; i < count && woken < n; i++ {
		idx := (start + i) % count
		w := fn.workers[idx].c
		if w.sleeping && !w.noopSent && !w.gone {
			w.noopSent = true
			w.sendVia(via, protocol.Noop)
			woken++
			fn.cursor = (idx + 1) % count
		}
	}
	if woken > 0 {
		s.armWakeRecheckLocked(fn)
	}
	return woken
}

// armWakeRecheckLocked makes sure fn's wake-ups are checked wakeRecheck
// from now. fn.wakeSeq marks the jobs queued by then: any of them still
// waiting at the check was not taken by the workers woken for it.
func (s *Server) armWakeRecheckLocked(fn *function) {
	if fn.wakeArmed || s.closing {
		return
	}
	fn.wakeArmed = true
	fn.wakeSeq = s.seq
	if fn.wakeTimer == nil {
		fn.wakeTimer = time.AfterFunc(wakeRecheck, func() { s.recheckWake(fn) })
		return
	}
	fn.wakeTimer.Reset(wakeRecheck)
}

// recheckWake runs wakeRecheck after a wake-up of fn. If a job queued
// before that wake-up still waits, the workers woken for it have not
// come (they may be dead or stuck): it wakes more sleeping workers, one,
// then two, four and so on at each further check, until a worker takes
// a job. gearmand NOOPs every sleeper at once instead.
func (s *Server) recheckWake(fn *function) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn.wakeArmed = false
	if s.draining || s.closing || s.functions[fn.name] != fn || !fn.runnable() {
		fn.wakeRound = 0
		return
	}
	oldest := uint64(1<<64 - 1)
	for p := priHigh; p < numPriorities; p++ {
		if h := fn.queues[p].head; h != nil && h.seq < oldest {
			oldest = h.seq
		}
	}
	if oldest > fn.wakeSeq {
		// Only jobs queued since wait, and they had their own
		// wake-ups: check on them later.
		s.armWakeRecheckLocked(fn)
		return
	}
	n := 1 << fn.wakeRound
	if fn.wakeRound < 16 {
		fn.wakeRound++
	}
	s.wakeLocked(nil, fn, n)
}
