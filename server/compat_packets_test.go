package server_test

import (
	"strings"
	"testing"

	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
)

// Reply texts of gearmand's ERROR packets.
const (
	textNotExpected     = "Command not expected"
	textResultNotFound  = "Job given in work result not found"
	textDataNotFound    = "Job does not exist on server"
	textExceptionNoJob  = "An exception was received for a job that does not exist"
	textUnknownOption   = "Server does not recognize given option"
	textQueueFull       = "Job queue is full"
	textRequestMagic    = "Request magic expected"
	textUniqueTooLarge  = "Unique value too large"
	codeInvalidArgument = "INVALID_ARGUMENT"
)

// packetScenarios send each packet type 1..42 as a request.
func packetScenarios() []scenario {
	var out []scenario

	// Types only a server sends, and the unimplemented ones, are refused
	// with ERROR INVALID_COMMAND; the connection stays usable.
	notExpected := []struct {
		typ  protocol.Type
		args []string
	}{
		{protocol.Unused, nil},
		{protocol.Noop, nil},
		{protocol.JobCreated, []string{"H:test:1"}},
		{protocol.NoJob, nil},
		{protocol.JobAssign, []string{"H:test:1", "f", "data"}},
		{protocol.EchoRes, []string{"data"}},
		{protocol.Error, []string{"CODE", "text"}},
		{protocol.StatusRes, []string{"H:test:1", "1", "0", "0", "0"}},
		{protocol.AllYours, nil},
		{protocol.OptionRes, []string{"exceptions"}},
		{protocol.JobAssignUniq, []string{"H:test:1", "f", "u", "data"}},
		{protocol.JobAssignAll, []string{"H:test:1", "f", "u", "r", "data"}},
		{protocol.StatusResUnique, []string{"u", "1", "0", "0", "0", "0"}},
	}
	for _, nx := range notExpected {
		out = append(out, scenario{
			name: "request/" + nx.typ.String() + "/not-expected",
			run: func(t *testing.T, p *peer) {
				c := p.dial(t)
				c.Req(nx.typ, nx.args...)
				c.ExpectError(t, protocol.CodeInvalidCommand, textNotExpected)
				c.ExpectOpen(t)
			},
		})
	}

	// WORK_* for a job nobody assigned to this connection.
	notFound := []struct {
		typ  protocol.Type
		args []string
		text string
	}{
		{protocol.WorkStatus, []string{"H:test:9", "1", "2"}, textResultNotFound},
		{protocol.WorkComplete, []string{"H:test:9", "done"}, textResultNotFound},
		{protocol.WorkFail, []string{"H:test:9"}, textResultNotFound},
		{protocol.WorkException, []string{"H:test:9", "boom"}, textExceptionNoJob},
		{protocol.WorkData, []string{"H:test:9", "part"}, textDataNotFound},
		{protocol.WorkWarning, []string{"H:test:9", "careful"}, textDataNotFound},
	}
	for _, nf := range notFound {
		out = append(out, scenario{
			name: "request/" + nf.typ.String() + "/unknown-job",
			run: func(t *testing.T, p *peer) {
				c := p.dial(t)
				c.Req(nf.typ, nf.args...)
				c.ExpectError(t, protocol.CodeJobNotFound, nf.text)
				c.ExpectOpen(t)
			},
		})
	}

	// Every submission type is answered with JOB_CREATED and the job is
	// assigned with its function, unique and data.
	submits := []struct {
		typ protocol.Type
	}{
		{protocol.SubmitJob}, {protocol.SubmitJobBg}, {protocol.SubmitJobHigh},
		{protocol.SubmitJobHighBg}, {protocol.SubmitJobLow}, {protocol.SubmitJobLowBg},
	}
	for _, sb := range submits {
		out = append(out, scenario{
			name: "request/" + sb.typ.String(),
			run: func(t *testing.T, p *peer) {
				c := p.dial(t)
				h := c.Submit(t, sb.typ, "f", "u1", "payload\x00with NUL")
				if h != "H:test:1" {
					t.Fatalf("handle %q, want H:test:1", h)
				}
				w := p.dial(t)
				w.CanDo("f")
				w.Req(protocol.GrabJobUniq)
				w.Expect(t, protocol.JobAssignUniq, h, "f", "u1", "payload\x00with NUL")
				w.Req(protocol.WorkComplete, h, "ok")
				if !strings.HasSuffix(sb.typ.String(), "_BG") {
					c.Expect(t, protocol.WorkComplete, h, "ok")
				}
				w.ExpectNothing(t, wiretest.Quiet)
				c.ExpectNothing(t, wiretest.Quiet)
			},
		})
	}

	out = append(out,
		scenario{name: "request/CAN_DO", run: func(t *testing.T, p *peer) {
			w := p.dial(t)
			w.CanDo("f")
			w.Sync(t)
			expectAdmin(t, p.dial(t), "status", "f\t0\t0\t1\n.\n")
		}},
		scenario{name: "request/CAN_DO/whole-body-is-the-name", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			w := p.dial(t)
			w.SendRaw(wiretest.Raw("\x00REQ", uint32(protocol.CanDo), -1, []byte("f\x00")))
			w.Sync(t)
			c := p.dial(t)
			c.Submit(t, protocol.SubmitJobBg, "f", "", "x")
			w.NoJob(t)
		}},
		scenario{name: "request/CANT_DO", run: func(t *testing.T, p *peer) {
			w := p.dial(t)
			w.CanDo("f", "g")
			w.Req(protocol.CantDo, "f")
			w.Sync(t)
			expectAdmin(t, p.dial(t), "status", "f\t0\t0\t0\ng\t0\t0\t1\n.\n")
		}},
		scenario{name: "request/RESET_ABILITIES", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			w := p.dial(t)
			w.CanDo("f", "g")
			w.Req(protocol.ResetAbilities)
			w.Sync(t)
			expectAdmin(t, p.dial(t), "status", "f\t0\t0\t0\ng\t0\t0\t0\n.\n")
			c := p.dial(t)
			c.Submit(t, protocol.SubmitJobBg, "f", "", "x")
			w.NoJob(t)
		}},
		scenario{name: "request/CANT_DO/requeues-running-job", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.CantDo, "f")
			w.Sync(t)
			w2 := p.dial(t)
			w2.CanDo("f")
			w2.Grab(t, h, "f", "x")
			w2.Req(protocol.WorkComplete, h, "done")
			c.Expect(t, protocol.WorkComplete, h, "done")
		}},
		scenario{name: "request/GRAB_JOB/nothing", run: func(t *testing.T, p *peer) {
			w := p.dial(t)
			w.NoJob(t)
			w.CanDo("f")
			w.NoJob(t)
			w.Req(protocol.GrabJobUniq)
			w.Expect(t, protocol.NoJob)
			w.Req(protocol.GrabJobAll)
			w.Expect(t, protocol.NoJob)
		}},
		scenario{name: "request/GRAB_JOB/other-function", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.Submit(t, protocol.SubmitJobBg, "g", "", "x")
			w := p.dial(t)
			w.CanDo("f")
			w.NoJob(t)
		}},
		scenario{name: "request/GET_STATUS/unknown", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.Req(protocol.GetStatus, "H:test:77")
			c.Expect(t, protocol.StatusRes, "H:test:77", "0", "0", "0", "0")
			c.Req(protocol.GetStatus, "")
			c.Expect(t, protocol.StatusRes, "", "0", "0", "0", "0")
		}},
		scenario{name: "request/GET_STATUS_UNIQUE/unknown", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.Req(protocol.GetStatusUnique, "nope")
			c.Expect(t, protocol.StatusResUnique, "nope", "0", "0", "0", "0", "0")
		}},
		scenario{name: "request/ECHO_REQ", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			for _, data := range []string{"", "hello", "a\x00b\x00", strings.Repeat("x", 100<<10)} {
				c.Req(protocol.EchoReq, data)
				c.Expect(t, protocol.EchoRes, data)
			}
		}},
		scenario{name: "request/ECHO_REQ/pipelined", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			var batch []byte
			for i := range 200 {
				batch = wiretest.Packet(protocol.Req, protocol.EchoReq, strings.Repeat("e", i)).Append(batch)
			}
			c.SendRaw(batch)
			for i := range 200 {
				c.Expect(t, protocol.EchoRes, strings.Repeat("e", i))
			}
		}},
		scenario{name: "request/OPTION_REQ", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.Req(protocol.OptionReq, "exceptions")
			c.Expect(t, protocol.OptionRes, "exceptions")
			c.Req(protocol.OptionReq, "EXCEPTIONS")
			c.Expect(t, protocol.OptionRes, "EXCEPTIONS")
			c.Req(protocol.OptionReq, "nosuch")
			c.ExpectError(t, protocol.CodeUnknownOption, textUnknownOption)
			c.Req(protocol.OptionReq, "")
			c.ExpectError(t, protocol.CodeUnknownOption, textUnknownOption)
			c.ExpectOpen(t)
		}},
		scenario{name: "request/SET_CLIENT_ID", run: func(t *testing.T, p *peer) {
			w := p.dial(t)
			w.Req(protocol.SetClientID, "worker-7")
			w.CanDo("f")
			w.Sync(t)
			got := workers(t, p.dial(t))
			if !strings.Contains(got, "FD 127.0.0.1 worker-7 : f\n") {
				t.Fatalf("workers = %q, want a line \"FD 127.0.0.1 worker-7 : f\"", got)
			}
		}},
		scenario{name: "request/CAN_DO_TIMEOUT", run: func(t *testing.T, p *peer) {
			w := p.dial(t)
			w.Req(protocol.CanDoTimeout, "f", "5000")
			w.Sync(t)
			expectAdmin(t, p.dial(t), "status", "f\t0\t0\t1\n.\n")
			c := p.dial(t)
			h := c.Submit(t, protocol.SubmitJob, "f", "", "x")
			w.Grab(t, h, "f", "x")
			w.Req(protocol.WorkComplete, h, "y")
			c.Expect(t, protocol.WorkComplete, h, "y")
		}},
	)
	return out
}

// workers returns the "workers" reply with the FD column replaced by
// "FD" (it is the server's socket number) and lines sorted.
func workers(t *testing.T, c *wiretest.Conn) string {
	t.Helper()
	text := c.Admin(t, "workers")
	lines := strings.SplitAfter(text, "\n")
	for i, l := range lines {
		if l == ".\n" || l == "" {
			continue
		}
		if _, rest, ok := strings.Cut(l, " "); ok {
			lines[i] = "FD " + rest
		}
	}
	return sortedLines(strings.Join(lines, ""))
}
