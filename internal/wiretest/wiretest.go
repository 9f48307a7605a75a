package wiretest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// DefaultTimeout bounds every read that expects something.
const DefaultTimeout = 3 * time.Second

// Quiet is how long the steps that check for silence (Sleep) wait: long
// enough for a server on loopback to have answered had it meant to.
// A check for silence can only pass wrongly on a slow machine, never
// fail wrongly.
const Quiet = 100 * time.Millisecond

// maxBody caps a reply body read by the harness, so a confused server
// cannot make a test allocate without bound.
const maxBody = 64 << 20

// Conn is one raw connection to a job server. Its methods are meant to be
// called from the test goroutine that dialed it; they are not safe for
// concurrent use.
type Conn struct {
	// Timeout bounds each read that expects a reply. Zero means
	// DefaultTimeout.
	Timeout time.Duration

	t    testing.TB
	name string
	nc   net.Conn
	br   *bufio.Reader
}

// Dial connects to addr and closes the connection when the test ends.
func Dial(t testing.TB, addr string) *Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, DefaultTimeout)
	if err != nil {
		t.Fatalf("wiretest: dial %s: %v", addr, err)
	}
	c := &Conn{t: t, name: nc.LocalAddr().String(), nc: nc, br: bufio.NewReader(nc)}
	t.Cleanup(func() { _ = nc.Close() })
	return c
}

// Close closes the connection (a client or worker going away).
func (c *Conn) Close() { _ = c.nc.Close() }

// CloseWrite half-closes the connection: the server sees end of input
// but can still send.
func (c *Conn) CloseWrite() {
	if tc, ok := c.nc.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

func (c *Conn) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// SendRaw writes b as is.
func (c *Conn) SendRaw(b []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.timeout()))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("wiretest: %s: write %q: %v", c.name, snip(b), err)
	}
}

// SendText writes an admin text line; s carries its own line ending.
func (c *Conn) SendText(s string) {
	c.t.Helper()
	c.SendRaw([]byte(s))
}

// Send writes p. A zero Magic is sent as protocol.Req.
func (c *Conn) Send(p protocol.Packet) {
	c.t.Helper()
	if p.Magic == 0 {
		p.Magic = protocol.Req
	}
	c.SendRaw(p.Append(nil))
}

// Req writes a request packet of type typ with string arguments.
func (c *Conn) Req(typ protocol.Type, args ...string) {
	c.t.Helper()
	c.Send(Packet(protocol.Req, typ, args...))
}

// Packet builds a packet from string arguments.
func Packet(m protocol.Magic, typ protocol.Type, args ...string) protocol.Packet {
	p := protocol.Packet{Magic: m, Type: typ, Args: make([][]byte, len(args))}
	for i, a := range args {
		p.Args[i] = []byte(a)
	}
	return p
}

// Raw encodes a header with any magic, type and size, followed by body;
// size is taken from body when it is negative. It builds the malformed
// inputs that Packet.Append cannot.
func Raw(magic string, typ uint32, size int64, body []byte) []byte {
	b := append([]byte(nil), magic...)
	b = binary.BigEndian.AppendUint32(b, typ)
	if size < 0 {
		size = int64(len(body))
	}
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	return append(b, body...)
}

// Body joins args with NUL separators, without a trailing NUL.
func Body(args ...string) []byte { return []byte(strings.Join(args, "\x00")) }

// Received is one unit read from the server: a binary packet (Raw holds
// its exact bytes and Packet its decoded form, when it decodes) or, when
// the first byte was not NUL, a line of text.
type Received struct {
	Raw    []byte
	Packet protocol.Packet
	Text   bool
	Err    error // decoding error of a binary packet
}

func (r Received) String() string {
	if r.Text {
		return fmt.Sprintf("text %q", r.Raw)
	}
	if r.Err != nil {
		return fmt.Sprintf("undecodable packet %q (%v)", snip(r.Raw), r.Err)
	}
	return Format(r.Packet)
}

// Format spells a packet out for failure messages: RES JOB_CREATED
// ["H:test:1"].
func Format(p protocol.Packet) string {
	var sb strings.Builder
	sb.WriteString(p.Magic.String())
	sb.WriteByte(' ')
	sb.WriteString(p.Type.String())
	sb.WriteString(" [")
	for i, a := range p.Args {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%q", snip(a))
	}
	sb.WriteByte(']')
	return sb.String()
}

func snip(b []byte) []byte {
	if len(b) > 200 {
		return append(append([]byte(nil), b[:200]...), "..."...)
	}
	return b
}

// errTimeout is what next returns when nothing arrived in time.
var errTimeout = errors.New("wiretest: timed out")

