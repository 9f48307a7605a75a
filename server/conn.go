package server

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	goruntime "runtime"
	"slices"
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
	errProtocol     = errors.New("protocol violation")
)

// conn is one peer connection: client, worker, admin or all three.
//
// Two goroutines serve it: serve reads and dispatches packets; writeLoop
// writes the outbox in batches when woken. Replies are queued in the
// outbox, never written under srv.mu. When a read loop has answered
// every request it holds and would wait for the network, it writes the
// replies it queued itself, for its own socket and for the peers it sent
// to, with one non-blocking write each (flushInline): no other goroutine
// is woken for them. wmu makes sure one goroutine writes a socket at a
// time; whatever a non-blocking write leaves goes to writeLoop.
type conn struct {
	srv    *Server
	nc     net.Conn
	raw    syscall.RawConn // for non-blocking writes; nil when nc has none
	id     uint64          // immutable
	fd     int             // socket descriptor as shown by "workers"; immutable
	ip     string          // remote IP; immutable
	log    *slog.Logger
	reader *protocol.Reader // owned by serve
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

	wmu sync.Mutex // held while writing to nc; before outMu, never under srv.mu

	// Guarded by srv.mu:
	regs       []*registration   // functions this worker can do, in CAN_DO order
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
	segRefs   []*payloadBuf // the pooled buffer each of segs holds, or nil
	mark      int           // out[:mark] is already in segs
	segBytes  int           // bytes of the shared payloads in segs
	spare     []byte        // a written buffer for reuse; guarded by wmu too
	spareSegs [][]byte      // the same for segs
	spareRefs []*payloadBuf // the same for segRefs
	closed    bool          // close or closeAfterFlush: nothing more is queued
	dropped   bool          // close: what is queued is thrown away
	closeErr  error

	// holding is set by the read loop while it dispatches: replies then
	// wait for the end of the batch, when the read loop writes them.
	holding atomic.Bool

	deadlineSet time.Time // when the write deadline was last set; guarded by wmu

	wake chan struct{} // capacity 1: the outbox has data
	done chan struct{} // closed by close
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
		done:     make(chan struct{}),
	}
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		c.ip = a.IP.String()
	}
	c.log = s.log.With("conn", id, "remote", nc.RemoteAddr().String())
	var r io.Reader = nc
	if c.raw != nil {
		r = rawReader{c.raw}
	}
	c.reader = protocol.NewReader(r, protocol.ReaderConfig{
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
// methods.
func rawConn(nc net.Conn) syscall.RawConn {
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
	c.log.Debug("connected")
	for {
		p, err := c.reader.ReadPacket()
		c.releaseAbandoned()
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
			if !c.srv.admin(c, p.Args[0]) {
				c.holding.Store(false)
				c.flushPeers()
				c.closeAfterFlush(errProtocol)
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
		c.endBatch()
	}
}

// newBody lends the reader a pooled buffer for a large body; see
// protocol.ReaderConfig.NewBody. The buffer lent before, if any, is left
// behind and goes back to the pool once ReadPacket returns.
func (c *conn) newBody(n int) []byte {
	pb := getPayload(n)
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

// releaseRefs drops the references of written or discarded segments.
func releaseRefs(refs []*payloadBuf) {
	for i, pb := range refs {
		if pb != nil {
			pb.unref()
			refs[i] = nil
		}
	}
}

// endBatch ends a batch of requests when no whole request is buffered:
// the next read may wait, so what the batch produced goes out now, in
// one write per socket.
func (c *conn) endBatch() {
	if c.reader.Pending() {
		return
	}
	c.holding.Store(false)
	c.flushPeers()
	c.flushInline()
}

// kick wakes the writer; one pending wake-up is enough.
func (c *conn) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// deferFlush notes that this read loop queued packets for peer p and
// will write them at the end of its batch. Called by the read loop.
func (c *conn) deferFlush(p *conn) {
	if len(c.peers) < 8 {
		if slices.Contains(c.peers, p) {
			return
		}
	} else {
		// Many peers (a job many clients wait for): a set, so that
		// forwarding one packet to n clients is not quadratic.
		if c.peerSet == nil {
			c.peerSet = make(map[*conn]struct{})
		}
		if len(c.peerSet) == 0 {
			for _, q := range c.peers {
				c.peerSet[q] = struct{}{}
			}
		}
		if _, ok := c.peerSet[p]; ok {
			return
		}
		c.peerSet[p] = struct{}{}
	}
	c.peers = append(c.peers, p)
}

// flushPeers writes what this read loop queued for other connections.
func (c *conn) flushPeers() {
	for i, p := range c.peers {
		p.flushInline()
		c.peers[i] = nil
	}
	c.peers = c.peers[:0]
	clear(c.peerSet)
}

// flushInline writes the outbox from the calling goroutine with one
// non-blocking write (writev when large payloads are queued), when no
// other goroutine is writing this socket. Whatever it cannot write now
// (the socket is full, a write is in progress, there is no raw socket)
// is left to writeLoop.
func (c *conn) flushInline() {
	if c.raw == nil || !c.wmu.TryLock() {
		c.kick()
		return
	}
	c.outMu.Lock()
	if c.closed || len(c.segs) >= maxIovecs || len(c.out) == 0 && len(c.segs) == 0 {
		queued := len(c.out) > 0 || len(c.segs) > 0
		c.outMu.Unlock()
		c.wmu.Unlock()
		if queued {
			c.kick()
		}
		return
	}
	buf, segs, refs, mark := c.out, c.segs, c.segRefs, c.mark
	c.out, c.segs, c.segRefs, c.mark, c.segBytes = c.spare[:0], c.spareSegs[:0], c.spareRefs[:0], 0, 0
	c.spare, c.spareSegs, c.spareRefs = nil, nil, nil // now the outbox's: never both
	c.outMu.Unlock()

	if mark < len(buf) || len(segs) == 0 {
		segs = append(segs, buf[mark:])
		refs = append(refs, nil)
	}
	var n int
	var errno syscall.Errno
	err := c.raw.Write(func(fd uintptr) bool {
		if len(segs) == 1 {
			n, errno = rawWrite(fd, segs[0]) // see rawio.go
		} else {
			n, errno = rawWritev(fd, segs)
		}
		return true // never wait: writeLoop does that
	})
	switch {
	case errno == syscall.EAGAIN:
		n = 0 // the socket is full: writeLoop waits for it
	case errno != 0:
		n = 0
		if err == nil {
			err = errno // the peer is gone: close now
		}
	}
	if err != nil {
		releaseRefs(refs)
		c.wmu.Unlock()
		c.close(err)
		return
	}
	// Skip what was written; the rest goes first, before anything
	// queued meanwhile.
	rest, restRefs := segs, refs
	for len(rest) > 0 && n >= len(rest[0]) {
		n -= len(rest[0])
		rest, restRefs = rest[1:], restRefs[1:]
	}
	releaseRefs(refs[:len(refs)-len(restRefs)])
	if len(rest) > 0 {
		rest[0] = rest[0][n:]
		c.outMu.Lock()
		if !c.dropped { // after closeAfterFlush the writer still sends it
			for _, r := range rest {
				c.segBytes += len(r)
			}
			c.segs = append(slices.Clip(rest), c.segs...)
			c.segRefs = append(slices.Clip(restRefs), c.segRefs...)
		} else {
			releaseRefs(restRefs)
		}
		c.outMu.Unlock()
		c.wmu.Unlock()
		c.kick()
		return
	}
	clear(segs) // drop the payloads
	c.spareSegs = segs[:0]
	c.spareRefs = refs[:0]
	if cap(buf) <= 1<<20 {
		c.spare = buf[:0]
	}
	c.wmu.Unlock()
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
func (c *conn) sendAssign(t protocol.Type, handle, fn []byte, unique, reducer string, data []byte, pb *payloadBuf) {
	size := len(handle) + 1 + len(fn) + 1 + len(unique) + 1 + len(data)
	if t == protocol.JobAssignAll {
		size += len(reducer) + 1
	}
	c.outMu.Lock()
	if c.closed {
		c.outMu.Unlock()
		return
	}
	b := appendHeader(c.out, t, size)
	b = append(append(b, handle...), 0)
	b = append(append(b, fn...), 0)
	b = append(append(b, unique...), 0)
	if t == protocol.JobAssignAll {
		b = append(append(b, reducer...), 0)
	}
	c.out = b
	c.appendSharedLocked(data, pb)
	c.flushLocked()
}

// sendShared queues a packet whose last argument nothing will modify
// while the connection may still be writing it (a job's payload, or a
// body the read loop detached): a large one is written from where it is
// instead of being copied into the outbox, holding pb, the pooled buffer
// it is in (or nil), until then.
func (c *conn) sendShared(t protocol.Type, pb *payloadBuf, args ...[]byte) {
	c.sendSharedVia(nil, t, pb, args...)
}

// sendSharedVia is sendShared on behalf of via's read loop, as sendVia
// is to send.
func (c *conn) sendSharedVia(via *conn, t protocol.Type, pb *payloadBuf, args ...[]byte) {
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
	b := appendHeader(c.out, t, size)
	for _, a := range args[:last] {
		b = append(append(b, a...), 0)
	}
	c.out = b
	c.appendSharedLocked(args[last], pb)
	if via == nil || via == c {
		c.flushLocked()
		return
	}
	if c.overLimitLocked() {
		return
	}
	c.outMu.Unlock()
	via.deferFlush(c)
}

// appendHeader appends the header of a response packet of type t with
// a body of size bytes, for senders that encode the body themselves.
func appendHeader(b []byte, t protocol.Type, size int) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(protocol.Res))
	b = binary.BigEndian.AppendUint32(b, uint32(t))
	return binary.BigEndian.AppendUint32(b, uint32(size))
}

// sharedMin is the size from which a shared payload is queued by
// reference rather than copied: below it a copy is cheaper than an
// extra iovec.
const sharedMin = 4 << 10

// appendSharedLocked adds p to the outbox, by reference when it is
// large, holding pb (the pooled buffer p is in, or nil) until p is
// written or dropped. Bytes already in out are never rewritten, so the
// slices of out held in segs stay valid when out grows.
func (c *conn) appendSharedLocked(p []byte, pb *payloadBuf) {
	if len(p) < sharedMin {
		c.out = append(c.out, p...)
		return
	}
	if pb != nil {
		pb.ref()
	}
	c.segs = append(c.segs, c.out[c.mark:], p)
	c.segRefs = append(c.segRefs, nil, pb)
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

// sendVia queues a packet for c on behalf of the read loop of via, which
// writes it at the end of its batch instead of waking c's writer. A nil
// via (a timer, a connection's cleanup) wakes the writer as send does.
// Must be called from via's read loop.
func (c *conn) sendVia(via *conn, t protocol.Type, args ...[]byte) {
	if via == nil || via == c {
		c.send(t, args...)
		return
	}
	c.outMu.Lock()
	if c.closed {
		c.outMu.Unlock()
		return
	}
	c.out = protocol.AppendPacket(c.out, protocol.Res, t, args...)
	if c.overLimitLocked() {
		return
	}
	c.outMu.Unlock()
	via.deferFlush(c)
}

// flushLocked enforces the outbound limit, signals the writer unless the
// read loop is about to write, and releases outMu.
func (c *conn) flushLocked() {
	if c.overLimitLocked() {
		return
	}
	c.outMu.Unlock()
	if !c.holding.Load() {
		c.kick()
	}
}

// overLimitLocked closes a connection whose outbox passed the outbound
// limit, releasing outMu, and reports whether it did; otherwise outMu
// is still held.
func (c *conn) overLimitLocked() bool {
	if len(c.out)+c.segBytes <= c.srv.cfg.MaxOutboundBytes {
		return false
	}
	c.outMu.Unlock()
	c.log.Warn("closing slow consumer", "limit", c.srv.cfg.MaxOutboundBytes)
	c.close(errSlowConsumer)
	return true
}

func (c *conn) sendError(code, text string) {
	c.send(protocol.Error, []byte(code), []byte(text))
}

// writeLoop writes the outbox when woken: what other goroutines queued,
// what a non-blocking write left, and large payloads (writev). It
// batches: replies queued while it waits for wmu or yields go out in the
// same write.
func (c *conn) writeLoop() {
	for {
		select {
		case <-c.wake:
			// Let the goroutines that are about to queue more for this
			// peer run first: one write then carries all of it.
			goruntime.Gosched()
		case <-c.done:
			c.wmu.Lock()
			c.writePending()
			c.nc.Close()
			c.wmu.Unlock()
			return
		}
		c.wmu.Lock()
		ok := c.writePending()
		c.wmu.Unlock()
		if !ok {
			c.nc.Close()
			return
		}
	}
}

// writePending writes what the outbox holds until it is empty, waiting
// for the socket as long as the write timeout allows. It reports false
// when the connection failed. The caller holds wmu.
func (c *conn) writePending() bool {
	for range 1 << 20 { // bounded; each round writes what was queued
		c.outMu.Lock()
		buf, segs, refs, mark := c.out, c.segs, c.segRefs, c.mark
		c.out, c.segs, c.segRefs, c.mark, c.segBytes = c.spare[:0], c.spareSegs[:0], c.spareRefs[:0], 0, 0
		c.spare, c.spareSegs, c.spareRefs = nil, nil, nil // now the outbox's: never both
		c.outMu.Unlock()
		if len(buf) == 0 && len(segs) == 0 {
			c.spare, c.spareSegs, c.spareRefs = buf, segs, refs
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
			releaseRefs(refs)           // written, or the connection fails
		}
		// Keep small buffers for reuse; let a burst's big buffer go.
		if cap(buf) <= 1<<20 {
			c.spare = buf[:0]
		} else {
			c.spare = nil
		}
		c.spareSegs, c.spareRefs = segs[:0], refs[:0]
		if err != nil {
			c.close(err)
			return false
		}
	}
	c.kick() // more remains: come back after others had their turn
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
	c.dropped = true
	releaseRefs(c.segRefs)
	c.out, c.segs, c.segRefs, c.mark, c.segBytes = nil, nil, nil, 0, 0
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
