package protocol

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
)

// Default limits.
const (
	// DefaultMaxPacketSize is the body limit used when none is set: 64 MiB.
	// gearmand has no limit at all and allocates whatever a header asks for.
	DefaultMaxPacketSize = 64 << 20
	// DefaultMaxLineSize is the admin line limit, gearmand's 8 KiB receive buffer.
	DefaultMaxLineSize = 8192
)

// ReaderConfig sets a Reader's limits and modes.
type ReaderConfig struct {
	// MaxPacketSize caps a packet body in bytes. Zero means DefaultMaxPacketSize.
	MaxPacketSize int
	// MaxLineSize caps an admin text line. Zero means DefaultMaxLineSize.
	MaxLineSize int
	// AllowText makes the reader accept admin text lines: a packet whose
	// first byte is not NUL is read as a line and returned with Type Text.
	// Servers set it; clients leave it false.
	AllowText bool
	// NewBody, if set, supplies the buffer for a body of up to
	// BodyBufferMax bytes that does not fit the current one: it returns
	// a slice with at least n bytes of capacity, or nil to let the
	// reader allocate. A server that keeps bodies (DetachBody) uses it
	// to draw them from a pool. The reader stops using its previous
	// buffer once NewBody returns, except to copy a body's first bytes
	// into the new one before the ReadPacket call returns.
	NewBody func(n int) []byte
}

// BodyBufferMax is the largest body buffer ReaderConfig.NewBody is asked
// for. A larger body grows its buffer as its bytes arrive instead.
const BodyBufferMax = growChunk

// Reader reads packets from a stream. It is not safe for concurrent use.
type Reader struct {
	br   *bufio.Reader
	cfg  ReaderConfig
	hdr  [HeaderSize]byte
	buf  []byte   // body buffer, reused
	args [][]byte // argument slices, reused
}

// NewReader returns a reader over r with the given limits.
func NewReader(r io.Reader, cfg ReaderConfig) *Reader {
	if cfg.MaxPacketSize <= 0 {
		cfg.MaxPacketSize = DefaultMaxPacketSize
	}
	if cfg.MaxLineSize <= 0 {
		cfg.MaxLineSize = DefaultMaxLineSize
	}
	size := 16 << 10
	if cfg.AllowText && cfg.MaxLineSize+1 > size {
		size = cfg.MaxLineSize + 1
	}
	return &Reader{br: bufio.NewReaderSize(r, size), cfg: cfg}
}

// Buffered returns the number of bytes already read from the stream but
// not yet returned as packets. A server flushes its replies when it
// reaches zero, so pipelined requests are answered in one write.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// Pending reports whether a whole packet is already buffered, so that
// the next ReadPacket returns without waiting for the network. A server
// sends its replies before a read that would wait: bytes of a packet
// still in flight are no reason to hold them back.
func (r *Reader) Pending() bool {
	n := r.br.Buffered()
	if n == 0 {
		return false
	}
	b, _ := r.br.Peek(n) // buffered bytes only: never reads
	if b[0] != 0 && r.cfg.AllowText {
		return bytes.IndexByte(b, '\n') >= 0
	}
	if n < HeaderSize {
		return false
	}
	return uint64(n-HeaderSize) >= uint64(binary.BigEndian.Uint32(b[8:12]))
}

// ReadPacket reads the next packet. The returned packet's Args alias the
// reader's buffer and are valid only until the next call, unless
// DetachBody hands them to the caller.
//
// It returns io.EOF at a clean end of stream, io.ErrUnexpectedEOF for a
// stream cut inside a packet, and the errors documented in errors.go.
// After an error matching ErrMalformed the stream is still in sync and
// reading may go on; after any other error it must be abandoned.
//
// The body size is checked against MaxPacketSize before anything is
// allocated, and a body larger than the current buffer is read into a
// buffer that grows as its bytes arrive: a header alone never costs the
// size it announces.
func (r *Reader) ReadPacket() (Packet, error) {
	if r.cfg.AllowText {
		b, err := r.br.Peek(1)
		if err != nil {
			return Packet{}, err
		}
		if b[0] != 0 {
			return r.readLine()
		}
	}
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		return Packet{}, err
	}
	m := Magic(binary.BigEndian.Uint32(r.hdr[0:4]))
	if m != Req && m != Res {
		return Packet{}, ErrBadMagic
	}
	t := Type(binary.BigEndian.Uint32(r.hdr[4:8]))
	if !t.Valid() {
		return Packet{}, ErrBadType
	}
	size := binary.BigEndian.Uint32(r.hdr[8:12])
	if uint64(size) > uint64(r.cfg.MaxPacketSize) {
		return Packet{}, &SizeError{Type: t, Size: size, Limit: r.cfg.MaxPacketSize}
	}
	body, err := r.readBody(int(size))
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Packet{}, err
	}
	// A large body read once must not pin its buffer for the life of
	// the connection.
	if cap(r.buf) > 1<<20 && size < 1<<16 {
		r.buf = nil
	}
	r.args, err = splitArgs(r.args, t, body)
	if err != nil {
		return Packet{Magic: m, Type: t}, err
	}
	return Packet{Magic: m, Type: t, Args: r.args}, nil
}

// DetachBody hands the body of the binary packet last returned to the
// caller: its Args stay valid and unchanged after later calls, and the
// reader reads the next body into a new buffer. A server keeps a large
// payload this way instead of copying it. It must not be called after a
// Text packet, whose argument aliases the stream buffer.
func (r *Reader) DetachBody() {
	r.buf = nil
	r.args = nil
}

// growChunk is the largest step by which the body buffer grows ahead of
// the bytes received; past it the buffer doubles as bytes arrive.
const growChunk = 128 << 10

// readBody reads a body of size bytes into r.buf. When the buffer is too
// small it grows only as the bytes actually arrive, so a header alone
// (which costs a peer 12 bytes) cannot make the reader allocate the size
// it announces: memory follows received data, at most twice over.
func (r *Reader) readBody(size int) ([]byte, error) {
	if size <= cap(r.buf) {
		body := r.buf[:size]
		_, err := io.ReadFull(r.br, body)
		return body, err
	}
	buf := r.buf[:0]
	for len(buf) < size {
		if len(buf) == cap(buf) {
			c := min(max(2*cap(buf), 1024, min(size, growChunk)), r.cfg.MaxPacketSize)
			if size > growChunk {
				c = min(c, size)
			}
			var nb []byte
			if r.cfg.NewBody != nil && c <= BodyBufferMax {
				if b := r.cfg.NewBody(c); cap(b) >= c {
					nb = b[:len(buf)]
				}
			}
			if nb == nil {
				nb = make([]byte, len(buf), c)
			}
			copy(nb, buf)
			buf = nb
			r.buf = nb
		}
		n, err := io.ReadFull(r.br, buf[len(buf):min(cap(buf), size)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if err == io.EOF && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

// readLine reads one admin text line; its single argument is the line
// without "\n" and one trailing "\r".
func (r *Reader) readLine() (Packet, error) {
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		// A partial line of MaxLineSize bytes is too long whether the
		// stream then ends or not (its newline would be one byte more):
		// the error must not depend on whether the end of the stream
		// comes with the bytes that fill the buffer or after them.
		if errors.Is(err, bufio.ErrBufferFull) || len(line) >= r.cfg.MaxLineSize {
			return Packet{}, ErrLineTooLong
		}
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return Packet{}, err
	}
	if len(line) > r.cfg.MaxLineSize {
		return Packet{}, ErrLineTooLong
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	r.args = append(r.args[:0], line)
	return Packet{Type: Text, Args: r.args}, nil
}
