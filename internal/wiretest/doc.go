// Package wiretest drives raw Gearman conversations over TCP for tests:
// it sends exact packets and admin lines to a job server and checks the
// exact bytes that come back, each read bounded by a deadline.
//
// It is the harness of the compatibility suite that runs the same
// scenario against gearmand and against our server:
//
//	c := wiretest.Dial(t, addr)
//	c.Req(protocol.CanDo, "rev")
//	h := c.Submit(t, protocol.SubmitJob, "rev", "", "abc")
//	c.Req(protocol.GrabJob)
//	c.Expect(t, protocol.JobAssign, h, "rev", "abc")
//
// Expect compares the encoded bytes of the packet received with those of
// the packet wanted (magic "\0RES", type, every argument), and fails with
// both packets spelled out when they differ. ExpectNothing checks that
// the server stays quiet for a while, ExpectClosed that it hung up, and
// ReadText reads one reply of the admin text protocol (a list ending in
// ".\n", or one OK/ERR line).
//
// Every read has a deadline (Conn.Timeout, DefaultTimeout when zero), so
// a server that does not answer fails the test instead of hanging it.
package wiretest
