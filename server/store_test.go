package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

func durableConfig(t *testing.T) server.Config {
	return server.Config{JobHandlePrefix: "H:d", DataDir: t.TempDir()}
}

// TestDurableReplayKeepsOrder: after a restart on the same DataDir the
// background jobs come back with their handles, priorities, FIFO order
// within a priority (empty and "-" uniques included, which collide in
// gearmand's queues), reducers and schedules; foreground jobs do not.
func TestDurableReplayKeepsOrder(t *testing.T) {
	s := servertest.Start(t, durableConfig(t))
	s.AllowLeftoverJobs()
	c := wiretest.Dial(t, s.Addr)
	type sub struct {
		typ          protocol.Type
		unique, data string
	}
	subs := []sub{
		{protocol.SubmitJobLowBg, "-", "l1"},
		{protocol.SubmitJobBg, "", "n1"},
		{protocol.SubmitJobHighBg, "", "h1"},
		{protocol.SubmitJobLowBg, "-", "l2"},
		{protocol.SubmitJobBg, "", "n2"},
		{protocol.SubmitJobHighBg, "u", "h2"},
		{protocol.SubmitJobBg, "", "n3"},
	}
	handles := map[string]string{}
	for _, sb := range subs {
		handles[sb.data] = c.Submit(t, sb.typ, "f", sb.unique, sb.data)
	}
	// Coalesced onto "u": not a new job.
	if h := c.Submit(t, protocol.SubmitJobBg, "f", "u", "other"); h != handles["h2"] {
		t.Fatalf("coalesced submission got %s, want %s", h, handles["h2"])
	}
	reduce := c.SubmitReduce(t, protocol.SubmitReduceJobBackground, "r", "", "red", "rdata")
	c.Req(protocol.SubmitJobSched, "s", "", "0", "0", "1", "1", "", "sdata")
	c.Created(t)
	// A foreground job is not kept.
	c.Req(protocol.SubmitJob, "f", "", "fg")
	c.Created(t)
	c.Close()

	s.Restart()
	w := wiretest.Dial(t, s.Addr)
	expectAdminText(t, w, "status", "f\t7\t0\t0\nr\t1\t0\t0\ns\t1\t0\t0\n.\n")
	w.CanDo("f")
	for _, data := range []string{"h1", "h2", "n1", "n2", "n3", "l1", "l2"} {
		w.Grab(t, handles[data], "f", data)
	}
	w.CanDo("r")
	w.Req(protocol.GrabJobAll)
	w.Expect(t, protocol.JobAssignAll, reduce, "r", "", "red", "rdata")
	w.NoJob(t)
	// Finished jobs stay finished across the next restart.
	for _, data := range []string{"h1", "h2", "n1"} {
		w.Req(protocol.WorkComplete, handles[data], "")
	}
	w.Sync(t)
	w.Close()
	s.Restart()
	w = wiretest.Dial(t, s.Addr)
	expectAdminText(t, w, "status", "f\t4\t0\t0\nr\t1\t0\t0\ns\t1\t0\t0\n.\n")
	w.CanDo("f")
	w.Grab(t, handles["n2"], "f", "n2")
	// New jobs continue the ids: a replayed handle is never reissued.
	c = wiretest.Dial(t, s.Addr)
	if h := c.Submit(t, protocol.SubmitJobBg, "g", "", "new"); handleID(t, h) <= handleID(t, handles["n3"]) {
		t.Fatalf("new job got handle %s, not after the replayed ones (last %s)", h, handles["n3"])
	}
}

