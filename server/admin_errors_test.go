package server

import (
	"errors"
	"strings"
	"testing"
)

// TestAdminErrorTypes: an admin command's error is a reply-and-go-on
// *adminReplyError carrying gearmand's reply, or, for a line gearmand
// hangs up on, an *adminFatalError; the type alone decides.
func TestAdminErrorTypes(t *testing.T) {
	t.Parallel()
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		line  string
		reply string // the ERR reply, or "" for a fatal error
		fatal bool
	}{
		{"frobnicate", "ERR UNKNOWN_COMMAND", false},
		{"cancel job H:x:1", "ERR UNKNOWN_JOB", false},
		{"drop function nosuch", "ERR function not found", false},
		{"shutdown", "ERR UNKNOWN_COMMAND", false}, // disabled, as in gearmand 1.1.20
		{strings.Repeat("w ", 200), "", true},      // too many words
	}
	for _, tt := range tests {
		reply, err := s.admin(&conn{}, []byte(tt.line))
		var rerr *adminReplyError
		var ferr *adminFatalError
		switch {
		case tt.fatal:
			if !errors.As(err, &ferr) || reply != nil {
				t.Errorf("admin(%.20q) = %q, %v; want an *adminFatalError", tt.line, reply, err)
			}
		case !errors.As(err, &rerr) || !strings.HasPrefix(rerr.reply, tt.reply) || reply != nil:
			t.Errorf("admin(%.20q) = %q, %v; want an *adminReplyError %q", tt.line, reply, err, tt.reply)
		}
	}
}
