package server_test

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

// bulkConn pipelines many requests over one loopback connection and
// reads their replies: the set-up of the tests below sends hundreds of
// thousands of packets.
type bulkConn struct {
	tb testing.TB
	nc net.Conn
	w  *bufio.Writer
	r  *protocol.Reader
}

func dialBulk(tb testing.TB, addr string) *bulkConn {
	tb.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	return &bulkConn{tb: tb, nc: nc, w: bufio.NewWriterSize(nc, 64<<10), r: protocol.NewReader(nc, protocol.ReaderConfig{})}
}

func (b *bulkConn) queue(t protocol.Type, args ...string) {
	bs := make([][]byte, len(args))
	for i, a := range args {
		bs[i] = []byte(a)
	}
	if _, err := b.w.Write(protocol.New(protocol.Req, t, bs...).Append(nil)); err != nil {
		b.tb.Fatal(err)
	}
}

func (b *bulkConn) flush() {
	if err := b.w.Flush(); err != nil {
		b.tb.Fatal(err)
	}
}

// next reads one packet, which must be of type want, within d.
func (b *bulkConn) next(want protocol.Type, d time.Duration) protocol.Packet {
	b.tb.Helper()
	b.nc.SetReadDeadline(time.Now().Add(d))
	p, err := b.r.ReadPacket()
	if err != nil {
		b.tb.Fatalf("reading %v: %v", want, err)
	}
	if p.Type != want {
		b.tb.Fatalf("got %v %q, want %v", p.Type, p.Args, want)
	}
	return p
}

// sync round-trips an ECHO: every request before it has been handled.
func (b *bulkConn) sync(d time.Duration) {
	b.tb.Helper()
	b.queue(protocol.EchoReq, "sync")
	b.flush()
	for {
		b.nc.SetReadDeadline(time.Now().Add(d))
		p, err := b.r.ReadPacket()
		if err != nil {
			b.tb.Fatalf("waiting for ECHO_RES: %v", err)
		}
		if p.Type == protocol.EchoRes {
			return
		}
	}
}

// scaled returns n, or n/div under the race detector, which slows the
// server about tenfold.
func scaled(n, div int) int {
	if server.RaceEnabled {
		return n / div
	}
	return n
}

// raceBound returns d, or d times ten under the race detector.
func raceBound(d time.Duration) time.Duration {
	if server.RaceEnabled {
		return 10 * d
	}
	return d
}

// workerHolding starts a worker for function f that holds n running
// jobs, and returns it with the handle of the first job it took.
func workerHolding(tb testing.TB, addr string, n int) (*bulkConn, string) {
	tb.Helper()
	c := dialBulk(tb, addr)
	for i := range n {
		c.queue(protocol.SubmitJobBg, "f", "", fmt.Sprint(i))
	}
	c.flush()
	for range n {
		c.next(protocol.JobCreated, time.Minute)
	}
	w := dialBulk(tb, addr)
	w.queue(protocol.CanDo, "f")
	for range n {
		w.queue(protocol.GrabJob)
	}
	w.flush()
	first := string(w.next(protocol.JobAssign, time.Minute).Args[0])
	for range n - 1 {
		w.next(protocol.JobAssign, time.Minute)
	}
	return w, first
}

// maxStallUntilRequeued asks for handle's status over and over until
// the job is no longer running, and returns the longest round trip.
func maxStallUntilRequeued(tb testing.TB, probe *bulkConn, handle string) time.Duration {
	tb.Helper()
	var worst time.Duration
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		start := time.Now()
		probe.queue(protocol.GetStatus, handle)
		probe.flush()
		p := probe.next(protocol.StatusRes, time.Minute)
		worst = max(worst, time.Since(start))
		if string(p.Args[2]) == "0" {
			return worst
		}
	}
	tb.Fatalf("job %s still running 2 minutes after its worker left", handle)
	return 0
}