// TestDurableReplayEpoch: an EPOCH job keeps its time across a restart.
func TestDurableReplayEpoch(t *testing.T) {
	s := servertest.Start(t, durableConfig(t))
	s.AllowLeftoverJobs()
	c := wiretest.Dial(t, s.Addr)
	at := time.Now().Add(2 * time.Second)
	h := c.SubmitEpoch(t, "e", "", epochIn(2*time.Second), "edata")
	c.Close()
	s.Restart()
	w := wiretest.Dial(t, s.Addr)
	w.CanDo("e")
	if time.Until(at) > 500*time.Millisecond {
		w.NoJob(t) // not yet
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.Req(protocol.GrabJob)
		p := w.Next(t)
		if p.Type == protocol.JobAssign {
			if string(p.Args[0]) != h || string(p.Args[2]) != "edata" {
				t.Fatalf("got %s, want the epoch job %s", wiretest.Format(p), h)
			}
			if time.Now().Before(at.Truncate(time.Second)) {
				t.Fatalf("epoch job ran at %v, before its time %v", time.Now(), at)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("epoch job not runnable 8s after its time")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDurableTornRecord: a record cut short by a crash is dropped and
// the records before it replay.
func TestDurableTornRecord(t *testing.T) {
	cfg := durableConfig(t)
	s := servertest.Start(t, cfg)
	s.AllowLeftoverJobs()
	c := wiretest.Dial(t, s.Addr)
	h1 := c.Submit(t, protocol.SubmitJobBg, "f", "", "one")
	h2 := c.Submit(t, protocol.SubmitJobBg, "f", "", "two")
	c.Submit(t, protocol.SubmitJobBg, "f", "", "three-is-torn")
	c.Close()
	s.Stop()

	segs, err := filepath.Glob(filepath.Join(cfg.DataDir, "*.log"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v, %v; want one", segs, err)
	}
	fi, err := os.Stat(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(segs[0], fi.Size()-5); err != nil {
		t.Fatal(err)
	}

	s = servertest.Start(t, cfg)
	s.AllowLeftoverJobs()
	w := wiretest.Dial(t, s.Addr)
	expectAdminText(t, w, "status", "f\t2\t0\t0\n.\n")
	w.CanDo("f")
	w.Grab(t, h1, "f", "one")
	w.Grab(t, h2, "f", "two")
	w.NoJob(t)
	// The log is whole again: later records replay after it.
	c = wiretest.Dial(t, s.Addr)
	h4 := c.Submit(t, protocol.SubmitJobBg, "f", "", "four")
	c.Close()
	w.Close()
	s.Stop()
	s = servertest.Start(t, cfg)
	s.AllowLeftoverJobs()
	w = wiretest.Dial(t, s.Addr)
	w.CanDo("f")
	w.Grab(t, h1, "f", "one")
	w.Grab(t, h2, "f", "two")
	w.Grab(t, h4, "f", "four")
	w.NoJob(t)
}

// TestDurableDamagedRecordRefused: damage before the last record is not
// a torn write, and the server refuses to start rather than lose jobs
// silently.
func TestDurableDamagedRecordRefused(t *testing.T) {
	cfg := durableConfig(t)
	s := servertest.Start(t, cfg)
	s.AllowLeftoverJobs()
	c := wiretest.Dial(t, s.Addr)
	c.Submit(t, protocol.SubmitJobBg, "f", "", "one")
	c.Close()
	s.Stop()
	segs, _ := filepath.Glob(filepath.Join(cfg.DataDir, "*.log"))
	if len(segs) != 1 {
		t.Fatalf("segments %v; want one", segs)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff // checksum fails
	// A later segment makes the damaged one not the last.
	if err := os.WriteFile(segs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "9999999999999999.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := server.New(cfg); err == nil {
		t.Fatal("New opened a data directory with a damaged record in the middle")
	}
}

func handleID(t *testing.T, h string) int {
	t.Helper()
	n, err := strconv.Atoi(h[strings.LastIndexByte(h, ':')+1:])
	if err != nil {
		t.Fatalf("handle %q: %v", h, err)
	}
	return n
}

func expectAdminText(t *testing.T, c *wiretest.Conn, line, want string) {
	t.Helper()
	if got := c.Admin(t, line); got != want {
		t.Fatalf("%q: got %q, want %q", line, got, want)
	}
}

// TestDurableDirLocked: a second server cannot open a data directory in
// use (it would rewrite the first one's log), and can once it stopped.
func TestDurableDirLocked(t *testing.T) {
	cfg := durableConfig(t)
	s := servertest.Start(t, cfg)
	if _, err := server.New(cfg); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second New on %s: %v, want an in-use error", cfg.DataDir, err)
	}
	s.Stop()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatalf("New after the first server stopped: %v", err)
	}
	srv.Close()
}

// BenchmarkBackgroundSubmit measures background submissions
// acknowledged per second into the in-memory queue and into the durable
// one (DataDir, synced before each ack; set GEARFLOW_BENCH_DIR to put it
// on a given disk): 16 clients each waiting for its JOB_CREATED before
// the next (as libgearman clients do), and one client pipelining 16. It
// reports submits/s.
func BenchmarkBackgroundSubmit(b *testing.B) {
	for _, shape := range []struct{ clients, depth int }{{16, 1}, {1, 16}} {
		for _, durable := range []bool{false, true} {
			name := fmt.Sprintf("clients=%d/pipelined=%d/durable=%t", shape.clients, shape.depth, durable)
			b.Run(name, func(b *testing.B) {
				cfg := server.Config{JobHandlePrefix: "H:b"}
				if durable {
					dir := os.Getenv("GEARFLOW_BENCH_DIR")
					if dir == "" {
						dir = b.TempDir()
					} else {
						var err error
						if dir, err = os.MkdirTemp(dir, "bench"); err != nil {
							b.Fatal(err)
						}
						defer os.RemoveAll(dir)
					}
					cfg.DataDir = dir
				}
				benchBackgroundSubmit(b, cfg, shape.clients, shape.depth)
			})
		}
	}
}

func benchBackgroundSubmit(b *testing.B, cfg server.Config, clients, depth int) {
	srv := servertest.Start(b, cfg)
	srv.AllowLeftoverJobs()
	var left atomic.Int64
	left.Store(int64(b.N))
	payload := bytes.Repeat([]byte("p"), 100)
	submit := protocol.New(protocol.Req, protocol.SubmitJobBg, []byte("bench"), nil, payload).Append(nil)
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("tcp", srv.Addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer nc.Close()
			r := protocol.NewReader(nc, protocol.ReaderConfig{})
			w := bufio.NewWriter(nc)
			inflight := 0
			for {
				for inflight < depth && left.Add(-1) >= 0 {
					w.Write(submit)
					inflight++
				}
				if inflight == 0 {
					return
				}
				if err := w.Flush(); err != nil {
					b.Error(err)
					return
				}
				if p, err := r.ReadPacket(); err != nil || p.Type != protocol.JobCreated {
					b.Errorf("got %v, %v; want JOB_CREATED", p.Type, err)
					return
				}
				inflight--
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "submits/s")
}

// TestDurableEndedJobsStayEnded: a job that completed, failed, raised an
// exception, was cancelled or was dropped past the retry limit is
// deleted from the durable queue; a background request that joins a
// foreground job makes that job durable.
func TestDurableEndedJobsStayEnded(t *testing.T) {
	cfg := durableConfig(t)
	cfg.JobRetries = 1
	s := servertest.Start(t, cfg)
	s.AllowLeftoverJobs()
	c := wiretest.Dial(t, s.Addr)
	h := map[string]string{}
	for _, d := range []string{"complete", "fail", "exception", "cancel", "drop", "keep"} {
		h[d] = c.Submit(t, protocol.SubmitJobBg, "f", "", d)
	}
	fg := wiretest.Dial(t, s.Addr)
	joined := fg.Submit(t, protocol.SubmitJob, "g", "u1", "joined")
	if got := c.Submit(t, protocol.SubmitJobBg, "g", "u1", "joined"); got != joined {
		t.Fatalf("background request got %s, want the foreground job %s", got, joined)
	}
	fg.Close()
	expectAdminText(t, c, "cancel job "+h["cancel"], "OK\r\n")

	w := wiretest.Dial(t, s.Addr)
	w.CanDo("f")
	w.Grab(t, h["complete"], "f", "complete")
	w.Req(protocol.WorkComplete, h["complete"], "")
	w.Grab(t, h["fail"], "f", "fail")
	w.Req(protocol.WorkFail, h["fail"])
	w.Grab(t, h["exception"], "f", "exception")
	w.Req(protocol.WorkException, h["exception"], "x")
	w.Grab(t, h["drop"], "f", "drop")
	w.Close() // the drop job is lost with its worker: past JobRetries 1
	c.Close()

	s.Restart()
	w = wiretest.Dial(t, s.Addr)
	expectAdminText(t, w, "status", "f\t1\t0\t0\ng\t1\t0\t0\n.\n")
	w.CanDo("f", "g")
	w.Grab(t, h["keep"], "f", "keep")
	w.Grab(t, joined, "g", "joined")
	w.NoJob(t)
}

// TestDurableForegroundDiesWithClient: with a data directory too, a
// foreground job nobody waits for any more is dropped, as in gearmand,
// and is not brought back by a restart.
func TestDurableForegroundDiesWithClient(t *testing.T) {
	s := servertest.Start(t, durableConfig(t))
	c := wiretest.Dial(t, s.Addr)
	c.Submit(t, protocol.SubmitJob, "f", "", "fg")
	a := wiretest.Dial(t, s.Addr)
	expectAdminText(t, a, "status", "f\t1\t0\t0\n.\n")
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for a.Admin(t, "status") != "f\t0\t0\t0\n.\n" {
		if time.Now().After(deadline) {
			t.Fatal("foreground job still queued 5s after its client left")
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.Close()
	s.Restart()
	w := wiretest.Dial(t, s.Addr)
	w.CanDo("f")
	w.NoJob(t)
}

// TestDurableHandlesNotReissued: a restart on the same DataDir never
// issues a handle again, though the jobs that had it are gone (finished
// background jobs, foreground ones) and the queue is empty: a client
// may still hold the handle and ask GET_STATUS about it.
func TestDurableHandlesNotReissued(t *testing.T) {
	s := servertest.Start(t, durableConfig(t))
	seen := map[string]int{}
	for round := range 3 {
		c := wiretest.Dial(t, s.Addr)
		var bg []string
		for i := range 3 {
			bg = append(bg, c.Submit(t, protocol.SubmitJobBg, "f", "", fmt.Sprint(round, i)))
		}
		fg := c.Submit(t, protocol.SubmitJob, "f", "", "fg")
		w := wiretest.Dial(t, s.Addr)
		w.CanDo("f")
		for i, h := range bg {
			w.Grab(t, h, "f", fmt.Sprint(round, i))
			w.Req(protocol.WorkComplete, h, "")
		}
		w.Grab(t, fg, "f", "fg")
		w.Req(protocol.WorkComplete, fg, "")
		c.Expect(t, protocol.WorkComplete, fg, "")
		w.Close()
		c.Close()
		for _, h := range append(bg, fg) {
			if r, ok := seen[h]; ok {
				t.Fatalf("round %d (after %d restarts) issued handle %s again, first issued in round %d", round, round, h, r)
			}
			seen[h] = round
		}
		s.Restart()
	}
}
