package server_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

// vmRSS is the process's resident set in bytes, from /proc/self/status.
func vmRSS(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmRSS in /proc/self/status")
	return 0
}

// readRawPacket reads one response packet into buf (grown if needed)
// and returns its type and body, which alias buf: the test's own side
// allocates nothing per job, so the process's RSS is the server's.
func readRawPacket(t *testing.T, r io.Reader, buf *[]byte) (protocol.Type, []byte) {
	t.Helper()
	var hdr [protocol.HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		t.Fatalf("read header: %v", err)
	}
	typ := protocol.Type(binary.BigEndian.Uint32(hdr[4:8]))
	size := int(binary.BigEndian.Uint32(hdr[8:12]))
	if cap(*buf) < size {
		*buf = make([]byte, size)
	}
	body := (*buf)[:size]
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatalf("read %v body of %d bytes: %v", typ, size, err)
	}
	return typ, body
}

// TestMemoryReturnedAfterLargeRelease: after a 400 MiB queue of
// background jobs has been run, the server gives the memory back to the
// OS within seconds. Go frees the payloads at its next collection, but
// a server that has just drained allocates little, and the memory used
// to stay resident for minutes (about 926 MB for 2 minutes after a
// 0.9 GB peak).
//
// Not parallel: it measures the whole process's RSS, so it must run
// while no other test of the package allocates. Top-level tests that
// call t.Parallel wait until the sequential ones have finished, so
// this one has the process to itself. Slow (the returns are at least
// 10 s apart), so not in -short runs.
func TestMemoryReturnedAfterLargeRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 10-20 s; not in -short")
	}
	vmRSS(t) // skips without /proc
	const (
		payloadSize = 4 << 20
		jobs        = 100 // 400 MiB
		// At least three quarters of the payloads must leave RSS: more
		// than the first return, made while the queue drains, gives
		// back, so the one that follows it (after memReturnInterval) is
		// needed too. Under -race the shadow memory stays, but the
		// heap's share falls as far.
		fall = 300 << 20
	)
	s := servertest.Start(t, server.Config{})

	client, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	cr := bufio.NewReader(client)
	submit := protocol.New(protocol.Req, protocol.SubmitJobBg, []byte("memreturn"), nil,
		bytes.Repeat([]byte{'x'}, payloadSize)).Append(nil)
	var buf []byte
	for i := range jobs {
		if _, err := client.Write(submit); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
		if typ, body := readRawPacket(t, cr, &buf); typ != protocol.JobCreated {
			t.Fatalf("submit %d: got %v %q, want JOB_CREATED", i, typ, body)
		}
	}
	if st := s.Srv.Stats(); st.Jobs != jobs {
		t.Fatalf("after %d submissions the server holds %d jobs", jobs, st.Jobs)
	}
	peak := vmRSS(t)

	worker, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Close()
	wr := bufio.NewReader(worker)
	if _, err := worker.Write(protocol.New(protocol.Req, protocol.CanDo, []byte("memreturn")).Append(nil)); err != nil {
		t.Fatal(err)
	}
	grab := protocol.New(protocol.Req, protocol.GrabJob).Append(nil)
	var complete []byte
	for i := range jobs {
		if _, err := worker.Write(grab); err != nil {
			t.Fatalf("grab %d: %v", i, err)
		}
		typ, body := readRawPacket(t, wr, &buf)
		if typ != protocol.JobAssign || len(body) < payloadSize {
			t.Fatalf("grab %d: got %v of %d bytes, want JOB_ASSIGN with %d payload bytes", i, typ, len(body), payloadSize)
		}
		handle, _, _ := bytes.Cut(body, []byte{0})
		complete = protocol.New(protocol.Req, protocol.WorkComplete, handle, nil).Append(complete[:0])
		if _, err := worker.Write(complete); err != nil {
			t.Fatalf("complete %d: %v", i, err)
		}
	}
	// The last WORK_COMPLETE is read once the server answers a later
	// request on the same connection.
	if _, err := worker.Write(grab); err != nil {
		t.Fatal(err)
	}
	if typ, body := readRawPacket(t, wr, &buf); typ != protocol.NoJob {
		t.Fatalf("final grab: got %v %q, want NO_JOB", typ, body)
	}
	if st := s.Srv.Stats(); st.Jobs != 0 {
		t.Fatalf("after running every job the server still holds %d", st.Jobs)
	}
	drained := time.Now()

	low := peak
	for deadline := drained.Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		low = min(low, vmRSS(t))
		if low < peak-fall {
			break
		}
	}
	t.Logf("RSS: %d MiB with %d MiB queued; %d MiB %.1fs after the queue drained (%d returns to the OS)",
		peak>>20, jobs*payloadSize>>20, low>>20, time.Since(drained).Seconds(), s.Srv.Stats().MemoryReturns)
	if low >= peak-fall {
		t.Errorf("RSS %d MiB at its lowest in the 20 s after the queue drained; want below %d MiB (peak %d MiB less %d MiB)",
			low>>20, (peak-fall)>>20, peak>>20, fall>>20)
	}
}