// A worker holding many jobs disconnects: requeueing them used to take
// time quadratic in their number, all under the server lock (6 s at
// 200k jobs, 71 ms at 20k). Other clients must not wait for it.
func TestWorkerLossWithManyJobsDoesNotStall(t *testing.T) {
	// Not parallel: it measures latency, and shares the GC with the
	// other tests of the process.
	n := scaled(100_000, 4)
	srv := servertest.Start(t, server.Config{})
	srv.AllowLeftoverJobs() // the lost worker's background jobs, requeued
	w, first := workerHolding(t, srv.Addr, n)
	probe := dialBulk(t, srv.Addr)
	probe.sync(time.Minute)
	w.nc.Close()
	worst := maxStallUntilRequeued(t, probe, first)
	t.Logf("%d jobs requeued; longest GET_STATUS round trip meanwhile %v", n, worst)
	if bound := raceBound(50 * time.Millisecond); worst > bound {
		t.Errorf("a client waited %v while a worker's %d jobs were requeued, want under %v", worst, n, bound)
	}
}

// CANT_DO and RESET_ABILITIES release a worker's jobs the same way.
func TestCantDoWithManyJobsDoesNotStall(t *testing.T) {
	// Not parallel: it measures latency, and shares the GC with the
	// other tests of the process.
	for _, tc := range []struct {
		name string
		req  func(*bulkConn)
	}{
		{"CANT_DO", func(w *bulkConn) { w.queue(protocol.CantDo, "f") }},
		{"RESET_ABILITIES", func(w *bulkConn) { w.queue(protocol.ResetAbilities) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := scaled(100_000, 4)
			srv := servertest.Start(t, server.Config{})
			srv.AllowLeftoverJobs() // the worker's background jobs, requeued
			w, first := workerHolding(t, srv.Addr, n)
			probe := dialBulk(t, srv.Addr)
			probe.sync(time.Minute)
			tc.req(w)
			w.flush()
			worst := maxStallUntilRequeued(t, probe, first)
			if bound := raceBound(50 * time.Millisecond); worst > bound {
				t.Errorf("a client waited %v while %s requeued %d jobs, want under %v", worst, tc.name, n, bound)
			}
			w.sync(time.Minute)
			w.queue(protocol.GrabJob)
			w.flush()
			w.next(protocol.NoJob, time.Minute) // no longer registered
		})
	}
}

// 200k CAN_DO on one connection took 8.3 s (a duplicate scan of the
// connection's registrations each), and its disconnect stalled every
// client 6.9 s.
func TestManyRegistrationsAndTheirDisconnect(t *testing.T) {
	// Not parallel: it measures latency, and shares the GC with the
	// other tests of the process.
	n := scaled(200_000, 4)
	srv := servertest.Start(t, server.Config{})
	srv.AllowLeftoverJobs() // the grabbed job, requeued when the worker leaves
	w := dialBulk(t, srv.Addr)
	start := time.Now()
	for i := range n {
		w.queue(protocol.CanDo, fmt.Sprint("f", i))
	}
	w.queue(protocol.CanDo, "f0") // a duplicate
	w.sync(time.Minute)
	took := time.Since(start)

	// Grabs are cheap for this worker. Its job is of the function it
	// registered first, which is released last when it leaves.
	c := dialBulk(t, srv.Addr)
	c.queue(protocol.SubmitJobBg, "f0", "", "x")
	c.flush()
	h := string(c.next(protocol.JobCreated, time.Minute).Args[0])
	grabStart := time.Now()
	w.queue(protocol.GrabJob)
	w.flush()
	w.next(protocol.JobAssign, time.Minute)
	for range 100 {
		w.queue(protocol.GrabJob)
	}
	w.flush()
	for range 100 {
		w.next(protocol.NoJob, time.Minute)
	}
	grabs := time.Since(grabStart)

	probe := dialBulk(t, srv.Addr)
	probe.sync(time.Minute)
	w.nc.Close()
	worst := maxStallUntilRequeued(t, probe, h)
	t.Logf("%d CAN_DO: %v; 101 grabs: %v; longest GET_STATUS during the disconnect: %v", n, took, grabs, worst)
	if bound := raceBound(time.Second); took > bound {
		t.Errorf("%d CAN_DO took %v, want under %v", n, took, bound)
	}
	if bound := raceBound(50 * time.Millisecond); grabs > bound {
		t.Errorf("101 grabs by a worker of %d functions took %v, want under %v", n, grabs, bound)
	}
	if bound := raceBound(50 * time.Millisecond); worst > bound {
		t.Errorf("a client waited %v while %d registrations were released, want under %v", worst, n, bound)
	}
}

