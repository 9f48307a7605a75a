package server_test

import (
	"net"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

// Time-dependent behaviour runs in synctest bubbles: virtual time, no
// sleeps in real time, no flakiness.

func TestEpochJobWakesSleepingWorkerAtItsTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := startPipeServer(t, server.Config{JobHandlePrefix: "H:t"})
		defer ps.stop()
		worker := ps.dial()
		client := ps.dial()
		worker.send(protocol.CanDo, "f")
		worker.send(protocol.PreSleep)
		at := time.Now().Add(time.Minute).Unix()
		client.send(protocol.SubmitJobEpoch, "f", "", strconv.FormatInt(at, 10), "payload")
		synctest.Wait()
		client.expect(protocol.JobCreated)
		worker.expect() // nothing yet: the job is not due

		time.Sleep(time.Until(time.Unix(at, 0)) - time.Second)
		synctest.Wait()
		worker.expect()

		time.Sleep(2 * time.Second)
		synctest.Wait()
		worker.expect(protocol.Noop) // gearmand 1.1.20 never sends this
		worker.send(protocol.GrabJobUniq)
		synctest.Wait()
		p := worker.expect(protocol.JobAssignUniq)
		if got := string(p[0].Args[3]); got != "payload" {
			t.Errorf("assigned payload %q, want %q", got, "payload")
		}
	})
}

func TestFutureEpochJobDoesNotBlockLowJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := startPipeServer(t, server.Config{JobHandlePrefix: "H:t"})
		defer ps.stop()
		client := ps.dial()
		at := time.Now().Add(time.Hour).Unix()
		client.send(protocol.SubmitJobEpoch, "f", "", strconv.FormatInt(at, 10), "later")
		client.send(protocol.SubmitJobLowBg, "f", "", "now")
		synctest.Wait()
		client.expect(protocol.JobCreated, protocol.JobCreated)
		worker := ps.dial()
		worker.send(protocol.CanDo, "f")
		worker.send(protocol.GrabJob)
		synctest.Wait()
		p := worker.expect(protocol.JobAssign)
		if got := string(p[0].Args[2]); got != "now" {
			t.Errorf("assigned %q, want the LOW job %q", got, "now")
		}
	})
}

func TestCanDoTimeoutRequeuesOnlyThatJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := startPipeServer(t, server.Config{JobHandlePrefix: "H:t"})
		defer ps.stop()
		client := ps.dial()
		slow := ps.dial()
		slow.send(protocol.CanDoTimeout, "f", "1500")
		client.send(protocol.SubmitJob, "f", "", "a")
		synctest.Wait()
		handle := string(client.expect(protocol.JobCreated)[0].Args[0])
		slow.send(protocol.GrabJob)
		synctest.Wait()
		slow.expect(protocol.JobAssign)

		time.Sleep(1400 * time.Millisecond)
		synctest.Wait()
		slow.send(protocol.WorkStatus, handle, "1", "2")
		synctest.Wait()
		client.expect(protocol.WorkStatus) // still assigned before the timeout

		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		// Requeued: the slow worker no longer owns it.
		slow.send(protocol.WorkComplete, handle, "late")
		synctest.Wait()
		if p := slow.expect(protocol.Error); string(p[0].Args[0]) != protocol.CodeJobNotFound {
			t.Errorf("late WORK_COMPLETE got ERROR %q, want JOB_NOT_FOUND", p[0].Args[0])
		}
		client.expect() // clients are not told about a requeue

		fast := ps.dial()
		fast.send(protocol.CanDo, "f")
		fast.send(protocol.GrabJob)
		synctest.Wait()
		fast.expect(protocol.JobAssign)
		fast.send(protocol.WorkComplete, handle, "done")
		synctest.Wait()
		if p := client.expect(protocol.WorkComplete); string(p[0].Args[1]) != "done" {
			t.Errorf("client got %q, want done", p[0].Args[1])
		}
	})
}

func TestCanDoTimeoutTimerStopsWhenJobEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := startPipeServer(t, server.Config{JobHandlePrefix: "H:t"})
		defer ps.stop()
		client := ps.dial()
		w := ps.dial()
		w.send(protocol.CanDoTimeout, "f", "1000")
		client.send(protocol.SubmitJob, "f", "", "a")
		synctest.Wait()
		w.send(protocol.GrabJob)
		synctest.Wait()
		handle := string(client.expect(protocol.JobCreated)[0].Args[0])
		w.expect(protocol.JobAssign)
		w.send(protocol.WorkComplete, handle, "ok")
		synctest.Wait()
		client.expect(protocol.WorkComplete)

		// gearmand's stale per-connection timer would fire here and
		// corrupt its running count (its issue #301).
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if st := ps.srv.Stats(); st.Jobs != 0 || st.Running != 0 {
			t.Errorf("after completion and timeout: %+v, want no jobs", st)
		}
		admin := ps.dial()
		admin.nc.Write([]byte("status\n"))
		synctest.Wait()
		var lines []string
		for _, x := range admin.take() {
			lines = append(lines, string(x.Args[0]))
		}
		if want := []string{"f\t0\t0\t1", "."}; !slices.Equal(lines, want) {
			t.Errorf("status = %q, want %q", lines, want)
		}
	})
}

