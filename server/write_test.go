package server_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

// payload returns n bytes that differ for every i, so a reply carrying
// another request's bytes, or bytes out of order, is caught.
func payload(i, n int) []byte {
	b := bytes.Repeat([]byte{byte('a' + i%26)}, n)
	binary.BigEndian.PutUint32(b, uint32(i))
	copy(b[n-4:], b[:4])
	return b
}

// dialRaw connects to addr with a deadline that bounds the whole test.
func dialRaw(t *testing.T, addr string) (net.Conn, *protocol.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if err := nc.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return nc, protocol.NewReader(nc, protocol.ReaderConfig{})
}

// TestRepliesKeepOrderWhenSocketFills: a peer that sends far more
// requests than its socket buffers hold before it reads a single reply
// gets every reply, whole and in order. The server's read loop writes
// replies without blocking, so here most writes are partial and the
// rest moves to the connection's writer while new replies keep coming.
func TestRepliesKeepOrderWhenSocketFills(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, server.Config{})
	nc, r := dialRaw(t, s.Addr)
	const n, size = 256, 64 << 10 // 16 MiB of replies
	sent := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < n && err == nil; i++ {
			_, err = nc.Write(protocol.AppendPacket(nil, protocol.Req, protocol.EchoReq, payload(i, size)))
		}
		sent <- err
	}()
	// Read only once every request is out: the server has had to queue.
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	for i := range n {
		p, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if p.Type != protocol.EchoRes || !bytes.Equal(p.Arg(0), payload(i, size)) {
			t.Fatalf("reply %d: %v with %d bytes, want ECHO_RES with request %d's", i, p.Type, len(p.Arg(0)), i)
		}
	}
}

