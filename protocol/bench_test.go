package protocol_test

import (
	"bytes"
	"testing"

	"github.com/gearflow/gearflow/protocol"
)

// repeatReader serves the same stream forever, so a benchmark reads as
// many packets as it likes without rebuilding its input.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

var payloadSizes = []struct {
	name string
	size int
}{{"64B", 64}, {"64KiB", 64 << 10}}

func benchPacket(t protocol.Type, size int) protocol.Packet {
	data := bytes.Repeat([]byte{'d', 0}, size/2)
	switch t {
	case protocol.SubmitJob:
		return protocol.New(protocol.Req, t, []byte("reverse"), []byte("unique-0001"), data)
	default:
		return protocol.New(protocol.Req, t, []byte("H:host:123456"), data)
	}
}

func BenchmarkReadPacket(b *testing.B) {
	for _, typ := range []protocol.Type{protocol.SubmitJob, protocol.WorkData} {
		for _, sz := range payloadSizes {
			b.Run(typ.String()+"/"+sz.name, func(b *testing.B) {
				wire := benchPacket(typ, sz.size).Append(nil)
				r := protocol.NewReader(&repeatReader{data: wire}, protocol.ReaderConfig{})
				b.SetBytes(int64(len(wire)))
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					p, err := r.ReadPacket()
					if err != nil || p.Type != typ {
						b.Fatalf("ReadPacket: %v %v", p.Type, err)
					}
					n++
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "packets/s")
			})
		}
	}
}

// BenchmarkReadPacketBytesReader reads a finite stream from a
// bytes.Reader, restarting it when it runs out.
func BenchmarkReadPacketBytesReader(b *testing.B) {
	const perStream = 256
	wire := benchPacket(protocol.WorkData, 64).Append(nil)
	stream := bytes.Repeat(wire, perStream)
	br := bytes.NewReader(stream)
	r := protocol.NewReader(br, protocol.ReaderConfig{})
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if br.Len() == 0 && r.Buffered() == 0 {
			br.Reset(stream)
		}
		if _, err := r.ReadPacket(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "packets/s")
}

func BenchmarkAppend(b *testing.B) {
	for _, typ := range []protocol.Type{protocol.SubmitJob, protocol.WorkData} {
		for _, sz := range payloadSizes {
			b.Run(typ.String()+"/"+sz.name, func(b *testing.B) {
				p := benchPacket(typ, sz.size)
				buf := make([]byte, 0, protocol.HeaderSize+p.BodySize())
				b.SetBytes(int64(protocol.HeaderSize + p.BodySize()))
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					buf = p.Append(buf[:0])
					n++
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "packets/s")
			})
		}
	}
}

func BenchmarkAppendPacket(b *testing.B) {
	handle, data := []byte("H:host:123456"), []byte("partial result")
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		buf = protocol.AppendPacket(buf[:0], protocol.Res, protocol.WorkData, handle, data)
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "packets/s")
}

func BenchmarkParseAdminCommand(b *testing.B) {
	for _, line := range []string{"status", "cancel job H:host:123456", "maxqueue reverse 1 2 3"} {
		b.Run(line, func(b *testing.B) {
			in := []byte(line)
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if _, err := protocol.ParseAdminCommand(in); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "commands/s")
		})
	}
}

// TestHotPathZeroAllocs: after warm-up, reading a packet and encoding one
// into a buffer with room allocate nothing. Not parallel: AllocsPerRun.
func TestHotPathZeroAllocs(t *testing.T) {
	for _, typ := range []protocol.Type{protocol.SubmitJob, protocol.WorkData, protocol.CanDo, protocol.Noop} {
		for _, sz := range payloadSizes {
			p := benchPacket(typ, sz.size)
			if typ == protocol.CanDo {
				p = protocol.New(protocol.Req, typ, []byte("reverse"))
			} else if typ == protocol.Noop {
				p = protocol.New(protocol.Res, typ)
			}
			wire := p.Append(nil)
			r := protocol.NewReader(&repeatReader{data: wire}, protocol.ReaderConfig{AllowText: true})
			if _, err := r.ReadPacket(); err != nil { // warm-up: sizes the buffers
				t.Fatal(err)
			}
			var err error
			if a := testing.AllocsPerRun(100, func() { _, err = r.ReadPacket() }); a != 0 || err != nil {
				t.Errorf("ReadPacket %v/%s: %v allocs/op, err %v", typ, sz.name, a, err)
			}
			buf := make([]byte, 0, len(wire))
			if a := testing.AllocsPerRun(100, func() { buf = p.Append(buf[:0]) }); a != 0 {
				t.Errorf("Append %v/%s: %v allocs/op", typ, sz.name, a)
			}
			if !bytes.Equal(buf, wire) {
				t.Errorf("Append %v/%s wrote different bytes", typ, sz.name)
			}
		}
	}
	// Text lines too.
	r := protocol.NewReader(&repeatReader{data: []byte("status\r\n")}, protocol.ReaderConfig{AllowText: true})
	if _, err := r.ReadPacket(); err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(100, func() { _, _ = r.ReadPacket() }); a != 0 {
		t.Errorf("ReadPacket of a text line: %v allocs/op", a)
	}
}
