package server

import (
	"errors"
	"strings"

	"github.com/gearflow/gearflow/protocol"
)

// Request handlers, for binary packets and admin lines alike, return an
// error whose type says what the connection's read loop does with it, as
// nsq's ClientErr and FatalClientErr serve both nsqd's and nsqlookupd's
// protocols:
//
//   - *clientError: answer with its refusal and go on reading;
//   - *fatalError: answer with its refusal, if it has one, then close
//     the connection once that is written;
//   - nil: the handler has sent (or returned) whatever reply the request
//     gets.
//
// The caller renders the refusal: an ERROR packet for a binary request
// (reply), an "ERR CODE text" line for an admin command (adminLine).
// Handlers never send refusals themselves, so a refusal is visible in
// their signature and the decision to close is made in one place.

// clientError refuses one request; the connection stays open and its
// next request is read. A binary request gets ERROR Code Text; an admin
// command gets the line "ERR Code Text" (or "ERR Code" when Text is
// empty), both as they are: admin Text is already in gearmand's admin
// form, with '+' for spaces where gearmand writes them so.
type clientError struct {
	Code string // a protocol.Code* value, or gearmand's admin error code
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

// classify splits a handler's error into the refusal to send (nil for
// none) and the error the connection must be closed for (nil when it
// goes on). An error of no known kind closes the connection unanswered.
func classify(err error) (refusal *clientError, fatal error) {
	if err == nil {
		return nil, nil
	}
	// fatalError first: it may wrap a clientError (its reply).
	var fe *fatalError
	if errors.As(err, &fe) {
		return fe.Reply, fe
	}
	var ce *clientError
	if errors.As(err, &ce) {
		return ce, nil
	}
	return nil, &fatalError{Err: err}
}

// reply sends the ERROR packet a binary request's err asks for and
// returns the error that must close the connection, or nil when the
// connection goes on. A nil err returns nil.
func (c *conn) reply(err error) error {
	refusal, fatal := classify(err)
	if refusal != nil {
		c.send(protocol.Error, []byte(refusal.Code), []byte(refusal.Text))
	}
	return fatal
}

// appendAdminRefusal appends e as an admin reply line, "ERR Code
// Text\r\n".
func appendAdminRefusal(b []byte, e *clientError) []byte {
	b = append(b, "ERR "...)
	b = append(b, e.Code...)
	if e.Text != "" {
		b = append(b, ' ')
		b = append(b, e.Text...)
	}
	return append(b, "\r\n"...)
}

// adminRefusal is the clientError for one of gearmand's admin error
// lines ("ERR CODE[ TEXT]\r\n", as protocol builds them): its first
// word is taken for the code and the rest, as it is, for the text, so
// that appendAdminRefusal gives the line back byte for byte, even for
// "ERR function not found", which has no code.
func adminRefusal(line string) *clientError {
	line = strings.TrimSuffix(strings.TrimPrefix(line, "ERR "), "\r\n")
	code, text, _ := strings.Cut(line, " ")
	return &clientError{Code: code, Text: text}
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
