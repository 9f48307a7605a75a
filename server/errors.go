package server

import (
	"errors"

	"github.com/gearflow/gearflow/protocol"
)

// Request handlers return an error whose type says what the connection's
// read loop does with it, as nsqd's ClientErr and FatalClientErr do:
//
//   - *clientError: answer with an ERROR packet and go on reading;
//   - *fatalError: answer with its ERROR packet, if it has one, then
//     close the connection once that is written;
//   - nil: the handler has sent whatever reply the request gets.
//
// Handlers never send ERROR packets themselves, so a refusal is visible
// in their signature and the decision to close is made in one place.

// clientError refuses one request with ERROR Code Text; the connection
// stays open and its next request is read.
type clientError struct {
	Code string // a protocol.Code* value
	Text string
}

func (e *clientError) Error() string { return "server: " + e.Code + ": " + e.Text }

// refuse returns a clientError.
func refuse(code, text string) error { return &clientError{Code: code, Text: text} }

// fatalError ends the connection: Reply, if not nil, is sent first.
// Err is the reason, for the log.
type fatalError struct {
	Reply *clientError
	Err   error
}

func (e *fatalError) Error() string {
	if e.Reply != nil {
		return e.Reply.Error() + " (closing)"
	}
	return e.Err.Error()
}

func (e *fatalError) Unwrap() error { return e.Err }

// refuseAndClose returns a fatalError that answers ERROR code text
// before the connection closes.
func refuseAndClose(code, text string) error {
	ce := &clientError{Code: code, Text: text}
	return &fatalError{Reply: ce, Err: ce}
}

// reply sends the ERROR packet err asks for and returns the error that
// must close the connection, or nil when the connection goes on. A nil
// err returns nil.
func (c *conn) reply(err error) error {
	if err == nil {
		return nil
	}
	// fatalError first: it may wrap a clientError (its reply).
	var fe *fatalError
	if errors.As(err, &fe) {
		if fe.Reply != nil {
			c.send(protocol.Error, []byte(fe.Reply.Code), []byte(fe.Reply.Text))
		}
		return fe
	}
	var ce *clientError
	if errors.As(err, &ce) {
		c.send(protocol.Error, []byte(ce.Code), []byte(ce.Text))
		return nil
	}
	return &fatalError{Err: err} // an error of no known kind: close
}

// closeFatal ends the connection after a fatal error from a handler:
// what the read loop queued (the ERROR reply among it) goes out first.
// Called by the read loop, which returns next.
func (c *conn) closeFatal(err error) {
	c.log.Debug("closing", "err", err)
	c.holding.Store(false)
	c.flushPeers()
	c.closeAfterFlush(err)
}
