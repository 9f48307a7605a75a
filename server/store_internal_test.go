package server

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
)

// TestStoreCompaction: once the records of ended jobs outweigh the live
// ones, the live records move to a new segment and the old segments go;
// the jobs queued and deleted meanwhile replay as they should.
func TestStoreCompaction(t *testing.T) {
	defer func(m int64) { compactMin = m }(compactMin)
	// No compaction while the deletes go out in batches of whatever
	// size: the test lowers the threshold once they are all written.
	compactMin = 1 << 40
	dir := t.TempDir()
	st, jobs, err := openStore(dir)
	if err != nil || len(jobs) != 0 {
		t.Fatalf("open: %v, %d jobs", err, len(jobs))
	}
	data := bytes.Repeat([]byte("x"), 1000)
	const n = 400
	var ticket uint64
	for id := uint64(1); id <= n; id++ {
		ticket = st.put(storedJob{id: id, fn: "f", unique: fmt.Sprint(id), data: data})
	}
	if err := st.wait(ticket); err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= n; id++ {
		if id%40 != 0 {
			st.del(id)
		}
	}
	if err := st.wait(st.put(storedJob{id: n + 1, fn: "f", data: data})); err != nil {
		t.Fatal(err) // the deletes, queued before it, are written too
	}
	// The writer reads compactMin only for a batch, and the next one
	// comes after this write through the put's channel send.
	compactMin = 64 << 10
	// The next batch finds the dead records and compacts first.
	if err := st.wait(st.put(storedJob{id: n + 2, fn: "f", data: data})); err != nil {
		t.Fatal(err)
	}
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 || segs[0] != 2 {
		t.Fatalf("segments after compaction %v, want only the new [2]", segs)
	}
	fi, err := os.Stat(filepath.Join(dir, segName(segs[0])))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 20*1100 {
		t.Fatalf("compacted segment holds %d bytes for 12 live jobs", fi.Size())
	}
	st.del(80)
	if err := st.close(); err != nil {
		t.Fatal(err)
	}

	st, jobs, err = openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	var ids []uint64
	for _, j := range jobs {
		ids = append(ids, j.id)
		if !bytes.Equal(j.data, data) || j.fn != "f" {
			t.Fatalf("job %d came back as %q %d bytes", j.id, j.fn, len(j.data))
		}
	}
	want := []uint64{40, 120, 160, 200, 240, 280, 320, 360, 400, n + 1, n + 2}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("replayed %v, want %v", ids, want)
	}
}

// TestStoreWriteFailureRefuses: when the log cannot be written, a
// background submission gets ERROR QUEUE_ERROR instead of a JOB_CREATED
// nothing keeps, and no job is created.
func TestStoreWriteFailureRefuses(t *testing.T) {
	srv, c := startDurable(t, "H:w")
	c.Submit(t, protocol.SubmitJobBg, "f", "", "stored")
	srv.store.f.Close() // the next write fails
	c.Req(protocol.SubmitJobBg, "f", "", "refused")
	c.ExpectErrorCode(t, protocol.CodeQueueError)
	c.Req(protocol.SubmitJobBg, "f", "", "refused too")
	c.ExpectErrorCode(t, protocol.CodeQueueError)
	if n := srv.Stats().Jobs; n != 1 {
		t.Fatalf("%d jobs in the server, want the one stored", n)
	}
	// Foreground jobs are not stored and still go on.
	c.Submit(t, protocol.SubmitJob, "f", "", "fg")
}

