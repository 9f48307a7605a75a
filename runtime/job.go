package runtime

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// Priority of a submitted job. The zero value is normal.
type Priority int

const (
	// PriorityNormal: SUBMIT_JOB / SUBMIT_JOB_BG.
	PriorityNormal Priority = iota
	// PriorityHigh: SUBMIT_JOB_HIGH / SUBMIT_JOB_HIGH_BG.
	PriorityHigh
	// PriorityLow: SUBMIT_JOB_LOW / SUBMIT_JOB_LOW_BG.
	PriorityLow
)

func (p Priority) String() string {
	switch p {
	case PriorityNormal:
		return "normal"
	case PriorityHigh:
		return "high"
	case PriorityLow:
		return "low"
	}
	return "Priority(" + strconv.Itoa(int(p)) + ")"
}

// ParsePriority parses "high", "normal" (or "") and "low".
func ParsePriority(s string) (Priority, bool) {
	switch s {
	case "", "normal":
		return PriorityNormal, true
	case "high":
		return PriorityHigh, true
	case "low":
		return PriorityLow, true
	}
	return 0, false
}

// Job is a job to submit (client side) and the job a handler is given
// (worker side), the way http.Request serves both sides.
type Job struct {
	// Function is the registered function name. Required.
	Function string
	// Payload is the job's workload. The client does not keep it after
	// Submit returns.
	Payload []byte
	// Unique identifies the job for coalescing: "" = none (every
	// submission is a new job); "-" = coalesce by payload; anything else
	// (at most MaxUniqueSize bytes) = coalesce with a queued or running
	// job of the same function and unique. A job with a unique always
	// goes to the same server of a Client's list, so coalescing works
	// across a fleet of servers.
	Unique string
	// Priority: normal, high or low. Epoch and reduce jobs are always
	// normal.
	Priority Priority
	// Background jobs are acknowledged and forgotten: the client gets a
	// handle and no events.
	Background bool
	// When, if non-zero, submits with SUBMIT_JOB_EPOCH: the job does not
	// run before that time. Background only. Note that gearmand 1.1
	// wakes no worker at that time: the job runs when a worker next asks
	// for work.
	When time.Time
	// Reducer, if non-empty, submits with SUBMIT_REDUCE_JOB (or
	// SUBMIT_REDUCE_JOB_BACKGROUND) naming this reducer function.
	Reducer string

	// Handle is the job handle; set on the worker side.
	Handle string

	// served links a handler's job to its worker connection; nil on the
	// client side.
	served *served
}

// served is the worker side of a Job.
type served struct {
	sess     *workerSession
	reported atomic.Bool // the job's outcome is being sent
}

// SendData sends WORK_DATA: a partial result streamed to the job's
// clients. It is safe to call from the handler goroutine while the job
// runs; it returns an error wrapping ErrConnectionLost when the
// connection to the job's server is gone.
func (j *Job) SendData(data []byte) error {
	return j.send(protocol.WorkData, []byte(j.Handle), data)
}

// SendWarning sends WORK_WARNING, with the same contract as SendData.
func (j *Job) SendWarning(data []byte) error {
	return j.send(protocol.WorkWarning, []byte(j.Handle), data)
}

// SendStatus sends WORK_STATUS: the job is num/den done. Same contract as
// SendData.
func (j *Job) SendStatus(num, den uint64) error {
	return j.send(protocol.WorkStatus, []byte(j.Handle),
		strconv.AppendUint(nil, num, 10), strconv.AppendUint(nil, den, 10))
}

func (j *Job) send(t protocol.Type, args ...[]byte) error {
	if j.served == nil {
		return ErrNotWorkerJob
	}
	if j.served.reported.Load() {
		return ErrJobDone
	}
	return j.served.sess.conn.write(nil, protocol.New(protocol.Req, t, args...))
}

// submitType returns the packet type that submits j.
func (j *Job) submitType() protocol.Type {
	switch {
	case !j.When.IsZero():
		return protocol.SubmitJobEpoch
	case j.Reducer != "" && j.Background:
		return protocol.SubmitReduceJobBackground
	case j.Reducer != "":
		return protocol.SubmitReduceJob
	}
	switch {
	case j.Background && j.Priority == PriorityHigh:
		return protocol.SubmitJobHighBg
	case j.Background && j.Priority == PriorityLow:
		return protocol.SubmitJobLowBg
	case j.Background:
		return protocol.SubmitJobBg
	case j.Priority == PriorityHigh:
		return protocol.SubmitJobHigh
	case j.Priority == PriorityLow:
		return protocol.SubmitJobLow
	}
	return protocol.SubmitJob
}

