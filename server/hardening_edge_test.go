package server_test

import (
	"bufio"
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

// writePacket sends one request packet on nc.
func writePacket(t *testing.T, nc net.Conn, typ protocol.Type, args ...[]byte) {
	t.Helper()
	if _, err := nc.Write(protocol.New(protocol.Req, typ, args...).Append(nil)); err != nil {
		t.Fatal(err)
	}
}

// readType reads one packet and fails unless it has type want.
func readType(t *testing.T, r *protocol.Reader, want protocol.Type) protocol.Packet {
	t.Helper()
	p, err := r.ReadPacket()
	if err != nil || p.Type != want {
		t.Fatalf("read %v, %v; want %v", p.Type, err, want)
	}
	return p
}

// TestOutboundLimitMustAdmitLargestPacket: an outbound limit below the
// packet size is refused by New. It used to be accepted, and a job
// larger than the limit then cut off every worker that grabbed it and
// was requeued for ever.
func TestOutboundLimitMustAdmitLargestPacket(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     server.Config
		wantErr string
	}{
		{"defaults", server.Config{}, ""},
		{"1 MiB below the default packet size", server.Config{MaxOutboundBytes: 1 << 20}, "MaxOutboundBytes 1048576 is below MaxPacketSize 67108864"},
		{"equal to the packet size", server.Config{MaxPacketSize: 2 << 20, MaxOutboundBytes: 2 << 20}, "could never be sent"},
		{"packet size plus headroom", server.Config{MaxPacketSize: 2 << 20, MaxOutboundBytes: 2<<20 + server.OutboundHeadroom}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := server.New(tt.cfg)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("New(%+v) = %v; want error containing %q", tt.cfg, err, tt.wantErr)
			}
		})
	}
}

// TestLargestJobReachesWorker: with the smallest outbound limit New
// accepts, the largest submission the server takes (a body of exactly
// MaxPacketSize, the longest handle prefix) reaches its worker and its
// result its client.
func TestLargestJobReachesWorker(t *testing.T) {
	t.Parallel()
	const size = 2 << 20
	prefix := strings.Repeat("p", 40)
	s := servertest.Start(t, server.Config{
		JobHandlePrefix:  prefix,
		MaxPacketSize:    size,
		MaxOutboundBytes: size + server.OutboundHeadroom,
	})
	client, cr := dialRaw(t, s.Addr)
	worker, wr := dialRaw(t, s.Addr)
	unique := bytes.Repeat([]byte("u"), 64)
	data := payload(1, size-len("f")-1-len(unique)-1)
	writePacket(t, client, protocol.SubmitJob, []byte("f"), unique, data)
	handle := readType(t, cr, protocol.JobCreated).Args[0]
	writePacket(t, worker, protocol.CanDo, []byte("f"))
	writePacket(t, worker, protocol.GrabJobUniq)
	p := readType(t, wr, protocol.JobAssignUniq)
	if !bytes.Equal(p.Args[3], data) {
		t.Fatalf("worker got %d bytes of data, want the %d submitted", len(p.Args[3]), len(data))
	}
	result := payload(2, size-len(handle)-1)
	writePacket(t, worker, protocol.WorkComplete, handle, result)
	if p := readType(t, cr, protocol.WorkComplete); !bytes.Equal(p.Args[1], result) {
		t.Fatalf("client got %d bytes of result", len(p.Args[1]))
	}
}

// submitBackground queues n background jobs for fn on nc in one write
// and reads their JOB_CREATEDs.
func submitBackground(t *testing.T, nc net.Conn, r *protocol.Reader, fn string, n int) {
	t.Helper()
	var b []byte
	for i := range n {
		b = protocol.New(protocol.Req, protocol.SubmitJobBg, []byte(fn), nil, []byte(strconv.Itoa(i))).Append(b)
	}
	go nc.Write(b) // the replies are read below, while it writes
	for range n {
		readType(t, r, protocol.JobCreated)
	}
}

