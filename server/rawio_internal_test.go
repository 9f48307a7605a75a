package server

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// TestRawIOAllocatesNothing: the read loop's read and its non-blocking
// write allocate nothing per call. Each made a closure for RawConn, and
// the variables it captured escaped with it: four allocations a job's
// read and write, most of the server's allocations per job.
func TestRawIOAllocatesNothing(t *testing.T) {
	if !haveRawIO {
		t.Skip("no raw socket calls on this platform")
	}
	srv, peer := serveLoopback(t, Config{})
	peer.Req(protocol.EchoReq, "x") // the connection is served once echoed
	peer.Expect(t, protocol.EchoRes, "x")
	srv.mu.Lock()
	var c *conn
	for k := range srv.conns {
		c = k
	}
	srv.mu.Unlock()
	if c == nil || c.raw == nil {
		t.Fatal("no raw server connection")
	}

	t.Run("write", func(t *testing.T) {
		// The peer's socket buffer holds the NOOPs without its reading.
		allocs := testing.AllocsPerRun(100, func() {
			c.send(protocol.Noop)
			c.flushInline()
		})
		if allocs != 0 {
			t.Errorf("send and flushInline: %v allocations a call, want 0", allocs)
		}
	})

	t.Run("read", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		w, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		nc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		raw := rawConn(nc)
		if raw == nil {
			t.Fatal("no raw access to a TCP connection")
		}
		r := newRawReader(raw)
		buf := make([]byte, 64)
		if _, err := w.Write(make([]byte, 101*len(buf))); err != nil {
			t.Fatal(err)
		}
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := io.ReadFull(r, buf); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("rawReader.Read: %v allocations a call, want 0", allocs)
		}
	})
}
