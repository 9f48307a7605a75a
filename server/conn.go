package server

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// Reasons a connection is closed, for logs.
var (
	errShutdown     = errors.New("server shutting down")
	errSlowConsumer = errors.New("slow consumer: outbound limit exceeded")
	errProtocol     = errors.New("protocol violation")
)

// registration is one function a worker connection can do.
type registration struct {
	fn      *function
	timeout time.Duration // CAN_DO_TIMEOUT; 0 = none
}

// conn is one peer connection: client, worker, admin or all three.
//
// Two goroutines serve it: serve reads and dispatches packets; writeLoop
// is the socket's only writer, flushing the outbox in batches.
type conn struct {
	srv    *Server
	nc     net.Conn
	id     uint64 // immutable
	fd     int    // socket descriptor as shown by "workers"; immutable
	ip     string // remote IP; immutable
	log    *slog.Logger
	reader *protocol.Reader // owned by serve

	// Guarded by srv.mu:
	regs       []registration    // functions this worker can do, in CAN_DO order
	assigned   []*job            // jobs running on this worker, oldest assignment first
	attached   map[*job]struct{} // jobs this client waits for
	sleeping   bool              // sent PRE_SLEEP, no GRAB since
	noopSent   bool              // woken since it went to sleep
	exceptions bool              // OPTION_REQ exceptions
	clientID   string
	gone       bool // cleanup done

	outMu sync.Mutex // guards the fields below; taken after srv.mu, never before
	// The outbox: segs, then out[mark:], is what the writer writes next.
	// Small packets are encoded into out; a large shared payload is not
	// copied but queued in segs after the bytes of out before it, and
	// written from where it is with writev.
	out       []byte
	segs      [][]byte
	mark      int // out[:mark] is already in segs
	segBytes  int // bytes of the shared payloads in segs
	spare     []byte
	spareSegs [][]byte
	closed    bool
	closeErr  error

	// holding is set by the read loop while more requests are already
	// buffered: replies then wait for the end of the batch and go out in
	// one write.
	holding atomic.Bool

	deadlineSet time.Time // when the write deadline was last set; owned by the writer

	wake chan struct{} // capacity 1: the outbox has data
	done chan struct{} // closed by close
}

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	c := &conn{
		srv:      s,
		nc:       nc,
		id:       id,
		fd:       connFD(nc),
		ip:       "-",
		attached: make(map[*job]struct{}),
		clientID: "-",
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		c.ip = a.IP.String()
	}
	c.log = s.log.With("conn", id, "remote", nc.RemoteAddr().String())
	c.reader = protocol.NewReader(nc, protocol.ReaderConfig{
		MaxPacketSize: s.cfg.MaxPacketSize,
		AllowText:     true,
	})
	return c
}

// connFD returns the socket's descriptor number, or the connection id's
// stand-in -1 when it cannot be had.
func connFD(nc net.Conn) int {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	_ = raw.Control(func(f uintptr) { fd = int(f) })
	return fd
}

// serve is the connection's read loop. It returns when the peer goes
// away or breaks the protocol, after cleaning up the connection's jobs.
func (c *conn) serve() {
	defer c.cleanup()
	c.log.Debug("connected")
	for {
		p, err := c.reader.ReadPacket()
		if err != nil {
			switch {
			case errors.Is(err, protocol.ErrMalformed):
				// The reader consumed the whole body, so the stream is
				// in sync: answer and go on (gearmand desyncs here).
				c.sendError(protocol.CodeInvalidArgument, err.Error())
				continue
			case errors.Is(err, protocol.ErrTooLarge):
				c.holding.Store(false)
				c.sendError(protocol.CodeArgumentTooLarge, err.Error())
				c.closeAfterFlush(err)
			case errors.Is(err, io.EOF):
				// The peer finished sending; what it asked for still
				// goes out ("echo status | nc" must get its reply).
				c.closeAfterFlush(io.EOF)
			case errors.Is(err, net.ErrClosed):
				c.close(err)
			default:
				// Bad magic, bad type, too many admin words, a cut
				// stream: gearmand closes without a word, and so do we.
				c.log.Debug("closing", "err", err)
				c.close(err)
			}
			return
		}
		more := c.reader.Buffered() > 0
		c.holding.Store(more)
		if p.Type == protocol.Text {
			if !c.srv.admin(c, p.Args[0]) {
				c.closeAfterFlush(errProtocol)
				return
			}
			if !more {
				c.kick()
			}
			continue
		}
		if c.srv.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("packet", "type", p.Type.String(), "args", len(p.Args))
		}
		c.srv.dispatch(c, p)
		if !more {
			c.kick()
		}
	}
}

// kick wakes the writer; one pending wake-up is enough.
func (c *conn) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// send queues a reply packet for the peer. It never blocks on the
// network and may be called with srv.mu held.
func (c *conn) send(t protocol.Type, args ...[]byte) {
	c.outMu.Lock()
	if c.closed {
		c.outMu.Unlock()
		return
	}
	c.out = protocol.AppendPacket(c.out, protocol.Res, t, args...)
	c.flushLocked()
}

// sendAssign queues a JOB_ASSIGN_UNIQ (reducer == "") or JOB_ASSIGN_ALL
// without converting the job's strings to byte slices.
func (c *conn) sendAssign(t protocol.Type, handle, fn []byte, unique, reducer string, data []byte) {
	size := len(handle) + 1 + len(fn) + 1 + len(unique) + 1 + len(data)
	if t == protocol.JobAssignAll {
		size += len(reducer) + 1
	}
	c.outMu.Lock()
	if c.closed {
		c.outMu.Unlock()
		return
	}
	b := binary.BigEndian.AppendUint32(c.out, uint32(protocol.Res))
	b = binary.BigEndian.AppendUint32(b, uint32(t))
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	b = append(append(b, handle...), 0)
	b = append(append(b, fn...), 0)
	b = append(append(b, unique...), 0)
	if t == protocol.JobAssignAll {
		b = append(append(b, reducer...), 0)
	}
	c.out = b
	c.appendSharedLocked(data)
	c.flushLocked()
}

