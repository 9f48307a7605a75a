package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gearflow/gearflow/protocol"
)

// Reasons a connection is closed, for logs.
var (
	errShutdown     = errors.New("server shutting down")
	errSlowConsumer = errors.New("slow consumer: outbound limit exceeded")
)

// conn is one peer connection: client, worker, admin or all three.
//
// Two goroutines serve it: serve reads and dispatches packets; writeLoop
// writes the outbox in batches when woken. Replies are queued in the
// outbox, never written under srv.mu. When a read loop has answered
// every request it holds and would wait for the network, it writes its
// own socket with one non-blocking write (flushInline), and has the
// peers it queued replies for written (flushPeers): by their own read
// loop if that is mid-batch, once at the end of the scheduler's pass if
// more replies may follow (passFlusher), or at once. wmu makes sure one
// goroutine writes a socket at a time; whatever a non-blocking write
// leaves goes to writeLoop.
type conn struct {
	srv    *Server
	nc     net.Conn
	raw    syscall.RawConn // for non-blocking writes; nil when nc has none
	id     uint64          // immutable
	fd     int             // socket descriptor as shown by "workers"; immutable
	ip     string          // remote IP; immutable
	log    *slog.Logger
	reader *protocol.Reader // owned by serve
	timed  *timedReader     // what reader reads from; owned by serve
	// bodyHeld is what the packet being read counts against the memory
	// cap (limits.go). Owned by serve.
	bodyHeld int
	// held is bodyHeld plus outHeld, for the server's choice of whom to
	// shed when over the cap.
	held atomic.Int64
	// peers are the other connections this read loop queued packets for
	// and has not flushed yet, and peerSet the same as a set once there
	// are many. Owned by serve.
	peers   []*conn
	peerSet map[*conn]struct{}
	// lent is the pooled buffer the reader reads large bodies into (see
	// payload.go), and abandoned those it has left for a larger one and
	// may still copy from until ReadPacket returns. Owned by serve.
	lent      *payloadBuf
	abandoned []*payloadBuf
	// parked are background submissions waiting for the durable
	// queue's sync before their JOB_CREATED (see park). Owned by serve.
	parked []parked

	wmu sync.Mutex // held while writing to nc; before outMu, never under srv.mu
	// writeFn is c.writeOnce, made once; wsegs is what it writes and wn,
	// werrno what the write returned. Guarded by wmu.
	writeFn func(fd uintptr) bool
	wsegs   [][]byte
	wn      int
	werrno  syscall.Errno

	// Guarded by srv.mu:
	regs       []*registration   // functions this worker can do, in CAN_DO order
	attached   map[*job]struct{} // jobs this client waits for
	sleeping   bool              // sent PRE_SLEEP, no GRAB since
	noopSent   bool              // woken since it went to sleep
	exceptions bool              // OPTION_REQ exceptions
	clientID   string
	gone       bool // cleanup done
	shedding   bool // closed for the memory cap

	outMu sync.Mutex // guards the fields below; taken after srv.mu, never before
	// The outbox: segs, then out[mark:], is what the writer writes next.
	// Small packets are encoded into out; a large shared payload is not
	// copied but queued in segs after the bytes of out before it, and
	// written from where it is with writev.
	out       []byte
	segs      [][]byte
	segRefs   []*payloadBuf // the pooled buffer each of segs holds, or nil
	mark      int           // out[:mark] is already in segs
	segBytes  int           // bytes of the shared payloads in segs
	spare     []byte        // a written buffer for reuse; guarded by wmu too
	spareSegs [][]byte      // the same for segs
	spareRefs []*payloadBuf // the same for segRefs
	inflight  int           // bytes taken from the outbox by the writing goroutine and not yet written
	outHeld   int           // what the outbox counts against the memory cap
	closed    bool          // close or closeAfterFlush: nothing more is queued
	dropped   bool          // close: what is queued is thrown away
	closeErr  error

	// holding is set by the read loop while it dispatches: replies then
	// wait for the end of the batch, when the read loop writes them.
	holding atomic.Bool
	// excepted is the handle of the job this worker last ended with
	// WORK_EXCEPTION, until a WORK_FAIL for it comes (workResult).
	// Owned by serve.
	excepted []byte
	// passQueued is set while c waits in the server's passFlusher.
	passQueued atomic.Bool
	// waiting is len(attached), for flushPeers, which holds no lock.
	waiting atomic.Int32

	deadlineSet time.Time // when the write deadline was last set; guarded by wmu

	wake chan struct{} // capacity 1: the outbox has data
	room chan struct{} // capacity 1: a write emptied some of the outbox
	done chan struct{} // closed by close
}

// attach and detach add j to attached and remove it. The caller holds
// srv.mu.
func (c *conn) attach(j *job) {
	c.attached[j] = struct{}{}
	c.waiting.Store(int32(len(c.attached)))
}

