package server

import (
	"errors"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/protocol"
)

// TestAdminErrorTypes: an admin command's error is the same
// reply-and-go-on *clientError the packet handlers return, rendered as
// gearmand's "ERR ..." line, or, for a line gearmand hangs up on, a
// *fatalError with no reply; the type alone decides.
func TestAdminErrorTypes(t *testing.T) {
	t.Parallel()
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		line  string
		reply string // the whole ERR line, or "" for a fatal error
	}{
		{"frobnicate", "ERR UNKNOWN_COMMAND Unknown+server+commandfrobnicate\r\n"},
		{"", "ERR UNKNOWN_COMMAND Unknown+server+command\r\n"},
		{"show nothing", protocol.AdminUnknownShow},
		{"cancel job H:x:1", protocol.AdminUnknownJob},
		{"drop function nosuch", protocol.AdminFunctionNotFound},
		{"create function", "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+create\r\n"},
		{"shutdown", "ERR UNKNOWN_COMMAND Unknown+server+commandshutdown\r\n"}, // disabled, as in gearmand 1.1.20
		{strings.Repeat("w ", 200), ""},                                        // too many words
	}
	for _, tt := range tests {
		reply, err := s.admin(&conn{}, []byte(tt.line))
		refusal, fatal := classify(err)
		var ce *clientError
		var fe *fatalError
		switch {
		case reply != nil:
			t.Errorf("admin(%.20q) = %q, %v; want only an error", tt.line, reply, err)
		case tt.reply == "":
			if !errors.As(err, &fe) || errors.As(err, &ce) || refusal != nil || fatal == nil {
				t.Errorf("admin(%.20q) = %v; want a *fatalError without a reply", tt.line, err)
			}
		case !errors.As(err, &ce) || errors.As(err, &fe) || fatal != nil:
			t.Errorf("admin(%.20q) = %v; want a *clientError", tt.line, err)
		default:
			if got := string(appendAdminRefusal(nil, refusal)); got != tt.reply {
				t.Errorf("admin(%.20q) replies %q, want %q", tt.line, got, tt.reply)
			}
		}
	}
}

// TestAdminRefusalRoundTrip: every admin error line gearmand sends comes
// out of adminRefusal and appendAdminRefusal byte for byte, words with
// odd bytes included.
func TestAdminRefusalRoundTrip(t *testing.T) {
	t.Parallel()
	lines := []string{
		protocol.AdminUnknownJob, protocol.AdminUnknownError, protocol.AdminUnknownShow,
		protocol.AdminFunctionNotFound, protocol.AdminFunctionBusy,
	}
	for _, word := range []string{"", "x", "a\rb", "tab\tword", "+plus+", "\r"} {
		for _, kind := range []protocol.AdminKind{protocol.AdminUnknown, protocol.AdminBadArguments} {
			lines = append(lines, string(protocol.AppendAdminReplyError(nil, protocol.AdminCommand{Kind: kind, Word: word})))
		}
	}
	for _, line := range lines {
		if got := string(appendAdminRefusal(nil, adminRefusal(line))); got != line {
			t.Errorf("adminRefusal(%q) renders as %q", line, got)
		}
	}
}
