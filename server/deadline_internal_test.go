//go:build linux

package server

import (
	"syscall"
	"testing"
	"time"
	"unsafe"

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
	_, cl, c := oneRawClient(t, Config{WriteTimeout: time.Minute})
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

// TestReadAfterLapsedDeadline: a request that waits in the socket when
// the read deadline passes, because the read loop was held up (here on
// the server's lock; on a loaded machine, by the scheduler) between
// arming the deadline and reading, is read and answered: the peer did
// not stop, and the connection is not closed as idle.
func TestReadAfterLapsedDeadline(t *testing.T) {
	t.Parallel()
	srv, cl, c := oneRawClient(t, Config{IdleTimeout: time.Minute})
	srv.mu.Lock()
	// The read loop reads CAN_DO and waits for the lock to serve it.
	in := srv.metrics.bytesIn.Load()
	cl.CanDo("f")
	for deadline := time.Now().Add(10 * time.Second); srv.metrics.bytesIn.Load() == in; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			srv.mu.Unlock()
			t.Fatal("CAN_DO not read 10s after it was sent")
		}
	}
	// Meanwhile the next request arrives, and the deadline the read
	// loop armed (a minute, refreshed after 15 s) passes.
	cl.Req(protocol.EchoReq, "after")
	for deadline := time.Now().Add(10 * time.Second); unread(t, c.raw) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			srv.mu.Unlock()
			t.Fatal("ECHO_REQ not in the server's socket 10s after it was sent")
		}
	}
	if err := c.nc.SetReadDeadline(time.Now().Add(-time.Millisecond)); err != nil {
		srv.mu.Unlock()
		t.Fatal(err)
	}
	srv.mu.Unlock()
	cl.Expect(t, protocol.EchoRes, "after")
	cl.Req(protocol.EchoReq, "again")
	cl.Expect(t, protocol.EchoRes, "again")
}

// unread returns the bytes waiting to be read in raw's socket.
func unread(t *testing.T, raw syscall.RawConn) int {
	var n int32
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	}); err != nil || errno != 0 {
		t.Errorf("TIOCINQ: %v %v", err, errno)
	}
	return int(n)
}

// oneRawClient starts a server with cfg and one client that has had an
// echo answered, and returns the server, the client and the server's
// conn for it, which must read its socket with raw system calls.
func oneRawClient(t *testing.T, cfg Config) (*Server, *wiretest.Conn, *conn) {
	t.Helper()
	srv, cl := serveLoopback(t, cfg)
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
	return srv, cl, c
}
