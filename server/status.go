package server

import (
	"strconv"
	"strings"

	"github.com/gearflow/gearflow/protocol"
)

// Status, options, identity.

func (s *Server) getStatus(c *conn, handle []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobByHandleLocked(handle)
	if j == nil {
		c.send(protocol.StatusRes, handle, zero, zero, zero, zero)
		return
	}
	c.send(protocol.StatusRes, handle, one, bit(j.state == jobRunning),
		strconv.AppendUint(nil, uint64(j.num), 10), strconv.AppendUint(nil, uint64(j.den), 10))
}

func (s *Server) getStatusUnique(c *conn, unique []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var j *job
	if len(unique) > 0 && len(unique) <= maxUniqueSize {
		// Any function's job with this unique, as gearmand's
		// server-wide unique hash answers.
		j = s.core.byUnique(unique)
	}
	if j == nil {
		c.send(protocol.StatusResUnique, unique, zero, zero, zero, zero, zero)
		return
	}
	c.send(protocol.StatusResUnique, unique, one, bit(j.state == jobRunning),
		strconv.AppendUint(nil, uint64(j.num), 10), strconv.AppendUint(nil, uint64(j.den), 10),
		strconv.AppendInt(nil, int64(len(j.clients)), 10))
}

var (
	zero = []byte("0")
	one  = []byte("1")
)

func bit(b bool) []byte {
	if b {
		return one
	}
	return zero
}

func (s *Server) optionReq(c *conn, name []byte) error {
	if len(name) <= maxOptionSize && strings.EqualFold(string(name), "exceptions") {
		s.mu.Lock()
		c.exceptions = true
		s.mu.Unlock()
		c.send(protocol.OptionRes, name)
		return nil
	}
	return refuse(protocol.CodeUnknownOption, "Server does not recognize given option")
}

// setClientID keeps the id shown by the admin `workers` command. An id
// with a control character or "." alone, which would add lines or
// columns to that output, is refused and the previous id kept
// (gearmand takes any bytes).
func (s *Server) setClientID(c *conn, id []byte) error {
	if len(id) > maxClientIDSize {
		id = id[:maxClientIDSize]
	}
	if !printableName(id, false) {
		return refuse(protocol.CodeInvalidArgument, "client id must not contain control characters (tab, newline, ...) or be \".\"")
	}
	s.mu.Lock()
	c.clientID = string(id)
	s.mu.Unlock()
	return nil
}

// functionLocked returns the named function, creating it on first use.
// functionBytesLocked is functionLocked for a name read off the wire;
// it allocates only to create the function.
func (s *Server) functionBytesLocked(name []byte) *function {
	if fn := s.functions[string(name)]; fn != nil {
		return fn
	}
	return s.functionLocked(string(name))
}

func (s *Server) functionLocked(name string) *function {
	fn := s.functions[name]
	if fn == nil {
		fn = newFunction(name)
		s.functions[name] = fn
	}
	return fn
}
