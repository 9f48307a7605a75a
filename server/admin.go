package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/gearflow/gearflow/protocol"
)

// Admin commands return their reply, or an error whose type says what
// the connection does next (errors.go): a *clientError is answered with
// its "ERR ..." line and the connection goes on; a *fatalError closes
// it, without a word unless it carries a refusal, as gearmand closes it
// for a line of too many words.

// adminLine runs one admin text line from c's read loop and queues its
// reply. It returns an error only when the connection must be closed.
func (c *conn) adminLine(line []byte) error {
	reply, err := c.srv.admin(c, line)
	refusal, fatal := classify(err)
	if refusal != nil {
		reply = appendAdminRefusal(nil, refusal)
	}
	if len(reply) > textPiece {
		c.sendTextPaced(reply)
	} else if len(reply) > 0 {
		c.sendText(reply)
	}
	return fatal
}

// adminError is the refusal gearmand gives for cmd.
func adminError(cmd protocol.AdminCommand) error {
	return adminRefusal(string(protocol.AppendAdminReplyError(nil, cmd)))
}

// admin runs one admin text line, byte-compatible with gearmand 1.1.20
// (PROTOCOL.md §4), and returns its reply or an error (see above).
func (s *Server) admin(c *conn, line []byte) ([]byte, error) {
	cmd, err := protocol.ParseAdminCommand(line)
	if err != nil {
		return nil, &fatalError{Err: fmt.Errorf("server: admin: %w", err)}
	}
	if err := s.adminAllowed(c, cmd); err != nil {
		return nil, err
	}
	switch cmd.Kind {
	case protocol.AdminWorkers:
		return s.adminWorkers(), nil
	case protocol.AdminStatus:
		return s.adminStatus(false), nil
	case protocol.AdminPriorityStatus:
		return s.adminStatus(true), nil
	case protocol.AdminShowJobs:
		return s.adminShowJobs(false), nil
	case protocol.AdminShowUniqueJobs:
		return s.adminShowJobs(true), nil
	case protocol.AdminShowMaxQueue:
		return s.adminShowMaxQueue(), nil
	case protocol.AdminCancelJob:
		return s.adminCancel(cmd.Args[0])
	case protocol.AdminCreateFunction:
		if err := adminCheckFunctionName(cmd.Args[0]); err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.functionLocked(cmd.Args[0])
		s.mu.Unlock()
		return []byte(protocol.AdminOK), nil
	case protocol.AdminDropFunction:
		return s.adminDrop(cmd.Args[0])
	case protocol.AdminMaxQueue:
		if err := adminCheckFunctionName(cmd.Args[0]); err != nil {
			return nil, err
		}
		return s.adminMaxQueue(cmd.Args), nil
	case protocol.AdminGetPID:
		b := strconv.AppendInt([]byte("OK "), int64(os.Getpid()), 10)
		return append(b, '\n'), nil
	case protocol.AdminVerbose:
		return []byte("OK " + s.verboseName() + "\n"), nil
	case protocol.AdminVersion:
		return []byte("OK " + s.cfg.Version + "\n"), nil
	case protocol.AdminShutdown:
		if !s.cfg.AllowAdminShutdown {
			// Removed from gearmand in 1.1.15: unknown there, unknown here.
			return nil, adminError(protocol.AdminCommand{Kind: protocol.AdminUnknown, Word: cmd.Word})
		}
		s.adminShutdown(c, len(cmd.Args) > 0)
		return []byte(protocol.AdminOK), nil
	case protocol.AdminBadArguments:
		if strings.EqualFold(cmd.Word, "shutdown") && !s.cfg.AllowAdminShutdown {
			// gearmand 1.1.20 knows no shutdown command at all.
			cmd.Kind = protocol.AdminUnknown
		}
		return nil, adminError(cmd)
	default:
		return nil, adminError(cmd)
	}
}

// adminCheckFunctionName applies CAN_DO's checks (checkFunctionName)
// to a function an admin command may create ("create function",
// "maxqueue"; names that exist passed them already), refusing with an
// admin "ERR CODE text" line, spaces as '+' as gearmand writes them.
// Unlike CAN_DO's, an overlong name does not close the connection: an
// admin line is read whole and cannot leave the stream out of step (and
// a name that long does not fit the default 8 KiB line anyway).
func adminCheckFunctionName(name string) error {
	refusal, _ := classify(checkFunctionName([]byte(name)))
	if refusal == nil {
		return nil
	}
	return &clientError{Code: refusal.Code, Text: strings.ReplaceAll(refusal.Text, " ", "+")}
}

// adminShutdown stops the server in the background, so that the reply
// still goes out: gracefully (drained as on SIGTERM, running jobs given
// ShutdownTimeout to finish) or at once.
func (s *Server) adminShutdown(c *conn, graceful bool) {
	s.log.Info("shutdown requested by admin command", "graceful", graceful, "conn", c.id)
	s.goroutines.Add(1)
	go func() {
		defer s.goroutines.Add(-1)
		if !graceful {
			_ = s.Close()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		_ = s.Shutdown(ctx) // logs how it ended
	}()
}

func (s *Server) sortedFunctionsLocked() []*function {
	fns := make([]*function, 0, len(s.functions))
	for _, fn := range s.functions {
		fns = append(fns, fn)
	}
	slices.SortFunc(fns, func(a, b *function) int { return strings.Compare(a.name, b.name) })
	return fns
}

// appendAdminName appends a function name to an admin reply, a tab in
// it as the two characters \t, so that the name stays one column of
// the tab-separated lines (printableName allows no other control
// character). gearmand writes the tab itself, which adds a column.
func appendAdminName(b []byte, name string) []byte {
	for {
		i := strings.IndexByte(name, '\t')
		if i < 0 {
			return append(b, name...)
		}
		b = append(append(b, name[:i]...), '\\', 't')
		name = name[i+1:]
	}
}

func (s *Server) adminWorkers() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	slices.SortFunc(conns, func(a, b *conn) int { return int(a.id - b.id) })
	var b []byte
	for _, c := range conns {
		b = strconv.AppendInt(b, int64(c.fd), 10)
		b = append(b, ' ')
		b = append(b, c.ip...)
		b = append(b, ' ')
		b = append(b, c.clientID...)
		b = append(b, " :"...)
		for i := len(c.regs) - 1; i >= 0; i-- { // newest first, as gearmand lists them
			b = append(b, ' ')
			b = appendAdminName(b, c.regs[i].fn.name)
		}
		b = append(b, '\n')
	}
	return append(b, protocol.AdminEnd...)
}

