package runtime

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by the package wrap them, so test with
// errors.Is.
var (
	// ErrConnectionLost: the connection to a job server broke. A
	// foreground task running on that server ends with an EventError
	// wrapping it; the job itself may still run to completion on the
	// server, but its result can no longer reach this client.
	ErrConnectionLost = errors.New("runtime: connection to job server lost")
	// ErrClosed: the Client was closed, or the Worker stopped.
	ErrClosed = errors.New("runtime: client closed")
	// ErrNoServers: no configured server accepted the request: every one
	// was unreachable, lost the connection before acknowledging, or is
	// waiting out its reconnect backoff.
	ErrNoServers = errors.New("runtime: no job server available")
	// ErrNotWorkerJob: a worker-side Job method (SendData, SendWarning,
	// SendStatus) was called on a Job that a handler was not given.
	ErrNotWorkerJob = errors.New("runtime: job is not being served by a worker")
	// ErrJobDone: a worker-side Job method was called after the handler
	// returned and the job's result was sent.
	ErrJobDone = errors.New("runtime: job already finished")
	// ErrInvalidJob: a Job cannot be submitted as given (see the error
	// text: missing function, unique too long, epoch job in foreground).
	ErrInvalidJob = errors.New("runtime: invalid job")
)

// MaxUniqueSize is the longest unique a job may carry. gearmand rejects
// longer uniques and silently truncates a 64-byte one to 63, which would
// coalesce jobs that differ only in their last byte, so the client
// refuses them instead.
const MaxUniqueSize = 63

// JobError is a job that ended with WORK_FAIL or WORK_EXCEPTION. Data is
// the exception's payload (the error text a worker of ours sends), empty
// for a fail.
type JobError struct {
	Handle   string
	Function string
	Kind     EventKind // EventFail or EventException
	Data     []byte
}

func (e *JobError) Error() string {
	if e.Kind == EventException {
		return fmt.Sprintf("runtime: job %s (%s) raised an exception: %s", e.Handle, e.Function, e.Data)
	}
	return fmt.Sprintf("runtime: job %s (%s) failed", e.Handle, e.Function)
}

// exceptionError marks an error returned by a handler so that the worker
// sends WORK_EXCEPTION carrying its text instead of WORK_FAIL.
type exceptionError struct{ err error }

func (e *exceptionError) Error() string { return e.err.Error() }
func (e *exceptionError) Unwrap() error { return e.err }

// Exception marks err so that a Worker reports it with WORK_EXCEPTION and
// the error's text as data, instead of a bare WORK_FAIL. Clients see the
// text only if they enabled exceptions (a Client always does). Exception
// returns nil for a nil err.
func Exception(err error) error {
	if err == nil {
		return nil
	}
	return &exceptionError{err: err}
}

// isException reports whether err was marked with Exception.
func isException(err error) bool {
	var e *exceptionError
	return errors.As(err, &e)
}

// errorf wraps a sentinel with detail: errors.Is(err, sentinel) holds.
func errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
}
