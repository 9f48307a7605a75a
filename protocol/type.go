package protocol

import "strconv"

// Type is a Gearman packet type (command number). The zero value, Text,
// is not a wire type: the Reader uses it for a line of the admin text
// protocol read from the same stream.
type Type uint32

// Packet types, numbered as on the wire. See PROTOCOL.md §2.
const (
	Text                      Type = 0
	CanDo                     Type = 1
	CantDo                    Type = 2
	ResetAbilities            Type = 3
	PreSleep                  Type = 4
	Unused                    Type = 5
	Noop                      Type = 6
	SubmitJob                 Type = 7
	JobCreated                Type = 8
	GrabJob                   Type = 9
	NoJob                     Type = 10
	JobAssign                 Type = 11
	WorkStatus                Type = 12
	WorkComplete              Type = 13
	WorkFail                  Type = 14
	GetStatus                 Type = 15
	EchoReq                   Type = 16
	EchoRes                   Type = 17
	SubmitJobBg               Type = 18
	Error                     Type = 19
	StatusRes                 Type = 20
	SubmitJobHigh             Type = 21
	SetClientID               Type = 22
	CanDoTimeout              Type = 23
	AllYours                  Type = 24
	WorkException             Type = 25
	OptionReq                 Type = 26
	OptionRes                 Type = 27
	WorkData                  Type = 28
	WorkWarning               Type = 29
	GrabJobUniq               Type = 30
	JobAssignUniq             Type = 31
	SubmitJobHighBg           Type = 32
	SubmitJobLow              Type = 33
	SubmitJobLowBg            Type = 34
	SubmitJobSched            Type = 35
	SubmitJobEpoch            Type = 36
	SubmitReduceJob           Type = 37
	SubmitReduceJobBackground Type = 38
	GrabJobAll                Type = 39
	JobAssignAll              Type = 40
	GetStatusUnique           Type = 41
	StatusResUnique           Type = 42

	// MaxType is the highest packet type defined by the protocol.
	MaxType = StatusResUnique
)

// framing describes how a type's body splits into arguments
// (libgearman/command.cc): argc arguments, and with data set a trailing
// opaque blob after argc NUL-terminated ones; without data the last of
// the argc arguments runs to the end of the body with no terminator.
type framing struct {
	name string
	argc int
	data bool
}

var framings = [...]framing{
	Text:                      {"TEXT", 1, false},
	CanDo:                     {"CAN_DO", 1, false},
	CantDo:                    {"CANT_DO", 1, false},
	ResetAbilities:            {"RESET_ABILITIES", 0, false},
	PreSleep:                  {"PRE_SLEEP", 0, false},
	Unused:                    {"UNUSED", 0, false},
	Noop:                      {"NOOP", 0, false},
	SubmitJob:                 {"SUBMIT_JOB", 2, true},
	JobCreated:                {"JOB_CREATED", 1, false},
	GrabJob:                   {"GRAB_JOB", 0, false},
	NoJob:                     {"NO_JOB", 0, false},
	JobAssign:                 {"JOB_ASSIGN", 2, true},
	WorkStatus:                {"WORK_STATUS", 3, false},
	WorkComplete:              {"WORK_COMPLETE", 1, true},
	WorkFail:                  {"WORK_FAIL", 1, false},
	GetStatus:                 {"GET_STATUS", 1, false},
	EchoReq:                   {"ECHO_REQ", 0, true},
	EchoRes:                   {"ECHO_RES", 0, true},
	SubmitJobBg:               {"SUBMIT_JOB_BG", 2, true},
	Error:                     {"ERROR", 2, false},
	StatusRes:                 {"STATUS_RES", 5, false},
	SubmitJobHigh:             {"SUBMIT_JOB_HIGH", 2, true},
	SetClientID:               {"SET_CLIENT_ID", 1, false},
	CanDoTimeout:              {"CAN_DO_TIMEOUT", 2, false},
	AllYours:                  {"ALL_YOURS", 0, false},
	WorkException:             {"WORK_EXCEPTION", 1, true},
	OptionReq:                 {"OPTION_REQ", 1, false},
	OptionRes:                 {"OPTION_RES", 1, false},
	WorkData:                  {"WORK_DATA", 1, true},
	WorkWarning:               {"WORK_WARNING", 1, true},
	GrabJobUniq:               {"GRAB_JOB_UNIQ", 0, false},
	JobAssignUniq:             {"JOB_ASSIGN_UNIQ", 3, true},
	SubmitJobHighBg:           {"SUBMIT_JOB_HIGH_BG", 2, true},
	SubmitJobLow:              {"SUBMIT_JOB_LOW", 2, true},
	SubmitJobLowBg:            {"SUBMIT_JOB_LOW_BG", 2, true},
	SubmitJobSched:            {"SUBMIT_JOB_SCHED", 7, true},
	SubmitJobEpoch:            {"SUBMIT_JOB_EPOCH", 3, true},
	SubmitReduceJob:           {"SUBMIT_REDUCE_JOB", 4, true},
	SubmitReduceJobBackground: {"SUBMIT_REDUCE_JOB_BACKGROUND", 4, true},
	GrabJobAll:                {"GRAB_JOB_ALL", 0, false},
	JobAssignAll:              {"JOB_ASSIGN_ALL", 4, true},
	GetStatusUnique:           {"GET_STATUS_UNIQUE", 1, false},
	StatusResUnique:           {"STATUS_RES_UNIQUE", 6, false},
}

// Valid reports whether t is a packet type defined on the wire (1..42).
func (t Type) Valid() bool { return t >= CanDo && t <= MaxType }

// String returns the protocol's name for t ("SUBMIT_JOB"), or
// "Type(N)" for a number the protocol does not define.
func (t Type) String() string {
	if t <= MaxType {
		return framings[t].name
	}
	return "Type(" + strconv.FormatUint(uint64(t), 10) + ")"
}

// NumArgs returns how many arguments a packet of type t carries,
// counting the trailing data blob of types that have one.
func (t Type) NumArgs() int {
	if t > MaxType {
		return 0
	}
	f := framings[t]
	if f.data {
		return f.argc + 1
	}
	return f.argc
}

// HasData reports whether the last argument of t is an opaque data blob
// (which may contain NUL bytes) rather than a plain string.
func (t Type) HasData() bool { return t <= MaxType && framings[t].data }

// IsSubmit reports whether t submits a job.
func (t Type) IsSubmit() bool {
	switch t {
	case SubmitJob, SubmitJobBg, SubmitJobHigh, SubmitJobHighBg, SubmitJobLow,
		SubmitJobLowBg, SubmitJobSched, SubmitJobEpoch, SubmitReduceJob,
		SubmitReduceJobBackground:
		return true
	}
	return false
}

// IsResponse reports whether t is only ever sent by a server. A server
// receiving one as a request answers ERROR INVALID_COMMAND.
func (t Type) IsResponse() bool {
	switch t {
	case Noop, JobCreated, NoJob, JobAssign, EchoRes, Error, StatusRes,
		OptionRes, JobAssignUniq, JobAssignAll, StatusResUnique:
		return true
	}
	return false
}