func (s *Server) adminStatus(byPriority bool) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b []byte
	for _, fn := range s.sortedFunctionsLocked() {
		b = appendAdminName(b, fn.name)
		if byPriority {
			for p := priHigh; p < numPriorities; p++ {
				b = append(b, '\t')
				b = strconv.AppendInt(b, int64(fn.queued(p)), 10)
			}
		} else {
			b = append(b, '\t')
			b = strconv.AppendInt(b, int64(fn.total), 10)
			b = append(b, '\t')
			b = strconv.AppendInt(b, int64(fn.running), 10)
		}
		b = append(b, '\t')
		b = strconv.AppendInt(b, int64(len(fn.workers)), 10)
		b = append(b, '\n')
	}
	return append(b, protocol.AdminEnd...)
}

func (s *Server) adminShowJobs(unique bool) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b []byte
	for _, j := range s.jobs.all() { // in id order
		if unique {
			b = append(b, j.unique...)
		} else {
			b = s.appendHandle(b, j.id)
			b = append(b, '\t')
			b = strconv.AppendInt(b, int64(j.retries), 10)
			b = append(b, '\t')
			b = append(b, bit(j.cancelled || (!j.background && len(j.clients) == 0))...)
			// gearmand sets QUEUED for every background job, with or
			// without a persistent queue.
			b = append(b, '\t')
			b = append(b, bit(j.background && !j.cancelled)...)
		}
		b = append(b, '\n')
	}
	return append(b, protocol.AdminEnd...)
}

func (s *Server) adminShowMaxQueue() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b []byte
	for _, fn := range s.sortedFunctionsLocked() {
		b = appendAdminName(b, fn.name)
		for p := priHigh; p < numPriorities; p++ {
			b = append(b, '\t')
			b = strconv.AppendInt(b, int64(fn.maxQueue[p]), 10)
		}
		b = append(b, '\n')
	}
	return append(b, protocol.AdminEnd...)
}

// adminCancel cancels a job: its clients get WORK_FAIL now; a queued job
// is removed; a running job's later results are accepted and dropped.
func (s *Server) adminCancel(handle string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobByHandleLocked([]byte(handle))
	if j == nil || j.cancelled {
		return nil, adminRefusal(protocol.AdminUnknownJob)
	}
	h := []byte(handle)
	for _, cl := range j.clients {
		cl.send(protocol.WorkFail, h)
	}
	if j.state == jobRunning {
		j.cancelled = true
		for _, cl := range j.clients {
			cl.detach(j)
		}
		j.clients = nil
		s.unindexLocked(j)
	} else {
		s.removeLocked(j, endCancelled)
	}
	return []byte(protocol.AdminOK), nil
}

func (s *Server) adminDrop(name string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fn := range s.sortedFunctionsLocked() {
		if !strings.EqualFold(fn.name, name) {
			continue
		}
		// gearmand does not check queued jobs and leaves them pointing
		// at the freed function.
		if len(fn.workers) > 0 || fn.total > 0 {
			return nil, adminRefusal(protocol.AdminFunctionBusy)
		}
		delete(s.functions, fn.name)
		return []byte(protocol.AdminOK), nil
	}
	return nil, adminRefusal(protocol.AdminFunctionNotFound)
}

// adminMaxQueue applies "maxqueue FUNC [N | H N [L]]" as gearmand does:
// one number sets all three priorities; no number clears the limits;
// negative numbers mean no limit. An unknown function is created, so
// limits can be set before the first submission (gearmand ignores them).
func (s *Server) adminMaxQueue(args []string) []byte {
	var limits [numPriorities]int
	for p := priHigh; p < numPriorities; p++ {
		if int(p)+1 < len(args) {
			n, _ := strconv.Atoi(leadingInt(args[p+1]))
			limits[p] = max(n, 0)
		}
	}
	if len(args) <= 2 {
		limits[priNormal], limits[priLow] = limits[priHigh], limits[priHigh]
	}
	s.mu.Lock()
	s.functionLocked(args[0]).maxQueue = limits
	s.mu.Unlock()
	return []byte(protocol.AdminOK)
}

// leadingInt returns the prefix of s that C's atoi would read.
func leadingInt(s string) string {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}

// verboseName maps the logger's level to gearmand's verbosity names.
func (s *Server) verboseName() string {
	ctx := context.Background()
	switch {
	case s.log.Enabled(ctx, slog.LevelDebug):
		return "DEBUG"
	case s.log.Enabled(ctx, slog.LevelInfo):
		return "INFO"
	case s.log.Enabled(ctx, slog.LevelWarn):
		return "WARNING"
	default:
		return "ERROR"
	}
}
