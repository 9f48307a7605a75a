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

// TestResultAndGrabInOneWrite checks that a job finishing while its grab
// loop waits for a slot sends WORK_COMPLETE and the next GRAB_JOB_UNIQ in
// one write: the server gets both in a single read.
func TestResultAndGrabInOneWrite(t *testing.T) {
	t.Parallel()
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
	w.Handle("f", HandlerFunc(func(ctx context.Context, job *Job) ([]byte, error) {
		// Return only once the grab loop waits for this job's slot, so
		// the hand-off is what the test sees, not a race.
		s := job.served.sess
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			s.handoffMu.Lock()
			waiting := s.wantSlot
			s.handoffMu.Unlock()
			if waiting {
				break
			}
		}
		return []byte("result"), nil
	}))
	// Drive one session by hand over a connection that records each
	// write the worker makes.
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	writes := make(chan []byte, 16)
	rec := recordingConn{Conn: nc, writes: writes}
	c := &conn{addr: "test", nc: rec, reader: protocol.NewReader(rec, protocol.ReaderConfig{})}
	ctx, cancel := context.WithCancel(t.Context())
	s := w.newSession(ctx, c)
	loopDone := make(chan struct{})
	go func() { defer close(loopDone); s.grabLoop(ctx) }()
	defer func() { cancel(); s.close(nil); <-loopDone; w.jobs.Wait() }()

	r := protocol.NewReader(sc, protocol.ReaderConfig{})
	for _, want := range []protocol.Type{protocol.CanDo, protocol.GrabJobUniq} {
		p, err := r.ReadPacket()
		if err != nil || p.Type != want {
			t.Fatalf("read %v, %v; want %v", p.Type, err, want)
		}
	}
	if _, err := sc.Write(protocol.AppendPacket(nil, protocol.Res, protocol.JobAssignUniq,
		[]byte("H:1"), []byte("f"), nil, []byte("x"))); err != nil {
		t.Fatal(err)
	}
	want := protocol.AppendPacket(nil, protocol.Req, protocol.WorkComplete, []byte("H:1"), []byte("result"))
	want = protocol.AppendPacket(want, protocol.Req, protocol.GrabJobUniq)
	for _, p := range []protocol.Type{protocol.WorkComplete, protocol.GrabJobUniq} {
		if got, err := r.ReadPacket(); err != nil || got.Type != p {
			t.Fatalf("read %v, %v; want %v", got.Type, err, p)
		}
	}
	<-writes // CAN_DO
	<-writes // the first GRAB_JOB_UNIQ
	if got := <-writes; !bytes.Equal(got, want) {
		t.Fatalf("the write after the job got %q, want WORK_COMPLETE and GRAB_JOB_UNIQ together: %q", got, want)
	}
	// The loop took the hand-off: a NO_JOB is answered with PRE_SLEEP.
	if _, err := sc.Write(protocol.AppendPacket(nil, protocol.Res, protocol.NoJob)); err != nil {
		t.Fatal(err)
	}
	if p, err := r.ReadPacket(); err != nil || p.Type != protocol.PreSleep {
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
	ctx, cancel := context.WithCancel(t.Context())
	w.Handle("f", HandlerFunc(func(_ context.Context, job *Job) ([]byte, error) {
		s := job.served.sess
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			s.handoffMu.Lock()
			waiting := s.wantSlot
			s.handoffMu.Unlock()
			if waiting {
				break
			}
		}
		// The stop begins while the loop waits for this job's slot; the
		// job returns just as the loop notices.
		s.handoffMu.Lock()
		cancel()
		time.Sleep(5 * time.Millisecond) // the loop wakes on ctx.Done and waits for handoffMu
		s.handoffMu.Unlock()
		return []byte("result"), nil
	}))
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	sc.SetDeadline(time.Now().Add(10 * time.Second))
	c := &conn{addr: "test", nc: nc, reader: protocol.NewReader(nc, protocol.ReaderConfig{})}
	s := w.newSession(context.WithoutCancel(ctx), c)
	loopDone := make(chan struct{})
	go func() { defer close(loopDone); s.grabLoop(ctx) }()
	r := protocol.NewReader(sc, protocol.ReaderConfig{})
	for _, want := range []protocol.Type{protocol.CanDo, protocol.GrabJobUniq} {
		if p, err := r.ReadPacket(); err != nil || p.Type != want {
			t.Fatalf("read %v, %v; want %v", p.Type, err, want)
		}
	}
	sc.Write(protocol.AppendPacket(nil, protocol.Res, protocol.JobAssignUniq, []byte("H:1"), []byte("f"), nil, []byte("x")))
	if p, err := r.ReadPacket(); err != nil || p.Type != protocol.WorkComplete {
		t.Fatalf("read %v, %v; want WORK_COMPLETE", p.Type, err)
	}
	w.jobs.Wait()
	sc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	p, err := r.ReadPacket()
	if err == nil {
		t.Errorf("after the stop began the worker sent %v", p.Type)
	}
	s.close(nil)
	<-loopDone
}
