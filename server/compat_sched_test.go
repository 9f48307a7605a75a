package server_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
)

// epochIn returns the SUBMIT_JOB_EPOCH time d from now.
func epochIn(d time.Duration) string {
	return strconv.FormatInt(time.Now().Add(d).Unix(), 10)
}

// schedulingScenarios cover which job a worker gets and when it is woken.
func schedulingScenarios() []scenario {
	return []scenario{
		{name: "priority/high-normal-low", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			low := c.Submit(t, protocol.SubmitJobLowBg, "f", "", "low")
			normal := c.Submit(t, protocol.SubmitJobBg, "f", "", "normal")
			high := c.Submit(t, protocol.SubmitJobHighBg, "f", "", "high")
			expectAdmin(t, c, "prioritystatus", "f\t1\t1\t1\t0\n.\n")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, high, "f", "high")
			w.Grab(t, normal, "f", "normal")
			w.Grab(t, low, "f", "low")
			w.NoJob(t)
		}},
		{name: "priority/foreground-levels", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			low := c.Submit(t, protocol.SubmitJobLow, "f", "", "low")
			normal := c.Submit(t, protocol.SubmitJob, "f", "", "normal")
			high := c.Submit(t, protocol.SubmitJobHigh, "f", "", "high")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, high, "f", "high")
			w.Grab(t, normal, "f", "normal")
			w.Grab(t, low, "f", "low")
		}},
		{name: "priority/fifo-within-level", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			var hs []string
			for i := range 5 {
				hs = append(hs, c.Submit(t, protocol.SubmitJobBg, "f", "", strconv.Itoa(i)))
			}
			w := p.dial(t)
			w.CanDo("f")
			for i, h := range hs {
				w.Grab(t, h, "f", strconv.Itoa(i))
			}
		}},
		{name: "priority/requeued-goes-to-tail", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h1 := c.Submit(t, protocol.SubmitJobBg, "f", "", "1")
			h2 := c.Submit(t, protocol.SubmitJobBg, "f", "", "2")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h1, "f", "1")
			w.Close()
			w2 := p.dial(t)
			w2.CanDo("f")
			w2.Grab(t, h2, "f", "2")
			eventually(t, "job 1 requeued", func() bool {
				return admin(t, c, "status") == "f\t2\t1\t1\n.\n"
			})
			w2.Grab(t, h1, "f", "1")
		}},
		{name: "priority/across-functions", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			// Difference h: a HIGH job of one function before a LOW job of
			// another. gearmand 1.1.20 walks the worker's functions newest
			// registration first and takes the first with any job.
			c := p.dial(t)
			low := c.Submit(t, protocol.SubmitJobLowBg, "a", "", "low")
			high := c.Submit(t, protocol.SubmitJobHighBg, "b", "", "high")
			w := p.dial(t)
			w.CanDo("b", "a") // gearmand looks at a first
			if p.gearmand {
				w.Grab(t, low, "a", "low")
				w.Grab(t, high, "b", "high")
				return
			}
			w.Grab(t, high, "b", "high")
			w.Grab(t, low, "a", "low")
		}},
		{name: "priority/same-level-across-functions", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			// Difference h: within one priority, ours hands out the oldest
			// job of any of the worker's functions; gearmand 1.1.20 takes
			// the first function (newest registration first) that has one.
			testSameLevelAcrossFunctions(t, p, []string{"b1", "b2", "a1", "a2", "a3"})
		}},
		{name: "priority/same-level-across-functions-round-robin", opts: options{leavesJobs: true, flags: []string{"--round-robin"}}, run: func(t *testing.T, p *peer) {
			// With -R gearmand rotates the worker's functions after each
			// job (always on in 2.0); ours still takes the oldest job.
			testSameLevelAcrossFunctions(t, p, []string{"b1", "a1", "b2", "a2", "a3"})
		}},
		{name: "grab/GRAB_JOB_UNIQ", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "the-unique", "data")
			w := p.dial(t)
			w.CanDo("f")
			w.Req(protocol.GrabJobUniq)
			w.Expect(t, protocol.JobAssignUniq, h, "f", "the-unique", "data")
		}},
		{name: "grab/GRAB_JOB_ALL-plain", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "u", "data")
			w := p.dial(t)
			w.CanDo("f")
			w.Req(protocol.GrabJobAll)
			w.Expect(t, protocol.JobAssignUniq, h, "f", "u", "data")
		}},
		{name: "grab/GRAB_JOB_ALL-reducer", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.SubmitReduce(t, protocol.SubmitReduceJob, "map", "u", "reduce", "data")
			w := p.dial(t)
			w.CanDo("map")
			w.Req(protocol.GrabJobAll)
			w.Expect(t, protocol.JobAssignAll, h, "map", "u", "reduce", "data")
			w.Req(protocol.WorkComplete, h, "out")
			c.Expect(t, protocol.WorkComplete, h, "out")
		}},
		{name: "grab/GRAB_JOB_ALL-reducer-background", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.SubmitReduce(t, protocol.SubmitReduceJobBackground, "map", "u", "reduce", "data")
			w := p.dial(t)
			w.CanDo("map")
			w.Req(protocol.GrabJobAll)
			w.Expect(t, protocol.JobAssignAll, h, "map", "u", "reduce", "data")
		}},
		{name: "grab/reducer-hidden-from-GRAB_JOB", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h1 := c.SubmitReduce(t, protocol.SubmitReduceJob, "map", "u1", "reduce", "d1")
			h2 := c.SubmitReduce(t, protocol.SubmitReduceJob, "map", "u2", "reduce", "d2")
			w := p.dial(t)
			w.CanDo("map")
			w.Grab(t, h1, "map", "d1")
			w.Req(protocol.GrabJobUniq)
			w.Expect(t, protocol.JobAssignUniq, h2, "map", "u2", "d2")
		}},
		{name: "grab/reduce-aggregator-ignored", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.Req(protocol.SubmitReduceJob, "map", "u", "reduce", "aggregator", "data")
			h := c.Created(t)
			w := p.dial(t)
			w.CanDo("map")
			w.Req(protocol.GrabJobAll)
			w.Expect(t, protocol.JobAssignAll, h, "map", "u", "reduce", "data")
		}},
		{name: "sleep/immediate-noop-when-work-waits", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJobBg, "f", "", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Req(protocol.PreSleep)
			w.Expect(t, protocol.Noop)
			w.Grab(t, h, "f", "x")
		}},
		{name: "sleep/immediate-noop-keeps-sleep-state", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			// Asleep, not yet woken; then PRE_SLEEP again while work
			// waits: the immediate NOOP does not count as the wake-up,
			// so the next job NOOPs the worker again.
			w := p.dial(t)
			w.Sleep(t)
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJobBg, "f", "", "x")
			w.CanDo("f")
			w.Req(protocol.PreSleep)
			w.Expect(t, protocol.Noop)
			c.Submit(t, protocol.SubmitJobBg, "f", "", "y")
			w.Expect(t, protocol.Noop)
			w.Grab(t, h, "f", "x")
		}},
		{name: "sleep/cant-do-requeue-wakes-self", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			// CANT_DO gives the running job back while the worker is
			// still registered: the requeue's wake-up reaches the worker
			// itself when it sleeps.
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJobBg, "f", "", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Sleep(t)
			w.Req(protocol.CantDo, "f")
			w.Expect(t, protocol.Noop)
			w.NoJob(t)
		}},
		{name: "sleep/noop-on-new-job", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			w := p.dial(t)
			w.CanDo("f")
			w.Sleep(t)
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJobBg, "f", "", "x")
			w.Expect(t, protocol.Noop)
			// One NOOP until the worker grabs again.
			c.Submit(t, protocol.SubmitJobBg, "f", "", "y")
			w.ExpectNothing(t, wiretest.Quiet)
			w.Grab(t, h, "f", "x")
		}},
		{name: "sleep/noop-before-job-created", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			// A sleeping connection that submits a job for its own
			// function gets the NOOP before the JOB_CREATED.
			c := p.dial(t)
			c.CanDo("f")
			c.Sleep(t)
			c.Req(protocol.SubmitJobBg, "f", "", "x")
			c.Expect(t, protocol.Noop)
			h := c.Created(t)
			c.Grab(t, h, "f", "x")
		}},
		{name: "sleep/no-noop-for-other-function", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			w := p.dial(t)
			w.CanDo("f")
			w.Sleep(t)
			c := p.dial(t)
			c.Submit(t, protocol.SubmitJobBg, "g", "", "x")
			w.ExpectNothing(t, wiretest.Quiet)
		}},
		{name: "sleep/no-noop-without-pre-sleep", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			w := p.dial(t)
			w.CanDo("f")
			w.NoJob(t)
			c := p.dial(t)
			c.Submit(t, protocol.SubmitJobBg, "f", "", "x")
			w.ExpectNothing(t, wiretest.Quiet)
		}},
		{name: "sleep/noop-on-requeue", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			w1 := p.dial(t)
			w1.CanDo("f")
			w1.Grab(t, h, "f", "x")
			w2 := p.dial(t)
			w2.CanDo("f")
			w2.Sleep(t)
			w1.Close()
			w2.Expect(t, protocol.Noop)
			grabEventually(t, w2, h, "f", "x")
			w2.Req(protocol.WorkComplete, h, "done")
			c.Expect(t, protocol.WorkComplete, h, "done")
		}},
		{name: "sleep/wake-one-or-all", opts: options{leavesJobs: true, config: workerWakeupZero}, run: func(t *testing.T, p *peer) {
			// Difference p: gearmand (--worker-wakeup=0, its default) wakes
			// every sleeping worker for one job at once; ours wakes one
			// per job (TestWakeupsDoNotStampede), and more only while
			// the job waits untaken, as here where no worker grabs.
			ws := []*wiretest.Conn{p.dial(t), p.dial(t), p.dial(t)}
			for _, w := range ws {
				w.CanDo("f")
				w.Sleep(t)
			}
			c := p.dial(t)
			c.Submit(t, protocol.SubmitJobBg, "f", "", "1")
			if p.gearmand {
				if woken := countNoops(t, ws); woken != 3 {
					t.Fatalf("gearmand woke %d of 3 sleeping workers, want 3", woken)
				}
				return
			}
			expectAllWoken(t, ws)
			// Every worker is woken and has not grabbed: nothing more.
			c.Submit(t, protocol.SubmitJobBg, "f", "", "2")
			if n := countNoops(t, ws); n != 0 {
				t.Fatalf("second job woke %d workers already woken, want 0", n)
			}
		}},
		{name: "sleep/worker-wakeup-1", opts: options{leavesJobs: true, flags: []string{"--worker-wakeup=1"}, config: workerWakeupOne}, run: func(t *testing.T, p *peer) {
			// Difference p: gearmand wakes one worker per job and no
			// other, even if that one never comes for it; ours wakes one
			// at once (TestWorkerWakeupWakesN) and more while the job
			// waits untaken, as here where no worker grabs.
			ws := []*wiretest.Conn{p.dial(t), p.dial(t), p.dial(t)}
			for _, w := range ws {
				w.CanDo("f")
				w.Sleep(t)
			}
			c := p.dial(t)
			c.Submit(t, protocol.SubmitJobBg, "f", "", "1")
			if !p.gearmand {
				expectAllWoken(t, ws)
				return
			}
			if n := countNoops(t, ws); n != 1 {
				t.Fatalf("woke %d of 3 sleeping workers with wake-up 1, want 1", n)
			}
		}},
		{name: "epoch/past", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.SubmitEpoch(t, "f", "u", "1", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Req(protocol.GrabJobUniq)
			w.Expect(t, protocol.JobAssignUniq, h, "f", "u", "x")
		}},
		{name: "epoch/unparsable-is-now", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.SubmitEpoch(t, "f", "", "soon", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
		}},
		{name: "epoch/future-waits", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.SubmitEpoch(t, "f", "", epochIn(time.Hour), "later")
			expectAdmin(t, c, "status", "f\t1\t0\t0\n.\n")
			c.Req(protocol.GetStatus, h)
			c.Expect(t, protocol.StatusRes, h, "1", "0", "0", "0")
			w := p.dial(t)
			w.CanDo("f")
			w.NoJob(t)
		}},
		{name: "epoch/future-does-not-block-normal", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.SubmitEpoch(t, "f", "", epochIn(time.Hour), "later")
			h := c.Submit(t, protocol.SubmitJobBg, "f", "", "now")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "now")
		}},
		{name: "epoch/future-and-low", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			// Difference i: in 1.1.20 a future epoch job (NORMAL) hides the
			// LOW jobs of its function.
			c := p.dial(t)
			c.SubmitEpoch(t, "f", "", epochIn(time.Hour), "later")
			h := c.Submit(t, protocol.SubmitJobLowBg, "f", "", "low")
			w := p.dial(t)
			w.CanDo("f")
			if p.gearmand {
				w.NoJob(t)
				return
			}
			w.Grab(t, h, "f", "low")
		}},
		{name: "epoch/wakes-sleeping-worker-when-due", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			// Difference i: ours NOOPs a sleeping worker when an epoch job
			// becomes due; gearmand 1.1.20 has no timer.
			w := p.dial(t)
			w.CanDo("f")
			w.Sleep(t)
			c := p.dial(t)
			due := time.Now().Add(2 * time.Second).Truncate(time.Second)
			h := c.SubmitEpoch(t, "f", "", strconv.FormatInt(due.Unix(), 10), "x")
			drainNoopNotDue(t, w)
			if p.gearmand {
				w.ExpectNothing(t, time.Until(due)+500*time.Millisecond)
			} else {
				w.Timeout = time.Until(due) + 3*time.Second
				w.Expect(t, protocol.Noop)
				if early := time.Until(due); early > 0 {
					t.Fatalf("NOOP %v before the job was due", early)
				}
			}
			w.Grab(t, h, "f", "x")
		}},
	}
}