// TestLargeJobsThroughFullSockets: large payloads go to workers by
// reference (writev) and come back to a client that is not reading;
// every result reaches the client after its JOB_CREATED, with the bytes
// of its own job.
func TestLargeJobsThroughFullSockets(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, server.Config{})
	const n, size = 128, 96 << 10
	wc, wr := dialRaw(t, s.Addr)
	if _, err := wc.Write(protocol.AppendPacket(nil, protocol.Req, protocol.CanDo, []byte("echo"))); err != nil {
		t.Fatal(err)
	}
	// The worker answers every job with its own payload.
	werr := make(chan error, 1)
	go func() {
		for range n {
			if _, err := wc.Write(protocol.AppendPacket(nil, protocol.Req, protocol.GrabJobUniq)); err != nil {
				werr <- err
				return
			}
			var p protocol.Packet
			var err error
			for {
				if p, err = wr.ReadPacket(); err != nil {
					werr <- err
					return
				}
				if p.Type != protocol.NoJob {
					break
				}
				// Not queued yet: ask again.
				if _, err := wc.Write(protocol.AppendPacket(nil, protocol.Req, protocol.GrabJobUniq)); err != nil {
					werr <- err
					return
				}
			}
			if p.Type != protocol.JobAssignUniq {
				werr <- fmt.Errorf("worker got %v", p.Type)
				return
			}
			done := protocol.AppendPacket(nil, protocol.Req, protocol.WorkComplete, p.Arg(0), p.Arg(3))
			if _, err := wc.Write(done); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()

	cc, cr := dialRaw(t, s.Addr)
	for i := range n {
		if _, err := cc.Write(protocol.AppendPacket(nil, protocol.Req, protocol.SubmitJob, []byte("echo"), []byte(fmt.Sprint(i)), payload(i, size))); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-werr; err != nil {
		t.Fatalf("worker: %v", err)
	}
	// JOB_CREATED arrive in submission order; each result must follow
	// its own JOB_CREATED and carry its own job's bytes.
	job := map[string]int{}
	results := 0
	for created := 0; created < n || results < n; {
		p, err := cr.ReadPacket()
		if err != nil {
			t.Fatalf("after %d JOB_CREATED and %d results: %v", created, results, err)
		}
		switch p.Type {
		case protocol.JobCreated:
			job[string(p.Arg(0))] = created
			created++
		case protocol.WorkComplete:
			i, ok := job[string(p.Arg(0))]
			if !ok {
				t.Fatalf("WORK_COMPLETE for %q before its JOB_CREATED", p.Arg(0))
			}
			if !bytes.Equal(p.Arg(1), payload(i, size)) {
				t.Fatalf("result for job %d carries other bytes", i)
			}
			results++
		default:
			t.Fatalf("client got %v", p.Type)
		}
	}
}

// TestShutdownDeliversLargeResult: a graceful shutdown that begins while
// a worker's large WORK_COMPLETE is being forwarded still delivers all
// of it to the client before closing. The result is larger than the
// socket buffers take in one write, so the forwarding read loop's write
// is partial while Shutdown marks the client's connection closing.
func TestShutdownDeliversLargeResult(t *testing.T) {
	t.Parallel()
	for round := range 5 {
		s := servertest.Start(t, server.Config{})
		cc, cr := dialRaw(t, s.Addr)
		wc, wr := dialRaw(t, s.Addr)
		if _, err := wc.Write(protocol.AppendPacket(nil, protocol.Req, protocol.CanDo, []byte("big"))); err != nil {
			t.Fatal(err)
		}
		if _, err := cc.Write(protocol.AppendPacket(nil, protocol.Req, protocol.SubmitJob, []byte("big"), nil, []byte("x"))); err != nil {
			t.Fatal(err)
		}
		if p, err := cr.ReadPacket(); err != nil || p.Type != protocol.JobCreated {
			t.Fatalf("round %d: %v %v, want JOB_CREATED", round, p.Type, err)
		}
		if _, err := wc.Write(protocol.AppendPacket(nil, protocol.Req, protocol.GrabJobUniq)); err != nil {
			t.Fatal(err)
		}
		p, err := wr.ReadPacket()
		if err != nil || p.Type != protocol.JobAssignUniq {
			t.Fatalf("round %d: worker got %v %v", round, p.Type, err)
		}
		handle := string(p.Arg(0))
		result := payload(round, 16<<20)
		shut := make(chan error, 1)
		go func() { shut <- s.Srv.Shutdown(t.Context()) }()
		if _, err := wc.Write(protocol.AppendPacket(nil, protocol.Req, protocol.WorkComplete, []byte(handle), result)); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		p, err = cr.ReadPacket()
		if err != nil {
			t.Fatalf("round %d: client lost the result: %v", round, err)
		}
		if p.Type != protocol.WorkComplete || !bytes.Equal(p.Arg(1), result) {
			t.Fatalf("round %d: client got %v with %d bytes", round, p.Type, len(p.Arg(1)))
		}
		if err := <-shut; err != nil {
			t.Fatalf("round %d: Shutdown: %v", round, err)
		}
	}
}

// TestResultReachesManyCoalescedClients: every one of many clients
// waiting for one job (same unique) gets each WORK_* packet exactly
// once, however many peers one read pass has to flush.
func TestResultReachesManyCoalescedClients(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, server.Config{})
	const clients = 40
	type peer struct {
		nc net.Conn
		r  *protocol.Reader
	}
	var cs []peer
	for i := range clients {
		nc, r := dialRaw(t, s.Addr)
		if _, err := nc.Write(protocol.AppendPacket(nil, protocol.Req, protocol.SubmitJob, []byte("f"), []byte("same"), []byte("x"))); err != nil {
			t.Fatal(err)
		}
		if p, err := r.ReadPacket(); err != nil || p.Type != protocol.JobCreated {
			t.Fatalf("client %d: %v %v", i, p.Type, err)
		}
		cs = append(cs, peer{nc, r})
	}
	wc, wr := dialRaw(t, s.Addr)
	var req []byte
	req = protocol.AppendPacket(req, protocol.Req, protocol.CanDo, []byte("f"))
	req = protocol.AppendPacket(req, protocol.Req, protocol.GrabJobUniq)
	if _, err := wc.Write(req); err != nil {
		t.Fatal(err)
	}
	p, err := wr.ReadPacket()
	if err != nil || p.Type != protocol.JobAssignUniq {
		t.Fatalf("worker got %v %v", p.Type, err)
	}
	h := append([]byte(nil), p.Arg(0)...)
	var res []byte
	res = protocol.AppendPacket(res, protocol.Req, protocol.WorkData, h, []byte("part"))
	res = protocol.AppendPacket(res, protocol.Req, protocol.WorkComplete, h, []byte("done"))
	if _, err := wc.Write(res); err != nil {
		t.Fatal(err)
	}
	for i, c := range cs {
		for _, want := range []struct {
			t    protocol.Type
			data string
		}{{protocol.WorkData, "part"}, {protocol.WorkComplete, "done"}} {
			p, err := c.r.ReadPacket()
			if err != nil || p.Type != want.t || string(p.Arg(1)) != want.data {
				t.Fatalf("client %d: %v %q %v, want %v %q", i, p.Type, p.Arg(1), err, want.t, want.data)
			}
		}
		// Exactly once: an ECHO now comes back before anything else.
		if _, err := c.nc.Write(protocol.AppendPacket(nil, protocol.Req, protocol.EchoReq, []byte("end"))); err != nil {
			t.Fatal(err)
		}
		if p, err := c.r.ReadPacket(); err != nil || p.Type != protocol.EchoRes {
			t.Fatalf("client %d: after the result got %v %v, want ECHO_RES", i, p.Type, err)
		}
	}
}