func TestScheduledJobRunsEveryMatchingMinute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := startPipeServer(t, server.Config{JobHandlePrefix: "H:t"})
		defer ps.stop()
		client := ps.dial()
		w := ps.dial()
		w.send(protocol.CanDo, "tick")
		client.send(protocol.SubmitJobSched, "tick", "u1", "*", "*", "*", "*", "*", "run")
		synctest.Wait()
		handle := string(client.expect(protocol.JobCreated)[0].Args[0])
		for run := 0; run < 3; run++ {
			w.send(protocol.PreSleep)
			synctest.Wait()
			w.expect()
			next := time.Now().Truncate(time.Minute).Add(time.Minute)
			time.Sleep(time.Until(next) + time.Millisecond)
			synctest.Wait()
			w.expect(protocol.Noop)
			w.send(protocol.GrabJob)
			synctest.Wait()
			p := w.expect(protocol.JobAssign)
			if string(p[0].Args[0]) != handle {
				t.Fatalf("run %d: handle %q, want %q", run, p[0].Args[0], handle)
			}
			w.send(protocol.WorkComplete, handle, "")
			synctest.Wait()
		}
		if st := ps.srv.Stats(); st.Jobs != 1 {
			t.Errorf("scheduled job count = %d, want 1 (it recurs)", st.Jobs)
		}
	})
}

func TestSlowConsumerIsCutOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := startPipeServer(t, server.Config{MaxPacketSize: 32 << 10, MaxOutboundBytes: 64 << 10})
		defer ps.stop()
		a, b := newRawPipe(ps)
		defer a.Close()
		// Send echoes but never read: replies pile up in the outbox.
		payload := make([]byte, 1024)
		pkt := protocol.New(protocol.Req, protocol.EchoReq, payload).Append(nil)
		done := make(chan error, 1)
		go func() {
			for i := 0; i < 1000; i++ {
				if _, err := a.Write(pkt); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		synctest.Wait()
		if err := <-done; err == nil {
			t.Fatal("all 1000 echoes were accepted by a peer that never reads; want the connection cut")
		}
		_ = b
		if st := ps.srv.Stats(); st.Connections != 0 {
			t.Errorf("connections = %d after cutting off the slow consumer, want 0", st.Connections)
		}
	})
}

// newRawPipe connects a bare pipe with no reader on the peer side.
func newRawPipe(ps *pipeServer) (peer, srvSide net.Conn) {
	a, b := net.Pipe()
	ps.l.conns <- b
	return a, b
}

func TestShutdownWaitsForRunningJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := startPipeServer(t, server.Config{JobHandlePrefix: "H:t"})
		defer ps.stop()
		client := ps.dial()
		w := ps.dial()
		w.send(protocol.CanDo, "f")
		client.send(protocol.SubmitJob, "f", "", "x")
		synctest.Wait()
		w.send(protocol.GrabJob)
		synctest.Wait()
		handle := string(client.expect(protocol.JobCreated)[0].Args[0])
		w.expect(protocol.JobAssign)

		shutdownDone := make(chan error, 1)
		go func() { shutdownDone <- ps.srv.Shutdown(t.Context()) }()
		synctest.Wait()
		select {
		case err := <-shutdownDone:
			t.Fatalf("Shutdown returned %v while a job was running", err)
		default:
		}
		// A draining server hands out no more work.
		client.send(protocol.SubmitJob, "f", "", "y")
		w.send(protocol.GrabJob)
		synctest.Wait()
		client.expect(protocol.JobCreated)
		w.expect(protocol.NoJob)

		time.Sleep(time.Second)
		w.send(protocol.WorkComplete, handle, "result")
		synctest.Wait()
		if err := <-shutdownDone; err != nil {
			t.Errorf("Shutdown = %v, want nil", err)
		}
		got := client.take()
		if len(got) == 0 || got[0].Type != protocol.WorkComplete || string(got[0].Args[1]) != "result" {
			t.Errorf("client got %v, want the WORK_COMPLETE before the close", got)
		}
		ps.wg.Wait()
	})
}

func TestShutdownTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := startPipeServer(t, server.Config{})
		defer ps.stop()
		client := ps.dial()
		w := ps.dial()
		w.send(protocol.CanDo, "f")
		client.send(protocol.SubmitJob, "f", "", "x")
		synctest.Wait()
		w.send(protocol.GrabJob)
		synctest.Wait()
		ctx, cancel := contextWithTimeout(t, 3*time.Second)
		defer cancel()
		start := time.Now()
		err := ps.srv.Shutdown(ctx)
		if err == nil || time.Since(start) != 3*time.Second {
			t.Errorf("Shutdown = %v after %v, want a deadline error after 3s", err, time.Since(start))
		}
		ps.wg.Wait()
		if !client.closedAfterWait() || !w.closedAfterWait() {
			t.Error("connections still open after Shutdown gave up")
		}
	})
}

func (pc *pipeConn) closedAfterWait() bool {
	synctest.Wait()
	return pc.closed()
}
