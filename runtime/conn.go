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
// owner's read loop) calls readPacket; any goroutine may call write, which
// encodes the packets into one buffer and writes it with a single
// syscall under writeMu, so packets of concurrent writers never interleave
// and each request costs one write.
type conn struct {
	addr         string   // immutable
	nc           net.Conn // immutable
	reader       *protocol.Reader
	writeTimeout time.Duration // immutable

	writeMu sync.Mutex // guards buf and writes to nc
	buf     []byte

	closeOnce sync.Once
}

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

// write sends pkts in one write. before, if not nil, runs under writeMu
// before the bytes go out: the client uses it to queue the pending reply
// in the same order as requests reach the wire. A failed write closes the
// connection, so the read loop ends and fails everything pending.
func (c *conn) write(before func(), pkts ...protocol.Packet) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if before != nil {
		before()
	}
	c.buf = c.buf[:0]
	for _, p := range pkts {
		c.buf = p.Append(c.buf)
	}
	if c.writeTimeout > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
	_, err := c.nc.Write(c.buf)
	if cap(c.buf) > 1<<20 {
		c.buf = nil // do not pin one large payload's buffer
	}
	if err != nil {
		c.close()
		return errorf(ErrConnectionLost, "%s: %v", c.addr, err)
	}
	return nil
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