// submitUniques queues one job with unique u<i> for each of n functions.
func submitUniques(tb testing.TB, addr string, n int) *bulkConn {
	c := dialBulk(tb, addr)
	for i := range n {
		c.queue(protocol.SubmitJobBg, fmt.Sprint("f", i), fmt.Sprint("u", i), "x")
	}
	c.flush()
	for range n {
		c.next(protocol.JobCreated, time.Minute)
	}
	return c
}

// GET_STATUS_UNIQUE looked at every function's unique index: 35.9 ms a
// request at 100k functions.
func TestGetStatusUniqueManyFunctions(t *testing.T) {
	// Not parallel: it measures latency, and shares the GC with the
	// other tests of the process.
	n := scaled(100_000, 4)
	srv := servertest.Start(t, server.Config{})
	srv.AllowLeftoverJobs() // the background jobs whose uniques are looked up
	c := submitUniques(t, srv.Addr, n)
	var rtts []time.Duration
	for i := range 100 {
		u := fmt.Sprint("u", i*(n/100))
		start := time.Now()
		c.queue(protocol.GetStatusUnique, u)
		c.flush()
		p := c.next(protocol.StatusResUnique, time.Minute)
		rtts = append(rtts, time.Since(start))
		if string(p.Args[0]) != u || string(p.Args[1]) != "1" {
			t.Fatalf("GET_STATUS_UNIQUE %s = %q, want known", u, p.Args)
		}
	}
	c.queue(protocol.GetStatusUnique, "nope")
	c.flush()
	if p := c.next(protocol.StatusResUnique, time.Minute); string(p.Args[1]) != "0" {
		t.Fatalf("unknown unique reported known: %q", p.Args)
	}
	slices.Sort(rtts)
	median := rtts[len(rtts)/2]
	t.Logf("GET_STATUS_UNIQUE at %d functions: median round trip %v", n, median)
	if bound := raceBound(time.Millisecond); median > bound {
		t.Errorf("GET_STATUS_UNIQUE at %d functions takes %v (median), want under %v", n, median, bound)
	}
}

// The same unique under several functions: GET_STATUS_UNIQUE finds a
// job while any of them has one.
func TestGetStatusUniqueSharedAcrossFunctions(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t, server.Config{})
	c := wiretest.Dial(t, srv.Addr)
	h1 := c.Submit(t, protocol.SubmitJobBg, "a", "u", "1")
	c.Submit(t, protocol.SubmitJobBg, "b", "u", "2")
	w := wiretest.Dial(t, srv.Addr)
	w.CanDo("a")
	w.Grab(t, h1, "a", "1")
	w.Req(protocol.WorkComplete, h1, "")
	w.Sync(t)
	c.Req(protocol.GetStatusUnique, "u")
	c.Expect(t, protocol.StatusResUnique, "u", "1", "0", "0", "0", "0") // b's job
	w.CanDo("b")
	p := w.GrabAny(t)
	w.Req(protocol.WorkComplete, string(p.Args[0]), "")
	w.Sync(t)
	c.Req(protocol.GetStatusUnique, "u")
	c.Expect(t, protocol.StatusResUnique, "u", "0", "0", "0", "0", "0")
}

// Two sleeping workers; the first woken never reads (connected but
// dead). The job must still reach the live one, promptly.
func TestDeadSleeperDoesNotStrandJob(t *testing.T) {
	t.Parallel()
	for _, wakeup := range []int{0, 1} {
		t.Run(fmt.Sprint("wakeup=", wakeup), func(t *testing.T) {
			t.Parallel()
			srv := servertest.Start(t, server.Config{WorkerWakeup: wakeup})
			dead := wiretest.Dial(t, srv.Addr)
			dead.CanDo("f")
			dead.Sleep(t) // first in the wake-up rotation
			live := wiretest.Dial(t, srv.Addr)
			live.CanDo("f")
			live.Sleep(t)
			c := wiretest.Dial(t, srv.Addr)
			start := time.Now()
			h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			live.Timeout = 5 * time.Second
			live.Expect(t, protocol.Noop)
			live.Grab(t, h, "f", "x")
			live.Req(protocol.WorkComplete, h, "done")
			c.Expect(t, protocol.WorkComplete, h, "done")
			t.Logf("job completed %v after submission", time.Since(start))
		})
	}
}