// validate checks a job before it is submitted.
func (j *Job) validate() error {
	switch {
	case j.Function == "":
		return errorf(ErrInvalidJob, "no function")
	case len(j.Unique) > MaxUniqueSize:
		return errorf(ErrInvalidJob, "unique of %d bytes exceeds %d", len(j.Unique), MaxUniqueSize)
	case !j.When.IsZero() && !j.Background:
		return errorf(ErrInvalidJob, "a job with When must be a background job")
	case !j.When.IsZero() && j.Reducer != "":
		return errorf(ErrInvalidJob, "a job cannot have both When and Reducer")
	case j.Priority < PriorityNormal || j.Priority > PriorityLow:
		return errorf(ErrInvalidJob, "unknown priority %d", j.Priority)
	case (!j.When.IsZero() || j.Reducer != "") && j.Priority != PriorityNormal:
		return errorf(ErrInvalidJob, "epoch and reduce jobs are always normal priority")
	}
	for _, s := range []string{j.Function, j.Unique, j.Reducer} {
		for i := 0; i < len(s); i++ {
			if s[i] == 0 {
				return errorf(ErrInvalidJob, "NUL byte in %q", s)
			}
		}
	}
	return nil
}

// submitPacket encodes the submission of j.
func (j *Job) submitPacket() protocol.Packet {
	t := j.submitType()
	fn, uniq := []byte(j.Function), []byte(j.Unique)
	switch t {
	case protocol.SubmitJobEpoch:
		return protocol.New(protocol.Req, t, fn, uniq, strconv.AppendInt(nil, j.When.Unix(), 10), j.Payload)
	case protocol.SubmitReduceJob, protocol.SubmitReduceJobBackground:
		// gearmand requires a fourth NUL-terminated field (the unused
		// "aggregator"), which PROTOCOL omits: send it empty as
		// libgearman does.
		return protocol.New(protocol.Req, t, fn, uniq, []byte(j.Reducer), nil, j.Payload)
	}
	return protocol.New(protocol.Req, t, fn, uniq, j.Payload)
}

// EventKind says what an Event carries.
type EventKind int

const (
	// EventData: WORK_DATA, a partial result in Data.
	EventData EventKind = iota + 1
	// EventWarning: WORK_WARNING, in Data.
	EventWarning
	// EventStatus: WORK_STATUS, Numerator/Denominator.
	EventStatus
	// EventComplete: WORK_COMPLETE with the result in Data. Terminal.
	EventComplete
	// EventFail: WORK_FAIL. Terminal.
	EventFail
	// EventException: WORK_EXCEPTION with its data. Terminal.
	EventException
	// EventError: the task ended without a result: the connection to its
	// server was lost (Err wraps ErrConnectionLost), the Client was
	// closed (ErrClosed), or the Submit context is done. Terminal.
	EventError
)

var eventKindNames = [...]string{
	EventData:      "data",
	EventWarning:   "warning",
	EventStatus:    "status",
	EventComplete:  "complete",
	EventFail:      "fail",
	EventException: "exception",
	EventError:     "error",
}

func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventKindNames) {
		return eventKindNames[k]
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Terminal reports whether k ends a task's event stream.
func (k EventKind) Terminal() bool { return k >= EventComplete }

// Event is one thing that happened to a foreground task.
type Event struct {
	Kind EventKind
	// Data of EventData, EventWarning, EventComplete and EventException;
	// owned by the receiver.
	Data []byte
	// Numerator and Denominator of EventStatus.
	Numerator, Denominator uint64
	// Err of EventError.
	Err error
}

// Status is a job's state as a server reports it (STATUS_RES or
// STATUS_RES_UNIQUE). A finished job and one that never existed look the
// same: Known is false.
type Status struct {
	Handle, Unique string
	// Known: the server has the job (queued or running).
	Known bool
	// Running: a worker has it.
	Running bool
	// Numerator and Denominator: its last WORK_STATUS.
	Numerator, Denominator uint64
	// Clients: foreground clients waiting on the job, from
	// STATUS_RES_UNIQUE; -1 when unknown (a status by handle).
	Clients int
}
