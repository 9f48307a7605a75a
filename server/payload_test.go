package server

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/loadgen"
	"github.com/gearflow/gearflow/protocol"
)

func TestPayloadClasses(t *testing.T) {
	t.Parallel()
	for i := 1; i < numClasses; i++ {
		if classSize(i) <= classSize(i-1) {
			t.Fatalf("class %d size %d not above class %d's %d", i, classSize(i), i-1, classSize(i-1))
		}
		if waste := classSize(i) - classSize(i-1) - 1; waste*5 > classSize(i) {
			t.Errorf("class %d (%d bytes) can waste %d bytes, more than a fifth", i, classSize(i), waste)
		}
	}
	if got := classSize(numClasses - 1); got != protocol.BodyBufferMax {
		t.Errorf("largest class %d bytes, want protocol.BodyBufferMax %d", got, protocol.BodyBufferMax)
	}
	for n := 1; n <= protocol.BodyBufferMax+1; n++ {
		i := classFor(n)
		switch {
		case n > protocol.BodyBufferMax:
			if i != -1 {
				t.Fatalf("classFor(%d) = %d, want -1 beyond the largest class", n, i)
			}
		case i < 0 || classSize(i) < n || i > 0 && classSize(i-1) >= n:
			t.Fatalf("classFor(%d) = %d, not the smallest class that holds it", n, i)
		}
	}
}

// startPlain runs a server on a loopback port until the test ends.
func startPlain(t *testing.T) (*Server, string) {
	t.Helper()
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s, l.Addr().String()
}

