package protocol_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/protocol"
)

// adminCases is the parser table: gearmand 1.1.20's behaviour, checked on
// the wire by TestAdminAgainstGearmand.
var adminCases = []struct {
	line string
	kind protocol.AdminKind
	word string
	args []string
	err  error
}{
	{"workers", protocol.AdminWorkers, "workers", nil, nil},
	{"WORKERS", protocol.AdminWorkers, "WORKERS", nil, nil},
	{"status", protocol.AdminStatus, "status", nil, nil},
	{"Status extra words ignored", protocol.AdminStatus, "Status", nil, nil},
	{"status ", protocol.AdminStatus, "status", nil, nil},
	{"prioritystatus", protocol.AdminPriorityStatus, "prioritystatus", nil, nil},
	{"show jobs", protocol.AdminShowJobs, "show", nil, nil},
	{"SHOW  JOBS", protocol.AdminShowJobs, "SHOW", nil, nil},
	{"show unique jobs", protocol.AdminShowUniqueJobs, "show", nil, nil},
	{"show maxqueue", protocol.AdminShowMaxQueue, "show", nil, nil},
	{"show jobs ", protocol.AdminShowUnknown, "show", nil, nil}, // trailing space: an empty third word
	{"show stuff", protocol.AdminShowUnknown, "show", nil, nil},
	{"show unique", protocol.AdminShowUnknown, "show", nil, nil},
	{"show", protocol.AdminUnknown, "show", nil, nil},
	{"cancel job H:x:1", protocol.AdminCancelJob, "cancel", []string{"H:x:1"}, nil},
	{"CANCEL  JOB  H:x:1", protocol.AdminCancelJob, "CANCEL", []string{"H:x:1"}, nil},
	{"cancel job  ", protocol.AdminCancelJob, "cancel", []string{""}, nil},
	{"cancel a b", protocol.AdminCancelBad, "cancel", nil, nil},
	{"cancel job a b", protocol.AdminCancelBad, "cancel", nil, nil},
	{"cancel job", protocol.AdminUnknown, "cancel", nil, nil},
	{"cancel", protocol.AdminUnknown, "cancel", nil, nil},
	{"create function f1", protocol.AdminCreateFunction, "create", []string{"f1"}, nil},
	{"create function", protocol.AdminBadArguments, "create", nil, nil},
	{"create function a b", protocol.AdminBadArguments, "create", nil, nil},
	{"create thing f", protocol.AdminBadArguments, "create", nil, nil},
	{"create", protocol.AdminBadArguments, "create", nil, nil},
	{"drop function f1", protocol.AdminDropFunction, "drop", []string{"f1"}, nil},
	{"drop function ", protocol.AdminDropFunction, "drop", []string{""}, nil},
	{"drop function", protocol.AdminBadArguments, "drop", nil, nil},
	{"maxqueue f", protocol.AdminMaxQueue, "maxqueue", []string{"f"}, nil},
	{"maxqueue f 10", protocol.AdminMaxQueue, "maxqueue", []string{"f", "10"}, nil},
	{"maxqueue f 1 2 3", protocol.AdminMaxQueue, "maxqueue", []string{"f", "1", "2", "3"}, nil},
	{"maxqueue ", protocol.AdminMaxQueue, "maxqueue", []string{""}, nil},
	{"maxqueue", protocol.AdminBadArguments, "maxqueue", nil, nil},
	{"getpid", protocol.AdminGetPID, "getpid", nil, nil},
	{"getpid extra", protocol.AdminGetPID, "getpid", nil, nil},
	{"verbose", protocol.AdminVerbose, "verbose", nil, nil},
	{"version", protocol.AdminVersion, "version", nil, nil},
	{"VeRsIoN", protocol.AdminVersion, "VeRsIoN", nil, nil},
	{"shutdown", protocol.AdminShutdown, "shutdown", nil, nil},
	{"shutdown graceful", protocol.AdminShutdown, "shutdown", []string{"graceful"}, nil},
	{"shutdown now", protocol.AdminBadArguments, "shutdown", nil, nil},
	{"frobnicate", protocol.AdminUnknown, "frobnicate", nil, nil},
	{"status\x00junk", protocol.AdminStatus, "status", nil, nil}, // words are C strings in gearmand
	{"cancel job H:1\x00x", protocol.AdminCancelJob, "cancel", []string{"H:1"}, nil},
	{"\u017ftatus", protocol.AdminUnknown, "\u017ftatus", nil, nil}, // only ASCII letters fold
	{"wor\u212aers", protocol.AdminUnknown, "wor\u212aers", nil, nil},
	{"status\tx", protocol.AdminUnknown, "status\tx", nil, nil}, // only spaces separate words
	{"", protocol.AdminUnknown, "", nil, nil},
	{" status", protocol.AdminUnknown, "", nil, nil}, // leading space: empty first word
	{"  ", protocol.AdminUnknown, "", nil, nil},
	{"a b c d e", protocol.AdminUnknown, "a", nil, nil},
	{"a  b  c  d  e", protocol.AdminUnknown, "a", nil, nil},
	{"a b c d e f", 0, "", nil, protocol.ErrTooManyWords},
	{"a b c d e ", 0, "", nil, protocol.ErrTooManyWords}, // the trailing space makes a sixth word
	{"maxqueue f 1 2 3 4", 0, "", nil, protocol.ErrTooManyWords},
}

