package server

import (
	"errors"
	"io"
	"os"
	"syscall"
	"time"
)

// Read timeouts and the server-wide memory cap: what keeps peers that
// send half a packet, or nothing, or never read, from holding
// connections and memory for ever.

// Reasons a connection is closed by these limits, for logs.
var (
	errReadTimeout = errors.New("read timeout: a packet begun but not finished")
	errIdleTimeout = errors.New("idle timeout: no packet begun")
	errMemoryCap   = errors.New("server memory cap exceeded")
)

// accountMin is the least a connection holds before it is counted
// against Config.MaxBufferBytes: small outboxes and bodies, nearly all of
// them, cost no shared counter update.
const accountMin = 64 << 10

// timedReader is the read side of a connection: it arms the read
// deadline for a packet that has begun (ReadTimeout) or, when
// IdleTimeout is set, for the wait for the next one, and counts the
// bytes of the packet being read against the memory cap. Owned by the
// read loop.
type timedReader struct {
	c *conn
	r io.Reader

	mid    bool      // a packet has begun; set by the read loop before ReadPacket
	armed  error     // the timeout the deadline is armed for, or nil
	set    time.Time // when the deadline was last set
	packet int       // bytes read since the packet began
}

func (t *timedReader) Read(p []byte) (int, error) {
	cfg := &t.c.srv.cfg
	switch {
	case t.mid && cfg.ReadTimeout > 0:
		t.arm(errReadTimeout, cfg.ReadTimeout)
	case !t.mid && cfg.IdleTimeout > 0:
		t.arm(errIdleTimeout, cfg.IdleTimeout)
	case t.armed != nil:
		_ = t.c.nc.SetReadDeadline(time.Time{})
		t.armed = nil
	}
	n, err := t.r.Read(p)
	if err != nil && t.armed != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		reason := t.armed
		if n, err = t.readWaiting(p); n == 0 {
			return 0, reason
		}
	}
	if n > 0 {
		t.mid = true
		t.packet += n
		if t.packet >= accountMin/2 {
			// A body being read costs its buffer: at most twice the
			// bytes received (it doubles as they arrive).
			t.c.accountBody(2 * t.packet)
		}
	}
	return n, err
}

// readWaiting reads, without waiting, what the peer sent by the time its
// read deadline passed: the deadline may have passed while the read loop
// was held up after arming it (a loaded machine), with the peer's bytes
// already waiting, and those say that the peer has not stopped. It
// returns 0 when nothing waits: the peer did stop. The deadline is
// armed anew by the next Read.
func (t *timedReader) readWaiting(p []byte) (int, error) {
	raw := t.c.raw
	if raw == nil || len(p) == 0 {
		return 0, nil
	}
	_ = t.c.nc.SetReadDeadline(time.Time{})
	t.armed = nil
	var n int
	var errno syscall.Errno
	err := raw.Read(func(fd uintptr) bool {
		n, errno = rawRead(fd, p)
		return true // never wait
	})
	if err != nil || errno != 0 || n <= 0 {
		return 0, nil
	}
	t.c.srv.metrics.bytesIn.Add(uint64(n))
	return n, nil
}

// arm sets the read deadline for reason, refreshing it once a quarter
// of d has passed: a peer that keeps sending a large body is not cut
// off, one that stops for d is.
func (t *timedReader) arm(reason error, d time.Duration) {
	now := time.Now()
	if t.armed == reason && now.Sub(t.set) < d/4 {
		return
	}
	_ = t.c.nc.SetReadDeadline(now.Add(d))
	t.armed, t.set = reason, now
}

// startPacket is called by the read loop before each ReadPacket.
func (t *timedReader) startPacket() {
	t.mid = t.c.reader.Buffered() > 0
	if t.packet > 0 {
		t.packet = 0
		t.c.accountBody(0)
	}
}

// accountBody sets what the packet being read is counted as holding.
// Called by the read loop.
func (c *conn) accountBody(n int) {
	if n < accountMin {
		n = 0
	}
	if d := int64(n - c.bodyHeld); d != 0 {
		c.bodyHeld = n
		c.held.Add(d)
		if c.srv.held.Add(d) > c.srv.cfg.MaxBufferBytes {
			c.srv.shed()
		}
	}
}

// accountOutLocked counts what the outbox holds, queued and being
// written, against the memory cap. The caller holds outMu.
func (c *conn) accountOutLocked() {
	n := c.queuedLocked() + c.inflight
	if n < accountMin || c.dropped {
		n = 0
	}
	if d := int64(n - c.outHeld); d != 0 {
		c.outHeld = n
		c.held.Add(d)
		c.srv.held.Add(d)
	}
}

// checkMemory sheds connections while the server is over its memory
// cap. The read loop calls it after each request: whatever grew an
// outbox did so on its behalf. It must not be called holding srv.mu.
func (s *Server) checkMemory() {
	if s.held.Load() > s.cfg.MaxBufferBytes {
		s.shed()
	}
}

// shed closes the connections holding the most memory in partly read
// packets and unsent replies until what the rest hold fits the cap.
// Closing drops a connection's outbox at once, and its read loop then
// lets go of its partial packet. It must not be called holding srv.mu.
func (s *Server) shed() {
	s.mu.Lock()
	// What connections closed already still hold is on its way out.
	total := s.held.Load()
	for c := range s.conns {
		if c.shedding {
			total -= c.held.Load()
		}
	}
	var victims []*conn
	for total > s.cfg.MaxBufferBytes {
		var worst *conn
		var most int64
		for c := range s.conns {
			if h := c.held.Load(); h > most && !c.shedding {
				worst, most = c, h
			}
		}
		if worst == nil {
			break
		}
		worst.shedding = true
		victims = append(victims, worst)
		total -= most
	}
	s.mu.Unlock()
	for _, c := range victims {
		c.log.Warn("closing connection: it holds the most memory and the server is over its cap",
			"held", c.held.Load(), "total", s.held.Load(), "cap", s.cfg.MaxBufferBytes)
		c.close(errMemoryCap)
	}
}
