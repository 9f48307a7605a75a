package server_test

import (
	"testing"

	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
)

// coalesceScenarios cover every row of the coalescing matrix
// (PROTOCOL.md §3.5).
func coalesceScenarios() []scenario {
	return []scenario{
		{name: "coalesce/FG+FG", run: func(t *testing.T, p *peer) {
			c1, c2 := p.dial(t), p.dial(t)
			h := c1.Submit(t, protocol.SubmitJob, "f", "u", "first")
			if h2 := c2.Submit(t, protocol.SubmitJob, "f", "u", "second"); h2 != h {
				t.Fatalf("second handle %q, want %q", h2, h)
			}
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "first")
			w.NoJob(t) // the worker runs the job once
			w.Req(protocol.WorkData, h, "d")
			w.Req(protocol.WorkComplete, h, "r")
			for _, c := range []*wiretest.Conn{c1, c2} {
				c.Expect(t, protocol.WorkData, h, "d")
				c.Expect(t, protocol.WorkComplete, h, "r")
			}
			expectAdmin(t, c1, "status", "f\t0\t0\t1\n.\n")
		}},
		{name: "coalesce/FG+FG-running", run: func(t *testing.T, p *peer) {
			// A submission joins a running job; earlier WORK_DATA is not replayed.
			c1 := p.dial(t)
			h := c1.Submit(t, protocol.SubmitJob, "f", "u", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.WorkData, h, "early")
			c1.Expect(t, protocol.WorkData, h, "early")
			c2 := p.dial(t)
			if h2 := c2.Submit(t, protocol.SubmitJob, "f", "u", "x"); h2 != h {
				t.Fatalf("handle %q, want %q", h2, h)
			}
			c2.Req(protocol.GetStatusUnique, "u")
			c2.Expect(t, protocol.StatusResUnique, "u", "1", "1", "0", "0", "2")
			w.Req(protocol.WorkComplete, h, "r")
			c1.Expect(t, protocol.WorkComplete, h, "r")
			c2.Expect(t, protocol.WorkComplete, h, "r")
		}},
		{name: "coalesce/FG+BG", run: func(t *testing.T, p *peer) {
			c1, c2 := p.dial(t), p.dial(t)
			h := c1.Submit(t, protocol.SubmitJob, "f", "u", "x")
			if h2 := c2.Submit(t, protocol.SubmitJobBg, "f", "u", "y"); h2 != h {
				t.Fatalf("background handle %q, want %q", h2, h)
			}
			expectAdmin(t, c2, "status", "f\t1\t0\t0\n.\n")
			c2.Req(protocol.GetStatusUnique, "u")
			c2.Expect(t, protocol.StatusResUnique, "u", "1", "0", "0", "0", "1")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.WorkComplete, h, "r")
			c1.Expect(t, protocol.WorkComplete, h, "r")
			c2.ExpectNothing(t, wiretest.Quiet)
		}},
		{name: "coalesce/same-connection-twice", run: func(t *testing.T, p *peer) {
			// One connection that submits the same unique three times is
			// attached three times and gets every WORK_* packet three
			// times: libgearman matches each to one of its tasks with that
			// handle, so each task completes.
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "u", "x")
			c.Submit(t, protocol.SubmitJob, "f", "u", "x")
			c.Submit(t, protocol.SubmitJobHigh, "f", "u", "x")
			c.Req(protocol.GetStatusUnique, "u")
			c.Expect(t, protocol.StatusResUnique, "u", "1", "0", "0", "0", "3")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.WorkData, h, "d")
			w.Req(protocol.WorkComplete, h, "r")
			for range 3 {
				c.Expect(t, protocol.WorkData, h, "d")
			}
			for range 3 {
				c.Expect(t, protocol.WorkComplete, h, "r")
			}
			c.ExpectNothing(t, wiretest.Quiet)
		}},
		{name: "coalesce/FG+BG-background-kept", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			// Difference f: in gearmand a background submission that joins
			// a foreground job leaves it foreground only (QUEUED 0, lost
			// with its clients); ours makes it a background job too.
			c1, c2 := p.dial(t), p.dial(t)
			h := c1.Submit(t, protocol.SubmitJob, "f", "u", "x")
			c2.Submit(t, protocol.SubmitJobBg, "f", "u", "x")
			c2.SubmitEpoch(t, "f", "u", "1", "x")
			queued := "1"
			if p.gearmand {
				queued = "0"
			}
			expectAdmin(t, c2, "show jobs", h+"\t0\t0\t"+queued+"\n.\n")
		}},
		{name: "coalesce/FG+BG-client-leaves", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			// Difference f.
			c1, c2 := p.dial(t), p.dial(t)
			h := c1.Submit(t, protocol.SubmitJob, "f", "u", "x")
			c2.Submit(t, protocol.SubmitJobBg, "f", "u", "x")
			c1.Close()
			waitClients(t, c2, "u", "0")
			w := p.dial(t)
			w.CanDo("f")
			if p.gearmand {
				// The job was foreground only: abandoned with its client.
				w.NoJob(t)
				return
			}
			w.Grab(t, h, "f", "x")
		}},
		{name: "coalesce/BG+FG", run: func(t *testing.T, p *peer) {
			c1, c2 := p.dial(t), p.dial(t)
			h := c1.Submit(t, protocol.SubmitJobBg, "f", "u", "x")
			if h2 := c2.Submit(t, protocol.SubmitJob, "f", "u", "y"); h2 != h {
				t.Fatalf("foreground handle %q, want %q", h2, h)
			}
			c2.Req(protocol.GetStatusUnique, "u")
			c2.Expect(t, protocol.StatusResUnique, "u", "1", "0", "0", "0", "1")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.WorkStatus, h, "1", "2")
			w.Req(protocol.WorkComplete, h, "r")
			c2.Expect(t, protocol.WorkStatus, h, "1", "2")
			c2.Expect(t, protocol.WorkComplete, h, "r")
			c1.ExpectNothing(t, wiretest.Quiet)
		}},
		{name: "coalesce/BG+FG-client-leaves", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			// Difference f: gearmand drops the background job when the
			// foreground client that attached to it disconnects.
			c1, c2 := p.dial(t), p.dial(t)
			h := c1.Submit(t, protocol.SubmitJobBg, "f", "u", "x")
			c2.Submit(t, protocol.SubmitJob, "f", "u", "x")
			waitClients(t, c1, "u", "1")
			c2.Close()
			waitClients(t, c1, "u", "0")
			w := p.dial(t)
			w.CanDo("f")
			if p.gearmand {
				w.NoJob(t)
				return
			}
			w.Grab(t, h, "f", "x")
		}},
		{name: "coalesce/BG+BG", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c1, c2 := p.dial(t), p.dial(t)
			h := c1.Submit(t, protocol.SubmitJobBg, "f", "u", "x")
			if h2 := c2.Submit(t, protocol.SubmitJobBg, "f", "u", "y"); h2 != h {
				t.Fatalf("second handle %q, want %q", h2, h)
			}
			if h3 := c2.Submit(t, protocol.SubmitJobHighBg, "f", "u", "z"); h3 != h {
				t.Fatalf("third handle %q, want %q", h3, h)
			}
			expectAdmin(t, c1, "status", "f\t1\t0\t0\n.\n")
			expectAdmin(t, c1, "prioritystatus", "f\t0\t1\t0\t0\n.\n")
		}},
		{name: "coalesce/dash-by-payload", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h1 := c.Submit(t, protocol.SubmitJobBg, "f", "-", "same")
			h2 := c.Submit(t, protocol.SubmitJobBg, "f", "-", "same")
			h3 := c.Submit(t, protocol.SubmitJobBg, "f", "-", "other")
			if h1 != "H:test:1" || h2 != h1 || h3 != "H:test:2" {
				t.Fatalf("handles %q %q %q, want H:test:1 H:test:1 H:test:2", h1, h2, h3)
			}
			expectAdmin(t, c, "show unique jobs", "-\n-\n.\n")
			w := p.dial(t)
			w.CanDo("f")
			w.Req(protocol.GrabJobUniq)
			w.Expect(t, protocol.JobAssignUniq, h1, "f", "-", "same")
		}},
		{name: "coalesce/dash-empty-payload", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h1 := c.Submit(t, protocol.SubmitJobBg, "f", "-", "")
			h2 := c.Submit(t, protocol.SubmitJobBg, "f", "-", "")
			if h1 == h2 {
				t.Fatalf("empty payloads with unique - coalesced: %q", h1)
			}
		}},
		{name: "coalesce/empty-unique-never", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h1 := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			h2 := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			h3 := c.Submit(t, protocol.SubmitJobBg, "f", "", "x")
			if h1 != "H:test:1" || h2 != "H:test:2" || h3 != "H:test:3" {
				t.Fatalf("handles %q %q %q, want H:test:1..3", h1, h2, h3)
			}
			expectAdmin(t, c, "status", "f\t3\t0\t0\n.\n")
		}},
		{name: "coalesce/same-unique-other-function", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h1 := c.Submit(t, protocol.SubmitJobBg, "f", "u", "x")
			h2 := c.Submit(t, protocol.SubmitJobBg, "g", "u", "x")
			if h1 == h2 {
				t.Fatalf("same unique under two functions coalesced: %q", h1)
			}
			expectAdmin(t, c, "status", "f\t1\t0\t0\ng\t1\t0\t0\n.\n")
		}},
		{name: "coalesce/after-completion-new-job", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h1 := c.Submit(t, protocol.SubmitJobBg, "f", "u", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h1, "f", "x")
			w.Req(protocol.WorkComplete, h1, "")
			w.Sync(t)
			if h2 := c.Submit(t, protocol.SubmitJobBg, "f", "u", "x"); h2 != "H:test:2" {
				t.Fatalf("resubmission after completion: handle %q, want H:test:2", h2)
			}
		}},
		{name: "coalesce/no-maxqueue-check", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			// A submission that coalesces is not refused by a full queue.
			c := p.dial(t)
			c.Submit(t, protocol.SubmitJobBg, "f", "u", "x")
			expectAdmin(t, c, "maxqueue f 1", "OK\r\n")
			if h := c.Submit(t, protocol.SubmitJobBg, "f", "u", "x"); h != "H:test:1" {
				t.Fatalf("coalesced handle %q, want H:test:1", h)
			}
			c.Req(protocol.SubmitJobBg, "f", "v", "x")
			c.ExpectError(t, protocol.CodeQueueError, textQueueFull)
		}},
	}
}
