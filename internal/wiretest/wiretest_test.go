package wiretest_test

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
)

// fakeServer accepts one connection and runs script on it.
func fakeServer(t *testing.T, script func(nc net.Conn, br *bufio.Reader)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := l.Accept()
		l.Close()
		if err != nil {
			return
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		script(nc, bufio.NewReader(nc))
	}()
	t.Cleanup(func() {
		l.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("fake server did not finish")
		}
	})
	return l.Addr().String()
}

// recorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, so failure paths can be checked.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fails runs f with a recorder and returns the failure message ("" if
// f did not fail).
func fails(t *testing.T, f func(tb testing.TB)) string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msg
}

func res(typ protocol.Type, args ...string) []byte {
	return wiretest.Packet(protocol.Res, typ, args...).Append(nil)
}

func TestExpect(t *testing.T) {
	t.Parallel()
	addr := fakeServer(t, func(nc net.Conn, br *bufio.Reader) {
		// Answer a SUBMIT_JOB, split across writes, then a wrong packet.
		hdr := make([]byte, 12)
		if _, err := br.Read(hdr); err != nil {
			return
		}
		b := res(protocol.JobCreated, "H:x:1")
		nc.Write(b[:5])
		time.Sleep(10 * time.Millisecond)
		nc.Write(b[5:])
		nc.Write(res(protocol.WorkComplete, "H:x:1", "other"))
		nc.Write(res(protocol.Error, "JOB_NOT_FOUND", "nope"))
	})
	c := wiretest.Dial(t, addr)
	c.Req(protocol.SubmitJob, "f", "", "x")
	if h := c.Created(t); h != "H:x:1" {
		t.Fatalf("Created = %q", h)
	}
	msg := fails(t, func(tb testing.TB) { c.Expect(tb, protocol.WorkComplete, "H:x:1", "want") })
	if !strings.Contains(msg, `got: RES WORK_COMPLETE ["H:x:1", "other"]`) || !strings.Contains(msg, `want: RES WORK_COMPLETE ["H:x:1", "want"]`) {
		t.Fatalf("mismatch message = %q", msg)
	}
	if text := c.ExpectErrorCode(t, "JOB_NOT_FOUND"); text != "nope" {
		t.Fatalf("ExpectErrorCode text = %q", text)
	}
}

func TestExpectNothingAndClosed(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	addr := fakeServer(t, func(nc net.Conn, br *bufio.Reader) {
		<-release
		nc.Write(res(protocol.Noop))
		time.Sleep(20 * time.Millisecond)
	})
	c := wiretest.Dial(t, addr)
	start := time.Now()
	c.ExpectNothing(t, 50*time.Millisecond)
	if d := time.Since(start); d < 50*time.Millisecond || d > 2*time.Second {
		t.Fatalf("ExpectNothing took %v", d)
	}
	close(release)
	if msg := fails(t, func(tb testing.TB) { c.ExpectNothing(tb, time.Second) }); !strings.Contains(msg, "NOOP") {
		t.Fatalf("ExpectNothing with a NOOP arriving: %q", msg)
	}
	c.ExpectClosed(t)
}

func TestExpectClosedTimesOut(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	addr := fakeServer(t, func(nc net.Conn, br *bufio.Reader) { <-hold })
	t.Cleanup(func() { close(hold) }) // runs before fakeServer's cleanup
	c := wiretest.Dial(t, addr)
	c.Timeout = 50 * time.Millisecond
	if msg := fails(t, func(tb testing.TB) { c.ExpectClosed(tb) }); !strings.Contains(msg, "still open") {
		t.Fatalf("ExpectClosed on an open connection: %q", msg)
	}
	if closed := c.ExpectNoReply(t, 50*time.Millisecond); closed {
		t.Fatal("ExpectNoReply reported a close on an open connection")
	}
}

func TestReadText(t *testing.T) {
	t.Parallel()
	addr := fakeServer(t, func(nc net.Conn, br *bufio.Reader) {
		for range 4 {
			if _, err := br.ReadString('\n'); err != nil {
				return
			}
		}
		nc.Write([]byte("f\t1\t0\t0\ng\t0\t0\t1\n.\nOK\r\nERR UNKNOWN_JOB\r\n"))
		nc.Write(res(protocol.EchoRes, "bin"))
		nc.Write([]byte(".\n"))
	})
	c := wiretest.Dial(t, addr)
	c.SendText("status\nversion\ncancel job x\nstatus\n")
	c.ExpectText(t, "f\t1\t0\t0\ng\t0\t0\t1\n.\n")
	c.ExpectText(t, "OK\r\n")
	if got := c.ReadText(t); got != "ERR UNKNOWN_JOB\r\n" {
		t.Fatalf("ReadText = %q", got)
	}
	c.Expect(t, protocol.EchoRes, "bin")
	if msg := fails(t, func(tb testing.TB) { c.Expect(tb, protocol.Noop) }); !strings.Contains(msg, `text ".\n"`) {
		t.Fatalf("Expect on a text line: %q", msg)
	}
}

func TestRaw(t *testing.T) {
	t.Parallel()
	got := wiretest.Raw("\x00REQ", uint32(protocol.CanDo), -1, []byte("f"))
	want := wiretest.Packet(protocol.Req, protocol.CanDo, "f").Append(nil)
	if string(got) != string(want) {
		t.Fatalf("Raw = %q, want %q", got, want)
	}
	if got := wiretest.Raw("\x00REQ", 43, 7, nil); string(got) != "\x00REQ\x00\x00\x00\x2b\x00\x00\x00\x07" {
		t.Fatalf("Raw with an explicit size = %q", got)
	}
	if got := string(wiretest.Body("a", "b", "")); got != "a\x00b\x00" {
		t.Fatalf("Body = %q", got)
	}
}