// Wake-ups escalate only while a job waits: a worker that takes its job
// leaves the other sleepers alone.
func TestWakeupEscalatesOnlyWhileJobWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := startPipeServer(t, server.Config{})
		defer ps.stop()
		var ws []*pipeConn
		for range 4 {
			w := ps.dial()
			w.send(protocol.CanDo, "f")
			w.send(protocol.PreSleep)
			synctest.Wait()
			ws = append(ws, w)
		}
		client := ps.dial()
		client.send(protocol.SubmitJobBg, "f", "", "x")
		synctest.Wait()
		ws[0].expect(protocol.Noop)
		ws[0].send(protocol.GrabJob)
		synctest.Wait()
		ws[0].expect(protocol.JobAssign)
		time.Sleep(time.Second)
		synctest.Wait()
		for i, w := range ws[1:] {
			if got := w.take(); len(got) != 0 {
				t.Errorf("worker %d got %d packets after the job was taken, want none", i+2, len(got))
			}
		}

		// A second job whose woken worker never comes: one more, then
		// two more, are woken at each recheck.
		client.send(protocol.SubmitJobBg, "f", "", "y")
		synctest.Wait()
		ws[1].expect(protocol.Noop)
		time.Sleep(25 * time.Millisecond)
		synctest.Wait()
		ws[2].expect(protocol.Noop)
		ws[3].expect()
		time.Sleep(25 * time.Millisecond)
		synctest.Wait()
		ws[3].expect(protocol.Noop)
	})
}

// --worker-wakeup N wakes N sleepers: the rotating cursor used to move
// inside the loop and skip every other worker.
func TestWorkerWakeupWakesN(t *testing.T) {
	for _, tc := range []struct{ wakeup, sleepers, want int }{
		{1000, 3, 3},
		{2, 2, 2},
		{2, 5, 2},
		{3, 5, 3},
		{1, 3, 1},
	} {
		t.Run(fmt.Sprintf("wakeup=%d/sleepers=%d", tc.wakeup, tc.sleepers), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ps := startPipeServer(t, server.Config{WorkerWakeup: tc.wakeup})
				defer ps.stop()
				var ws []*pipeConn
				for range tc.sleepers {
					w := ps.dial()
					w.send(protocol.CanDo, "f")
					w.send(protocol.PreSleep)
					ws = append(ws, w)
				}
				synctest.Wait()
				client := ps.dial()
				client.send(protocol.SubmitJobBg, "f", "", "x")
				synctest.Wait() // no time passes: no recheck
				woken := 0
				for _, w := range ws {
					for _, p := range w.take() {
						if p.Type == protocol.Noop {
							woken++
						}
					}
				}
				if woken != tc.want {
					t.Errorf("one job woke %d of %d sleepers with wake-up %d, want %d", woken, tc.sleepers, tc.wakeup, tc.want)
				}
			})
		})
	}
}

// A worker's result packet that cannot be read (WORK_STATUS without its
// denominator) closes the connection, as gearmand does, so the job goes
// back to the queue instead of staying with a worker that was refused.
func TestMalformedWorkResultRequeues(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t, server.Config{})
	c := wiretest.Dial(t, srv.Addr)
	h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
	w := wiretest.Dial(t, srv.Addr)
	w.CanDo("f")
	w.Grab(t, h, "f", "x")
	w.SendRaw(wiretest.Raw("\x00REQ", uint32(protocol.WorkStatus), int64(len(h)+2), []byte(h+"\x001")))
	w.ExpectErrorCode(t, protocol.CodeInvalidArgument)
	w.ExpectClosed(t)
	w2 := wiretest.Dial(t, srv.Addr)
	w2.CanDo("f")
	grabEventually(t, w2, h, "f", "x")
	w2.Req(protocol.WorkComplete, h, "ok")
	c.Expect(t, protocol.WorkComplete, h, "ok")
}

