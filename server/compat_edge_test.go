package server_test

import (
	"strings"
	"testing"

	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
)

// edgeScenarios cover limits and less travelled paths.
func edgeScenarios() []scenario {
	return []scenario{
		{name: "edge/work-fail-long-handle", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.Req(protocol.WorkFail, "H:test:"+strings.Repeat("1", 60))
			text := c.ExpectErrorCode(t, protocol.CodeArgumentTooLarge)
			if p.gearmand && text != "Error occurred due to GEARMAND_JOB_HANDLE_SIZE being too small from snprintf" {
				t.Fatalf("gearmand text %q", text)
			}
			c.ExpectOpen(t)
		}},
		{name: "edge/option-name-too-long", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.Req(protocol.OptionReq, "exceptions"+strings.Repeat("x", 60))
			c.ExpectError(t, protocol.CodeUnknownOption, textUnknownOption)
		}},
		{name: "edge/client-id-truncated", run: func(t *testing.T, p *peer) {
			w := p.dial(t)
			w.Req(protocol.SetClientID, strings.Repeat("i", 200))
			w.Sync(t)
			want := "FD 127.0.0.1 " + strings.Repeat("i", 127) + " :\n"
			if got := workers(t, p.dial(t)); !strings.Contains(got, want) {
				t.Fatalf("workers = %q, want a line %q", got, want)
			}
		}},
		{name: "edge/unique-64", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			// A unique of exactly 64 bytes passes gearmand's size check but
			// is stored cut to 63, so the same unique never coalesces.
			// Ours keeps all 64 bytes and coalesces.
			c := p.dial(t)
			u := strings.Repeat("u", 64)
			h := c.Submit(t, protocol.SubmitJobBg, "f", u, "x")
			h2 := c.Submit(t, protocol.SubmitJobBg, "f", u, "x")
			w := p.dial(t)
			w.CanDo("f")
			if p.gearmand {
				if h2 == h {
					t.Fatalf("gearmand coalesced a 64-byte unique: %q", h)
				}
				expectAdmin(t, c, "show unique jobs", u[:63]+"\n"+u[:63]+"\n.\n")
				// gearmand's JOB_ASSIGN_UNIQ is corrupt here: the unique's
				// 63 bytes, its NUL terminator, then a second NUL before
				// the data.
				w.Req(protocol.GrabJobUniq)
				w.Expect(t, protocol.JobAssignUniq, h, "f", u[:63], "\x00x")
				return
			}
			if h2 != h {
				t.Fatalf("same 64-byte unique got handle %q, want %q", h2, h)
			}
			expectAdmin(t, c, "show unique jobs", u+"\n.\n")
			w.Req(protocol.GrabJobUniq)
			w.Expect(t, protocol.JobAssignUniq, h, "f", u, "x")
		}},
		{name: "edge/reduce-length-checks", run: func(t *testing.T, p *peer) {
			// gearmand checks the reducer's length where it means the
			// unique's; ours checks the unique, as for every submission.
			c := p.dial(t)
			longReducer := strings.Repeat("r", 65)
			longUnique := strings.Repeat("v", 65)
			c.Req(protocol.SubmitReduceJob, "f", "u", longReducer, "", "x")
			if p.gearmand {
				c.ExpectError(t, protocol.CodeArgumentTooLarge, textUniqueTooLarge)
				c.SubmitReduce(t, protocol.SubmitReduceJob, "f", longUnique, "r", "x")
				return
			}
			c.Created(t)
			c.Req(protocol.SubmitReduceJob, "f", longUnique, "r", "", "x")
			c.ExpectError(t, protocol.CodeArgumentTooLarge, textUniqueTooLarge)
		}},
		{name: "edge/text-line-too-long", run: func(t *testing.T, p *peer) {
			// An admin line longer than the 8 KiB receive buffer.
			c := p.dial(t)
			c.SendText(strings.Repeat("x", 9000) + "\n")
			c.ExpectClosed(t)
		}},
		{name: "edge/function-name-5000", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			fn := strings.Repeat("f", 5000)
			h := c.Submit(t, protocol.SubmitJobBg, fn, "", "x")
			expectAdmin(t, c, "status", fn+"\t1\t0\t0\n.\n")
			w := p.dial(t)
			w.CanDo(fn)
			w.Grab(t, h, fn, "x")
		}},
		{name: "edge/function-name-10000", run: func(t *testing.T, p *peer) {
			// Difference t: gearmand needs every NUL-terminated argument
			// in its 8 KiB receive buffer and hangs up otherwise; ours
			// refuses a function name over 8 KiB, says why, then hangs
			// up too.
			fn := strings.Repeat("f", 10000)
			for _, req := range []protocol.Packet{
				wiretest.Packet(protocol.Req, protocol.SubmitJobBg, fn, "", "x"),
				wiretest.Packet(protocol.Req, protocol.CanDo, fn),
				wiretest.Packet(protocol.Req, protocol.CanDoTimeout, fn, "5"),
			} {
				c := p.dial(t)
				c.Send(req)
				if !p.gearmand {
					c.ExpectError(t, protocol.CodeArgumentTooLarge, "function name of 10000 bytes exceeds the 8192-byte limit")
				}
				c.ExpectClosed(t)
			}
		}},
		{name: "edge/function-name-8192", run: func(t *testing.T, p *peer) {
			// The longest name gearmand takes in CAN_DO; ours takes it
			// everywhere.
			fn := strings.Repeat("f", 8192)
			w := p.dial(t)
			w.CanDo(fn)
			w.Sync(t)
			expectAdmin(t, w, "status", fn+"\t0\t0\t1\n.\n")
		}},
		{name: "edge/empty-function-name", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJobBg, "", "", "x")
			w := p.dial(t)
			w.CanDo("")
			w.Grab(t, h, "", "x")
		}},
		{name: "edge/two-jobs-one-worker", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h1 := c.Submit(t, protocol.SubmitJob, "f", "", "1")
			h2 := c.Submit(t, protocol.SubmitJob, "f", "", "2")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h1, "f", "1")
			w.Grab(t, h2, "f", "2")
			expectAdmin(t, c, "status", "f\t2\t2\t1\n.\n")
			w.Req(protocol.WorkComplete, h2, "b")
			w.Req(protocol.WorkComplete, h1, "a")
			c.Expect(t, protocol.WorkComplete, h2, "b")
			c.Expect(t, protocol.WorkComplete, h1, "a")
		}},
		{name: "edge/lost-worker-requeues-all-its-jobs", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h1 := c.Submit(t, protocol.SubmitJob, "f", "", "1")
			h2 := c.Submit(t, protocol.SubmitJob, "f", "", "2")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h1, "f", "1")
			w.Grab(t, h2, "f", "2")
			w.Close()
			waitStatus(t, c, "f\t2\t0\t0\n.\n")
			// gearmand requeues a lost worker's jobs newest first.
			w2 := p.dial(t)
			w2.CanDo("f")
			w2.Grab(t, h2, "f", "2")
			w2.Grab(t, h1, "f", "1")
		}},
		{name: "edge/reset-abilities-requeues", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.ResetAbilities)
			w.Sync(t)
			expectAdmin(t, c, "status", "f\t1\t0\t0\n.\n")
			w.Req(protocol.WorkComplete, h, "late")
			w.ExpectError(t, protocol.CodeJobNotFound, textResultNotFound)
		}},
		{name: "edge/one-of-two-clients-leaves", run: func(t *testing.T, p *peer) {
			c1, c2 := p.dial(t), p.dial(t)
			h := c1.Submit(t, protocol.SubmitJob, "f", "u", "x")
			c2.Submit(t, protocol.SubmitJob, "f", "u", "x")
			c1.Close()
			waitClients(t, c2, "u", "1")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.WorkComplete, h, "r")
			c2.Expect(t, protocol.WorkComplete, h, "r")
		}},
		{name: "edge/exception-background", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.Req(protocol.OptionReq, "exceptions")
			c.Expect(t, protocol.OptionRes, "exceptions")
			h := c.Submit(t, protocol.SubmitJobBg, "f", "", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.WorkException, h, "boom")
			w.Sync(t)
			c.ExpectNothing(t, wiretest.Quiet)
			expectAdmin(t, c, "status", "f\t0\t0\t1\n.\n")
		}},
		{name: "edge/worker-gone-while-sleeping", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			w := p.dial(t)
			w.CanDo("f")
			w.Sleep(t)
			w.Close()
			a := p.dial(t)
			waitStatus(t, a, "f\t0\t0\t0\n.\n")
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJobBg, "f", "", "x")
			w2 := p.dial(t)
			w2.CanDo("f")
			w2.Grab(t, h, "f", "x")
		}},
		{name: "edge/status-from-any-connection", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJobLow, "f", "u", "x")
			o := p.dial(t)
			o.Req(protocol.GetStatus, h)
			o.Expect(t, protocol.StatusRes, h, "1", "0", "0", "0")
			o.Req(protocol.GetStatusUnique, "u")
			o.Expect(t, protocol.StatusResUnique, "u", "1", "0", "0", "0", "1")
		}},
		{name: "edge/maxqueue-zero-unlimited", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.Submit(t, protocol.SubmitJobBg, "f", "", "1")
			expectAdmin(t, c, "maxqueue f 0", "OK\r\n")
			c.Submit(t, protocol.SubmitJobBg, "f", "", "2")
			expectAdmin(t, c, "maxqueue f -3", "OK\r\n")
			c.Submit(t, protocol.SubmitJobBg, "f", "", "3")
			expectAdmin(t, c, "status", "f\t3\t0\t0\n.\n")
		}},
		{name: "edge/large-payload", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			data := strings.Repeat("0123456789", 200_000) // 2 MB
			h := c.Submit(t, protocol.SubmitJob, "f", "", data)
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", data)
			w.Req(protocol.WorkComplete, h, data)
			c.Expect(t, protocol.WorkComplete, h, data)
		}},
	}
}
