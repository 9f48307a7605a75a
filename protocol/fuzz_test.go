package protocol_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/gearflow/gearflow/protocol"
)

// fuzzMaxPacket is the body limit the fuzz targets configure. Reading any
// input must allocate far less than it: memory follows received bytes,
// not announced sizes.
const fuzzMaxPacket = 1 << 20

// event is one outcome of ReadPacket: a packet, a malformed packet the
// reader skipped, or the error that ended the stream.
type event struct {
	class string // "packet", "malformed", or the final error's class
	magic protocol.Magic
	typ   protocol.Type
	args  []string
}

func (e event) String() string { return fmt.Sprintf("%s %v %v %q", e.class, e.magic, e.typ, e.args) }

func errClass(err error) string {
	switch {
	case err == io.EOF:
		return "EOF"
	case err == io.ErrUnexpectedEOF:
		return "unexpected EOF"
	case errors.Is(err, protocol.ErrBadMagic):
		return "bad magic"
	case errors.Is(err, protocol.ErrBadType):
		return "bad type"
	case errors.Is(err, protocol.ErrTooLarge):
		return "too large"
	case errors.Is(err, protocol.ErrLineTooLong):
		return "line too long"
	case errors.Is(err, protocol.ErrMalformed):
		return "malformed"
	}
	return "other: " + err.Error()
}

// readEvents reads r to its end. Every successful read consumes at least
// one byte, so n+2 reads bound a stream of n bytes.
func readEvents(t *testing.T, r io.Reader, n int, cfg protocol.ReaderConfig) []event {
	t.Helper()
	pr := protocol.NewReader(r, cfg)
	var out []event
	for range n + 2 {
		p, err := pr.ReadPacket()
		switch {
		case err == nil:
			e := event{class: "packet", magic: p.Magic, typ: p.Type}
			for _, a := range p.Args {
				e.args = append(e.args, string(a))
			}
			out = append(out, e)
		case errors.Is(err, protocol.ErrMalformed):
			if p.Type == 0 || p.Args != nil {
				t.Fatalf("malformed packet reported as type %v with %d args", p.Type, len(p.Args))
			}
			out = append(out, event{class: "malformed", magic: p.Magic, typ: p.Type})
		default:
			return append(out, event{class: errClass(err)})
		}
	}
	t.Fatalf("reader returned more than %d results for %d bytes", n+2, n)
	return nil
}

func sameEvents(a, b []event) bool {
	return slices.EqualFunc(a, b, func(x, y event) bool {
		return x.class == y.class && x.magic == y.magic && x.typ == y.typ && slices.Equal(x.args, y.args)
	})
}

func FuzzReadPacket(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzReadPacket (see TestFuzzCorpus).
	f.Fuzz(func(t *testing.T, data []byte, text bool, split uint16) {
		cfg := protocol.ReaderConfig{MaxPacketSize: fuzzMaxPacket, MaxLineSize: 512, AllowText: text}

		// Memory: reading must not allocate what a header merely announces.
		read := func() {
			r := protocol.NewReader(bytes.NewReader(data), cfg)
			for range len(data) + 2 {
				if _, err := r.ReadPacket(); err != nil && !errors.Is(err, protocol.ErrMalformed) {
					return
				}
			}
		}
		limit := fuzzMaxPacket/2 + 4*uint64(len(data))
		if got := allocatedBy(read); got > limit {
			// The runtime counts small allocations when their span
			// leaves a P's cache, so a reading can include bytes
			// allocated before it (by the previous input's checks, or
			// the fuzzing engine). A collection flushes every cache:
			// measure once more after one before failing.
			runtime.GC()
			if got = allocatedBy(read); got > limit {
				t.Fatalf("reading %d bytes allocated %d bytes", len(data), got)
			}
		}

		want := readEvents(t, bytes.NewReader(data), len(data), cfg)
		if len(want) == 0 || want[len(want)-1].class == "malformed" || want[len(want)-1].class == "packet" {
			t.Fatalf("stream did not end with an error: %v", want)
		}

		// The same input in other chunkings gives the same sequence.
		k := int(split) % (len(data) + 1)
		chunkings := map[string]io.Reader{
			"OneByteReader": iotest.OneByteReader(bytes.NewReader(data)),
			"split":         io.MultiReader(bytes.NewReader(data[:k]), bytes.NewReader(data[k:])),
			"DataErrReader": iotest.DataErrReader(bytes.NewReader(data)),
		}
		for name, r := range chunkings {
			if got := readEvents(t, r, len(data), cfg); !sameEvents(got, want) {
				t.Fatalf("%s (split at %d):\n got %v\nwant %v", name, k, got, want)
			}
		}

		// Every decoded packet re-encodes and decodes to itself.
		for _, e := range want {
			if e.class != "packet" {
				continue
			}
			var enc []byte
			if e.typ == protocol.Text {
				line := e.args[0]
				if strings.HasSuffix(line, "\r") {
					enc = []byte(line + "\r\n")
				} else {
					enc = []byte(line + "\n")
				}
			} else {
				p := protocol.New(e.magic, e.typ, args(e.args...)...)
				if err := p.Validate(); err != nil {
					t.Fatalf("decoded packet %v does not validate: %v", e, err)
				}
				enc = p.Append(nil)
				if len(enc) != protocol.HeaderSize+p.BodySize() {
					t.Fatalf("Append wrote %d bytes for body %d", len(enc), p.BodySize())
				}
			}
			got := readEvents(t, bytes.NewReader(enc), len(enc), cfg)
			if !sameEvents(got, []event{e, {class: "EOF"}}) {
				t.Fatalf("round trip of %v gave %v", e, got)
			}
		}
	})
}