// sendShared queues a packet whose last argument nothing will modify
// while the connection may still be writing it (a job's payload, or a
// body the read loop detached): a large one is written from where it is
// instead of being copied into the outbox.
func (c *conn) sendShared(t protocol.Type, args ...[]byte) {
	last := len(args) - 1
	size := last
	for _, a := range args {
		size += len(a)
	}
	c.outMu.Lock()
	if c.closed {
		c.outMu.Unlock()
		return
	}
	b := binary.BigEndian.AppendUint32(c.out, uint32(protocol.Res))
	b = binary.BigEndian.AppendUint32(b, uint32(t))
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	for _, a := range args[:last] {
		b = append(append(b, a...), 0)
	}
	c.out = b
	c.appendSharedLocked(args[last])
	c.flushLocked()
}

// sharedMin is the size from which a shared payload is queued by
// reference rather than copied: below it a copy is cheaper than an
// extra iovec.
const sharedMin = 4 << 10

// appendSharedLocked adds p to the outbox, by reference when it is
// large. Bytes already in out are never rewritten, so the slices of out
// held in segs stay valid when out grows.
func (c *conn) appendSharedLocked(p []byte) {
	if len(p) < sharedMin {
		c.out = append(c.out, p...)
		return
	}
	c.segs = append(c.segs, c.out[c.mark:], p)
	c.mark = len(c.out)
	c.segBytes += len(p)
}

// sendText queues raw admin reply bytes.
func (c *conn) sendText(b []byte) {
	c.outMu.Lock()
	if c.closed {
		c.outMu.Unlock()
		return
	}
	c.out = append(c.out, b...)
	c.flushLocked()
}

// flushLocked enforces the outbound limit, signals the writer and
// releases outMu.
func (c *conn) flushLocked() {
	full := len(c.out)+c.segBytes > c.srv.cfg.MaxOutboundBytes
	c.outMu.Unlock()
	if full {
		c.log.Warn("closing slow consumer", "limit", c.srv.cfg.MaxOutboundBytes)
		c.close(errSlowConsumer)
		return
	}
	if !c.holding.Load() {
		c.kick()
	}
}

func (c *conn) sendError(code, text string) {
	c.send(protocol.Error, []byte(code), []byte(text))
}

// writeLoop is the socket's only writer: it swaps the outbox for its
// spare buffer and writes it in one call, so replies batch under load.
func (c *conn) writeLoop() {
	for {
		select {
		case <-c.wake:
			// Let the goroutines that are about to queue more for this
			// peer run first: one write then carries all of it.
			goruntime.Gosched()
		case <-c.done:
			c.writePending()
			c.nc.Close()
			return
		}
		if !c.writePending() {
			c.nc.Close()
			return
		}
	}
}

// writePending writes what the outbox holds. It reports false when the
// connection failed.
func (c *conn) writePending() bool {
	c.outMu.Lock()
	buf, segs, mark := c.out, c.segs, c.mark
	c.out, c.segs, c.mark, c.segBytes = c.spare[:0], c.spareSegs[:0], 0, 0
	c.outMu.Unlock()
	if len(buf) == 0 && len(segs) == 0 {
		c.spare, c.spareSegs = buf, segs
		return true
	}
	// Refreshing the deadline costs a syscall-sized share of a small
	// write; refresh it once a quarter of the timeout has passed.
	if now := time.Now(); now.Sub(c.deadlineSet) > c.srv.cfg.WriteTimeout/4 {
		_ = c.nc.SetWriteDeadline(now.Add(c.srv.cfg.WriteTimeout))
		c.deadlineSet = now
	}
	var err error
	if len(segs) == 0 {
		_, err = c.nc.Write(buf)
	} else {
		segs = append(segs, buf[mark:])
		bufs := net.Buffers(segs)
		_, err = bufs.WriteTo(c.nc) // writev
		clear(segs)                 // drop the payloads
	}
	// Keep small buffers for reuse; let a burst's big buffer go.
	if cap(buf) <= 1<<20 {
		c.spare = buf[:0]
	} else {
		c.spare = nil
	}
	c.spareSegs = segs[:0]
	if err != nil {
		c.close(err)
		return false
	}
	return true
}

// close shuts the connection down at once, dropping unsent replies; the
// read loop then cleans up its jobs. It is safe to call more than once
// and from any goroutine, also after closeAfterFlush.
func (c *conn) close(reason error) {
	c.outMu.Lock()
	if !c.closed {
		c.closed = true
		c.closeErr = reason
		close(c.done)
	}
	c.out, c.segs, c.mark, c.segBytes = nil, nil, 0, 0
	c.outMu.Unlock()
	c.nc.Close()
}

// closeIfOpen closes the connection unless it is closed or closing
// already (in which case its queued replies still go out).
func (c *conn) closeIfOpen(reason error) {
	c.outMu.Lock()
	closed := c.closed
	c.outMu.Unlock()
	if !closed {
		c.close(reason)
	}
}

// closeAfterFlush closes the connection once what is already queued has
// been written: an error reply before hanging up.
func (c *conn) closeAfterFlush(reason error) {
	c.outMu.Lock()
	if c.closed {
		c.outMu.Unlock()
		return
	}
	c.closed = true
	c.closeErr = reason
	c.outMu.Unlock()
	close(c.done) // writeLoop writes what is pending, then closes the socket
}
