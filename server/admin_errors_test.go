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

// TestAdminCreateRefusesLongNames: a function name longer than CAN_DO
// accepts is refused by "create function" and "maxqueue" with an admin
// ERR line, and the connection goes on. (Such a line is longer than
// the reader's default 8 KiB, so the test calls admin directly.)
func TestAdminCreateRefusesLongNames(t *testing.T) {
	t.Parallel()
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("n", maxFunctionSize+1)
	want := "ERR ARGUMENT_TOO_LARGE function+name+of+8193+bytes+exceeds+the+8192-byte+limit\r\n"
	for _, line := range []string{"create function " + name, "maxqueue " + name + " 1"} {
		reply, err := s.admin(&conn{}, []byte(line))
		refusal, fatal := classify(err)
		if reply != nil || refusal == nil || fatal != nil {
			t.Errorf("admin(%.20q...) = %q, %v; want a refusal that keeps the connection", line, reply, err)
			continue
		}
		if got := string(appendAdminRefusal(nil, refusal)); got != want {
			t.Errorf("admin(%.20q...) replies %q, want %q", line, got, want)
		}
	}
	if st := s.Stats(); st.Functions != 0 {
		t.Errorf("%d functions created, want none", st.Functions)
	}
	if reply, err := s.admin(&conn{}, []byte("create function "+name[1:])); err != nil || string(reply) != "OK\r\n" {
		t.Errorf("create function of %d bytes = %q, %v; want OK", len(name)-1, reply, err)
	}
}
