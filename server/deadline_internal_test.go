package server

import (
	"net"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
)

// TestInlineWriteAfterLapsedDeadline: a reply written inline after the
// write deadline passed while the writing goroutine was held up, between
// refreshing the deadline and writing (on a loaded machine), still
// reaches its peer, which reads at once: the lapse says nothing about
// the peer, and the connection is not closed for it. The held-up
// goroutine is reproduced by the state it leaves: a deadline refreshed
// just now, so not refreshed again before the write, and yet passed.
func TestInlineWriteAfterLapsedDeadline(t *testing.T) {
	t.Parallel()
	srv, err := New(Config{WriteTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	cl := wiretest.Dial(t, l.Addr().String())
	cl.Req(protocol.EchoReq, "before")
	cl.Expect(t, protocol.EchoRes, "before")

	srv.mu.Lock()
	var c *conn
	for sc := range srv.conns {
		c = sc
	}
	n := len(srv.conns)
	srv.mu.Unlock()
	if n != 1 || c.raw == nil {
		t.Fatalf("%d connections (raw %v); want the client's, with a raw socket", n, c != nil && c.raw != nil)
	}
	c.wmu.Lock()
	c.deadlineSet = time.Now()
	if err := c.nc.SetWriteDeadline(time.Now().Add(-time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	c.wmu.Unlock()

	// The echo is written by the read loop, inline, at the end of its
	// batch.
	cl.Req(protocol.EchoReq, "after")
	cl.Expect(t, protocol.EchoRes, "after")
	cl.Req(protocol.EchoReq, "again")
	cl.Expect(t, protocol.EchoRes, "again")
}