func FuzzAdminCommand(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzAdminCommand (see TestFuzzCorpus).
	f.Fuzz(func(t *testing.T, line []byte) {
		c, err := protocol.ParseAdminCommand(line)
		c2, err2 := protocol.ParseAdminCommand(slices.Clone(line))
		if err != err2 || !sameCommand(c, c2) {
			t.Fatalf("not deterministic: %+v %v / %+v %v", c, err, c2, err2)
		}
		if err != nil {
			if !errors.Is(err, protocol.ErrTooManyWords) {
				t.Fatalf("unexpected error %v", err)
			}
			if bytes.Count(line, []byte{' '}) < protocol.MaxAdminWords {
				t.Fatalf("%q: too many words with only %d spaces", line, bytes.Count(line, []byte{' '}))
			}
			return
		}
		for _, w := range append([]string{c.Word}, c.Args...) {
			if strings.ContainsAny(w, " \x00") || !bytes.Contains(line, []byte(w)) {
				t.Fatalf("%q: word %q is not a word of the line", line, w)
			}
		}
		if len(c.Args) >= protocol.MaxAdminWords {
			t.Fatalf("%q: %d args", line, len(c.Args))
		}

		// Runs of spaces are one separator.
		collapsed := collapseSpaces(line)
		if cc, err := protocol.ParseAdminCommand(collapsed); err != nil || !sameCommand(cc, c) {
			t.Fatalf("%q parses as %+v, collapsed %q as %+v (%v)", line, c, collapsed, cc, err)
		}
		// Command names fold ASCII case only; operands are kept as sent.
		for _, conv := range []func(byte) byte{asciiUpper, asciiLower} {
			other := slices.Clone(line)
			for i := range other {
				other[i] = conv(other[i])
			}
			oc, err := protocol.ParseAdminCommand(other)
			if err != nil || oc.Kind != c.Kind || len(oc.Args) != len(c.Args) {
				t.Fatalf("%q is %v but %q is %v (%v)", line, c.Kind, other, oc.Kind, err)
			}
		}
		// The words round trip: a line rebuilt from the command parses the same.
		if re, ok := rebuild(c); ok {
			rc, err := protocol.ParseAdminCommand([]byte(re))
			if err != nil || rc.Kind != c.Kind || !slices.Equal(rc.Args, c.Args) {
				t.Fatalf("%q: rebuilt %q parses as %+v (%v), want %+v", line, re, rc, err, c)
			}
		}
		// Error replies are single lines ending in CRLF.
		if reply := protocol.AppendAdminReplyError(nil, c); len(reply) > 0 {
			if !bytes.HasPrefix(reply, []byte("ERR ")) || !bytes.HasSuffix(reply, []byte("\r\n")) {
				t.Fatalf("%q: reply %q", line, reply)
			}
		}
	})
}

func sameCommand(a, b protocol.AdminCommand) bool {
	return a.Kind == b.Kind && a.Word == b.Word && slices.Equal(a.Args, b.Args)
}

func collapseSpaces(b []byte) []byte {
	var out []byte
	for i, c := range b {
		if c == ' ' && i > 0 && b[i-1] == ' ' {
			continue
		}
		out = append(out, c)
	}
	return out
}

func asciiUpper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func asciiLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c - 'A' + 'a'
	}
	return c
}

// rebuild writes the canonical line for commands with operands. An empty
// operand before the last one can only come from a word cut at a NUL, and
// spaces cannot express it, so such commands have no canonical line.
func rebuild(c protocol.AdminCommand) (string, bool) {
	for i, a := range c.Args {
		if a == "" && i < len(c.Args)-1 {
			return "", false
		}
	}
	switch c.Kind {
	case protocol.AdminCancelJob:
		return "cancel job " + c.Args[0], true
	case protocol.AdminCreateFunction:
		return "create function " + c.Args[0], true
	case protocol.AdminDropFunction:
		return "drop function " + c.Args[0], true
	case protocol.AdminMaxQueue:
		return "maxqueue " + strings.Join(c.Args, " "), true
	case protocol.AdminShutdown:
		return strings.TrimSpace("shutdown " + strings.Join(c.Args, " ")), true
	}
	return "", false
}
