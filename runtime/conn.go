package runtime

import (
	"context"
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

// dial connects to addr within timeout (or ctx).
func dial(ctx context.Context, addr string, timeout, writeTimeout time.Duration, maxPacket int) (*conn, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &conn{
		addr:         addr,
		nc:           nc,
		reader:       protocol.NewReader(nc, protocol.ReaderConfig{MaxPacketSize: maxPacket}),
		writeTimeout: writeTimeout,
	}, nil
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
	c.closeOnce.Do(func() { _ = c.nc.Close() })
}
