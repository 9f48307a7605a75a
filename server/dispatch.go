package server

import (
	"fmt"

	"github.com/gearflow/gearflow/protocol"
)

// Limits gearmand applies to arguments (PROTOCOL.md §1).
const (
	maxUniqueSize   = 64  // longer uniques get ARGUMENT_TOO_LARGE
	maxHandleSize   = 63  // a handle must fit gearmand's 64-byte buffer
	maxOptionSize   = 63  // OPTION_REQ names must be shorter than 64
	maxClientIDSize = 127 // SET_CLIENT_ID is truncated to this
	maxTimeoutChars = 20  // CAN_DO_TIMEOUT values longer than this are refused
	// maxFunctionSize bounds a function name. gearmand needs a name in
	// its 8 KiB receive buffer and hangs up on a longer one (CAN_DO of
	// 8192 bytes works, 8200 is cut); libgearman itself sends at most
	// 512 (GEARMAN_FUNCTION_MAX_SIZE).
	maxFunctionSize = 8192
)

var (
	textCommandNotExpected = "Command not expected"
	textNoDataJob          = "Job does not exist on server"
	textNoResultJob        = "Job given in work result not found"
	textNoExceptionJob     = "An exception was received for a job that does not exist"
)

// dispatch handles one binary packet from c: one method per type. Its
// error says whether the connection goes on (see errors.go).
func (s *Server) dispatch(c *conn, p protocol.Packet) error {
	if p.Magic != protocol.Req {
		return refuse(protocol.CodeInvalidMagic, "Request magic expected")
	}
	switch p.Type {
	case protocol.CanDo:
		return s.canDo(c, p.Args[0], 0)
	case protocol.CanDoTimeout:
		return s.canDoTimeout(c, p)
	case protocol.CantDo:
		s.cantDo(c, p.Args[0])
	case protocol.ResetAbilities:
		s.resetAbilities(c)
	case protocol.PreSleep:
		s.preSleep(c)
	case protocol.GrabJob, protocol.GrabJobUniq, protocol.GrabJobAll:
		s.grab(c, p.Type)
	case protocol.SubmitJob, protocol.SubmitJobBg, protocol.SubmitJobHigh,
		protocol.SubmitJobHighBg, protocol.SubmitJobLow, protocol.SubmitJobLowBg,
		protocol.SubmitJobEpoch, protocol.SubmitJobSched,
		protocol.SubmitReduceJob, protocol.SubmitReduceJobBackground:
		return s.submit(c, p)
	case protocol.WorkData, protocol.WorkWarning, protocol.WorkStatus,
		protocol.WorkComplete, protocol.WorkFail, protocol.WorkException:
		return s.workResult(c, p)
	case protocol.GetStatus:
		s.getStatus(c, p.Args[0])
	case protocol.GetStatusUnique:
		s.getStatusUnique(c, p.Args[0])
	case protocol.EchoReq:
		c.send(protocol.EchoRes, p.Args[0])
	case protocol.SetClientID:
		return s.setClientID(c, p.Args[0])
	case protocol.OptionReq:
		return s.optionReq(c, p.Args[0])
	default:
		// Response types, UNUSED and ALL_YOURS.
		return refuse(protocol.CodeInvalidCommand, textCommandNotExpected)
	}
	return nil
}

// malformed handles a packet whose body did not split into its type's
// arguments (err matches protocol.ErrMalformed; p has no Args). The
// reader consumed the whole body, so the stream is in sync and the
// connection can go on (gearmand desyncs here). A worker's malformed
// result is the exception: the job it was about cannot be known, and
// a worker library reading the ERROR as the reply to its next GRAB
// would drop the job assigned after it; as gearmand does, the
// connection is closed, which requeues the worker's jobs.
func (s *Server) malformed(c *conn, p protocol.Packet, err error) error {
	switch p.Type {
	case protocol.WorkData, protocol.WorkWarning, protocol.WorkStatus,
		protocol.WorkComplete, protocol.WorkFail, protocol.WorkException:
		return &fatalError{
			Reply: &clientError{Code: protocol.CodeInvalidArgument, Text: err.Error()},
			Err:   fmt.Errorf("server: %w", err),
		}
	}
	return refuse(protocol.CodeInvalidArgument, err.Error())
}

// checkFunctionName refuses a name that is too long to keep, or that
// would break the admin protocol's lines and columns.
func checkFunctionName(name []byte) error {
	if len(name) > maxFunctionSize {
		// gearmand hangs up; we say why first.
		return refuseAndClose(protocol.CodeArgumentTooLarge,
			fmt.Sprintf("function name of %d bytes exceeds the %d-byte limit", len(name), maxFunctionSize))
	}
	if !printableName(name, true) {
		return refuse(protocol.CodeInvalidArgument, "function name must not contain control characters other than tab (newline, carriage return, ...) or be \".\"")
	}
	return nil
}

// printableName reports whether a function name or client id can be
// shown in the admin protocol's `status` and `workers` output without
// adding a line or a column: no control character (a byte below 0x20 or
// 0x7f), and not the list terminator "." alone. NUL is allowed, as in
// gearmand: a client that sends CAN_DO "rev\0" registers that name.
//
// With tab true a tab is allowed too, and the admin output shows it as
// the two characters \t (appendAdminName). Perl's Gearman::Client and
// Gearman::Worker join a prefix to every function name with a tab
// (their "prefix" option), so a function name must allow one.
func printableName(b []byte, tab bool) bool {
	if len(b) == 1 && b[0] == '.' {
		return false
	}
	for _, ch := range b {
		if (ch < 0x20 && ch != 0 && (ch != '\t' || !tab)) || ch == 0x7f {
			return false
		}
	}
	return true
}