// TestDurablePipelinedOrder: a client that pipelines background
// submissions gets its replies in order, other requests and refusals
// among them included, and the pipelined submissions share syncs.
func TestDurablePipelinedOrder(t *testing.T) {
	srv, c := startDurable(t, "H:p")
	c.Submit(t, protocol.SubmitJobBg, "f", "", "warm-up")
	before := srv.store.syncs.Load()

	const n = 200
	var b []byte
	for i := range n {
		b = wiretest.Packet(protocol.Req, protocol.SubmitJobBg, "f", "", fmt.Sprint(i)).Append(b)
		switch i {
		case 50:
			b = wiretest.Packet(protocol.Req, protocol.EchoReq, "echo").Append(b)
		case 100:
			b = wiretest.Packet(protocol.Req, protocol.SubmitJobBg, "bad\x01name", "", "x").Append(b)
		case 150:
			b = wiretest.Packet(protocol.Req, protocol.SubmitJob, "g", "", "fg").Append(b)
		}
	}
	c.SendRaw(b)
	last := 1
	for i := range n {
		h := c.Created(t)
		id, err := strconv.Atoi(strings.TrimPrefix(h, "H:p:"))
		if err != nil || id <= last {
			t.Fatalf("reply %d: handle %s after H:p:%d", i, h, last)
		}
		last = id
		switch i {
		case 50:
			c.Expect(t, protocol.EchoRes, "echo")
		case 100:
			c.ExpectErrorCode(t, protocol.CodeInvalidArgument)
		case 150:
			last++ // the foreground job's
			c.Expect(t, protocol.JobCreated, "H:p:"+strconv.Itoa(last))
		}
	}
	if syncs := srv.store.syncs.Load() - before; syncs >= n/2 {
		t.Errorf("%d pipelined submissions took %d syncs; want them shared", n, syncs)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if q := srv.functions["f"].queues[priNormal].n; q != n+1 {
		t.Errorf("%d jobs queued, want %d", q, n+1)
	}
}

// serveLoopback starts a server with cfg on a loopback port and dials
// it; the server is closed when the test ends.
func serveLoopback(t *testing.T, cfg Config) (*Server, *wiretest.Conn) {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return srv, wiretest.Dial(t, l.Addr().String())
}

// startDurable starts a server with a durable queue in a temporary
// folder and dials it; the server is closed when the test ends.
func startDurable(t *testing.T, handlePrefix string) (*Server, *wiretest.Conn) {
	t.Helper()
	return serveLoopback(t, Config{JobHandlePrefix: handlePrefix, DataDir: t.TempDir()})
}

// TestStoreCompactionFailureNotFatal: a compaction that cannot create
// its segment (here a folder holds its name; on a full disk the copy
// fails the same way) is undone, and the batch goes to the segment in
// use: the store goes on and replays every job.
func TestStoreCompactionFailureNotFatal(t *testing.T) {
	defer func(m int64) { compactMin = m }(compactMin)
	compactMin = 1 << 40
	dir := t.TempDir()
	st, _, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 1000)
	var ticket uint64
	for id := uint64(1); id <= 100; id++ {
		ticket = st.put(storedJob{id: id, fn: "f", data: data})
	}
	if err := st.wait(ticket); err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id < 100; id++ {
		st.del(id)
	}
	if err := st.wait(st.put(storedJob{id: 101, fn: "f"})); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, segName(2)), 0o755); err != nil {
		t.Fatal(err)
	}
	compactMin = 1 << 10
	if err := st.wait(st.put(storedJob{id: 102, fn: "f"})); err != nil {
		t.Fatalf("a failed compaction failed the batch: %v", err)
	}
	if !st.noCompactUntil.After(time.Now()) {
		t.Error("no pause before the next compaction")
	}
	if err := st.close(); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, segName(2)))
	st, jobs, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	var ids []uint64
	for _, j := range jobs {
		ids = append(ids, j.id)
	}
	if fmt.Sprint(ids) != "[100 101 102]" {
		t.Fatalf("replayed %v, want [100 101 102]", ids)
	}
}

// TestDurableIDsReservedAhead: a server that issues the ids of its
// reservation reserves the next block in the log, so a restart issues
// ids after the ones it issued, not after the first block.
func TestDurableIDsReservedAhead(t *testing.T) {
	dir := t.TempDir()
	srv, c := serveLoopback(t, Config{JobHandlePrefix: "H:r", DataDir: dir})
	srv.mu.Lock()
	first := srv.idLimit
	srv.nextID = first - 1 // the ids of the first block are all but used
	srv.mu.Unlock()
	var last string
	for range 3 {
		// Foreground jobs: only the reservation keeps their ids.
		last = c.Submit(t, protocol.SubmitJob, "f", "", "x")
	}
	if want := fmt.Sprintf("H:r:%d", first+2); last != want {
		t.Fatalf("handle %s, want %s", last, want)
	}
	c.Close()
	srv.Close()

	srv, err := New(Config{JobHandlePrefix: "H:r", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.mu.Lock()
	next := srv.nextID + 1
	srv.mu.Unlock()
	if next <= first+2 {
		t.Fatalf("after a restart the next id is %d, not after %d, the last issued", next, first+2)
	}
}

// TestStoreCompactionKeepsRetries: compaction copies a job's put record
// and the retry count a later record gave it.
func TestStoreCompactionKeepsRetries(t *testing.T) {
	defer func(m int64) { compactMin = m }(compactMin)
	compactMin = 1 << 40
	dir := t.TempDir()
	st, _, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 1000)
	var ticket uint64
	for id := uint64(1); id <= 100; id++ {
		ticket = st.put(storedJob{id: id, fn: "f", data: data})
	}
	if err := st.wait(ticket); err != nil {
		t.Fatal(err)
	}
	st.setRetries(100, 3)
	for id := uint64(1); id < 100; id++ {
		st.del(id)
	}
	if err := st.wait(st.put(storedJob{id: 101, fn: "f"})); err != nil {
		t.Fatal(err)
	}
	compactMin = 1 << 10
	if err := st.wait(st.put(storedJob{id: 102, fn: "f"})); err != nil {
		t.Fatal(err)
	}
	if segs, _ := listSegments(dir); len(segs) != 1 || segs[0] != 2 {
		t.Fatalf("segments %v: no compaction happened", segs)
	}
	if err := st.close(); err != nil {
		t.Fatal(err)
	}
	st, jobs, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if len(jobs) != 3 || jobs[0].id != 100 || jobs[0].retries != 3 {
		var got []string
		for _, j := range jobs {
			got = append(got, fmt.Sprintf("%d (%d retries)", j.id, j.retries))
		}
		t.Fatalf("replayed %v, want job 100 first with 3 retries", got)
	}
}
