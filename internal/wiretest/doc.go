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
//
// # Reading
//
//   - Expect, ExpectPacket, ExpectError: the next packet, exactly.
//   - Next, TryNext, ReadAny: the next packet (or, for ReadAny, text
//     line) for the caller to inspect; TryNext reports a timeout instead
//     of failing.
//   - ExpectNothing: silence for a given time; ExpectNoReply also accepts
//     the server hanging up; ExpectClosed: the server hangs up.
//   - ReadText, ExpectText, ReadLine, Admin: the admin text protocol.
//
// # Steps
//
// Submit, SubmitEpoch, SubmitReduce and Created return job handles;
// CanDo, Grab, GrabAny, NoJob and Sleep act as a worker; Sync and
// ExpectOpen round-trip an ECHO to order a connection's packets against
// the rest of a scenario. Raw and Body build bytes that Packet.Append
// cannot: bad magic, unknown types, wrong sizes, missing NULs.
//
// Conn methods that only write (Send, Req, SendRaw, SendText, CanDo)
// report failures on the test given to Dial; methods that read take the
// test to fail, so a failure names the subtest that waited.
package wiretest
