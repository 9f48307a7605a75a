package runtime

import (
	"context"
	"sync"
)

// Task is a submitted job as its client sees it.
type Task struct {
	// Handle is the job handle from JOB_CREATED.
	Handle string
	// Server is the address of the server that accepted the job.
	Server string

	function string
	client   *Client
	conn     *clientConn // set by the read loop on JOB_CREATED; nil for background tasks

	mu       sync.Mutex // guards the fields below
	queue    []Event    // events not yet handed to the pump
	finished bool       // the terminal event has been queued
	terminal Event      // the terminal event, once finished
	out      chan Event // created by the first Events call
	wake     chan struct{}
	stopCtx  func() bool // stops the Submit-context watcher
}

func newTask(c *Client, function, server string) *Task {
	return &Task{client: c, function: function, Server: server, wake: make(chan struct{}, 1)}
}

// newBackgroundTask returns an already finished task with no events.
func newBackgroundTask(handle, server string) *Task {
	t := &Task{Handle: handle, Server: server, finished: true, out: make(chan Event), wake: make(chan struct{}, 1)}
	close(t.out)
	return t
}

// watch ends the task with an EventError when ctx is done first.
func (t *Task) watch(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() {
		if t.conn != nil {
			t.conn.forget(t)
		}
		t.finish(Event{Kind: EventError, Err: ctx.Err()})
	})
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		stop()
		return
	}
	t.stopCtx = stop
	t.mu.Unlock()
}

// push queues ev; after a terminal event nothing more is queued. It never
// blocks, so the connection's read loop never waits for a slow reader.
func (t *Task) push(ev Event) {
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		return
	}
	t.queue = append(t.queue, ev)
	var stop func() bool
	if ev.Kind.Terminal() {
		t.finished = true
		t.terminal = ev
		stop, t.stopCtx = t.stopCtx, nil
	}
	t.mu.Unlock()
	if stop != nil {
		stop()
	}
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// finish ends the task with ev unless it has already ended.
func (t *Task) finish(ev Event) { t.push(ev) }

// Events returns the task's event stream, in the order the server sent
// them. The channel is closed after the terminal event (EventComplete,
// EventFail, EventException or EventError). Events are queued per task,
// so a slow reader never holds up other tasks; a reader that stops
// reading keeps the task's events in memory until the Client is closed.
// For a background task the channel is closed at once.
func (t *Task) Events() <-chan Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.out == nil {
		t.out = make(chan Event)
		go t.pump()
	}
	return t.out
}

// pump moves queued events to out, in order, and closes out after the
// terminal one.
func (t *Task) pump() {
	for {
		t.mu.Lock()
		evs := t.queue
		t.queue = nil
		t.mu.Unlock()
		for _, ev := range evs {
			t.out <- ev
			if ev.Kind.Terminal() {
				close(t.out)
				return
			}
		}
		<-t.wake
	}
}

// Wait reads the task's events until the terminal one and returns the
// complete data, or a *JobError for a fail or an exception, or the error
// of an EventError (wrapping ErrConnectionLost or ErrClosed, or the
// Submit context's error). When ctx ends first it returns ctx.Err() and
// the task goes on. Intermediate events are discarded; use Events to see
// them. For a background task Wait returns nil, nil.
func (t *Task) Wait(ctx context.Context) ([]byte, error) {
	events := t.Events()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.mu.Lock()
				term, finished := t.terminal, t.finished
				t.mu.Unlock()
				if !finished || term.Kind == 0 {
					return nil, nil // background task
				}
				return t.result(term)
			}
			if ev.Kind.Terminal() {
				return t.result(ev)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (t *Task) result(ev Event) ([]byte, error) {
	switch ev.Kind {
	case EventComplete:
		return ev.Data, nil
	case EventFail, EventException:
		return nil, &JobError{Handle: t.Handle, Function: t.function, Kind: ev.Kind, Data: ev.Data}
	}
	return nil, ev.Err
}