func TestParseAdminCommand(t *testing.T) {
	t.Parallel()
	seen := map[protocol.AdminKind]bool{}
	for _, tc := range adminCases {
		t.Run(tc.line, func(t *testing.T) {
			c, err := protocol.ParseAdminCommand([]byte(tc.line))
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			seen[c.Kind] = true
			if c.Kind != tc.kind || c.Word != tc.word || strings.Join(c.Args, "|") != strings.Join(tc.args, "|") || len(c.Args) != len(tc.args) {
				t.Fatalf("got {%v %q %q}, want {%v %q %q}", c.Kind, c.Word, c.Args, tc.kind, tc.word, tc.args)
			}
		})
	}
	for k := protocol.AdminUnknown; k <= protocol.AdminBadArguments; k++ {
		if !seen[k] {
			t.Errorf("no case for %v", k)
		}
		if strings.Contains(k.String(), "?") {
			t.Errorf("AdminKind %d has no name", k)
		}
	}
	if got := protocol.AdminKind(99).String(); got != "AdminKind(?)" {
		t.Errorf("AdminKind(99).String() = %q", got)
	}
}

func TestAppendAdminReplyError(t *testing.T) {
	t.Parallel()
	// Byte-exact replies of gearmand 1.1.20 (PROTOCOL.md §4).
	tests := []struct {
		line string
		want string
	}{
		{"frobnicate", "ERR UNKNOWN_COMMAND Unknown+server+commandfrobnicate\r\n"},
		{"", "ERR UNKNOWN_COMMAND Unknown+server+command\r\n"},
		{" status", "ERR UNKNOWN_COMMAND Unknown+server+command\r\n"},
		{"show", "ERR UNKNOWN_COMMAND Unknown+server+commandshow\r\n"},
		{"cancel job", "ERR UNKNOWN_COMMAND Unknown+server+commandcancel\r\n"},
		{"show things", "ERR UNKNOWN_SHOW_ARGUMENTS\r\n"},
		{"cancel a b", "ERR UNKNOWN_ERROR\r\n"},
		{"create function", "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+create\r\n"},
		{"Drop x", "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+Drop\r\n"},
		{"maxqueue", "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+maxqueue\r\n"},
		{"status", ""},
		{"cancel job H:1", ""},
	}
	for _, tc := range tests {
		c, err := protocol.ParseAdminCommand([]byte(tc.line))
		if err != nil {
			t.Fatalf("%q: %v", tc.line, err)
		}
		got := string(protocol.AppendAdminReplyError([]byte("prefix:"), c))
		if got != "prefix:"+tc.want {
			t.Errorf("%q: reply %q, want %q", tc.line, got, "prefix:"+tc.want)
		}
	}
}

func TestAppendAdminError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code, text, want string
	}{
		{"UNKNOWN_JOB", "", "ERR UNKNOWN_JOB\r\n"},
		{"INVALID_ARGUMENTS", "An incomplete set", "ERR INVALID_ARGUMENTS An+incomplete+set\r\n"},
		{"X", "a  b", "ERR X a++b\r\n"},
	}
	for _, tc := range tests {
		if got := string(protocol.AppendAdminError(nil, tc.code, tc.text)); got != tc.want {
			t.Errorf("AppendAdminError(%q, %q) = %q, want %q", tc.code, tc.text, got, tc.want)
		}
	}
	consts := map[string]string{
		protocol.AdminOK:               "OK\r\n",
		protocol.AdminEnd:              ".\n",
		protocol.AdminUnknownJob:       "ERR UNKNOWN_JOB\r\n",
		protocol.AdminUnknownError:     "ERR UNKNOWN_ERROR\r\n",
		protocol.AdminUnknownShow:      "ERR UNKNOWN_SHOW_ARGUMENTS\r\n",
		protocol.AdminFunctionNotFound: "ERR function not found\r\n",
		protocol.AdminFunctionBusy:     "ERR there are still connected workers or executing clients\r\n",
	}
	for got, want := range consts {
		if got != want {
			t.Errorf("constant %q, want %q", got, want)
		}
	}
}
