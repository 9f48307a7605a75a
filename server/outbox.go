package server

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	goruntime "runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// The outbox: replies are encoded into a connection's outbox and written
// by one goroutine at a time (see conn).

// releaseRefs drops the references of written or discarded segments.
func releaseRefs(refs []*payloadBuf) {
	for i, pb := range refs {
		if pb != nil {
			pb.unref()
			refs[i] = nil
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

// flushPeers has what this read loop queued for other connections
// written: by the peer's own read loop when that is in the middle of a
// batch (it writes its outbox at the batch's end, and holding, loaded
// after the packets were queued, says it has not reached that end), at
// the end of the scheduler's pass when more replies may follow for the
// peer, a client still waiting for a job (see passFlusher), or else now.
func (c *conn) flushPeers() {
	for i, p := range c.peers {
		c.peers[i] = nil
		switch {
		case p.holding.Load():
		case p.waiting.Load() > 0:
			c.srv.passes[p.id%uint64(len(c.srv.passes))].add(p)
		default:
			p.flushInline()
		}
	}
	c.peers = c.peers[:0]
	clear(c.peerSet)
}

// passFlusher writes, once per pass of the scheduler, the outboxes of
// clients still waiting for jobs that read loops queued replies for.
// A server has one per processor (GOMAXPROCS when it was made), so
// that one goroutine does not make every such write on a large machine;
// a connection always goes to the same one.
//
// The read loops the network poller wakes together run one after
// another. Under load a client's replies come from several of them (a
// WORK_COMPLETE from each worker's loop, its own JOB_CREATED), and
// writing each at its loop's batch end made one loopback write per
// reply: the costliest call the server makes, most of its CPU. The
// flusher yields first, so it runs after the read loops that were ready
// with it, and writes each outbox once: two thirds of a write a job
// fewer, and a quarter less CPU a job, at 64 jobs in flight
// (docs/BENCHMARKS.md).
//
// A reply that leaves its client waiting for nothing (the WORK_COMPLETE
// of a client's one job) has nothing to merge with, and starting the
// flusher for it costs more than it saves (the scheduler wakes an idle
// thread for it): flushPeers writes such a peer, and workers (NOOP), at
// once.
type passFlusher struct {
	mu      sync.Mutex
	conns   []*conn
	spare   []*conn
	running bool // a flush goroutine is running; it ends when conns is empty
}

// add has c's outbox written at the end of this pass. Only read loops
// call it: one of the server's goroutines is running, so adding the
// flusher to the server's wait group is safe while Close waits on it.
func (f *passFlusher) add(c *conn) {
	if !c.passQueued.CompareAndSwap(false, true) {
		return // already waiting
	}
	f.mu.Lock()
	f.conns = append(f.conns, c)
	start := !f.running
	f.running = true
	f.mu.Unlock()
	if start {
		s := c.srv
		s.wg.Add(1)
		s.goroutines.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.goroutines.Add(-1)
			f.run()
		}()
	}
}

// run writes the queued outboxes, pass after pass, until none is queued.
func (f *passFlusher) run() {
	for {
		// Let the read loops ready now queue their replies first.
		goruntime.Gosched()
		f.mu.Lock()
		batch := f.conns
		if len(batch) == 0 {
			f.running = false
			f.mu.Unlock()
			return
		}
		f.conns, f.spare = f.spare[:0], nil
		f.mu.Unlock()
		for i, c := range batch {
			// Cleared before the write takes the outbox: a packet
			// queued after that take queues c again.
			c.passQueued.Store(false)
			c.flushInline()
			batch[i] = nil
		}
		f.mu.Lock()
		f.spare = batch[:0]
		f.mu.Unlock()
	}
}

// writeOnce is the callback of flushInline's RawConn.Write, made once
// per connection so that a write allocates nothing: one non-blocking
// write of c.wsegs. Its argument and results are guarded by wmu.
func (c *conn) writeOnce(fd uintptr) bool {
	if len(c.wsegs) == 1 {
		c.wn, c.werrno = rawWrite(fd, c.wsegs[0]) // see rawio.go
	} else {
		c.wn, c.werrno = rawWritev(fd, c.wsegs)
	}
	c.srv.metrics.writes.Add(1)
	return true // never wait: writeLoop does that
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
	if q := c.queuedLocked(); q >= accountMin { // small ones are not counted
		c.inflight = q
	}
	buf, segs, refs, mark := c.out, c.segs, c.segRefs, c.mark
	c.out, c.segs, c.segRefs, c.mark, c.segBytes = c.spare[:0], c.spareSegs[:0], c.spareRefs[:0], 0, 0
	c.spare, c.spareSegs, c.spareRefs = nil, nil, nil // now the outbox's: never both
	c.outMu.Unlock()

	if mark < len(buf) || len(segs) == 0 {
		segs = append(segs, buf[mark:])
		refs = append(refs, nil)
	}
	// The poller refuses any write once the deadline writePending set
	// has passed, even this one that never waits: keep it ahead.
	c.refreshDeadline()
	c.wsegs, c.wn, c.werrno = segs, 0, 0
	err := c.raw.Write(c.writeFn)
	n, errno := c.wn, c.werrno
	c.wsegs = nil
	switch {
	case errno == syscall.EAGAIN:
		n = 0 // the socket is full: writeLoop waits for it
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The deadline passed before this write, which never waits,
		// could begin: this goroutine was held up after refreshing it
		// (a loaded machine), which says nothing about the peer.
		// writeLoop writes it with a new deadline and waits for the
		// peer as long as WriteTimeout allows.
		n, err = 0, nil
		c.deadlineSet = time.Time{}
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
	c.srv.metrics.bytesOut.Add(uint64(n))
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
		c.inflight = 0
		c.accountOutLocked()
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
	} else {
		c.srv.noteReleased(cap(buf))
	}
	if c.inflight != 0 { // written only with wmu held; nonzero when counted
		c.outMu.Lock()
		c.inflight = 0
		c.accountOutLocked()
		c.outMu.Unlock()
	}
	c.wmu.Unlock()
	c.signalRoom()
}

// send queues a reply packet for the peer. It never blocks on the
// network and may be called with srv.mu held.
func (c *conn) send(t protocol.Type, args ...[]byte) {
	c.outMu.Lock()
	if c.closed {
		c.outMu.Unlock()
		return
	}
	before := c.queuedLocked()
	c.out = protocol.AppendPacket(c.out, protocol.Res, t, args...)
	c.flushLocked(before)
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
	before := c.queuedLocked()
	b := appendHeader(c.out, t, size)
	b = append(append(b, handle...), 0)
	b = append(append(b, fn...), 0)
	b = append(append(b, unique...), 0)
	if t == protocol.JobAssignAll {
		b = append(append(b, reducer...), 0)
	}
	c.out = b
	c.appendSharedLocked(data, pb)
	c.flushLocked(before)
}

// sendShared queues a packet whose arguments are head and then last,
// where nothing will modify last while the connection may still be
// writing it (a job's payload, or a body the read loop detached): a large
// one is written from where it is instead of being copied into the
// outbox, holding pb, the pooled buffer it is in (or nil), until then.
// head is copied, so a caller may pass arguments on its stack (a handle
// in a handleBuf) without their escaping.
func (c *conn) sendShared(t protocol.Type, pb *payloadBuf, head [][]byte, last []byte) {
	c.sendSharedVia(nil, t, pb, head, last)
}

// sendSharedVia is sendShared on behalf of via's read loop, as sendVia
// is to send.
func (c *conn) sendSharedVia(via *conn, t protocol.Type, pb *payloadBuf, head [][]byte, last []byte) {
	size := len(head) + len(last)
	for _, a := range head {
		size += len(a)
	}
	c.outMu.Lock()
	if c.closed {
		c.outMu.Unlock()
		return
	}
	before := c.queuedLocked()
	b := appendHeader(c.out, t, size)
	for _, a := range head {
		b = append(append(b, a...), 0)
	}
	c.out = b
	c.appendSharedLocked(last, pb)
	if via == nil || via == c {
		c.flushLocked(before)
		return
	}
	if c.overLimitLocked(before) {
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

// signalRoom tells a read loop waiting in sendTextPaced that a write
// made room in the outbox.
func (c *conn) signalRoom() {
	select {
	case c.room <- struct{}{}:
	default:
	}
}

// textPiece is how much of a long admin reply sendTextPaced queues at
// a time.
const textPiece = 64 << 10

// sendTextPaced queues a long admin reply a piece at a time, waiting
// for the peer to read when the outbox is full, so that a reply larger
// than the outbound limit ("show jobs" of a big queue) reaches a peer
// that reads it; the limit is for peers that do not. A peer that reads
// nothing for WriteTimeout is cut off by the writer. It blocks and is
// called by the connection's own read loop, holding no lock.
func (c *conn) sendTextPaced(b []byte) {
	limit := c.srv.cfg.MaxOutboundBytes
	timer := time.NewTimer(2 * c.srv.cfg.WriteTimeout)
	defer timer.Stop()
	for len(b) > 0 {
		n := min(len(b), textPiece)
		c.outMu.Lock()
		for !c.closed && c.queuedLocked() > 0 && c.queuedLocked()+n > limit {
			c.outMu.Unlock()
			c.kick()
			select {
			case <-c.room:
				timer.Reset(2 * c.srv.cfg.WriteTimeout)
			case <-c.done:
			case <-timer.C:
				// The writer's deadline should have cut the peer off.
				c.log.Warn("closing slow consumer", "limit", limit)
				c.close(errSlowConsumer)
			}
			c.outMu.Lock()
		}
		if c.closed {
			c.outMu.Unlock()
			return
		}
		c.out = append(c.out, b[:n]...)
		c.accountOutLocked()
		c.outMu.Unlock()
		b = b[n:]
	}
	c.kick()
}

// sendText queues raw admin reply bytes.
func (c *conn) sendText(b []byte) {
	c.outMu.Lock()
	if c.closed {
		c.outMu.Unlock()
		return
	}
	before := c.queuedLocked()
	c.out = append(c.out, b...)
	c.flushLocked(before)
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
	before := c.queuedLocked()
	c.out = protocol.AppendPacket(c.out, protocol.Res, t, args...)
	if c.overLimitLocked(before) {
		return
	}
	c.outMu.Unlock()
	via.deferFlush(c)
}

// flushLocked enforces the outbound limit, signals the writer unless the
// read loop is about to write, and releases outMu. before is what the
// outbox held before the packet just queued.
func (c *conn) flushLocked(before int) {
	if c.overLimitLocked(before) {
		return
	}
	c.outMu.Unlock()
	if !c.holding.Load() {
		c.kick()
	}
}

// queuedLocked is the number of bytes the outbox holds.
func (c *conn) queuedLocked() int { return len(c.out) + c.segBytes }

// overLimitLocked closes a connection whose outbox passed the outbound
// limit, releasing outMu, and reports whether it did; otherwise outMu
// is still held. before is what the outbox held before the packet just
// queued: a packet queued into an empty outbox is always admitted, so
// that no packet (a job's JOB_ASSIGN above all) can be refused to every
// peer, a job then being requeued for ever. New makes sure the limit
// admits any packet anyway.
func (c *conn) overLimitLocked(before int) bool {
	if before == 0 || c.queuedLocked() <= c.srv.cfg.MaxOutboundBytes {
		c.accountOutLocked()
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

// refreshDeadline moves the write deadline WriteTimeout ahead once a
// quarter of it has passed: refreshing costs a syscall-sized share of a
// small write. The caller holds wmu.
func (c *conn) refreshDeadline() {
	if now := time.Now(); now.Sub(c.deadlineSet) > c.srv.cfg.WriteTimeout/4 {
		_ = c.nc.SetWriteDeadline(now.Add(c.srv.cfg.WriteTimeout))
		c.deadlineSet = now
	}
}

// writePending writes what the outbox holds until it is empty, waiting
// for the socket as long as the write timeout allows. It reports false
// when the connection failed. The caller holds wmu.
func (c *conn) writePending() bool {
	for range 1 << 20 { // bounded; each round writes what was queued
		c.outMu.Lock()
		c.inflight = c.queuedLocked()
		buf, segs, refs, mark := c.out, c.segs, c.segRefs, c.mark
		c.out, c.segs, c.segRefs, c.mark, c.segBytes = c.spare[:0], c.spareSegs[:0], c.spareRefs[:0], 0, 0
		c.spare, c.spareSegs, c.spareRefs = nil, nil, nil // now the outbox's: never both
		c.accountOutLocked()
		c.outMu.Unlock()
		if len(buf) == 0 && len(segs) == 0 {
			c.spare, c.spareSegs, c.spareRefs = buf, segs, refs
			return true
		}
		c.refreshDeadline()
		var err error
		var n int64
		if len(segs) == 0 {
			var m int
			m, err = c.nc.Write(buf)
			n = int64(m)
		} else {
			segs = append(segs, buf[mark:])
			bufs := net.Buffers(segs)
			n, err = bufs.WriteTo(c.nc) // writev
			clear(segs)                 // drop the payloads
			releaseRefs(refs)           // written, or the connection fails
		}
		c.srv.metrics.bytesOut.Add(uint64(n))
		c.srv.metrics.writes.Add(1) // one or more: a large one may take several
		// Keep small buffers for reuse; let a burst's big buffer go.
		if cap(buf) <= 1<<20 {
			c.spare = buf[:0]
		} else {
			c.spare = nil
			c.srv.noteReleased(cap(buf))
		}
		c.spareSegs, c.spareRefs = segs[:0], refs[:0]
		if err != nil {
			c.close(err)
			return false
		}
		c.signalRoom()
	}
	c.kick() // more remains: come back after others had their turn
	return true
}
