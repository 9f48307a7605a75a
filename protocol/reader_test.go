package protocol_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime/metrics"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/gearflow/gearflow/protocol"
)

// raw builds a packet from a header and a literal body, bypassing Append.
func raw(m protocol.Magic, t protocol.Type, body string) []byte {
	return rawSize(m, t, uint32(len(body)), body)
}

func rawSize(m protocol.Magic, t protocol.Type, size uint32, body string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(m))
	b = binary.BigEndian.AppendUint32(b, uint32(t))
	b = binary.BigEndian.AppendUint32(b, size)
	return append(b, body...)
}

func args(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func strs(p protocol.Packet) []string {
	out := make([]string, len(p.Args))
	for i, a := range p.Args {
		out[i] = string(a)
	}
	return out
}

func equalArgs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// sampleArgs returns arguments for type t: terminated ones are plain
// strings, the last one of a data type holds NUL bytes.
func sampleArgs(t protocol.Type) [][]byte {
	n := t.NumArgs()
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte{byte('a' + i), byte('0' + i%10)}
	}
	if n > 0 {
		// The last argument is never terminated, so it may hold NULs
		// whether or not the type has data.
		out[n-1] = []byte("x\x00y\x00")
	}
	return out
}

func TestEncodeDecodeEveryType(t *testing.T) {
	t.Parallel()
	for _, tc := range typeTable {
		for _, m := range []protocol.Magic{protocol.Req, protocol.Res} {
			t.Run(tc.name+"/"+m.String(), func(t *testing.T) {
				t.Parallel()
				p := protocol.New(m, tc.t, sampleArgs(tc.t)...)
				if err := p.Validate(); err != nil {
					t.Fatalf("Validate: %v", err)
				}
				wire := p.Append(nil)
				if len(wire) != protocol.HeaderSize+p.BodySize() {
					t.Fatalf("encoded %d bytes, want %d", len(wire), protocol.HeaderSize+p.BodySize())
				}
				if got := binary.BigEndian.Uint32(wire[8:12]); int(got) != p.BodySize() {
					t.Fatalf("header size %d, BodySize %d", got, p.BodySize())
				}
				if !bytes.Equal(wire, protocol.AppendPacket(nil, m, tc.t, p.Args...)) {
					t.Fatalf("AppendPacket differs from Append")
				}
				r := protocol.NewReader(bytes.NewReader(wire), protocol.ReaderConfig{})
				got, err := r.ReadPacket()
				if err != nil {
					t.Fatalf("ReadPacket: %v", err)
				}
				if got.Magic != m || got.Type != tc.t || !equalArgs(got.Args, p.Args) {
					t.Fatalf("read %v %v %q, want %v %v %q", got.Magic, got.Type, strs(got), m, tc.t, strs(p))
				}
				if _, err := r.ReadPacket(); err != io.EOF {
					t.Fatalf("after the packet: %v, want io.EOF", err)
				}
			})
		}
	}
}

