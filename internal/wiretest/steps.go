package wiretest

import (
	"testing"

	"github.com/gearflow/gearflow/protocol"
)

// Submit sends a submission of type typ (SUBMIT_JOB, SUBMIT_JOB_BG, ...:
// any type whose arguments are FUNC, UNIQUE, DATA) and returns the
// handle from the JOB_CREATED reply, failing t on anything else.
func (c *Conn) Submit(t testing.TB, typ protocol.Type, fn, unique, data string) string {
	t.Helper()
	c.Req(typ, fn, unique, data)
	return c.Created(t)
}

// SubmitEpoch sends SUBMIT_JOB_EPOCH and returns the handle.
func (c *Conn) SubmitEpoch(t testing.TB, fn, unique, epoch, data string) string {
	t.Helper()
	c.Req(protocol.SubmitJobEpoch, fn, unique, epoch, data)
	return c.Created(t)
}

// SubmitReduce sends SUBMIT_REDUCE_JOB (or its background variant) with
// libgearman's framing, an empty aggregator as the fourth argument, and
// returns the handle.
func (c *Conn) SubmitReduce(t testing.TB, typ protocol.Type, fn, unique, reducer, data string) string {
	t.Helper()
	c.Req(typ, fn, unique, reducer, "", data)
	return c.Created(t)
}

// Created reads a JOB_CREATED and returns its handle.
func (c *Conn) Created(t testing.TB) string {
	t.Helper()
	p := c.Next(t)
	if p.Magic != protocol.Res || p.Type != protocol.JobCreated || len(p.Args) != 1 {
		t.Fatalf("wiretest: %s: got %s, want RES JOB_CREATED", c.name, Format(p))
	}
	return string(p.Args[0])
}

// CanDo registers the functions (CAN_DO for each). No reply is expected.
func (c *Conn) CanDo(fns ...string) {
	c.t.Helper()
	for _, fn := range fns {
		c.Req(protocol.CanDo, fn)
	}
}

// Grab sends GRAB_JOB and expects JOB_ASSIGN HANDLE FUNC DATA.
func (c *Conn) Grab(t testing.TB, handle, fn, data string) {
	t.Helper()
	c.Req(protocol.GrabJob)
	c.Expect(t, protocol.JobAssign, handle, fn, data)
}

// GrabAny sends GRAB_JOB and returns the JOB_ASSIGN received.
func (c *Conn) GrabAny(t testing.TB) protocol.Packet {
	t.Helper()
	c.Req(protocol.GrabJob)
	p := c.Next(t)
	if p.Magic != protocol.Res || p.Type != protocol.JobAssign {
		t.Fatalf("wiretest: %s: got %s, want RES JOB_ASSIGN", c.name, Format(p))
	}
	return p
}

// NoJob sends GRAB_JOB and expects NO_JOB.
func (c *Conn) NoJob(t testing.TB) {
	t.Helper()
	c.Req(protocol.GrabJob)
	c.Expect(t, protocol.NoJob)
}

// Sleep sends PRE_SLEEP and checks that no immediate NOOP comes back
// within a short window.
func (c *Conn) Sleep(t testing.TB) {
	t.Helper()
	c.Req(protocol.PreSleep)
	c.ExpectNothing(t, Quiet)
}

// Sync makes sure every packet sent so far on c has been processed: it
// round-trips an ECHO. Packets that have no reply (CAN_DO, PRE_SLEEP,
// WORK_DATA to a known job) are otherwise unobservable, and a scenario
// that acts on another connection next must not race them.
func (c *Conn) Sync(t testing.TB) {
	t.Helper()
	c.Req(protocol.EchoReq, "sync")
	c.Expect(t, protocol.EchoRes, "sync")
}
