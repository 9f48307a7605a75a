package server_test

import (
	"testing"
	"testing/synctest"

	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

func TestWakeupsDoNotStampede(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := startPipeServer(t, server.Config{})
		defer ps.stop()
		var workers []*pipeConn
		for i := 0; i < 4; i++ {
			w := ps.dial()
			w.send(protocol.CanDo, "f")
			w.send(protocol.PreSleep)
			workers = append(workers, w)
		}
		client := ps.dial()
		noops := func() int {
			n := 0
			for _, w := range workers {
				for _, p := range w.take() {
					if p.Type == protocol.Noop {
						n++
					}
				}
			}
			return n
		}
		synctest.Wait()
		client.send(protocol.SubmitJobBg, "f", "", "one")
		synctest.Wait()
		if n := noops(); n != 1 {
			t.Fatalf("one job woke %d workers, want 1", n)
		}
		client.send(protocol.SubmitJobBg, "f", "", "two")
		client.send(protocol.SubmitJobBg, "f", "", "three")
		synctest.Wait()
		if n := noops(); n != 2 {
			t.Fatalf("two more jobs woke %d more workers, want 2", n)
		}
	})
}

func TestWokenWorkerTakingAJobWakesAnotherWhileWorkWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := startPipeServer(t, server.Config{})
		defer ps.stop()
		client := ps.dial()
		a, b := ps.dial(), ps.dial()
		a.send(protocol.CanDo, "f")
		synctest.Wait() // a registers first, so the wake-up cursor meets it first
		b.send(protocol.CanDo, "f")
		a.send(protocol.PreSleep)
		synctest.Wait()
		b.send(protocol.PreSleep)
		synctest.Wait()
		// Two jobs, but the wake-up for the second finds only b asleep
		// and un-woken after a was woken by the first.
		client.send(protocol.SubmitJobBg, "f", "", "1")
		synctest.Wait()
		a.expect(protocol.Noop)
		b.expect()
		client.send(protocol.SubmitJobBg, "f", "", "2")
		synctest.Wait()
		b.expect(protocol.Noop)
		a.send(protocol.GrabJob)
		b.send(protocol.GrabJob)
		synctest.Wait()
		a.expect(protocol.JobAssign)
		b.expect(protocol.JobAssign)
	})
}

func TestPreSleepWithWorkWaitingGetsImmediateNoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := startPipeServer(t, server.Config{})
		defer ps.stop()
		client := ps.dial()
		client.send(protocol.SubmitJobBg, "f", "", "x")
		synctest.Wait()
		w := ps.dial()
		w.send(protocol.CanDo, "f")
		w.send(protocol.PreSleep)
		synctest.Wait()
		w.expect(protocol.Noop)
	})
}

func TestMaxConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := startPipeServer(t, server.Config{MaxConnections: 2})
		defer ps.stop()
		a, b, c := ps.dial(), ps.dial(), ps.dial()
		synctest.Wait()
		if !c.closed() {
			t.Error("third connection open with MaxConnections 2")
		}
		if a.closed() || b.closed() {
			t.Error("a connection within the limit was closed")
		}
		a.send(protocol.EchoReq, "ping")
		synctest.Wait()
		a.expect(protocol.EchoRes)
	})
}

func TestQueueLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := startPipeServer(t, server.Config{MaxQueuedJobs: 2})
		defer ps.stop()
		c := ps.dial()
		for i := 0; i < 3; i++ {
			c.send(protocol.SubmitJobBg, "f", "", "x")
		}
		synctest.Wait()
		p := c.expect(protocol.JobCreated, protocol.JobCreated, protocol.Error)
		if code := string(p[2].Args[0]); code != protocol.CodeQueueError {
			t.Errorf("third submission: ERROR %s, want %s", code, protocol.CodeQueueError)
		}
	})
}

func TestOversizedPacketGetsErrorThenClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := startPipeServer(t, server.Config{MaxPacketSize: 1024})
		defer ps.stop()
		c := ps.dial()
		c.send(protocol.EchoReq, string(make([]byte, 2048)))
		synctest.Wait()
		p := c.expect(protocol.Error)
		if code := string(p[0].Args[0]); code != protocol.CodeArgumentTooLarge {
			t.Errorf("ERROR %s, want %s", code, protocol.CodeArgumentTooLarge)
		}
		if !c.closed() {
			t.Error("connection still open after an oversized packet")
		}
	})
}

func TestMalformedPacketKeepsStreamInSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := startPipeServer(t, server.Config{})
		defer ps.stop()
		c := ps.dial()
		// SUBMIT_JOB needs two NUL-terminated fields; this has one.
		raw := protocol.New(protocol.Req, protocol.SubmitJob, []byte("f"), []byte("data-without-unique")).Append(nil)
		c.nc.Write(raw)
		c.send(protocol.EchoReq, "after")
		synctest.Wait()
		p := c.expect(protocol.Error, protocol.EchoRes)
		if code := string(p[0].Args[0]); code != protocol.CodeInvalidArgument {
			t.Errorf("ERROR %s, want %s", code, protocol.CodeInvalidArgument)
		}
		if string(p[1].Args[0]) != "after" {
			t.Errorf("echo %q, want after", p[1].Args[0])
		}
	})
}