func TestDecodeBodies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		t    protocol.Type
		body string
		want []string
	}{
		{"can_do keeps trailing NUL", protocol.CanDo, "rev\x00", []string{"rev\x00"}},
		{"can_do plain", protocol.CanDo, "rev", []string{"rev"}},
		{"can_do empty", protocol.CanDo, "", []string{""}},
		{"get_status unterminated", protocol.GetStatus, "H:x:1\x00\x00", []string{"H:x:1\x00\x00"}},
		{"option_req", protocol.OptionReq, "exceptions", []string{"exceptions"}},
		{"error last unterminated", protocol.Error, "CODE\x00text\x00more", []string{"CODE", "text\x00more"}},
		{"work_status", protocol.WorkStatus, "H:1\x001\x002", []string{"H:1", "1", "2"}},
		{"status_res", protocol.StatusRes, "H\x001\x000\x003\x004", []string{"H", "1", "0", "3", "4"}},
		{"submit_job empty data", protocol.SubmitJob, "f\x00u\x00", []string{"f", "u", ""}},
		{"submit_job data with NULs", protocol.SubmitJob, "f\x00\x00d\x00a\x00", []string{"f", "", "d\x00a\x00"}},
		{"submit_reduce_job 4 fields", protocol.SubmitReduceJob, "map\x00u1\x00red\x00\x00payload",
			[]string{"map", "u1", "red", "", "payload"}},
		{"submit_reduce_job_bg", protocol.SubmitReduceJobBackground, "m\x00u\x00r\x00agg\x00",
			[]string{"m", "u", "r", "agg", ""}},
		{"submit_job_sched", protocol.SubmitJobSched, "f\x00u\x001\x002\x003\x004\x005\x00d",
			[]string{"f", "u", "1", "2", "3", "4", "5", "d"}},
		{"echo data only", protocol.EchoReq, "\x00\x00hi", []string{"\x00\x00hi"}},
		{"echo empty", protocol.EchoRes, "", []string{""}},
		{"noop", protocol.Noop, "", []string{}},
		{"job_assign_all", protocol.JobAssignAll, "H\x00f\x00u\x00r\x00data", []string{"H", "f", "u", "r", "data"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := protocol.NewReader(bytes.NewReader(raw(protocol.Req, tc.t, tc.body)), protocol.ReaderConfig{})
			p, err := r.ReadPacket()
			if err != nil {
				t.Fatalf("ReadPacket: %v", err)
			}
			if got := strs(p); strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Fatalf("args %q, want %q", got, tc.want)
			}
			if again := p.Append(nil); !bytes.Equal(again, raw(protocol.Req, tc.t, tc.body)) {
				t.Fatalf("re-encoded %q", again)
			}
		})
	}
}

func TestReaderSplitInput(t *testing.T) {
	t.Parallel()
	var stream []byte
	var want []protocol.Packet
	for _, tc := range typeTable {
		p := protocol.New(protocol.Req, tc.t, sampleArgs(tc.t)...)
		stream = p.Append(stream)
		want = append(want, p)
	}
	big := protocol.New(protocol.Res, protocol.WorkData, []byte("H:1"), bytes.Repeat([]byte{0, 1, 2}, 40000))
	stream = big.Append(stream)
	want = append(want, big)

	wrappers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"OneByteReader", iotest.OneByteReader},
		{"HalfReader", iotest.HalfReader},
		{"DataErrReader", iotest.DataErrReader},
	}
	for _, w := range wrappers {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			r := protocol.NewReader(w.wrap(bytes.NewReader(stream)), protocol.ReaderConfig{})
			for i, wp := range want {
				p, err := r.ReadPacket()
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				if p.Magic != wp.Magic || p.Type != wp.Type || !equalArgs(p.Args, wp.Args) {
					t.Fatalf("packet %d: got %v %d args, want %v", i, p.Type, len(p.Args), wp.Type)
				}
			}
			if _, err := r.ReadPacket(); err != io.EOF {
				t.Fatalf("at end: %v, want io.EOF", err)
			}
		})
	}
}

