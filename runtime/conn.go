package runtime

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// conn is one TCP connection to a job server. Exactly one goroutine (the
// owner's read loop) calls readPacket; any goroutine may call write.
// Writes are combined (group commit): a caller that finds no write in
// progress writes its packets at once; callers that arrive while one is
// in progress append theirs to the next batch and wait, and that whole
// batch goes out in one write when the socket is free. Packets of
// concurrent writers never interleave, an idle connection pays no added
// latency, and many concurrent submits cost a few writes, not one each.
type conn struct {
	addr         string   // immutable
	nc           net.Conn // immutable
	reader       *protocol.Reader
	writeTimeout time.Duration // immutable

	mu      sync.Mutex    // guards the fields below; orders bytes and before callbacks
	writing bool          // a goroutine owns nc for writing
	queue   []*writeBatch // batches waiting for the socket, in wire order
	spare   []byte        // a free buffer for the next batch (at most 1 MiB)

	closeOnce sync.Once
}

// writeBatch is packets of callers that arrived during a write, sent
// together in one later write. Its first caller (the leader) waits for
// turn and writes; the others wait for done. Small packets are encoded
// into buf as they come, up to maxBatch bytes; a larger caller's
// packets make a batch of their own, kept as pkts and encoded only when
// its turn comes, so a waiting payload is not copied. Each batch gets
// the write timeout of its own, as each caller's write did before
// writes were combined.
type writeBatch struct {
	buf  []byte            // appended under conn.mu while the batch is the queue's last
	pkts []protocol.Packet // a lone large caller's packets, or nil
	turn chan struct{}     // closed when the socket is the leader's
	done chan struct{}     // closed after the write, with err set
	err  error
}

// maxBatch bounds the bytes of small packets combined into one write:
// past it the system calls saved are few, and the batch must still go
// out within one write timeout.
const maxBatch = 256 << 10

// connOpts are the connection settings ClientConfig and WorkerConfig
// share.
type connOpts struct {
	timeout      time.Duration // bounds the dial and the TLS handshake together
	writeTimeout time.Duration
	maxPacket    int
	tls          *tls.Config                                              // nil: plaintext
	dial         func(ctx context.Context, addr string) (net.Conn, error) // nil: TCP
}

// dial connects to addr within o.timeout (or ctx), over TLS when o.tls
// is set: the handshake, which verifies the server, is part of the
// dial, so a server that is not the one configured fails like an
// unreachable one and is retried with backoff.
func dial(ctx context.Context, addr string, o connOpts) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	nc, err := dialConn(ctx, addr, o.dial, o.tls)
	if err != nil {
		return nil, err
	}
	return &conn{
		addr:         addr,
		nc:           nc,
		reader:       protocol.NewReader(nc, protocol.ReaderConfig{MaxPacketSize: o.maxPacket}),
		writeTimeout: o.writeTimeout,
	}, nil
}

// dialConn connects to addr with dialFn (TCP when nil) and, when cfg is
// set, completes a TLS handshake on it, all within ctx.
func dialConn(ctx context.Context, addr string, dialFn func(context.Context, string) (net.Conn, error), cfg *tls.Config) (net.Conn, error) {
	var nc net.Conn
	var err error
	if dialFn != nil {
		nc, err = dialFn(ctx, addr)
	} else {
		d := net.Dialer{KeepAlive: 30 * time.Second}
		nc, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil || cfg == nil {
		return nc, err
	}
	tc := tls.Client(nc, tlsForAddr(cfg, addr))
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// tlsForAddr is cfg for a connection to addr: without a ServerName, the
// server's certificate is checked against addr's host, as crypto/tls's
// Dial does.
func tlsForAddr(cfg *tls.Config, addr string) *tls.Config {
	if cfg.ServerName != "" || cfg.InsecureSkipVerify {
		return cfg
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	c := cfg.Clone()
	c.ServerName = host
	return c
}

// readPacket reads the next packet; its Args alias the reader's buffer
// until the next call. Only the read loop calls it.
func (c *conn) readPacket() (protocol.Packet, error) { return c.reader.ReadPacket() }

// maxSpareBuf is the largest write buffer a conn keeps for reuse, so
// one large payload's buffer is not pinned for the connection's life.
const maxSpareBuf = 1 << 20

// write sends pkts, in one write together with the packets of any
// callers that arrive while another write is in progress, and returns
// once that write has succeeded or failed. before, if not nil, runs
// under the lock that orders the bytes, before they go out: the client
// uses it to queue the pending reply in the same order as requests reach
// the wire. A failed write closes the connection, so the read loop ends
// and fails everything pending; every caller whose packets it carried
// gets its error.
func (c *conn) write(before func(), pkts ...protocol.Packet) error {
	c.mu.Lock()
	if before != nil {
		before()
	}
	if !c.writing {
		c.writing = true
		buf := c.spare[:0]
		c.spare = nil
		c.mu.Unlock()
		// Whatever arrives now goes after these bytes, so they can be
		// encoded outside the lock.
		for _, p := range pkts {
			buf = p.Append(buf)
		}
		err := c.send(buf)
		c.release(buf)
		return err
	}
	size := 0
	for _, p := range pkts {
		size += protocol.HeaderSize + p.BodySize()
	}
	var b *writeBatch
	if n := len(c.queue); n > 0 && c.queue[n-1].pkts == nil && len(c.queue[n-1].buf)+size <= maxBatch {
		b = c.queue[n-1]
	}
	leader := b == nil
	if leader {
		b = &writeBatch{turn: make(chan struct{}), done: make(chan struct{})}
		if size > maxBatch {
			b.pkts = pkts
		} else {
			b.buf, c.spare = c.spare[:0], nil
		}
		c.queue = append(c.queue, b)
	}
	if b.pkts == nil {
		for _, p := range pkts {
			b.buf = p.Append(b.buf)
		}
	}
	c.mu.Unlock()
	if !leader {
		<-b.done
		return b.err
	}
	// release took the batch off the queue before handing it the turn,
	// so nobody appends to it any more.
	<-b.turn
	for _, p := range b.pkts {
		b.buf = p.Append(b.buf)
	}
	b.err = c.send(b.buf)
	close(b.done)
	c.release(b.buf)
	return b.err
}

// send writes buf within the write timeout. A failed write closes the
// connection.
func (c *conn) send(buf []byte) error {
	if c.writeTimeout > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	if _, err := c.nc.Write(buf); err != nil {
		c.close()
		return errorf(ErrConnectionLost, "%s: %v", c.addr, err)
	}
	return nil
}

// release ends a write: it keeps buf for the next batch unless buf is
// large, and hands the socket to the leader of the first batch queued,
// if any. Each leader writes only its own batch.
func (c *conn) release(buf []byte) {
	c.mu.Lock()
	if cap(buf) <= maxSpareBuf && cap(buf) > cap(c.spare) {
		c.spare = buf[:0]
	}
	var b *writeBatch
	if len(c.queue) > 0 {
		b = c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		if len(c.queue) == 0 {
			c.queue = nil // let the backing array go
		}
	}
	c.writing = b != nil
	c.mu.Unlock()
	if b != nil {
		close(b.turn)
	}
}

// close closes the socket; the read loop then ends. Safe to call more
// than once and from any goroutine.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		if tc, ok := c.nc.(*tls.Conn); ok {
			// Not tls.Conn.Close: its close_notify alert is a write that
			// waits up to 5s on a server that does not read, and
			// Gearman's packets carry their lengths, so nothing relies
			// on it.
			_ = tc.NetConn().Close()
			return
		}
		_ = c.nc.Close()
	})
}
