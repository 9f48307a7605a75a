package server

import (
	"io"
	"syscall"
)

// The read loop reads its socket, and writes replies to it, with raw
// system calls through syscall.RawConn. The descriptor is non-blocking,
// so a call never waits: when there is nothing to read, RawConn parks
// the goroutine on the poller as net.Conn.Read does. Unlike the plain
// calls, a raw call does not tell the scheduler it is entering the
// kernel. For these calls of tens of microseconds that notice cost more
// than the call: the scheduler's monitor kept waking every 20µs to take
// the processor from the "blocked" thread and hand it to another one,
// which profiles showed as 14% of the server's CPU with one job in
// flight.
//
// The raw calls are Linux's (rawio_linux.go). Elsewhere haveRawIO is
// false: rawConn returns nil and every socket is read and written
// through its net.Conn, as pipes are.

// maxIovecs bounds the pieces of one writev, below the kernel's IOV_MAX
// of 1024; an outbox with more goes to the writer goroutine.
const maxIovecs = 256

// rawReader reads a socket with rawRead, waiting on the poller when
// there is nothing to read. The callback RawConn.Read takes is made once,
// with its argument and results in the reader, so that a read allocates
// nothing: a closure made per call, and the variables it captures,
// escaped to the heap, twice per read.
type rawReader struct {
	raw   syscall.RawConn
	fn    func(fd uintptr) bool
	p     []byte
	n     int
	errno syscall.Errno
}

func newRawReader(raw syscall.RawConn) *rawReader {
	r := &rawReader{raw: raw}
	r.fn = func(fd uintptr) bool {
		r.n, r.errno = rawRead(fd, r.p)
		return r.errno != syscall.EAGAIN // false: wait until readable
	}
	return r
}

func (r *rawReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.p, r.n, r.errno = p, 0, 0
	err := r.raw.Read(r.fn)
	r.p = nil
	n, errno := r.n, r.errno
	switch {
	case err != nil: // closed, or a read deadline passed
		return 0, err
	case errno != 0:
		return 0, errno
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}