// next reads the next packet or text line, waiting at most d.
func (c *Conn) next(d time.Duration) (Received, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	defer func() { _ = c.nc.SetReadDeadline(time.Time{}) }()
	first, err := c.br.Peek(1)
	if err != nil {
		return Received{}, readErr(err)
	}
	if first[0] != 0 {
		line, err := c.br.ReadBytes('\n')
		if err != nil {
			return Received{Raw: line, Text: true}, readErr(err)
		}
		return Received{Raw: line, Text: true}, nil
	}
	hdr := make([]byte, protocol.HeaderSize)
	if _, err := io.ReadFull(c.br, hdr); err != nil {
		return Received{Raw: hdr}, readErr(err)
	}
	size := binary.BigEndian.Uint32(hdr[8:])
	if size > maxBody {
		return Received{Raw: hdr}, fmt.Errorf("wiretest: reply body of %d bytes", size)
	}
	raw := append(hdr, make([]byte, size)...)
	if _, err := io.ReadFull(c.br, raw[protocol.HeaderSize:]); err != nil {
		return Received{Raw: raw}, readErr(err)
	}
	r := Received{Raw: raw}
	p, err := protocol.NewReader(bytes.NewReader(raw), protocol.ReaderConfig{}).ReadPacket()
	if err != nil {
		r.Err = err
		r.Packet = protocol.Packet{Magic: protocol.Magic(binary.BigEndian.Uint32(hdr)), Type: protocol.Type(binary.BigEndian.Uint32(hdr[4:]))}
		return r, nil
	}
	r.Packet = clone(p)
	return r, nil
}

func readErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errTimeout
	}
	return err
}

func clone(p protocol.Packet) protocol.Packet {
	q := protocol.Packet{Magic: p.Magic, Type: p.Type, Args: make([][]byte, len(p.Args))}
	for i, a := range p.Args {
		q.Args[i] = append([]byte{}, a...)
	}
	return q
}

// Next returns the next packet from the server, failing t when nothing
// arrives within the timeout, the connection ends, or a text line or an
// undecodable packet comes instead.
func (c *Conn) Next(t testing.TB) protocol.Packet {
	t.Helper()
	r, err := c.next(c.timeout())
	if err != nil {
		t.Fatalf("wiretest: %s: waiting for a packet: %v", c.name, err)
	}
	if r.Text || r.Err != nil {
		t.Fatalf("wiretest: %s: got %s, want a packet", c.name, r)
	}
	return r.Packet
}

// Expect reads the next packet and fails t unless it is exactly a
// response of type typ with the arguments args: same bytes on the wire.
func (c *Conn) Expect(t testing.TB, typ protocol.Type, args ...string) protocol.Packet {
	t.Helper()
	return c.ExpectPacket(t, Packet(protocol.Res, typ, args...))
}

// ExpectPacket reads the next packet and fails t unless its bytes equal
// want's encoding.
func (c *Conn) ExpectPacket(t testing.TB, want protocol.Packet) protocol.Packet {
	t.Helper()
	r, err := c.next(c.timeout())
	if err != nil {
		t.Fatalf("wiretest: %s: want %s: %v", c.name, Format(want), err)
	}
	if !bytes.Equal(r.Raw, want.Append(nil)) {
		t.Fatalf("wiretest: %s: packet mismatch\n got: %s\nwant: %s", c.name, r, Format(want))
	}
	return r.Packet
}

// ExpectError reads the next packet and fails t unless it is ERROR with
// this code and text.
func (c *Conn) ExpectError(t testing.TB, code, text string) {
	t.Helper()
	c.Expect(t, protocol.Error, code, text)
}

// ExpectErrorCode reads the next packet and fails t unless it is ERROR
// with this code; the text is returned, not compared.
func (c *Conn) ExpectErrorCode(t testing.TB, code string) string {
	t.Helper()
	p := c.Next(t)
	if p.Type != protocol.Error || p.Magic != protocol.Res || string(p.Arg(0)) != code {
		t.Fatalf("wiretest: %s: got %s, want RES ERROR [%q, ...]", c.name, Format(p), code)
	}
	return string(p.Arg(1))
}

// ExpectNothing fails t if anything (or the end of the connection)
// arrives within d.
func (c *Conn) ExpectNothing(t testing.TB, d time.Duration) {
	t.Helper()
	r, err := c.next(d)
	switch {
	case errors.Is(err, errTimeout):
		return
	case err != nil:
		t.Fatalf("wiretest: %s: want silence for %v, connection ended: %v", c.name, d, err)
	default:
		t.Fatalf("wiretest: %s: want silence for %v, got %s", c.name, d, r)
	}
}