// TestPooledPayloads runs large jobs of several sizes through the server,
// with every payload checked byte for byte by the load generator, and a
// worker that drops its connection while its assignment is still being
// written. Afterwards every reference on a pooled buffer must be back,
// and the buffers must have been reused rather than allocated per job.
func TestPooledPayloads(t *testing.T) {
	s, addr := startPlain(t)
	live0, new0 := s.payloads.live.Load(), s.payloads.allocated.Load()
	var jobs int64
	for _, size := range []int{sharedMin, 5000, 64 << 10, 100000, protocol.BodyBufferMax - 64, 300 << 10} {
		res, err := loadgen.Run(t.Context(), loadgen.Config{Addr: addr, Clients: 2, InFlight: 8, Workers: 2,
			PayloadSize: size, Jobs: 300, Timeout: time.Minute})
		if err != nil || res.Errors() != 0 {
			t.Fatalf("%d-byte jobs: %v, %d errors", size, err, res.Errors())
		}
		jobs += res.Phases[0].Jobs
	}

	// A worker takes a large job and hangs up without reading it; the
	// job goes to a second worker and reaches the client intact.
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	client := dialPlain(t, addr)
	client.send(protocol.SubmitJob, "big", "", string(data))
	handle := client.expect(protocol.JobCreated).Args[0]
	quitter := dialPlain(t, addr)
	quitter.send(protocol.CanDo, "big")
	quitter.send(protocol.GrabJobUniq)
	quitter.nc.Close()
	worker := dialPlain(t, addr)
	worker.send(protocol.CanDo, "big")
	var assign protocol.Packet
	for range 1000 { // until the first worker's loss requeues the job
		worker.send(protocol.GrabJobUniq)
		if assign = worker.read(); assign.Type == protocol.JobAssignUniq {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if assign.Type != protocol.JobAssignUniq || !bytes.Equal(assign.Args[3], data) {
		t.Fatalf("second worker got %v with %d bytes, want the whole payload", assign.Type, len(assign.Arg(3)))
	}
	worker.send(protocol.WorkComplete, string(assign.Args[0]), string(data))
	if p := client.expect(protocol.WorkComplete); !bytes.Equal(p.Args[0], handle) || !bytes.Equal(p.Args[1], data) {
		t.Fatalf("client got %q with %d bytes", p.Args[0], len(p.Args[1]))
	}

	// The same through GRAB_JOB, whose JOB_ASSIGN has no unique: the
	// payload goes out from its pooled buffer behind handle and function.
	client.send(protocol.SubmitJob, "big", "", string(data))
	handle = client.expect(protocol.JobCreated).Args[0]
	worker.send(protocol.GrabJob)
	assign = worker.expect(protocol.JobAssign)
	if !bytes.Equal(assign.Args[0], handle) || string(assign.Args[1]) != "big" || !bytes.Equal(assign.Args[2], data) {
		t.Fatalf("GRAB_JOB got handle %q, function %q, %d bytes; want %q, big, the whole payload",
			assign.Args[0], assign.Args[1], len(assign.Arg(2)), handle)
	}
	worker.send(protocol.WorkComplete, string(handle), string(data))
	if p := client.expect(protocol.WorkComplete); !bytes.Equal(p.Args[1], data) {
		t.Fatalf("client got %d bytes", len(p.Args[1]))
	}
	client.nc.Close()
	worker.nc.Close()

	// Connections clean up after they close: wait, bounded, for every
	// reference to come back.
	deadline := time.Now().Add(10 * time.Second)
	// (A connection of an earlier test still closing can only lower
	// the count, so the check is for references above the start.)
	for s.payloads.live.Load() > live0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.payloads.live.Load() - live0; got > 0 {
		t.Errorf("%d references on pooled buffers still held after every job ended", got)
	}
	// Without -race about one job in twenty allocates; with it about one
	// in two (sync.Pool drops a random quarter of Puts under the race
	// detector): either way far below one buffer per job.
	limit := jobs / 4
	if raceEnabled {
		limit = jobs * 4 / 5
	}
	if allocated := s.payloads.allocated.Load() - new0; allocated > limit {
		t.Errorf("%d pooled buffers allocated for %d large jobs (limit %d), want them reused", allocated, jobs, limit)
	} else {
		t.Logf("%d pooled buffers allocated for %d large jobs", allocated, jobs)
	}
}

// plainConn is a raw protocol connection for tests in this package.
type plainConn struct {
	t  *testing.T
	nc net.Conn
	r  *protocol.Reader
}

func dialPlain(t *testing.T, addr string) *plainConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	return &plainConn{t: t, nc: nc, r: protocol.NewReader(nc, protocol.ReaderConfig{})}
}

func (c *plainConn) send(typ protocol.Type, args ...string) {
	c.t.Helper()
	b := make([][]byte, len(args))
	for i, a := range args {
		b[i] = []byte(a)
	}
	if _, err := c.nc.Write(protocol.AppendPacket(nil, protocol.Req, typ, b...)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *plainConn) read() protocol.Packet {
	c.t.Helper()
	p, err := c.r.ReadPacket()
	if err != nil {
		c.t.Fatal(err)
	}
	// The reader reuses its buffer: keep what the test looks at.
	args := make([][]byte, len(p.Args))
	for i, a := range p.Args {
		args[i] = bytes.Clone(a)
	}
	p.Args = args
	return p
}

func (c *plainConn) expect(typ protocol.Type) protocol.Packet {
	c.t.Helper()
	p := c.read()
	if p.Type != typ {
		c.t.Fatalf("got %v %q, want %v", p.Type, p.Args, typ)
	}
	return p
}

// TestAssignedPayloadOutlivesItsJob: a worker that completes jobs before
// reading their assignments ends them while their payloads still wait in
// its outbox. Their pooled buffers must not be reused for new
// submissions until those bytes are written: the worker then reads every
// assignment with its own job's payload.
func TestAssignedPayloadOutlivesItsJob(t *testing.T) {
	t.Parallel()
	_, addr := startPlain(t)
	const jobs, size = 128, 120 << 10 // 15 MiB: more than socket buffers hold
	body := func(round, i int) string {
		b := bytes.Repeat([]byte{byte('A' + round), byte('a' + i%26)}, size/2)
		copy(b, fmt.Sprintf("%d/%d/", round, i))
		return string(b)
	}
	client := dialPlain(t, addr)
	worker := dialPlain(t, addr)
	worker.send(protocol.CanDo, "f")
	handles := make([]string, jobs)
	for i := range jobs {
		client.send(protocol.SubmitJob, "f", "", body(0, i))
		handles[i] = string(client.expect(protocol.JobCreated).Args[0])
	}
	// Take every job without reading a byte of the assignments, then
	// complete them all: the jobs end while most of their payloads are
	// still queued for this worker.
	grabs := bytes.Repeat(protocol.AppendPacket(nil, protocol.Req, protocol.GrabJobUniq), jobs)
	if _, err := worker.nc.Write(grabs); err != nil {
		t.Fatal(err)
	}
	for _, h := range handles { // GRABs are answered in order, so these are all running
		worker.send(protocol.WorkComplete, h, "done")
	}
	for range jobs {
		client.expect(protocol.WorkComplete)
	}
	// New submissions take whatever buffers the pool hands out.
	for i := range jobs {
		client.send(protocol.SubmitJob, "f", "", body(1, i))
		client.expect(protocol.JobCreated)
	}
	for i := range jobs {
		p := worker.expect(protocol.JobAssignUniq)
		want := body(0, i)
		if string(p.Args[0]) != handles[i] || string(p.Args[3]) != want {
			at := 0
			for at < min(len(want), len(p.Args[3])) && p.Args[3][at] == want[at] {
				at++
			}
			t.Fatalf("assignment %d: handle %q, %d payload bytes differing from its job's from byte %d on; want %q with its own payload",
				i, p.Args[0], len(p.Args[3]), at, handles[i])
		}
	}
}
