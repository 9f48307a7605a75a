package protocol

import (
	"bytes"
	"encoding/binary"
)

// Magic is the 4-byte code that starts every binary packet.
type Magic uint32

const (
	// Req marks packets sent to a server ("\0REQ").
	Req Magic = 0x00524551
	// Res marks packets sent by a server ("\0RES").
	Res Magic = 0x00524553
)

func (m Magic) String() string {
	switch m {
	case Req:
		return "REQ"
	case Res:
		return "RES"
	}
	return "BAD"
}

// HeaderSize is the size of a binary packet header: magic, type, size.
const HeaderSize = 12

// Packet is one Gearman packet. Args holds Type.NumArgs() arguments: the
// NUL-terminated strings (without their NUL) and, for types with data,
// the trailing opaque blob.
//
// A Packet returned by Reader aliases the reader's buffer: its Args are
// valid only until the next call to ReadPacket.
type Packet struct {
	Magic Magic
	Type  Type
	Args  [][]byte
}

// New returns a packet of type t with the given arguments.
func New(m Magic, t Type, args ...[]byte) Packet {
	return Packet{Magic: m, Type: t, Args: args}
}

// Arg returns argument i, or nil when the packet has fewer arguments.
func (p Packet) Arg(i int) []byte {
	if i < len(p.Args) {
		return p.Args[i]
	}
	return nil
}

// BodySize returns the encoded body length of p.
func (p Packet) BodySize() int {
	n := 0
	for _, a := range p.Args {
		n += len(a) + 1
	}
	if n > 0 {
		n-- // the last argument is never terminated
	}
	return n
}

// Append appends the wire encoding of p to b and returns the extended
// buffer. It does not check p: see Validate.
func (p Packet) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(p.Magic))
	b = binary.BigEndian.AppendUint32(b, uint32(p.Type))
	b = binary.BigEndian.AppendUint32(b, uint32(p.BodySize()))
	for i, a := range p.Args {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, a...)
	}
	return b
}

// AppendPacket appends a packet built from its parts without building a
// Packet value, for hot paths: AppendPacket(buf, Res, JobCreated, handle).
func AppendPacket(b []byte, m Magic, t Type, args ...[]byte) []byte {
	return Packet{Magic: m, Type: t, Args: args}.Append(b)
}

// Validate reports whether p can be encoded so that a reader decodes the
// same arguments: a known type, the right number of arguments, and no
// NUL inside an argument that the framing terminates with NUL.
func (p Packet) Validate() error {
	if p.Magic != Req && p.Magic != Res {
		return ErrBadMagic
	}
	if !p.Type.Valid() {
		return ErrBadType
	}
	if len(p.Args) != p.Type.NumArgs() {
		return &FormatError{Type: p.Type, Reason: "wrong number of arguments"}
	}
	last := len(p.Args) - 1
	for i, a := range p.Args {
		if i == last {
			break
		}
		if bytes.IndexByte(a, 0) >= 0 {
			return &FormatError{Type: p.Type, Reason: "NUL inside a terminated argument", Snippet: snippet(a)}
		}
	}
	return nil
}

// splitArgs splits body into the arguments of type t, appending them to
// args (which it reuses). The slices alias body.
//
// A worker result that carries only its handle, with no NUL and no data
// (WORK_COMPLETE, WORK_DATA, WORK_WARNING, WORK_EXCEPTION: the types of
// one argument and data), reads as that handle with empty data: worker
// libraries send an empty result so, and gearmand hangs up on them.
func splitArgs(args [][]byte, t Type, body []byte) ([][]byte, error) {
	args = args[:0]
	f := framings[t]
	if f.argc == 0 && !f.data {
		if len(body) != 0 {
			return args, &FormatError{Type: t, Reason: "unexpected body", Snippet: snippet(body)}
		}
		return args, nil
	}
	if f.argc == 1 && f.data && bytes.IndexByte(body, 0) < 0 {
		return append(args, body[:len(body):len(body)], body[len(body):]), nil
	}
	terminated := f.argc
	if !f.data {
		terminated--
	}
	rest := body
	for i := 0; i < terminated; i++ {
		n := bytes.IndexByte(rest, 0)
		if n < 0 {
			return args[:0], &FormatError{Type: t, Reason: "too few arguments", Snippet: snippet(body)}
		}
		args = append(args, rest[:n:n])
		rest = rest[n+1:]
	}
	return append(args, rest), nil
}