func TestReaderErrors(t *testing.T) {
	t.Parallel()
	next := raw(protocol.Req, protocol.CanDo, "next")
	tests := []struct {
		name      string
		in        []byte
		cfg       protocol.ReaderConfig
		want      error
		wantType  protocol.Type
		continues bool // the next packet on the stream reads correctly
	}{
		{"clean EOF", nil, protocol.ReaderConfig{}, io.EOF, 0, false},
		{"cut in header", raw(protocol.Req, protocol.Noop, "")[:7], protocol.ReaderConfig{}, io.ErrUnexpectedEOF, 0, false},
		{"cut before body", rawSize(protocol.Req, protocol.CanDo, 5, ""), protocol.ReaderConfig{}, io.ErrUnexpectedEOF, 0, false},
		{"cut in body", rawSize(protocol.Req, protocol.CanDo, 5, "ab"), protocol.ReaderConfig{}, io.ErrUnexpectedEOF, 0, false},
		{"bad magic", append([]byte("\x00REX"), raw(protocol.Req, protocol.Noop, "")[4:]...), protocol.ReaderConfig{}, protocol.ErrBadMagic, 0, false},
		{"text without AllowText", []byte("status\r\nworkers\r\n"), protocol.ReaderConfig{}, protocol.ErrBadMagic, 0, false},
		{"type 0", raw(protocol.Req, 0, ""), protocol.ReaderConfig{}, protocol.ErrBadType, 0, false},
		{"type 43", raw(protocol.Req, 43, ""), protocol.ReaderConfig{}, protocol.ErrBadType, 0, false},
		{"type max uint32", raw(protocol.Res, ^protocol.Type(0), ""), protocol.ReaderConfig{}, protocol.ErrBadType, 0, false},
		{"too large", rawSize(protocol.Req, protocol.SubmitJob, 1<<31, ""), protocol.ReaderConfig{}, protocol.ErrTooLarge, 0, false},
		{"over small limit", raw(protocol.Req, protocol.EchoReq, "12345"), protocol.ReaderConfig{MaxPacketSize: 4}, protocol.ErrTooLarge, 0, false},
		{"too few NULs", append(raw(protocol.Req, protocol.SubmitJob, "f\x00u"), next...), protocol.ReaderConfig{}, protocol.ErrMalformed, protocol.SubmitJob, true},
		{"reduce with 3 NULs", append(raw(protocol.Req, protocol.SubmitReduceJobBackground, "f\x00u\x00r\x00data"), next...), protocol.ReaderConfig{}, protocol.ErrMalformed, protocol.SubmitReduceJobBackground, true},
		{"body on zero-arg type", append(raw(protocol.Req, protocol.GrabJob, "xyz"), next...), protocol.ReaderConfig{}, protocol.ErrMalformed, protocol.GrabJob, true},
		{"work_status short", append(raw(protocol.Res, protocol.WorkStatus, "H\x001"), next...), protocol.ReaderConfig{}, protocol.ErrMalformed, protocol.WorkStatus, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := protocol.NewReader(bytes.NewReader(tc.in), tc.cfg)
			p, err := r.ReadPacket()
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if p.Type != tc.wantType {
				t.Fatalf("packet type %v, want %v", p.Type, tc.wantType)
			}
			if errors.Is(tc.want, protocol.ErrMalformed) {
				var fe *protocol.FormatError
				if !errors.As(err, &fe) || fe.Type != tc.wantType || fe.Reason == "" {
					t.Fatalf("err %#v is not a *FormatError for %v", err, tc.wantType)
				}
			}
			if !tc.continues {
				return
			}
			p, err = r.ReadPacket()
			if err != nil || p.Type != protocol.CanDo || string(p.Arg(0)) != "next" {
				t.Fatalf("next packet: %v %q %v (stream out of sync)", p.Type, strs(p), err)
			}
			if _, err := r.ReadPacket(); err != io.EOF {
				t.Fatalf("at end: %v", err)
			}
		})
	}
}

// Not parallel: AllocsPerRun and MemStats need a quiet process.
func TestSizeErrorDoesNotAllocate(t *testing.T) {
	const limit = 1 << 20
	in := rawSize(protocol.Req, protocol.SubmitJob, 1<<30, "")
	var err error
	allocs := testing.AllocsPerRun(20, func() {
		r := protocol.NewReader(bytes.NewReader(in), protocol.ReaderConfig{MaxPacketSize: limit})
		_, err = r.ReadPacket()
	})
	var se *protocol.SizeError
	if !errors.As(err, &se) || !errors.Is(err, protocol.ErrTooLarge) {
		t.Fatalf("err = %v, want *SizeError matching ErrTooLarge", err)
	}
	if se.Size != 1<<30 || se.Limit != limit || se.Type != protocol.SubmitJob {
		t.Fatalf("SizeError = %+v", se)
	}
	// NewReader (reader, bufio buffer) and the error value: a handful.
	if allocs > 6 {
		t.Fatalf("%v allocations for a rejected header", allocs)
	}
	if got := allocatedBy(func() {
		r := protocol.NewReader(bytes.NewReader(in), protocol.ReaderConfig{MaxPacketSize: limit})
		_, _ = r.ReadPacket()
	}); got > 64<<10 {
		t.Fatalf("rejecting a 1 GiB header allocated %d bytes", got)
	}
}

