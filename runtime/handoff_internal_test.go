package runtime

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// handSession is one worker session driven by hand against a raw
// server connection: a worker of one slot whose handler for "f" is the
// test's, and the server's side of the connection.
type handSession struct {
	w        *Worker
	s        *workerSession
	sc       net.Conn         // the server's side
	r        *protocol.Reader // reads what the worker sends
	loopDone chan struct{}
}

// startHandSession starts the session's grab loop (under loopCtx; its
// jobs under jobsCtx), wrapping the worker's side of the connection with
// wrap when it is not nil. It reads the worker's CAN_DO and first
// GRAB_JOB_UNIQ and answers with a JOB_ASSIGN_UNIQ of job H:1.
func startHandSession(t *testing.T, h HandlerFunc, wrap func(net.Conn) net.Conn, jobsCtx, loopCtx context.Context) *handSession {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w, err := NewWorker(WorkerConfig{Servers: []string{l.Addr().String()}, Concurrency: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ShutdownTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w.Handle("f", h)
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	if wrap != nil {
		nc = wrap(nc)
	}
	c := &conn{addr: "test", nc: nc, reader: protocol.NewReader(nc, protocol.ReaderConfig{})}
	hs := &handSession{w: w, s: w.newSession(jobsCtx, c), sc: sc,
		r: protocol.NewReader(sc, protocol.ReaderConfig{}), loopDone: make(chan struct{})}
	go func() { defer close(hs.loopDone); hs.s.grabLoop(loopCtx) }()
	for _, want := range []protocol.Type{protocol.CanDo, protocol.GrabJobUniq} {
		if p, err := hs.r.ReadPacket(); err != nil || p.Type != want {
			t.Fatalf("read %v, %v; want %v", p.Type, err, want)
		}
	}
	if _, err := sc.Write(protocol.AppendPacket(nil, protocol.Res, protocol.JobAssignUniq,
		[]byte("H:1"), []byte("f"), nil, []byte("x"))); err != nil {
		t.Fatal(err)
	}
	return hs
}

// stop ends the session and waits for its loop and jobs.
func (hs *handSession) stop() {
	hs.s.close(nil)
	<-hs.loopDone
	hs.w.jobs.Wait()
}

// awaitSlotWait returns once the job's grab loop waits for a slot (or
// after 5 s), so that a handler returning then meets the hand-off.
func awaitSlotWait(job *Job) {
	s := job.served.sess
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		s.handoffMu.Lock()
		waiting := s.wantSlot
		s.handoffMu.Unlock()
		if waiting {
			return
		}
	}
}

// TestResultAndGrabInOneWrite checks that a job finishing while its grab
// loop waits for a slot sends WORK_COMPLETE and the next GRAB_JOB_UNIQ in
// one write: the server gets both in a single read.
func TestResultAndGrabInOneWrite(t *testing.T) {
	t.Parallel()
	writes := make(chan []byte, 16)
	record := func(nc net.Conn) net.Conn { return recordingConn{Conn: nc, writes: writes} }
	ctx, cancel := context.WithCancel(t.Context())
	hs := startHandSession(t, func(ctx context.Context, job *Job) ([]byte, error) {
		awaitSlotWait(job) // the hand-off is what the test sees, not a race
		return []byte("result"), nil
	}, record, ctx, ctx)
	defer func() { cancel(); hs.stop() }()

	want := protocol.AppendPacket(nil, protocol.Req, protocol.WorkComplete, []byte("H:1"), []byte("result"))
	want = protocol.AppendPacket(want, protocol.Req, protocol.GrabJobUniq)
	for _, p := range []protocol.Type{protocol.WorkComplete, protocol.GrabJobUniq} {
		if got, err := hs.r.ReadPacket(); err != nil || got.Type != p {
			t.Fatalf("read %v, %v; want %v", got.Type, err, p)
		}
	}
	<-writes // CAN_DO
	<-writes // the first GRAB_JOB_UNIQ
	if got := <-writes; !bytes.Equal(got, want) {
		t.Fatalf("the write after the job got %q, want WORK_COMPLETE and GRAB_JOB_UNIQ together: %q", got, want)
	}
	// The loop took the hand-off: a NO_JOB is answered with PRE_SLEEP.
	if _, err := hs.sc.Write(protocol.AppendPacket(nil, protocol.Res, protocol.NoJob)); err != nil {
		t.Fatal(err)
	}
	if p, err := hs.r.ReadPacket(); err != nil || p.Type != protocol.PreSleep {
		t.Fatalf("after NO_JOB read %v, %v; want PRE_SLEEP", p.Type, err)
	}
}

// recordingConn passes a copy of every write to writes.
type recordingConn struct {
	net.Conn
	writes chan<- []byte
}

func (c recordingConn) Write(p []byte) (int, error) {
	c.writes <- bytes.Clone(p)
	return c.Conn.Write(p)
}

// TestNoGrabAfterStopBegins: a job that finishes just as the graceful
// stop begins must not ask the server for another job, which would then
// start during the stop instead of staying queued for another worker:
// the hand-off, like the grab loop's own path, lets stopping win.
func TestNoGrabAfterStopBegins(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	hs := startHandSession(t, func(_ context.Context, job *Job) ([]byte, error) {
		awaitSlotWait(job)
		// The stop begins while the loop waits for this job's slot; the
		// job returns just as the loop notices.
		s := job.served.sess
		s.handoffMu.Lock()
		cancel()
		time.Sleep(5 * time.Millisecond) // the loop wakes on ctx.Done and waits for handoffMu
		s.handoffMu.Unlock()
		return []byte("result"), nil
	}, nil, context.WithoutCancel(ctx), ctx)
	defer hs.stop()
	if p, err := hs.r.ReadPacket(); err != nil || p.Type != protocol.WorkComplete {
		t.Fatalf("read %v, %v; want WORK_COMPLETE", p.Type, err)
	}
	hs.w.jobs.Wait()
	hs.sc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if p, err := hs.r.ReadPacket(); err == nil {
		t.Errorf("after the stop began the worker sent %v", p.Type)
	}
}
