package server_test

import (
	"strings"
	"testing"

	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
)

// badInputScenarios send what no well-behaved peer sends.
func badInputScenarios() []scenario {
	return []scenario{
		{name: "bad/magic", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.SendRaw(wiretest.Raw("\x00REX", uint32(protocol.EchoReq), -1, []byte("x")))
			c.ExpectClosed(t)
		}},
		{name: "bad/type-0", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.SendRaw(wiretest.Raw("\x00REQ", 0, -1, nil))
			c.ExpectClosed(t)
		}},
		{name: "bad/type-43", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.SendRaw(wiretest.Raw("\x00REQ", 43, -1, nil))
			c.ExpectClosed(t)
		}},
		{name: "bad/type-huge", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.SendRaw(wiretest.Raw("\x00REQ", 0xffffffff, -1, nil))
			c.ExpectClosed(t)
		}},
		{name: "bad/res-magic", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.Send(wiretest.Packet(protocol.Res, protocol.EchoReq, "x"))
			c.ExpectError(t, protocol.CodeInvalidMagic, textRequestMagic)
			c.ExpectOpen(t)
		}},
		{name: "bad/res-magic-submit", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.Send(wiretest.Packet(protocol.Res, protocol.SubmitJobBg, "f", "", "x"))
			c.ExpectError(t, protocol.CodeInvalidMagic, textRequestMagic)
			expectAdmin(t, c, "status", ".\n")
		}},
		{name: "bad/split-header", run: func(t *testing.T, p *peer) {
			// A packet that arrives a byte at a time is still one packet.
			c := p.dial(t)
			for _, b := range wiretest.Packet(protocol.Req, protocol.EchoReq, "slow").Append(nil) {
				c.SendRaw([]byte{b})
			}
			c.Expect(t, protocol.EchoRes, "slow")
		}},
		{name: "bad/unique-too-large", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.Req(protocol.SubmitJob, "f", strings.Repeat("u", 65), "x")
			c.ExpectError(t, protocol.CodeArgumentTooLarge, textUniqueTooLarge)
			c.ExpectOpen(t)
		}},
		{name: "bad/unique-63-accepted", opts: options{leavesJobs: true}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			u := strings.Repeat("u", 63)
			h := c.Submit(t, protocol.SubmitJobBg, "f", u, "x")
			c.Req(protocol.GetStatusUnique, u)
			c.Expect(t, protocol.StatusResUnique, u, "1", "0", "0", "0", "0")
			w := p.dial(t)
			w.CanDo("f")
			w.Req(protocol.GrabJobUniq)
			w.Expect(t, protocol.JobAssignUniq, h, "f", u, "x")
		}},
		{name: "bad/malformed-body", run: func(t *testing.T, p *peer) {
			// SUBMIT_JOB needs two NUL-terminated arguments; this body has none.
			c := p.dial(t)
			c.SendRaw(wiretest.Raw("\x00REQ", uint32(protocol.SubmitJob), -1, []byte("f")))
			if p.gearmand {
				// gearmand looks for the NULs past the packet's end: the
				// next packet is swallowed and nothing is answered.
				c.Req(protocol.EchoReq, "after")
				c.ExpectNoReply(t, 3*wiretest.Quiet)
				return
			}
			c.ExpectErrorCode(t, codeInvalidArgument)
			c.ExpectOpen(t)
		}},
		{name: "bad/malformed-reduce-3-args", run: func(t *testing.T, p *peer) {
			// The framing PROTOCOL documents (3 NUL-terminated arguments)
			// is one short of what the implementation requires.
			c := p.dial(t)
			c.SendRaw(wiretest.Raw("\x00REQ", uint32(protocol.SubmitReduceJobBackground), -1, wiretest.Body("f", "u", "r", "data")))
			if p.gearmand {
				c.Req(protocol.EchoReq, "after")
				c.ExpectNoReply(t, 3*wiretest.Quiet)
				return
			}
			c.ExpectErrorCode(t, codeInvalidArgument)
			c.ExpectOpen(t)
		}},
		{name: "bad/body-on-empty-type", run: func(t *testing.T, p *peer) {
			// GRAB_JOB takes no arguments; a body is ignored by gearmand.
			c := p.dial(t)
			c.SendRaw(wiretest.Raw("\x00REQ", uint32(protocol.GrabJob), -1, []byte("junk")))
			if p.gearmand {
				c.Expect(t, protocol.NoJob)
			} else {
				c.ExpectErrorCode(t, codeInvalidArgument)
			}
			c.ExpectOpen(t)
		}},
		{name: "bad/oversized-packet", opts: options{config: maxPacket1K}, run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			data := strings.Repeat("x", 4096)
			c.Req(protocol.EchoReq, data)
			if p.gearmand {
				// gearmand has no limit.
				c.Expect(t, protocol.EchoRes, data)
				return
			}
			c.ExpectErrorCode(t, protocol.CodeArgumentTooLarge)
			c.ExpectClosed(t)
		}},
		{name: "bad/oversized-header-only", opts: options{config: maxPacket1K}, run: func(t *testing.T, p *peer) {
			// A header announcing 4 GiB: ours refuses before reading the body.
			c := p.dial(t)
			c.SendRaw(wiretest.Raw("\x00REQ", uint32(protocol.EchoReq), 0xffffffff, nil))
			if p.gearmand {
				c.ExpectNothing(t, wiretest.Quiet)
				return
			}
			c.ExpectErrorCode(t, protocol.CodeArgumentTooLarge)
			c.ExpectClosed(t)
		}},
		{name: "bad/text-too-many-words", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.SendText("status a b c d e\n")
			c.ExpectClosed(t)
		}},
		{name: "bad/text-five-words", run: func(t *testing.T, p *peer) {
			c := p.dial(t)
			c.SendText("status a b c d\n")
			c.ExpectText(t, ".\n")
		}},
	}
}