// CAN_DO_TIMEOUT below a second waits a second, gearmand's floor: a
// library that sends 3 meaning seconds keeps its job past 3 ms.
func TestCanDoTimeoutFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := startPipeServer(t, server.Config{JobHandlePrefix: "H:t"})
		defer ps.stop()
		client := ps.dial()
		w := ps.dial()
		w.send(protocol.CanDoTimeout, "f", "3")
		client.send(protocol.SubmitJob, "f", "", "a")
		synctest.Wait()
		h := string(client.expect(protocol.JobCreated)[0].Args[0])
		w.send(protocol.GrabJob)
		synctest.Wait()
		w.expect(protocol.JobAssign)
		time.Sleep(990 * time.Millisecond)
		synctest.Wait()
		w.send(protocol.WorkComplete, h, "in time")
		synctest.Wait()
		if p := client.expect(protocol.WorkComplete); string(p[0].Args[1]) != "in time" {
			t.Errorf("client got %q, want the result", p[0].Args[1])
		}

		// Past the floor the job is requeued.
		client.send(protocol.SubmitJob, "f", "", "b")
		synctest.Wait()
		h = string(client.expect(protocol.JobCreated)[0].Args[0])
		w.send(protocol.GrabJob)
		synctest.Wait()
		w.expect(protocol.JobAssign)
		time.Sleep(1010 * time.Millisecond)
		synctest.Wait()
		w.send(protocol.WorkComplete, h, "late")
		synctest.Wait()
		w.expect(protocol.Error)
	})
}

// Names that would add lines or columns to the admin `status` and
// `workers` output are refused; the connection goes on.
func TestAdminUnsafeNamesRefused(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t, server.Config{})
	for _, name := range []string{"a\nb", "a\rb", ".", "x\x7f", "\x01"} {
		c := wiretest.Dial(t, srv.Addr)
		c.Req(protocol.CanDo, name)
		c.ExpectErrorCode(t, protocol.CodeInvalidArgument)
		c.Req(protocol.CanDoTimeout, name, "5")
		c.ExpectErrorCode(t, protocol.CodeInvalidArgument)
		c.Req(protocol.SubmitJobBg, name, "", "x")
		c.ExpectErrorCode(t, protocol.CodeInvalidArgument)
		c.Req(protocol.SetClientID, name)
		c.ExpectErrorCode(t, protocol.CodeInvalidArgument)
		c.ExpectOpen(t)
	}
	// A tab is refused in a client id, which no client needs; in a
	// function name, where Perl's Gearman::Worker puts one between its
	// prefix and the name, it is kept and shown as \t, one column.
	c := wiretest.Dial(t, srv.Addr)
	c.Req(protocol.SetClientID, "a\tb")
	c.ExpectErrorCode(t, protocol.CodeInvalidArgument)
	c.Req(protocol.SetClientID, "worker 1.")
	c.CanDo("f.g", "f\x00", "..", "ns\tf")
	c.Sync(t)
	expectAdmin(t, c, "status", "f.g\t0\t0\t1\n..\t0\t0\t1\nf\x00\t0\t0\t1\nns\\tf\t0\t0\t1\n.\n")
	if got := admin(t, c, "workers"); !strings.Contains(got, "worker 1. : ns\\tf .. f\x00 f.g\n") {
		t.Errorf("workers = %q, want the names newest first, the tab as \\t", got)
	}
}

// BenchmarkWorkerLoss200k measures a worker holding 200k jobs leaving:
// how long until its oldest job is queued again, and the longest wait of
// another client's GET_STATUS meanwhile (the set-up is in ns/op too).
func BenchmarkWorkerLoss200k(b *testing.B) {
	const n = 200_000
	var worst, total time.Duration
	runs := 0
	for b.Loop() {
		srv := servertest.Start(b, server.Config{})
		srv.AllowLeftoverJobs() // the lost worker's background jobs, requeued
		w, first := workerHolding(b, srv.Addr, n)
		probe := dialBulk(b, srv.Addr)
		probe.sync(time.Minute)
		start := time.Now()
		w.nc.Close()
		worst = max(worst, maxStallUntilRequeued(b, probe, first))
		total += time.Since(start)
		runs++
		srv.Stop()
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-stall-ms")
	b.ReportMetric(float64(total.Microseconds())/1000/float64(runs), "requeue-ms")
}

// BenchmarkGetStatusUnique100kFunctions measures one GET_STATUS_UNIQUE
// round trip on a server with 100k functions, each with a job.
func BenchmarkGetStatusUnique100kFunctions(b *testing.B) {
	srv := servertest.Start(b, server.Config{})
	srv.AllowLeftoverJobs() // the background jobs whose uniques are looked up
	c := submitUniques(b, srv.Addr, 100_000)
	i := 0
	for b.Loop() {
		c.queue(protocol.GetStatusUnique, fmt.Sprint("u", i%100_000))
		c.flush()
		c.next(protocol.StatusResUnique, time.Minute)
		i += 7919
	}
}
