package server

import (
	"io"
	"slices"
)

// Connection loss.

// cleanup releases everything a closed connection held: its running
// jobs are requeued (or dropped past the retry limit), its waits on
// jobs end, and its registrations go.
func (c *conn) cleanup() {
	s := c.srv
	if c.lent != nil { // the reader is done with it
		putPayload(c.lent)
		c.lent = nil
	}
	c.releaseAbandoned()
	// A job parked for the durable queue's sync must not stay pending
	// (invisible to workers) when its connection goes.
	c.resolveParked()
	c.closeIfOpen(io.EOF)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gone {
		return
	}
	c.gone = true
	delete(s.conns, c)
	c.outMu.Lock()
	reason := c.closeErr
	c.outMu.Unlock()
	c.log.Debug("disconnected", "reason", reason)
	// Each registration goes before its jobs, so the wake-ups for them
	// reach live workers rather than this one. A connection holding many
	// jobs is released in batches, the lock let go in between: the jobs
	// still running on c meanwhile are consistent, just not yet requeued.
	s.releaseRegistrationsLocked(c)
	b := lockBudget{s: s}
	for j := range c.attached { // only c's read loop, now done, adds to it
		s.detachLocked(j, c)
		b.spend()
	}
}

// detachLocked removes client c from j. A foreground job nobody waits
// for any more is dropped if it has not started; a running one is left
// to finish, its results discarded.
func (s *Server) detachLocked(j *job, c *conn) {
	j.clients = slices.DeleteFunc(j.clients, func(o *conn) bool { return o == c })
	c.detach(j)
	if len(j.clients) > 0 || j.background {
		return
	}
	if j.state != jobRunning {
		s.removeLocked(j, endAbandoned)
	}
}
