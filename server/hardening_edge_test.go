package server_test

import (
	"bufio"
	"bytes"
	"net"
	"strconv"
	"strings"
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
	nc, r := dialRaw(t, s.Addr)
	submitBackground(t, nc, r, "f", jobs)
	admin, _ := dialRaw(t, s.Addr)
	if tc, ok := admin.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10) // a small window: the server's writes block
	}
	if _, err := admin.Write([]byte("show jobs\n")); err != nil {
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