// TestLargeAdminReplyReachesReader: "show jobs" at 50,000 jobs is a
// 2.5 MB reply, more than the 1 MiB outbound limit; a peer that reads
// gets all of it. It used to be cut off before any of it was sent: the
// limit was checked against the whole reply.
func TestLargeAdminReplyReachesReader(t *testing.T) {
	t.Parallel()
	const jobs = 50000
	s := servertest.Start(t, server.Config{
		JobHandlePrefix:  strings.Repeat("p", 40),
		MaxPacketSize:    512 << 10,
		MaxOutboundBytes: 1 << 20,
	})
	s.AllowLeftoverJobs() // the background jobs "show jobs" lists
	nc, r := dialRaw(t, s.Addr)
	submitBackground(t, nc, r, "f", jobs)

	// Twice in one write: the second reply is queued behind the first.
	admin, _ := dialRaw(t, s.Addr)
	if _, err := admin.Write([]byte("show jobs\nshow jobs\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(admin)
	for reply := range 2 {
		lines, bytesRead := 0, 0
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reply %d: after %d lines (%d bytes): %v", reply, lines, bytesRead, err)
			}
			bytesRead += len(line)
			if line == ".\n" {
				break
			}
			lines++
		}
		if lines != jobs || bytesRead <= 1<<20 {
			t.Errorf("show jobs: %d lines, %d bytes; want %d lines, over 1 MiB", lines, bytesRead, jobs)
		}
	}
	// The connection still serves.
	if _, err := admin.Write([]byte("version\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "OK ") {
		t.Errorf("version after show jobs: %q, %v", line, err)
	}
}

// TestLargeAdminReplyNonReaderCutOff: a peer that asks for a large
// admin reply and reads none of it is cut off within the write timeout,
// and its connection goes away.
func TestLargeAdminReplyNonReaderCutOff(t *testing.T) {
	t.Parallel()
	const jobs = 50000
	s := servertest.Start(t, server.Config{
		JobHandlePrefix:  strings.Repeat("p", 40),
		MaxPacketSize:    128 << 10,
		MaxOutboundBytes: 256 << 10,
		WriteTimeout:     500 * time.Millisecond,
	})
	s.AllowLeftoverJobs() // the background jobs "show jobs" lists
	nc, r := dialRaw(t, s.Addr)
	submitBackground(t, nc, r, "f", jobs)
	admin, _ := dialRaw(t, s.Addr)
	if tc, ok := admin.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10) // a small window: the server's writes block
	}
	// 50 MB of replies in all: far more than the kernel buffers.
	if _, err := admin.Write([]byte(strings.Repeat("show jobs\n", 20))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.Srv.Stats().Connections > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections 20s after the admin peer stopped reading; want it cut off", s.Srv.Stats().Connections)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitClosed reads nc until the server closes it, for up to d; it
// reports whether it did.
func waitClosed(nc net.Conn, d time.Duration) bool {
	nc.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		if _, err := nc.Read(buf); err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

// echo sends ECHO_REQ on nc and checks the reply.
func echo(t *testing.T, nc net.Conn, r *protocol.Reader, data []byte) {
	t.Helper()
	writePacket(t, nc, protocol.EchoReq, data)
	if p := readType(t, r, protocol.EchoRes); !bytes.Equal(p.Args[0], data) {
		t.Fatalf("echo returned %d bytes, want %d", len(p.Args[0]), len(data))
	}
}

// TestReadTimeoutFreesConnectionSlots: peers that send half a header and
// then nothing are disconnected after ReadTimeout, so that holding
// every connection slot that way does not lock everyone else out for
// ever; a connection that sends nothing at all stays (no idle timeout
// by default: sleeping workers are silent).
func TestReadTimeoutFreesConnectionSlots(t *testing.T) {
	t.Parallel()
	const slots = 4
	s := servertest.Start(t, server.Config{MaxConnections: slots, ReadTimeout: 300 * time.Millisecond})
	quiet, qr := dialRaw(t, s.Addr)
	echo(t, quiet, qr, []byte("hi")) // counted before the others
	var half []net.Conn
	for range slots - 1 {
		nc, _ := dialRaw(t, s.Addr)
		if _, err := nc.Write([]byte{0, 'R', 'E'}); err != nil { // 3 bytes of a header
			t.Fatal(err)
		}
		half = append(half, nc)
	}
	for i, nc := range half {
		if !waitClosed(nc, 10*time.Second) {
			t.Fatalf("half-header connection %d still open 10s later; ReadTimeout is 300ms", i)
		}
	}
	// The slots are free again; the silent connection was kept.
	nc, r := dialRaw(t, s.Addr)
	echo(t, nc, r, []byte("after"))
	echo(t, quiet, qr, []byte("still here"))
}

// TestReadTimeoutSpansProgress: a body that keeps arriving, piece by
// piece, for longer than ReadTimeout in all is not cut off: the timeout
// is for a peer that stops. The server may cut off a peer silent for
// three quarters of the timeout (it refreshes the deadline once a
// quarter has passed); the pieces come far more often than that, so
// that a loaded machine holding up this test or the server's read loop
// for a second does not pass for a peer that stopped.
func TestReadTimeoutSpansProgress(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	s := servertest.Start(t, server.Config{ReadTimeout: timeout})
	nc, r := dialRaw(t, s.Addr)
	data := payload(3, 64<<10)
	pkt := protocol.New(protocol.Req, protocol.EchoReq, data).Append(nil)
	const pieces, every = 24, 200 * time.Millisecond // 4.8 s: over twice the timeout
	for i := range pieces {
		if _, err := nc.Write(pkt[i*len(pkt)/pieces : (i+1)*len(pkt)/pieces]); err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
		time.Sleep(every)
	}
	if p := readType(t, r, protocol.EchoRes); !bytes.Equal(p.Args[0], data) {
		t.Fatal("echo of the slowly sent body differs")
	}
}

// TestIdleTimeout: with IdleTimeout set, a connection that begins no
// packet for that long is closed; one that keeps talking, for more than
// twice as long, is not.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, server.Config{IdleTimeout: time.Second})
	idle, _ := dialRaw(t, s.Addr)
	busy, br := dialRaw(t, s.Addr)
	start := time.Now()
	for time.Since(start) < 2500*time.Millisecond {
		echo(t, busy, br, []byte("ping"))
		time.Sleep(100 * time.Millisecond)
	}
	if !waitClosed(idle, 10*time.Second) {
		t.Fatal("idle connection still open 10s later; IdleTimeout is 1s")
	}
	echo(t, busy, br, []byte("still here"))
}

// TestMemoryCapShedsBiggest: when the connections together hold more
// than MaxBufferBytes in partly sent packets, the one holding the most is
// closed, with a warning, and the others go on.
func TestMemoryCapShedsBiggest(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	s := servertest.Start(t, server.Config{
		MaxBufferBytes: 4 << 20,
		Logger:         slog.New(slog.NewTextHandler(&logs, nil)),
	})
	big, _ := dialRaw(t, s.Addr)
	small, sr := dialRaw(t, s.Addr)

	// big: a 16 MiB body of which 1.5 MiB arrives (counted as 3 MiB).
	hdr := protocol.New(protocol.Req, protocol.EchoReq, make([]byte, 16<<20)).Append(nil)[:protocol.HeaderSize]
	if _, err := big.Write(append(hdr, make([]byte, 3<<19)...)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Srv.Stats().Buffered < 3<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("buffered = %d 10s after 1.5 MiB of a body; want 3 MiB counted", s.Srv.Stats().Buffered)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// small: 1 MiB of a 1.25 MiB echo takes the total past 4 MiB.
	data := payload(4, 5<<18)
	pkt := protocol.New(protocol.Req, protocol.EchoReq, data).Append(nil)
	if _, err := small.Write(pkt[:1<<20]); err != nil {
		t.Fatal(err)
	}
	if !waitClosed(big, 10*time.Second) {
		t.Fatal("the connection holding the most is still open 10s after the cap was passed")
	}
	if _, err := small.Write(pkt[1<<20:]); err != nil {
		t.Fatal(err)
	}
	if p := readType(t, sr, protocol.EchoRes); !bytes.Equal(p.Args[0], data) {
		t.Fatal("echo differs")
	}
	if !strings.Contains(logs.String(), "holds the most memory") {
		t.Errorf("no warning naming the shed connection; log:\n%s", logs.String())
	}
	for deadline := time.Now().Add(10 * time.Second); s.Srv.Stats().Buffered != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("buffered = %d with nothing in flight; want 0", s.Srv.Stats().Buffered)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