// ExpectClosed fails t unless the server closes the connection within
// the timeout without sending anything more.
func (c *Conn) ExpectClosed(t testing.TB) {
	t.Helper()
	r, err := c.next(c.timeout())
	switch {
	case err == nil:
		t.Fatalf("wiretest: %s: want the connection closed, got %s", c.name, r)
	case errors.Is(err, errTimeout):
		t.Fatalf("wiretest: %s: want the connection closed, still open after %v", c.name, c.timeout())
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return
	default:
		t.Fatalf("wiretest: %s: want the connection closed, got error %v", c.name, err)
	}
}

// ExpectOpen checks that the connection is still usable and in sync:
// an ECHO_REQ gets its ECHO_RES as the very next packet.
func (c *Conn) ExpectOpen(t testing.TB) {
	t.Helper()
	c.Req(protocol.EchoReq, "ping")
	c.Expect(t, protocol.EchoRes, "ping")
}

// ReadText reads one reply of the admin text protocol: a single line
// starting with "OK" or "ERR", or lines up to and including ".\n".
func (c *Conn) ReadText(t testing.TB) string {
	t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(c.timeout()))
	defer func() { _ = c.nc.SetReadDeadline(time.Time{}) }()
	var sb strings.Builder
	for i := 0; ; i++ {
		line, err := c.br.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			t.Fatalf("wiretest: %s: reading admin reply (so far %q): %v", c.name, sb.String(), readErr(err))
		}
		if i == 0 && (strings.HasPrefix(line, "OK") || strings.HasPrefix(line, "ERR")) {
			return line
		}
		if line == ".\n" {
			return sb.String()
		}
		if sb.Len() > maxBody {
			t.Fatalf("wiretest: %s: admin reply larger than %d bytes", c.name, maxBody)
		}
	}
}

// ReadLine reads one line of text (a reply such as "OK 1234\n" whose
// shape ReadText cannot guess).
func (c *Conn) ReadLine(t testing.TB) string {
	t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(c.timeout()))
	defer func() { _ = c.nc.SetReadDeadline(time.Time{}) }()
	line, err := c.br.ReadString('\n')
	if err != nil {
		t.Fatalf("wiretest: %s: reading a line (so far %q): %v", c.name, line, readErr(err))
	}
	return line
}

// Admin sends an admin command line (with "\n" appended) and returns
// its reply as ReadText reads it.
func (c *Conn) Admin(t testing.TB, line string) string {
	t.Helper()
	c.SendText(line + "\n")
	return c.ReadText(t)
}

// ExpectText reads one admin reply and fails t unless it equals want.
func (c *Conn) ExpectText(t testing.TB, want string) {
	t.Helper()
	if got := c.ReadText(t); got != want {
		t.Fatalf("wiretest: %s: admin reply mismatch\n got: %q\nwant: %q", c.name, got, want)
	}
}

// TryNext returns the next packet and true, or false when nothing
// arrives within the timeout. It fails t when the connection ends or a
// text line or an undecodable packet arrives.
func (c *Conn) TryNext(t testing.TB) (protocol.Packet, bool) {
	t.Helper()
	r, err := c.next(c.timeout())
	if errors.Is(err, errTimeout) {
		return protocol.Packet{}, false
	}
	if err != nil {
		t.Fatalf("wiretest: %s: waiting for a packet: %v", c.name, err)
	}
	if r.Text || r.Err != nil {
		t.Fatalf("wiretest: %s: got %s, want a packet", c.name, r)
	}
	return r.Packet, true
}

// ExpectNoReply fails t if a packet or text arrives within d; unlike
// ExpectNothing it accepts the server closing the connection, for
// gearmand's answers that are sometimes silence and sometimes a hang-up.
// It reports whether the connection was closed.
func (c *Conn) ExpectNoReply(t testing.TB, d time.Duration) (closed bool) {
	t.Helper()
	r, err := c.next(d)
	switch {
	case errors.Is(err, errTimeout):
		return false
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return true
	case err != nil:
		t.Fatalf("wiretest: %s: want no reply for %v: %v", c.name, d, err)
	default:
		t.Fatalf("wiretest: %s: want no reply for %v, got %s", c.name, d, r)
	}
	return false
}

// ReadAny returns the next packet or text line, whatever it is, failing
// t when nothing arrives within the timeout or the connection ends.
func (c *Conn) ReadAny(t testing.TB) Received {
	t.Helper()
	r, err := c.next(c.timeout())
	if err != nil {
		t.Fatalf("wiretest: %s: waiting for a reply: %v", c.name, err)
	}
	return r
}
