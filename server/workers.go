package server

import (
	"slices"
	"strconv"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// Workers: abilities, sleep, grab.

func (s *Server) canDo(c *conn, name []byte, timeout time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn := s.functionBytesLocked(name)
	for i := range c.regs {
		if c.regs[i].fn == fn {
			// gearmand registers a second time; one connection is one
			// worker, so we only update the timeout.
			c.regs[i].timeout = timeout
			return
		}
	}
	c.regs = append(c.regs, registration{fn: fn, timeout: timeout})
	fn.workers = append(fn.workers, c)
}

func (s *Server) canDoTimeout(c *conn, p protocol.Packet) {
	raw := p.Args[1]
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if len(raw) > maxTimeoutChars || err != nil || ms < 0 || ms > int64(1<<63-1)/int64(time.Millisecond) {
		// gearmand drops such a request without a reply.
		c.sendError(protocol.CodeInvalidArgument, "CAN_DO_TIMEOUT timeout must be a decimal count of milliseconds")
		return
	}
	s.canDo(c, p.Args[0], time.Duration(ms)*time.Millisecond)
}

func (s *Server) cantDo(c *conn, name []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn := s.functions[string(name)]
	if fn == nil {
		return
	}
	// As in gearmand, the jobs go back while c is still registered, so
	// their wake-up may NOOP c itself if it sleeps.
	s.requeueRunningLocked(c, fn)
	s.unregisterLocked(c, fn)
}

func (s *Server) resetAbilities(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(c.regs) > 0 {
		s.unregisterLocked(c, c.regs[len(c.regs)-1].fn)
	}
}

// unregisterLocked removes c's registration of fn and requeues the
// jobs of fn that c is running, as gearmand does.
func (s *Server) unregisterLocked(c *conn, fn *function) {
	for i := range c.regs {
		if c.regs[i].fn == fn {
			c.regs = append(c.regs[:i], c.regs[i+1:]...)
			break
		}
	}
	for i, w := range fn.workers {
		if w == c {
			fn.workers = append(fn.workers[:i], fn.workers[i+1:]...)
			if fn.cursor > i {
				fn.cursor--
			}
			break
		}
	}
	s.requeueRunningLocked(c, fn)
}

// requeueRunningLocked requeues the jobs of fn that c is running, newest
// assignment first, as gearmand does.
func (s *Server) requeueRunningLocked(c *conn, fn *function) {
	for _, j := range slices.Backward(slices.Clone(c.assigned)) {
		if j.fn == fn {
			s.requeueLocked(j)
		}
	}
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

func (s *Server) runnableForLocked(c *conn) bool {
	if s.draining {
		return false
	}
	for _, r := range c.regs {
		if r.fn.runnable() {
			return true
		}
	}
	return false
}

func (s *Server) grab(c *conn, t protocol.Type) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.sleeping = false
	c.noopSent = false
	j, reg := s.pickLocked(c)
	if j == nil {
		c.send(protocol.NoJob)
		return
	}
	j.fn.queues[j.pri].remove(j)
	j.state = jobRunning
	j.worker = c
	j.fn.running++
	s.running++
	c.assigned = append(c.assigned, j)
	if reg.timeout > 0 {
		s.armJobTimerLocked(j, c, reg.timeout)
	}
	var hb handleBuf
	h := s.appendHandle(hb[:0], j.id)
	switch {
	case t == protocol.GrabJob:
		c.sendShared(protocol.JobAssign, j.pbuf, h, j.fn.nameB, j.data)
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
func (s *Server) pickLocked(c *conn) (*job, registration) {
	if s.draining {
		return nil, registration{}
	}
	for p := priHigh; p < numPriorities; p++ {
		var best *job
		var bestReg registration
		for _, r := range c.regs {
			h := r.fn.queues[p].head
			if h != nil && (best == nil || h.seq < best.seq) {
				best, bestReg = h, r
			}
		}
		if best != nil {
			return best, bestReg
		}
	}
	return nil, registration{}
}

// armJobTimerLocked starts j's CAN_DO_TIMEOUT timer. The timer is per
// job and stopped when the job ends or leaves the worker, so it can
// never fire against a later job (gearmand's per-connection timer can).
func (s *Server) armJobTimerLocked(j *job, w *conn, d time.Duration) {
	j.more().timer = time.AfterFunc(d, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if j.state != jobRunning || j.worker != w {
			return
		}
		w.log.Info("job timed out; requeueing", "handle", s.handleString(j), "func", j.fn.name, "timeout", d)
		s.requeueLocked(j)
	})
}

// wakeLocked sends NOOP to up to n sleeping workers of fn that have not
// been woken yet, starting at a rotating cursor. via is the connection
// whose read loop runs this, nil for any other goroutine (see sendVia).
func (s *Server) wakeLocked(via *conn, fn *function, n int) {
	if n <= 0 || len(fn.workers) == 0 {
		return
	}
	count := len(fn.workers)
	for i := 0; i < count && n > 0; i++ {
		idx := (fn.cursor + i) % count
		w := fn.workers[idx]
		if w.sleeping && !w.noopSent {
			w.noopSent = true
			w.sendVia(via, protocol.Noop)
			n--
			fn.cursor = (idx + 1) % count
		}
	}
}
