package server

import (
	"github.com/gearflow/gearflow/protocol"
)

// Limits gearmand applies to arguments (PROTOCOL.md §1).
const (
	maxUniqueSize   = 64  // longer uniques get ARGUMENT_TOO_LARGE
	maxHandleSize   = 63  // a handle must fit gearmand's 64-byte buffer
	maxOptionSize   = 63  // OPTION_REQ names must be shorter than 64
	maxClientIDSize = 127 // SET_CLIENT_ID is truncated to this
	maxTimeoutChars = 20  // CAN_DO_TIMEOUT values longer than this are refused
)

var (
	textCommandNotExpected = []byte("Command not expected")
	textNoDataJob          = "Job does not exist on server"
	textNoResultJob        = "Job given in work result not found"
	textNoExceptionJob     = "An exception was received for a job that does not exist"
)

// dispatch handles one binary packet from c: one method per type.
func (s *Server) dispatch(c *conn, p protocol.Packet) {
	if p.Magic != protocol.Req {
		c.sendError(protocol.CodeInvalidMagic, "Request magic expected")
		return
	}
	switch p.Type {
	case protocol.CanDo:
		s.canDo(c, p.Args[0], 0)
	case protocol.CanDoTimeout:
		s.canDoTimeout(c, p)
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
		s.submit(c, p)
	case protocol.WorkData, protocol.WorkWarning, protocol.WorkStatus,
		protocol.WorkComplete, protocol.WorkFail, protocol.WorkException:
		s.workResult(c, p)
	case protocol.GetStatus:
		s.getStatus(c, p.Args[0])
	case protocol.GetStatusUnique:
		s.getStatusUnique(c, p.Args[0])
	case protocol.EchoReq:
		c.send(protocol.EchoRes, p.Args[0])
	case protocol.SetClientID:
		s.setClientID(c, p.Args[0])
	case protocol.OptionReq:
		s.optionReq(c, p.Args[0])
	default:
		// Response types, UNUSED and ALL_YOURS.
		c.send(protocol.Error, []byte(protocol.CodeInvalidCommand), textCommandNotExpected)
	}
}
