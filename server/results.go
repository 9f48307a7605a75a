package server

import (
	"bytes"
	"strconv"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// Results.

// jobByHandleLocked looks a handle up: PREFIX:N.
func (s *Server) jobByHandleLocked(h []byte) *job {
	if len(h) <= len(s.prefix) || string(h[:len(s.prefix)]) != s.prefix {
		return nil
	}
	digits := h[len(s.prefix):]
	if len(digits) > 1 && digits[0] == '0' {
		return nil // not a handle we formatted
	}
	id, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil {
		return nil
	}
	return s.jobs.get(id)
}

func (s *Server) workResult(c *conn, p protocol.Packet) error {
	handle := p.Args[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobByHandleLocked(handle)
	if j == nil || j.state != jobRunning || j.worker.c != c {
		if p.Type == protocol.WorkFail && len(c.excepted) > 0 && bytes.Equal(handle, c.excepted) {
			// The WORK_FAIL that Perl's Gearman::Worker and Node's
			// abraxas send after a WORK_EXCEPTION, which ended the job:
			// gearmand's ERROR JOB_NOT_FOUND kills the Perl worker.
			c.excepted = c.excepted[:0]
			return nil
		}
		return jobNotFound(p.Type, handle)
	}
	switch p.Type {
	case protocol.WorkStatus:
		j.num = atou32(p.Args[1])
		j.den = atou32(p.Args[2])
		s.forwardLocked(c, j, p)
	case protocol.WorkData, protocol.WorkWarning:
		s.forwardLocked(c, j, p)
	case protocol.WorkComplete:
		s.forwardLocked(c, j, p)
		s.finishLocked(j, endCompleted)
	case protocol.WorkFail:
		s.forwardLocked(c, j, p)
		s.finishLocked(j, endFailed)
	case protocol.WorkException:
		if !j.cancelled {
			for _, cl := range j.clients {
				if cl.exceptions || s.cfg.Exceptions {
					cl.sendVia(c, protocol.WorkException, handle, p.Args[1])
				} else {
					// A WORK_FAIL. gearmand's has a NUL after the handle,
					// which libgearman ignores and Perl's and Python's
					// clients take for part of an unknown handle.
					cl.sendVia(c, protocol.WorkFail, handle)
				}
			}
		}
		c.excepted = append(c.excepted[:0], handle...)
		s.finishLocked(j, endExcepted)
	}
	return nil
}

// jobNotFound is the refusal of a WORK_* packet for a job that is not
// running on the sender, with gearmand's texts.
func jobNotFound(t protocol.Type, handle []byte) error {
	switch t {
	case protocol.WorkData, protocol.WorkWarning:
		return refuse(protocol.CodeJobNotFound, textNoDataJob)
	case protocol.WorkException:
		return refuse(protocol.CodeJobNotFound, textNoExceptionJob)
	case protocol.WorkFail:
		if len(handle) > maxHandleSize {
			return refuse(protocol.CodeArgumentTooLarge, "Error occurred due to GEARMAND_JOB_HANDLE_SIZE being too small from snprintf")
		}
	}
	return refuse(protocol.CodeJobNotFound, textNoResultJob)
}

// forwardLocked re-sends worker w's WORK_* packet to every client
// waiting for the job; w's read loop writes them at the end of its
// batch. A cancelled job's results go nowhere.
//
// A large payload read into a pooled buffer is not copied: the clients'
// outboxes write it from that buffer, which the reader leaves to them.
// A small one is copied into each outbox.
func (s *Server) forwardLocked(w *conn, j *job, p protocol.Packet) {
	if j.cancelled || len(j.clients) == 0 {
		return
	}
	var pb *payloadBuf
	if last := p.Args[len(p.Args)-1]; len(last) >= sharedMin {
		pb = w.takeBody(last)
	}
	if pb == nil {
		for _, cl := range j.clients {
			cl.sendVia(w, p.Type, p.Args...)
		}
		return
	}
	head, last := p.Args[:len(p.Args)-1], p.Args[len(p.Args)-1]
	for _, cl := range j.clients {
		cl.sendSharedVia(w, p.Type, pb, head, last)
	}
	pb.unref() // the outboxes hold their own references
}

// finishLocked ends running job j after its terminal packet, which
// says how (end); a cancelled job ends as cancelled, whatever its worker
// says, and without a run time. A scheduled job goes back to wait for
// its next time.
func (s *Server) finishLocked(j *job, end jobEnd) {
	if j.cancelled {
		s.removeLocked(j, endCancelled)
		return
	}
	s.metrics.run.observe(nowNanos() - j.when)
	if j.sched() != nil {
		j.fn.counts.ended[end]++
		j.fn.counts.rescheduled++
		s.unassignLocked(j)
		j.num, j.den, j.retries = 0, 0, 0
		j.when = j.sched().next(time.Now()).UnixNano()
		s.delayLocked(j)
		return
	}
	s.removeLocked(j, end)
}

// handleString returns j's handle, for logs.
func (s *Server) handleString(j *job) string {
	var hb handleBuf
	return string(s.appendHandle(hb[:0], j.id))
}

// atou32 reads a WORK_STATUS number as gearmand stores it: atoi's
// leading digits, at most 2^32-1.
func atou32(b []byte) uint32 {
	return uint32(min(protocol.ParseCount(b), 1<<32-1))
}
