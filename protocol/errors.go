package protocol

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors returned by Reader. Errors marked "fatal" leave the
// stream at an unknown position: the caller must close the connection.
// ErrMalformed is not fatal: the whole body was consumed and the next
// packet can be read.
var (
	// ErrBadMagic: the header did not start with "\0REQ" or "\0RES". Fatal.
	ErrBadMagic = errors.New("protocol: bad magic")
	// ErrBadType: the header named type 0 or a type above MaxType. Fatal.
	ErrBadType = errors.New("protocol: unknown packet type")
	// ErrTooLarge: the header announced a body above the reader's limit.
	// Fatal: nothing was allocated and the body was not read.
	ErrTooLarge = errors.New("protocol: packet too large")
	// ErrMalformed: the body does not split into the type's arguments.
	ErrMalformed = errors.New("protocol: malformed packet")
	// ErrLineTooLong: an admin text line exceeded the reader's line limit. Fatal.
	ErrLineTooLong = errors.New("protocol: admin line too long")
)

// SizeError reports a packet whose announced size exceeds the limit.
// It matches ErrTooLarge with errors.Is.
type SizeError struct {
	Type  Type
	Size  uint32
	Limit int
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("protocol: %s packet of %d bytes exceeds the %d-byte limit", e.Type, e.Size, e.Limit)
}

func (e *SizeError) Unwrap() error { return ErrTooLarge }

// FormatError reports a packet whose body does not match its type's
// argument table. It matches ErrMalformed with errors.Is.
type FormatError struct {
	Type    Type
	Reason  string
	Snippet []byte // up to 32 bytes of the body, for logs
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("protocol: malformed %s packet: %s (body %q)", e.Type, e.Reason, e.Snippet)
}

func (e *FormatError) Unwrap() error { return ErrMalformed }

// Error codes a server sends in ERROR packets: libgearman's return-code
// names without the GEARMAN_ prefix (PROTOCOL.md §3.13).
const (
	CodeInvalidMagic     = "INVALID_MAGIC"
	CodeInvalidCommand   = "INVALID_COMMAND"
	CodeArgumentTooLarge = "ARGUMENT_TOO_LARGE"
	CodeQueueError       = "QUEUE_ERROR"
	CodeUnknownOption    = "UNKNOWN_OPTION"
	CodeJobNotFound      = "JOB_NOT_FOUND"
	CodeInvalidArgument  = "INVALID_ARGUMENT"
	CodeMemoryAllocation = "MEMORY_ALLOCATION_FAILURE"
)

// ServerError is an ERROR packet received from a server.
type ServerError struct {
	Code string
	Text string
}

func (e *ServerError) Error() string {
	return "protocol: server error " + e.Code + ": " + e.Text
}

// Is reports whether target is a *ServerError with the same code, so
// callers can write errors.Is(err, &ServerError{Code: CodeQueueError}).
func (e *ServerError) Is(target error) bool {
	t, ok := target.(*ServerError)
	return ok && t.Code == e.Code && (t.Text == "" || t.Text == e.Text)
}

// ParseError decodes the arguments of an ERROR packet.
func ParseError(p Packet) *ServerError {
	e := &ServerError{}
	if len(p.Args) > 0 {
		e.Code = string(p.Args[0])
	}
	if len(p.Args) > 1 {
		e.Text = strings.TrimRight(string(p.Args[1]), "\x00")
	}
	return e
}

func snippet(b []byte) []byte {
	if len(b) > 32 {
		b = b[:32]
	}
	return append([]byte(nil), b...)
}
