package server_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
)

const (
	errUnknownCommand = "ERR UNKNOWN_COMMAND Unknown+server+command"
	errBadArgs        = "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+"
)

// adminScenarios cover the admin text protocol.
func adminScenarios() []scenario {
	return []scenario{
		{name: "admin/status", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			a := p.dial(t)
			expectAdmin(t, a, "status", ".\n")
			c := p.dial(t)
			c.Submit(t, protocol.SubmitJobBg, "f", "", "1")
			c.Submit(t, protocol.SubmitJobBg, "f", "", "2")
			h := c.Submit(t, protocol.SubmitJob, "g", "", "3")
			w := p.dial(t)
			w.CanDo("g", "h")
			w.Grab(t, h, "g", "3")
			expectAdmin(t, a, "status", "f\t2\t0\t0\ng\t1\t1\t1\nh\t0\t0\t1\n.\n")
			expectAdmin(t, a, "STATUS", "f\t2\t0\t0\ng\t1\t1\t1\nh\t0\t0\t1\n.\n")
		}},
		{name: "admin/status-crlf", run: func(t *testing.T, p *peer) {
			a := p.dial(t)
			a.SendText("create function f\r\nstatus\r\n")
			a.ExpectText(t, "OK\r\n")
			a.ExpectText(t, "f\t0\t0\t0\n.\n")
		}},
		{name: "admin/prioritystatus", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.Submit(t, protocol.SubmitJobHighBg, "f", "", "1")
			c.Submit(t, protocol.SubmitJobLowBg, "f", "", "2")
			c.Submit(t, protocol.SubmitJobLowBg, "f", "", "3")
			h := c.Submit(t, protocol.SubmitJobBg, "g", "", "4")
			c.Submit(t, protocol.SubmitJobBg, "g", "", "5")
			w := p.dial(t)
			w.CanDo("g")
			w.Grab(t, h, "g", "4")
			expectAdmin(t, c, "prioritystatus", "f\t1\t0\t2\t0\ng\t0\t1\t0\t1\n.\n")
		}},
		{name: "admin/workers", run: func(t *testing.T, p *peer) {
			w := p.dial(t)
			w.CanDo("f", "g")
			w.Req(protocol.SetClientID, "wid")
			w.Sync(t)
			c := p.dial(t)
			c.Sync(t)
			want := sortedLines("FD 127.0.0.1 wid : g f\nFD 127.0.0.1 - :\nFD 127.0.0.1 - :\n.\n")
			a := p.dial(t)
			got := workers(t, a)
			// gearmand may still list the readiness probe's closed
			// connection for a moment: give it up to 2s to reap it.
			for i := 0; i < 20 && got != want; i++ {
				time.Sleep(100 * time.Millisecond)
				got = workers(t, a)
			}
			if got != want {
				t.Fatalf("workers:\n got: %q\nwant: %q", got, want)
			}
		}},
		{name: "admin/workers-duplicate-can-do", run: func(t *testing.T, p *peer) {
			// Difference g: gearmand registers a function twice.
			w := p.dial(t)
			w.CanDo("f", "f")
			w.Sync(t)
			a := p.dial(t)
			if p.gearmand {
				expectAdmin(t, a, "status", "f\t0\t0\t2\n.\n")
				if got := workers(t, a); !strings.Contains(got, ": f f\n") {
					t.Fatalf("workers = %q, want f listed twice", got)
				}
				return
			}
			expectAdmin(t, a, "status", "f\t0\t0\t1\n.\n")
			if got := workers(t, a); !strings.Contains(got, ": f\n") {
				t.Fatalf("workers = %q, want f listed once", got)
			}
		}},
		{name: "admin/show-jobs", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			expectAdmin(t, c, "show jobs", ".\n")
			h1 := c.Submit(t, protocol.SubmitJobBg, "f", "u1", "1")
			h2 := c.Submit(t, protocol.SubmitJob, "f", "", "2")
			// QUEUED is 1 for a background job (persistable), 0 for foreground.
			expectAdmin(t, c, "show jobs", h1+"\t0\t0\t1\n"+h2+"\t0\t0\t0\n.\n")
			expectAdmin(t, c, "show unique jobs", "u1\n\n.\n")
		}},
		{name: "admin/show-other", run: func(t *testing.T, p *peer) {
			a := p.dial(t)
			expectAdmin(t, a, "show nothing", protocol.AdminUnknownShow)
			expectAdmin(t, a, "show", errUnknownCommand+"show\r\n")
			expectAdmin(t, a, "show unique", protocol.AdminUnknownShow)
		}},
		{name: "admin/cancel-queued", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			a := p.dial(t)
			expectAdmin(t, a, "cancel job "+h, "OK\r\n")
			c.Expect(t, protocol.WorkFail, h)
			w := p.dial(t)
			w.CanDo("f")
			w.NoJob(t)
			expectAdmin(t, a, "cancel job "+h, "ERR UNKNOWN_JOB\r\n")
		}},
		{name: "admin/cancel-queued-background", run: func(t *testing.T, p *peer) {
			// Difference o: gearmand keeps a cancelled queued job, marked
			// ignored, until a worker reaches it; ours removes it at once.
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJobBg, "f", "", "x")
			a := p.dial(t)
			expectAdmin(t, a, "cancel job "+h, "OK\r\n")
			if p.gearmand {
				expectAdmin(t, a, "status", "f\t1\t0\t0\n.\n")
				expectAdmin(t, a, "show jobs", h+"\t0\t1\t0\n.\n")
				expectAdmin(t, a, "cancel job "+h, "OK\r\n")
			} else {
				expectAdmin(t, a, "status", "f\t0\t0\t0\n.\n")
				expectAdmin(t, a, "show jobs", ".\n")
				expectAdmin(t, a, "cancel job "+h, "ERR UNKNOWN_JOB\r\n")
			}
			w := p.dial(t)
			w.CanDo("f")
			w.NoJob(t)
			expectAdmin(t, a, "status", "f\t0\t0\t1\n.\n")
			expectAdmin(t, a, "cancel job "+h, "ERR UNKNOWN_JOB\r\n")
		}},
		{name: "admin/cancel-forms", run: func(t *testing.T, p *peer) {
			a := p.dial(t)
			expectAdmin(t, a, "cancel job H:test:99", "ERR UNKNOWN_JOB\r\n")
			expectAdmin(t, a, "cancel thing H:test:99", "ERR UNKNOWN_ERROR\r\n")
			expectAdmin(t, a, "cancel job", errUnknownCommand+"cancel\r\n")
		}},
		{name: "admin/cancel-running", run: func(t *testing.T, p *peer) {
			// Difference l: gearmand forwards the worker's later
			// WORK_COMPLETE after the WORK_FAIL.
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			a := p.dial(t)
			expectAdmin(t, a, "cancel job "+h, "OK\r\n")
			c.Expect(t, protocol.WorkFail, h)
			w.Req(protocol.WorkComplete, h, "late")
			if p.gearmand {
				c.Expect(t, protocol.WorkComplete, h, "late")
			} else {
				w.ExpectNothing(t, wiretest.Quiet)
				c.ExpectNothing(t, wiretest.Quiet)
			}
			expectAdmin(t, a, "status", "f\t0\t0\t1\n.\n")
		}},
		{name: "admin/maxqueue", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.CanDo("f")
			c.Sync(t)
			expectAdmin(t, c, "maxqueue f 2", "OK\r\n")
			c.Submit(t, protocol.SubmitJobBg, "f", "", "1")
			c.Submit(t, protocol.SubmitJob, "f", "", "2")
			c.Req(protocol.SubmitJobHighBg, "f", "", "3")
			c.ExpectError(t, protocol.CodeQueueError, textQueueFull)
			expectAdmin(t, c, "maxqueue f", "OK\r\n")
			c.Submit(t, protocol.SubmitJobLowBg, "f", "", "4")
			expectAdmin(t, c, "status", "f\t3\t0\t1\n.\n")
		}},
		{name: "admin/maxqueue-per-priority", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.Submit(t, protocol.SubmitJobBg, "f", "", "seed")
			expectAdmin(t, c, "maxqueue f 5 1 0", "OK\r\n")
			c.Req(protocol.SubmitJobBg, "f", "", "normal")
			c.ExpectError(t, protocol.CodeQueueError, textQueueFull)
			c.Submit(t, protocol.SubmitJobHighBg, "f", "", "high")
			c.Submit(t, protocol.SubmitJobLowBg, "f", "", "low")
			expectAdmin(t, c, "maxqueue f 1 1", "OK\r\n") // missing LOW: unlimited
			c.Submit(t, protocol.SubmitJobLowBg, "f", "", "low2")
			c.Req(protocol.SubmitJobHigh, "f", "", "high2")
			c.ExpectError(t, protocol.CodeQueueError, textQueueFull)
			expectAdmin(t, c, "maxqueue", errBadArgs+"maxqueue\r\n")
		}},
		{name: "admin/maxqueue-counts-running", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJobBg, "f", "", "1")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "1")
			expectAdmin(t, c, "maxqueue f 1", "OK\r\n")
			c.Req(protocol.SubmitJobBg, "f", "", "2")
			c.ExpectError(t, protocol.CodeQueueError, textQueueFull)
		}},
		{name: "admin/maxqueue-unknown-function", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			// Difference m: gearmand accepts and forgets the limit.
			c := p.dial(t)
			expectAdmin(t, c, "maxqueue nf 1", "OK\r\n")
			c.Submit(t, protocol.SubmitJobBg, "nf", "", "1")
			c.Req(protocol.SubmitJobBg, "nf", "", "2")
			if p.gearmand {
				c.Created(t)
				expectAdmin(t, c, "show maxqueue", protocol.AdminUnknownShow)
				return
			}
			c.ExpectError(t, protocol.CodeQueueError, textQueueFull)
			expectAdmin(t, c, "maxqueue g 3 2 1", "OK\r\n")
			expectAdmin(t, c, "show maxqueue", "nf\t1\t1\t1\ng\t3\t2\t1\n.\n")
		}},
		{name: "admin/create-drop-function", run: func(t *testing.T, p *peer) {
			a := p.dial(t)
			expectAdmin(t, a, "create function f", "OK\r\n")
			expectAdmin(t, a, "status", "f\t0\t0\t0\n.\n")
			expectAdmin(t, a, "drop function f", "OK\r\n")
			expectAdmin(t, a, "status", ".\n")
			expectAdmin(t, a, "drop function f", "ERR function not found\r\n")
			expectAdmin(t, a, "create function", errBadArgs+"create\r\n")
			expectAdmin(t, a, "drop function", errBadArgs+"drop\r\n")
			expectAdmin(t, a, "create x f", errBadArgs+"create\r\n")
		}},
		{name: "admin/create-function-bare-newline", run: func(t *testing.T, p *peer) {
			// Difference k: gearmand drops the last character when the
			// line ends in "\n" alone.
			a := p.dial(t)
			a.SendText("create function xyz\n")
			a.ExpectText(t, "OK\r\n")
			if p.gearmand {
				expectAdmin(t, a, "status", "xy\t0\t0\t0\n.\n")
				return
			}
			expectAdmin(t, a, "status", "xyz\t0\t0\t0\n.\n")
		}},
		{name: "admin/drop-function-with-workers", run: func(t *testing.T, p *peer) {
			w := p.dial(t)
			w.CanDo("f")
			w.Sync(t)
			a := p.dial(t)
			expectAdmin(t, a, "drop function f", "ERR there are still connected workers or executing clients\r\n")
			expectAdmin(t, a, "drop function F", "ERR there are still connected workers or executing clients\r\n")
		}},
		{name: "admin/drop-function-with-queued-jobs", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			// Difference n: gearmand frees the function under its jobs.
			c := p.dial(t)
			c.Submit(t, protocol.SubmitJobBg, "f", "", "x")
			got := admin(t, c, "drop function f")
			if p.gearmand {
				if got != "OK\r\n" {
					t.Fatalf("gearmand drop function = %q", got)
				}
				return
			}
			if want := "ERR there are still connected workers or executing clients\r\n"; got != want {
				t.Fatalf("drop function with a queued job = %q, want %q", got, want)
			}
			expectAdmin(t, c, "status", "f\t1\t0\t0\n.\n")
		}},
		{name: "admin/getpid", run: func(t *testing.T, p *peer) {
			a := p.dial(t)
			a.SendText("getpid\n")
			if got, want := a.ReadLine(t), "OK "+strconv.Itoa(p.pid)+"\n"; got != want {
				t.Fatalf("getpid = %q, want %q", got, want)
			}
		}},
		{name: "admin/verbose", run: func(t *testing.T, p *peer) {
			a := p.dial(t)
			a.SendText("verbose\n")
			got := a.ReadLine(t)
			if !regexp.MustCompile(`^OK (FATAL|ALERT|CRITICAL|ERROR|WARNING|NOTICE|INFO|DEBUG)\n$`).MatchString(got) {
				t.Fatalf("verbose = %q", got)
			}
		}},
		{name: "admin/version", run: func(t *testing.T, p *peer) {
			a := p.dial(t)
			a.SendText("version\n")
			got := a.ReadLine(t)
			if p.gearmand && got != "OK 1.1.20+ds\n" {
				t.Fatalf("gearmand version = %q", got)
			}
			if !regexp.MustCompile(`^OK [^\s]+\n$`).MatchString(got) {
				t.Fatalf("version = %q, want OK <version>", got)
			}
		}},
		{name: "admin/unknown-command", run: func(t *testing.T, p *peer) {
			a := p.dial(t)
			expectAdmin(t, a, "frobnicate now", errUnknownCommand+"frobnicate\r\n")
			expectAdmin(t, a, "shutdown", errUnknownCommand+"shutdown\r\n")
			expectAdmin(t, a, "shutdown graceful", errUnknownCommand+"shutdown\r\n")
			a.SendText("   \n")
			a.ExpectText(t, errUnknownCommand+"\r\n")
			a.ExpectOpen(t)
		}},
		{name: "admin/pipelined", run: func(t *testing.T, p *peer) {
			a := p.dial(t)
			a.SendText("create function f\r\nstatus\nversion\nbogus\nstatus\n")
			a.ExpectText(t, "OK\r\n")
			a.ExpectText(t, "f\t0\t0\t0\n.\n")
			a.ReadLine(t)
			a.ExpectText(t, errUnknownCommand+"bogus\r\n")
			a.ExpectText(t, "f\t0\t0\t0\n.\n")
		}},
		{name: "admin/mixed-with-binary", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJobBg, "f", "", "x")
			c.SendText("status\n")
			c.ExpectText(t, "f\t1\t0\t0\n.\n")
			var batch []byte
			batch = append(batch, "show jobs\n"...)
			batch = wiretest.Packet(protocol.Req, protocol.EchoReq, "bin").Append(batch)
			batch = append(batch, "prioritystatus\n"...)
			c.SendRaw(batch)
			c.ExpectText(t, h+"\t0\t0\t1\n.\n")
			c.Expect(t, protocol.EchoRes, "bin")
			c.ExpectText(t, "f\t0\t1\t0\t0\n.\n")
		}},
	}
}