// TestAnnouncedSizeNotAllocatedUpFront: a header within the limit whose
// body never arrives must not cost the announced size in memory.
func TestAnnouncedSizeNotAllocatedUpFront(t *testing.T) {
	const limit = 64 << 20
	in := rawSize(protocol.Req, protocol.EchoReq, limit, "only a few bytes")
	var err error
	got := allocatedBy(func() {
		r := protocol.NewReader(bytes.NewReader(in), protocol.ReaderConfig{MaxPacketSize: limit})
		_, err = r.ReadPacket()
	})
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	if got > 1<<20 {
		t.Fatalf("a 64 MiB header with 16 body bytes allocated %d bytes", got)
	}
}

// allocatedBy reports the bytes allocated on the heap while f runs.
// Callers are not parallel tests, so the process is otherwise quiet. It
// reads runtime/metrics rather than MemStats, which stops the world and
// would dominate a fuzz iteration; the metric counts large allocations
// exactly and small ones when their span is refilled, which is precise
// enough to catch an allocation of an announced size.
func allocatedBy(f func()) uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	f()
	metrics.Read(s)
	return s[0].Value.Uint64() - before
}

func TestReaderReusesBuffer(t *testing.T) {
	t.Parallel()
	var stream []byte
	for range 3 {
		stream = protocol.AppendPacket(stream, protocol.Req, protocol.CanDo, []byte("first"))
	}
	r := protocol.NewReader(bytes.NewReader(stream), protocol.ReaderConfig{})
	p1, err := r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	kept := p1.Arg(0)
	if _, err := r.ReadPacket(); err != nil {
		t.Fatal(err)
	}
	// Documented aliasing: the reader owns the bytes.
	if string(kept) != "first" {
		t.Fatalf("kept = %q", kept)
	}
	if p1.Arg(5) != nil {
		t.Fatalf("Arg out of range is not nil")
	}
}

// TestDetachBody: a detached body survives later reads of packets of
// every size, and the reader goes on decoding correctly.
func TestDetachBody(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("x"), 200<<10)
	var stream []byte
	stream = protocol.AppendPacket(stream, protocol.Req, protocol.WorkComplete, []byte("H:1"), []byte("kept payload"))
	stream = protocol.AppendPacket(stream, protocol.Req, protocol.WorkComplete, []byte("H:2"), []byte("overwrites?"))
	stream = protocol.AppendPacket(stream, protocol.Req, protocol.WorkComplete, []byte("H:3"), big)
	stream = protocol.AppendPacket(stream, protocol.Req, protocol.EchoReq, []byte("last"))
	r := protocol.NewReader(bytes.NewReader(stream), protocol.ReaderConfig{})
	p1, err := r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	r.DetachBody()
	var got []protocol.Packet
	for range 2 {
		p, err := r.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
		r.DetachBody()
	}
	p4, err := r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	if s := strs(p1); s[0] != "H:1" || s[1] != "kept payload" {
		t.Fatalf("detached packet changed: %q", s)
	}
	if s := strs(got[0]); s[0] != "H:2" || s[1] != "overwrites?" {
		t.Fatalf("second packet = %q", s)
	}
	if !bytes.Equal(got[1].Arg(1), big) || string(got[1].Arg(0)) != "H:3" {
		t.Fatalf("third packet: handle %q, %d payload bytes", got[1].Arg(0), len(got[1].Arg(1)))
	}
	if string(p4.Arg(0)) != "last" {
		t.Fatalf("fourth packet = %q", strs(p4))
	}
}

