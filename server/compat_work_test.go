package server_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
)

// workScenarios cover WORK_* forwarding, status queries, timeouts and
// lost workers.
func workScenarios() []scenario {
	return []scenario{
		{name: "work/forward-to-all-clients", run: func(t *testing.T, p *peer) {
			cs := []*wiretest.Conn{p.dial(t), p.dial(t), p.dial(t)}
			h := cs[0].Submit(t, protocol.SubmitJob, "f", "u", "x")
			cs[1].Submit(t, protocol.SubmitJobHigh, "f", "u", "x")
			cs[2].Submit(t, protocol.SubmitJobLow, "f", "u", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.WorkData, h, "d\x00ata")
			w.Req(protocol.WorkWarning, h, "warn")
			w.Req(protocol.WorkStatus, h, "3", "10")
			w.Req(protocol.WorkComplete, h, "res\x00ult")
			for _, c := range cs {
				c.Expect(t, protocol.WorkData, h, "d\x00ata")
				c.Expect(t, protocol.WorkWarning, h, "warn")
				c.Expect(t, protocol.WorkStatus, h, "3", "10")
				c.Expect(t, protocol.WorkComplete, h, "res\x00ult")
			}
			w.ExpectNothing(t, wiretest.Quiet)
		}},
		{name: "work/fail-forwarded", run: func(t *testing.T, p *peer) {
			c1, c2 := p.dial(t), p.dial(t)
			h := c1.Submit(t, protocol.SubmitJob, "f", "u", "x")
			c2.Submit(t, protocol.SubmitJob, "f", "u", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.WorkFail, h)
			c1.Expect(t, protocol.WorkFail, h)
			c2.Expect(t, protocol.WorkFail, h)
			// A failed job is not retried.
			w.NoJob(t)
			c1.Req(protocol.GetStatus, h)
			c1.Expect(t, protocol.StatusRes, h, "0", "0", "0", "0")
		}},
		{name: "work/status-verbatim", run: func(t *testing.T, p *peer) {
			// WORK_STATUS is forwarded byte for byte; GET_STATUS reports
			// the numbers as parsed (non-numeric is 0).
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.WorkStatus, h, "007", "abc")
			c.Expect(t, protocol.WorkStatus, h, "007", "abc")
			c.Req(protocol.GetStatus, h)
			c.Expect(t, protocol.StatusRes, h, "1", "1", "7", "0")
		}},
		{name: "work/exceptions-option", run: func(t *testing.T, p *peer) {
			// A client with the exceptions option gets WORK_EXCEPTION;
			// one without gets WORK_FAIL, with a trailing NUL from
			// gearmand only (Perl's and Python's clients take the NUL
			// for part of an unknown handle).
			c1, c2 := p.dial(t), p.dial(t)
			c1.Req(protocol.OptionReq, "exceptions")
			c1.Expect(t, protocol.OptionRes, "exceptions")
			h := c1.Submit(t, protocol.SubmitJob, "f", "u", "x")
			c2.Submit(t, protocol.SubmitJob, "f", "u", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.WorkException, h, "boom")
			c1.Expect(t, protocol.WorkException, h, "boom")
			if p.gearmand {
				c2.Expect(t, protocol.WorkFail, h+"\x00")
			} else {
				c2.Expect(t, protocol.WorkFail, h)
			}
			// The WORK_FAIL Perl's and Node's workers send after their
			// WORK_EXCEPTION: gearmand refuses it, we take it silently.
			w.Req(protocol.WorkFail, h)
			if p.gearmand {
				w.ExpectErrorCode(t, protocol.CodeJobNotFound)
			}
			w.NoJob(t)
			// Only once, and an empty handle is no match.
			w.Req(protocol.WorkFail, h)
			w.ExpectErrorCode(t, protocol.CodeJobNotFound)
			w.Req(protocol.WorkFail, "")
			w.ExpectErrorCode(t, protocol.CodeJobNotFound)
		}},
		{name: "work/exceptions-server-flag", opts: options{flags: []string{"--exceptions"}, config: exceptionsOn}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.WorkException, h, "boom")
			c.Expect(t, protocol.WorkException, h, "boom")
		}},
		{name: "work/background-results-dropped", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJobBg, "f", "", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.WorkStatus, h, "1", "4")
			w.Sync(t)
			c.Req(protocol.GetStatus, h)
			c.Expect(t, protocol.StatusRes, h, "1", "1", "1", "4")
			w.Req(protocol.WorkData, h, "d")
			w.Req(protocol.WorkComplete, h, "r")
			w.Sync(t)
			c.ExpectNothing(t, wiretest.Quiet)
			c.Req(protocol.GetStatus, h)
			c.Expect(t, protocol.StatusRes, h, "0", "0", "0", "0")
		}},
		{name: "work/other-workers-job", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			w1, w2 := p.dial(t), p.dial(t)
			w1.CanDo("f")
			w2.CanDo("f")
			w1.Grab(t, h, "f", "x")
			w2.Req(protocol.WorkComplete, h, "stolen")
			w2.ExpectError(t, protocol.CodeJobNotFound, textResultNotFound)
			w2.Req(protocol.WorkData, h, "stolen")
			w2.ExpectError(t, protocol.CodeJobNotFound, textDataNotFound)
			w1.Req(protocol.WorkComplete, h, "mine")
			c.Expect(t, protocol.WorkComplete, h, "mine")
		}},
		{name: "work/after-complete", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.WorkComplete, h, "r")
			c.Expect(t, protocol.WorkComplete, h, "r")
			w.Req(protocol.WorkComplete, h, "again")
			w.ExpectError(t, protocol.CodeJobNotFound, textResultNotFound)
		}},
		{name: "status/GET_STATUS-lifecycle", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "u", "x")
			c.Req(protocol.GetStatus, h)
			c.Expect(t, protocol.StatusRes, h, "1", "0", "0", "0")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			c.Req(protocol.GetStatus, h)
			c.Expect(t, protocol.StatusRes, h, "1", "1", "0", "0")
			w.Req(protocol.WorkStatus, h, "3", "10")
			c.Expect(t, protocol.WorkStatus, h, "3", "10")
			c.Req(protocol.GetStatus, h)
			c.Expect(t, protocol.StatusRes, h, "1", "1", "3", "10")
			other := p.dial(t)
			other.Req(protocol.GetStatusUnique, "u")
			other.Expect(t, protocol.StatusResUnique, "u", "1", "1", "3", "10", "1")
			w.Req(protocol.WorkComplete, h, "")
			c.Expect(t, protocol.WorkComplete, h, "")
			c.Req(protocol.GetStatus, h)
			c.Expect(t, protocol.StatusRes, h, "0", "0", "0", "0")
			c.Req(protocol.GetStatusUnique, "u")
			c.Expect(t, protocol.StatusResUnique, "u", "0", "0", "0", "0", "0")
		}},
		{name: "status/requeue-resets-progress", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "u", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.WorkStatus, h, "5", "9")
			c.Expect(t, protocol.WorkStatus, h, "5", "9")
			w.Close()
			eventually(t, "job requeued", func() bool {
				c.Req(protocol.GetStatus, h)
				return string(c.Next(t).Arg(2)) == "0"
			})
			c.Req(protocol.GetStatus, h)
			c.Expect(t, protocol.StatusRes, h, "1", "0", "0", "0")
		}},
		{name: "status/long-handle", run: func(t *testing.T, p *peer) {
			// Difference c: gearmand ignores a handle of 64 bytes or more.
			c := p.dial(t)
			long := "H:test:" + strings.Repeat("9", 60)
			c.Req(protocol.GetStatus, long)
			if p.gearmand {
				// No reply; the connection may or may not survive.
				c.ExpectNothing(t, wiretest.Quiet)
				return
			}
			c.Expect(t, protocol.StatusRes, long, "0", "0", "0", "0")
			c.ExpectOpen(t)
		}},
		{name: "status/long-unique", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			long := strings.Repeat("u", 64)
			c.Req(protocol.GetStatusUnique, long)
			if p.gearmand {
				c.ExpectNothing(t, wiretest.Quiet)
				return
			}
			c.Expect(t, protocol.StatusResUnique, long, "0", "0", "0", "0", "0")
			c.ExpectOpen(t)
		}},
		{name: "lost-worker/requeue", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.WorkData, h, "partial")
			c.Expect(t, protocol.WorkData, h, "partial")
			w.Close()
			w2 := p.dial(t)
			w2.CanDo("f")
			// NOOP at once if the job is already back in the queue, or
			// when it gets there.
			w2.Req(protocol.PreSleep)
			w2.Expect(t, protocol.Noop)
			grabEventually(t, w2, h, "f", "x")
			w2.Req(protocol.WorkComplete, h, "r")
			c.Expect(t, protocol.WorkComplete, h, "r")
		}},
		{name: "lost-worker/retries-exhausted", opts: options{flags: []string{"--job-retries=1"}, config: jobRetries(1)}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Close()
			c.Expect(t, protocol.WorkFail, h)
			expectAdmin(t, c, "status", "f\t0\t0\t0\n.\n")
		}},
		{name: "lost-worker/retries-2", opts: options{flags: []string{"--job-retries=2"}, config: jobRetries(2)}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Close()
			w2 := p.dial(t)
			w2.CanDo("f")
			eventually(t, "job requeued", func() bool {
				return admin(t, c, "status") == "f\t1\t0\t1\n.\n"
			})
			expectAdmin(t, c, "show jobs", h+"\t1\t0\t0\n.\n")
			w2.Grab(t, h, "f", "x")
			w2.Close()
			c.Expect(t, protocol.WorkFail, h)
		}},
		{name: "lost-worker/retries-zero", opts: options{flags: []string{"--job-retries=0"}, config: jobRetries(0)}, run: func(t *testing.T, p *peer) {
			// Difference q: 1.1.20 reads 0 as unlimited; ours (as 2.0)
			// drops the job on the first loss.
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Close()
			if !p.gearmand {
				c.Expect(t, protocol.WorkFail, h)
				return
			}
			w2 := p.dial(t)
			w2.CanDo("f")
			eventually(t, "job requeued", func() bool {
				return admin(t, c, "status") == "f\t1\t0\t1\n.\n"
			})
			w2.Grab(t, h, "f", "x")
		}},
		{name: "timeout/requeue", run: func(t *testing.T, p *peer) {
			// CAN_DO_TIMEOUT expiry requeues the job (after at least 1 s in
			// gearmand, after the 100 ms asked for in ours); the first
			// worker's late result is refused.
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			w1 := p.dial(t)
			w1.Req(protocol.CanDoTimeout, "f", "100")
			w1.Grab(t, h, "f", "x")
			start := time.Now()
			w2 := p.dial(t)
			w2.CanDo("f")
			w2.Req(protocol.PreSleep)
			w2.Timeout = 5 * time.Second
			w2.Expect(t, protocol.Noop)
			if waited := time.Since(start); p.gearmand && waited < 900*time.Millisecond {
				t.Fatalf("gearmand requeued after %v, want its 1 s minimum", waited)
			}
			// gearmand may send the NOOP a moment before the job is back
			// in the queue: a first GRAB_JOB can still get NO_JOB.
			grabEventually(t, w2, h, "f", "x")
			w1.Req(protocol.WorkComplete, h, "late")
			w1.ExpectError(t, protocol.CodeJobNotFound, textResultNotFound)
			w2.Req(protocol.WorkComplete, h, "ok")
			c.Expect(t, protocol.WorkComplete, h, "ok")
		}},
		{name: "timeout/stale-timer", run: func(t *testing.T, p *peer) {
			// Difference j: gearmand's per-connection timer outlives the
			// job it was armed for and requeues a finished job.
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			w := p.dial(t)
			w.Req(protocol.CanDoTimeout, "f", "100")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.WorkComplete, h, "r")
			c.Expect(t, protocol.WorkComplete, h, "r")
			w.ExpectNothing(t, 1500*time.Millisecond) // past the timer
			got := admin(t, c, "status")
			if p.gearmand {
				if got != "f\t0\t4294967295\t1\n.\n" {
					t.Fatalf("gearmand status after stale timer = %q", got)
				}
				return
			}
			if got != "f\t0\t0\t1\n.\n" {
				t.Fatalf("status after the timeout passed = %q, want f 0 0 1", got)
			}
		}},
		{name: "timeout/unparsable-value", run: func(t *testing.T, p *peer) {
			// Difference d: gearmand reads "abc" as 0 (no timeout) and
			// registers the function; ours refuses it.
			c := p.dial(t)
			c.Req(protocol.CanDoTimeout, "f", "abc")
			if p.gearmand {
				c.Sync(t)
				expectAdmin(t, c, "status", "f\t0\t0\t1\n.\n")
				return
			}
			c.ExpectErrorCode(t, codeInvalidArgument)
			expectAdmin(t, c, "status", ".\n")
		}},
		{name: "timeout/bad-value", run: func(t *testing.T, p *peer) {
			// Difference d: a timeout longer than 20 characters.
			c := p.dial(t)
			c.Req(protocol.CanDoTimeout, "f", "123456789012345678901234")
			if p.gearmand {
				c.ExpectNothing(t, wiretest.Quiet)
				return
			}
			c.ExpectErrorCode(t, codeInvalidArgument)
			c.ExpectOpen(t)
		}},
		{name: "epoch/overflow", run: func(t *testing.T, p *peer) {
			// Difference d: an epoch that overflows int64.
			c := p.dial(t)
			c.Req(protocol.SubmitJobEpoch, "f", "", "99999999999999999999999", "x")
			if p.gearmand {
				c.ExpectNothing(t, wiretest.Quiet)
				return
			}
			c.ExpectErrorCode(t, codeInvalidArgument)
			c.ExpectOpen(t)
		}},
		{name: "sched/SUBMIT_JOB_SCHED", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			// Difference e: gearmand never implemented SUBMIT_JOB_SCHED.
			c := p.dial(t)
			// Two minutes ahead: not due during the test. (Running at the
			// minute is covered by the server's own synctest tests.)
			minute := strconv.Itoa(time.Now().Add(2 * time.Minute).Minute())
			c.Req(protocol.SubmitJobSched, "f", "", minute, "*", "*", "*", "*", "x")
			if p.gearmand {
				c.ExpectError(t, protocol.CodeInvalidCommand, textNotExpected)
				expectAdmin(t, c, "status", ".\n")
				return
			}
			h := c.Created(t)
			expectAdmin(t, c, "status", "f\t1\t0\t0\n.\n")
			c.Req(protocol.GetStatus, h)
			c.Expect(t, protocol.StatusRes, h, "1", "0", "0", "0")
			w := p.dial(t)
			w.CanDo("f")
			w.NoJob(t)
			c.Req(protocol.SubmitJobSched, "f", "", "60", "*", "*", "*", "*", "x")
			c.ExpectErrorCode(t, codeInvalidArgument)
		}},
		{name: "disconnect/queued-foreground-removed", run: func(t *testing.T, p *peer) {
			// Difference o: gearmand keeps counting an abandoned queued
			// job until a worker reaches it.
			c := p.dial(t)
			c.Submit(t, protocol.SubmitJob, "f", "u", "x")
			c.Close()
			a := p.dial(t)
			waitClients(t, a, "u", "0")
			if p.gearmand {
				expectAdmin(t, a, "status", "f\t1\t0\t0\n.\n")
				expectAdmin(t, a, "show jobs", "H:test:1\t0\t1\t0\n.\n")
				w := p.dial(t)
				w.CanDo("f")
				w.NoJob(t)
				expectAdmin(t, a, "status", "f\t0\t0\t1\n.\n")
				return
			}
			expectAdmin(t, a, "status", "f\t0\t0\t0\n.\n")
		}},
		{name: "disconnect/running-foreground-result-discarded", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "u", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			c.Close()
			a := p.dial(t)
			eventually(t, "client detached", func() bool { return uniqueClients(t, a, "u") == "0" })
			w.Req(protocol.WorkData, h, "d")
			w.Req(protocol.WorkComplete, h, "r")
			w.ExpectNothing(t, wiretest.Quiet)
			expectAdmin(t, a, "status", "f\t0\t0\t1\n.\n")
		}},
	}
}

// grabEventually sends GRAB_JOB until it gets JOB_ASSIGN HANDLE FUNC
// DATA (NO_JOB meanwhile is fine), for 3 s at most.
func grabEventually(t *testing.T, w *wiretest.Conn, handle, fn, data string) {
	t.Helper()
	want := wiretest.Format(wiretest.Packet(protocol.Res, protocol.JobAssign, handle, fn, data))
	eventually(t, "GRAB_JOB gets "+want, func() bool {
		w.Req(protocol.GrabJob)
		got := w.Next(t)
		if got.Type == protocol.NoJob {
			return false
		}
		if wiretest.Format(got) != want {
			t.Fatalf("got %s, want %s", wiretest.Format(got), want)
		}
		return true
	})
}
