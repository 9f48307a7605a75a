package runtime_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/runtime"
)

// fakeServer accepts one connection and answers each packet with what
// respond returns (raw bytes), so tests can reproduce exact server
// behaviour.
func fakeServer(t *testing.T, respond func(p protocol.Packet) []byte) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		go func() { <-t.Context().Done(); nc.Close() }()
		r := protocol.NewReader(nc, protocol.ReaderConfig{})
		for {
			p, err := r.ReadPacket()
			if err != nil {
				return
			}
			if out := respond(p); len(out) > 0 {
				if _, err := nc.Write(out); err != nil {
					return
				}
			}
		}
	}()
	return l.Addr().String()
}

func res(t protocol.Type, args ...string) []byte {
	b := make([][]byte, len(args))
	for i, a := range args {
		b[i] = []byte(a)
	}
	return protocol.AppendPacket(nil, protocol.Res, t, b...)
}

// TestRawServerReplies checks the client against exact packets: gearmand's
// WORK_FAIL with a trailing NUL, ERROR replies matched to the oldest
// request, and a server that refuses the exceptions option.
func TestRawServerReplies(t *testing.T) {
	t.Parallel()
	submits := 0
	addr := fakeServer(t, func(p protocol.Packet) []byte {
		switch p.Type {
		case protocol.OptionReq:
			return res(protocol.Error, "UNKNOWN_OPTION", "Server does not recognize given option")
		case protocol.SubmitJob:
			submits++
			switch string(p.Arg(0)) {
			case "full":
				return res(protocol.Error, "QUEUE_ERROR", "Job queue is full")
			case "downgraded":
				h := "H:fake:" + string(rune('0'+submits))
				// gearmand's WORK_FAIL for an exception sent to a client
				// without the option: the handle plus a NUL.
				return append(res(protocol.JobCreated, h), res(protocol.WorkFail, h+"\x00")...)
			}
		case protocol.EchoReq:
			return res(protocol.EchoRes, string(p.Arg(0)))
		}
		return nil
	})
	c := newTestClient(t, addr)
	ctx := testContext(t, 5*time.Second)

	_, err := c.Submit(ctx, runtime.Job{Function: "full"})
	if want := (&protocol.ServerError{Code: protocol.CodeQueueError}); !errors.Is(err, want) {
		t.Errorf("Submit to a full queue = %v, want QUEUE_ERROR", err)
	}
	_, err = c.Do(ctx, runtime.Job{Function: "downgraded"})
	var je *runtime.JobError
	if !errors.As(err, &je) || je.Kind != runtime.EventFail || je.Handle != "H:fake:2" {
		t.Errorf("Do = %v, want a WORK_FAIL *JobError for H:fake:2", err)
	}
	// Still in step after the ERROR replies.
	if out, err := c.Echo(ctx, []byte("in step")); err != nil || string(out) != "in step" {
		t.Errorf("Echo = %q, %v", out, err)
	}
}

// TestUnsolicitedReplyDropsConnection: a reply nobody asked for means the
// stream is out of step; the client drops the connection rather than
// hand replies to the wrong requests.
func TestUnsolicitedReplyDropsConnection(t *testing.T) {
	t.Parallel()
	addr := fakeServer(t, func(p protocol.Packet) []byte {
		switch p.Type {
		case protocol.OptionReq:
			return res(protocol.OptionRes, "exceptions")
		case protocol.EchoReq:
			// Two replies for one request.
			return append(res(protocol.EchoRes, "a"), res(protocol.EchoRes, "b")...)
		case protocol.SubmitJob:
			return res(protocol.JobCreated, "H:fake:1")
		}
		return nil
	})
	c := newTestClient(t, addr)
	ctx := testContext(t, 5*time.Second)
	task, err := c.Submit(ctx, runtime.Job{Function: "f"})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.Echo(ctx, []byte("a")); err != nil || string(out) != "a" {
		t.Fatalf("Echo = %q, %v", out, err)
	}
	if _, err := task.Wait(ctx); !errors.Is(err, runtime.ErrConnectionLost) {
		t.Errorf("task after an out-of-step reply: %v, want ErrConnectionLost", err)
	}
}