func TestReaderText(t *testing.T) {
	t.Parallel()
	var in []byte
	in = append(in, "status\r\n"...)
	in = protocol.AppendPacket(in, protocol.Req, protocol.EchoReq, []byte("ping"))
	in = append(in, "workers\n"...)
	in = append(in, "\r\n"...)
	in = append(in, "x\r\r\n"...)
	in = protocol.AppendPacket(in, protocol.Req, protocol.Noop)
	in = append(in, "show unique jobs\n"...)
	type rec struct {
		t   protocol.Type
		arg string
	}
	want := []rec{
		{protocol.Text, "status"},
		{protocol.EchoReq, "ping"},
		{protocol.Text, "workers"},
		{protocol.Text, ""},
		{protocol.Text, "x\r"},
		{protocol.Noop, ""},
		{protocol.Text, "show unique jobs"},
	}
	for _, wrap := range []func(io.Reader) io.Reader{
		func(r io.Reader) io.Reader { return r }, iotest.OneByteReader, iotest.HalfReader, iotest.DataErrReader,
	} {
		r := protocol.NewReader(wrap(bytes.NewReader(in)), protocol.ReaderConfig{AllowText: true})
		for i, w := range want {
			p, err := r.ReadPacket()
			if err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			if p.Type != w.t || string(p.Arg(0)) != w.arg {
				t.Fatalf("record %d: %v %q, want %v %q", i, p.Type, p.Arg(0), w.t, w.arg)
			}
			if p.Type == protocol.Text && (p.Magic != 0 || len(p.Args) != 1) {
				t.Fatalf("text record %d: magic %v, %d args", i, p.Magic, len(p.Args))
			}
		}
		if _, err := r.ReadPacket(); err != io.EOF {
			t.Fatalf("at end: %v", err)
		}
	}
}

func TestReaderTextErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		cfg  protocol.ReaderConfig
		want error
	}{
		{"unterminated line", "status", protocol.ReaderConfig{AllowText: true}, io.ErrUnexpectedEOF},
		{"over MaxLineSize", strings.Repeat("a", 100) + "\n", protocol.ReaderConfig{AllowText: true, MaxLineSize: 50}, protocol.ErrLineTooLong},
		{"over buffer", strings.Repeat("a", 40000) + "\n", protocol.ReaderConfig{AllowText: true}, protocol.ErrLineTooLong},
		{"default limit", strings.Repeat("a", protocol.DefaultMaxLineSize+1) + "\n", protocol.ReaderConfig{AllowText: true}, protocol.ErrLineTooLong},
		{"unterminated under MaxLineSize", strings.Repeat("a", 49), protocol.ReaderConfig{AllowText: true, MaxLineSize: 50}, io.ErrUnexpectedEOF},
		{"unterminated at MaxLineSize", strings.Repeat("a", 50), protocol.ReaderConfig{AllowText: true, MaxLineSize: 50}, protocol.ErrLineTooLong},
		// Fills the 16 KiB buffer exactly: the error is the same whether
		// the end of the stream comes with the last bytes or after them.
		{"unterminated filling the buffer", strings.Repeat("a", 16<<10), protocol.ReaderConfig{AllowText: true, MaxLineSize: 512}, protocol.ErrLineTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for name, in := range map[string]io.Reader{
				"strings.Reader": strings.NewReader(tc.in),
				"DataErrReader":  iotest.DataErrReader(strings.NewReader(tc.in)),
			} {
				r := protocol.NewReader(in, tc.cfg)
				if _, err := r.ReadPacket(); !errors.Is(err, tc.want) {
					t.Fatalf("%s: err = %v, want %v", name, err, tc.want)
				}
			}
		})
	}
	// The limit counts the line ending: a line of exactly MaxLineSize bytes passes.
	line := strings.Repeat("b", 49) + "\n"
	r := protocol.NewReader(strings.NewReader(line), protocol.ReaderConfig{AllowText: true, MaxLineSize: 50})
	if p, err := r.ReadPacket(); err != nil || len(p.Arg(0)) != 49 {
		t.Fatalf("line at the limit: %v, %d bytes", err, len(p.Arg(0)))
	}
}

func TestBuffered(t *testing.T) {
	t.Parallel()
	in := protocol.AppendPacket(nil, protocol.Req, protocol.GrabJob)
	in = protocol.AppendPacket(in, protocol.Req, protocol.PreSleep)
	r := protocol.NewReader(bytes.NewReader(in), protocol.ReaderConfig{})
	if _, err := r.ReadPacket(); err != nil {
		t.Fatal(err)
	}
	if r.Buffered() != protocol.HeaderSize {
		t.Fatalf("Buffered = %d, want %d", r.Buffered(), protocol.HeaderSize)
	}
	if _, err := r.ReadPacket(); err != nil {
		t.Fatal(err)
	}
	if r.Buffered() != 0 {
		t.Fatalf("Buffered = %d after the last packet", r.Buffered())
	}
}