func (c *conn) detach(j *job) {
	delete(c.attached, j)
	c.waiting.Store(int32(len(c.attached)))
}

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	c := &conn{
		srv:      s,
		nc:       nc,
		raw:      rawConn(nc),
		id:       id,
		fd:       connFD(nc),
		ip:       "-",
		attached: make(map[*job]struct{}),
		clientID: "-",
		wake:     make(chan struct{}, 1),
		room:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	c.writeFn = c.writeOnce
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		c.ip = a.IP.String()
	}
	c.log = s.log.With("conn", id, "remote", nc.RemoteAddr().String())
	var r io.Reader = nc
	if c.raw != nil {
		r = newRawReader(c.raw)
	}
	s.metrics.accepted.Add(1)
	c.timed = &timedReader{c: c, r: countingReader{r, &s.metrics.bytesIn}}
	c.reader = protocol.NewReader(c.timed, protocol.ReaderConfig{
		MaxPacketSize: s.cfg.MaxPacketSize,
		AllowText:     true,
		NewBody:       c.newBody,
	})
	return c
}

// rawConn returns the raw descriptor access of a plain TCP or Unix
// socket, or nil. Any other net.Conn (an in-memory pipe, or a wrapper
// that embeds a *net.TCPConn but reads or writes differently, such as a
// PROXY-protocol listener's) is read and written only through its own
// methods; so is every socket where raw calls are not available (see
// rawio.go).
func rawConn(nc net.Conn) syscall.RawConn {
	if !haveRawIO {
		return nil
	}
	var raw syscall.RawConn
	var err error
	switch c := nc.(type) {
	case *net.TCPConn:
		raw, err = c.SyscallConn()
	case *net.UnixConn:
		raw, err = c.SyscallConn()
	default:
		return nil
	}
	if err != nil {
		return nil
	}
	return raw
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
	defer c.accountBody(0)
	c.log.Debug("connected")
	for {
		c.timed.startPacket()
		p, err := c.reader.ReadPacket()
		c.releaseAbandoned()
		if err != nil || !parkable(p) {
			c.resolveParked()
		}
		if err != nil {
			switch {
			case errors.Is(err, protocol.ErrMalformed):
				// The reader consumed the whole body, so the stream is
				// in sync: the handler decides (see Server.malformed).
				if err := c.reply(c.srv.malformed(c, p, err)); err != nil {
					c.closeFatal(err)
					return
				}
				c.endBatch()
				continue
			}
			c.holding.Store(false)
			c.flushPeers()
			switch {
			case errors.Is(err, protocol.ErrTooLarge):
				c.sendError(protocol.CodeArgumentTooLarge, err.Error())
				c.closeAfterFlush(err)
			case errors.Is(err, io.EOF):
				// The peer finished sending; what it asked for still
				// goes out ("echo status | nc" must get its reply).
				c.closeAfterFlush(io.EOF)
			case errors.Is(err, net.ErrClosed):
				c.close(err)
			case errors.Is(err, errReadTimeout), errors.Is(err, errIdleTimeout):
				c.log.Info("closing", "err", err)
				c.close(err)
			default:
				// Bad magic, bad type, too many admin words, a cut
				// stream: gearmand closes without a word, and so do we.
				c.log.Debug("closing", "err", err)
				c.close(err)
			}
			return
		}
		c.holding.Store(true)
		if p.Type == protocol.Text {
			if err := c.adminLine(p.Args[0]); err != nil {
				c.closeFatal(err)
				return
			}
		} else {
			if c.srv.log.Enabled(context.Background(), slog.LevelDebug) {
				c.log.Debug("packet", "type", p.Type.String(), "args", len(p.Args))
			}
			if err := c.reply(c.srv.dispatch(c, p)); err != nil {
				c.closeFatal(err)
				return
			}
		}
		c.srv.checkMemory()
		c.endBatch()
	}
}

// newBody lends the reader a pooled buffer for a large body; see
// protocol.ReaderConfig.NewBody. The buffer lent before, if any, is left
// behind and goes back to the pool once ReadPacket returns.
func (c *conn) newBody(n int) []byte {
	pb := c.srv.payloads.get(n)
	if pb == nil {
		return nil
	}
	if c.lent != nil {
		c.abandoned = append(c.abandoned, c.lent)
	}
	c.lent = pb
	return pb.b[:0]
}

// releaseAbandoned returns the buffers the reader has left to the pool.
func (c *conn) releaseAbandoned() {
	for i, pb := range c.abandoned {
		putPayload(pb)
		c.abandoned[i] = nil
	}
	c.abandoned = c.abandoned[:0]
}

// takeBody hands the pooled buffer holding data, the body of the packet
// last read, to the caller with one reference, detaching it from the
// reader; nil when data is not in a lent buffer.
func (c *conn) takeBody(data []byte) *payloadBuf {
	pb := c.lent
	if pb == nil || len(data) == 0 {
		return nil
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(pb.b[:1])))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	if p < base || p-base >= uintptr(cap(pb.b)) {
		return nil // the reader has moved on to a buffer of its own
	}
	c.reader.DetachBody()
	c.lent = nil
	pb.ref()
	return pb
}

// endBatch ends a batch of requests when no whole request is buffered:
// the next read may wait, so what the batch produced goes out now, in
// one write per socket.
func (c *conn) endBatch() {
	if c.reader.Pending() {
		return
	}
	c.resolveParked()
	c.holding.Store(false)
	c.flushPeers()
	c.flushInline()
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
	c.dropped = true
	releaseRefs(c.segRefs)
	c.out, c.segs, c.segRefs, c.mark, c.segBytes = nil, nil, nil, 0, 0
	c.accountOutLocked()
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

// countingReader adds the bytes read through it to n (metrics.go).
type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n.Add(uint64(max(n, 0)))
	return n, err
}