// countNoops counts the workers that get a NOOP: it polls them in
// rounds until a first NOOP arrives (3 s at most), then gives every
// worker one more quiet period, so a slow machine does not undercount.
func countNoops(t *testing.T, ws []*wiretest.Conn) int {
	t.Helper()
	n := 0
	deadline := time.Now().Add(3 * time.Second)
	for n == 0 && time.Now().Before(deadline) {
		for _, w := range ws {
			if gotNoop(t, w) {
				n++
			}
		}
	}
	for _, w := range ws {
		if gotNoop(t, w) {
			n++
		}
	}
	return n
}

// expectAllWoken waits, for a bounded time, until every worker of ws
// has received one NOOP.
func expectAllWoken(t *testing.T, ws []*wiretest.Conn) {
	t.Helper()
	for i, w := range ws {
		saved := w.Timeout
		w.Timeout = 5 * time.Second
		p, ok := w.TryNext(t)
		w.Timeout = saved
		if !ok {
			t.Fatalf("worker %d of %d not woken within 5s while the job waits", i+1, len(ws))
		}
		if p.Type != protocol.Noop {
			t.Fatalf("worker %d got %s, want NOOP", i+1, wiretest.Format(p))
		}
	}
}

// gotNoop reports whether w receives a NOOP within a quiet period, and
// fails t if it receives anything else.
func gotNoop(t *testing.T, w *wiretest.Conn) bool {
	t.Helper()
	saved := w.Timeout
	w.Timeout = wiretest.Quiet
	defer func() { w.Timeout = saved }()
	p, ok := w.TryNext(t)
	if !ok {
		return false
	}
	if p.Type != protocol.Noop {
		t.Fatalf("got %s, want NOOP or nothing", wiretest.Format(p))
	}
	return true
}

// drainNoopNotDue handles a NOOP sent when a not-yet-due job is queued:
// the worker grabs, gets NO_JOB, and sleeps again.
func drainNoopNotDue(t *testing.T, w *wiretest.Conn) {
	t.Helper()
	if gotNoop(t, w) {
		w.NoJob(t)
		w.Sleep(t)
	}
}

// testSameLevelAcrossFunctions queues NORMAL jobs a1 a2 b1 b2 a3 for a
// worker of a and b, and checks the order it gets them in: gearmandOrder
// for gearmand, submission order for ours.
func testSameLevelAcrossFunctions(t *testing.T, p *peer, gearmandOrder []string) {
	t.Helper()
	c := p.dial(t)
	handles := map[string]string{}
	for _, data := range []string{"a1", "a2", "b1", "b2", "a3"} {
		handles[data] = c.Submit(t, protocol.SubmitJobBg, data[:1], "", data)
	}
	w := p.dial(t)
	w.CanDo("a", "b")
	order := []string{"a1", "a2", "b1", "b2", "a3"}
	if p.gearmand {
		order = gearmandOrder
	}
	for _, data := range order {
		w.Grab(t, handles[data], data[:1], data)
	}
}