// TestPending: whole packets and lines count; a header alone, part of a
// body or a line without its newline do not.
func TestPending(t *testing.T) {
	t.Parallel()
	grab := protocol.AppendPacket(nil, protocol.Req, protocol.GrabJob)
	echo := protocol.AppendPacket(nil, protocol.Req, protocol.EchoReq, []byte("hello"))
	tests := []struct {
		name string
		tail []byte // bytes after a first GRAB_JOB
		want bool
	}{
		{"nothing", nil, false},
		{"a bodiless packet", grab, true},
		{"a whole packet", echo, true},
		{"part of a header", echo[:5], false},
		{"a header alone", echo[:protocol.HeaderSize], false},
		{"part of a body", echo[:len(echo)-1], false},
		{"a whole line", []byte("status\n"), true},
		{"part of a line", []byte("stat"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := append(append([]byte(nil), grab...), tt.tail...)
			// Everything arrives at once, then nothing: Pending must
			// never read.
			r := protocol.NewReader(io.MultiReader(bytes.NewReader(in), blockingReader{}), protocol.ReaderConfig{AllowText: true})
			if _, err := r.ReadPacket(); err != nil {
				t.Fatal(err)
			}
			if got := r.Pending(); got != tt.want {
				t.Fatalf("Pending = %v, want %v (%d bytes buffered)", got, tt.want, r.Buffered())
			}
		})
	}
}

// blockingReader stands for a network with nothing more to send: reading
// from it panics, so a Pending that reads shows at once.
type blockingReader struct{}

func (blockingReader) Read([]byte) (int, error) { panic("read past the buffered bytes") }

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    protocol.Packet
		want error
	}{
		{"ok", protocol.New(protocol.Req, protocol.SubmitJob, args("f", "u", "d\x00")...), nil},
		{"ok zero args", protocol.New(protocol.Res, protocol.Noop), nil},
		{"ok NUL in last non-data arg", protocol.New(protocol.Req, protocol.CanDo, args("rev\x00")...), nil},
		{"bad magic", protocol.New(0, protocol.Noop), protocol.ErrBadMagic},
		{"text type", protocol.New(protocol.Req, protocol.Text, args("status")...), protocol.ErrBadType},
		{"type 43", protocol.New(protocol.Req, 43), protocol.ErrBadType},
		{"too few args", protocol.New(protocol.Req, protocol.SubmitJob, args("f", "u")...), protocol.ErrMalformed},
		{"too many args", protocol.New(protocol.Req, protocol.Noop, args("x")...), protocol.ErrMalformed},
		{"NUL in terminated arg", protocol.New(protocol.Req, protocol.SubmitJob, args("f\x00", "u", "d")...), protocol.ErrMalformed},
		{"NUL in reducer", protocol.New(protocol.Req, protocol.SubmitReduceJob, args("f", "u", "r\x00", "", "d")...), protocol.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.p.Validate()
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Validate = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseError(t *testing.T) {
	t.Parallel()
	r := protocol.NewReader(bytes.NewReader(raw(protocol.Res, protocol.Error, "QUEUE_ERROR\x00Job queue is full\x00")), protocol.ReaderConfig{})
	p, err := r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	se := protocol.ParseError(p)
	if se.Code != protocol.CodeQueueError || se.Text != "Job queue is full" {
		t.Fatalf("ParseError = %+v", se)
	}
	if !errors.Is(se, &protocol.ServerError{Code: protocol.CodeQueueError}) {
		t.Fatal("errors.Is by code failed")
	}
	if errors.Is(se, &protocol.ServerError{Code: protocol.CodeJobNotFound}) {
		t.Fatal("errors.Is matched another code")
	}
	if got := protocol.ParseError(protocol.Packet{}); got.Code != "" || got.Text != "" {
		t.Fatalf("empty packet: %+v", got)
	}
	if se.Error() != "protocol: server error QUEUE_ERROR: Job queue is full" {
		t.Fatalf("Error() = %q", se.Error())
	}
}
