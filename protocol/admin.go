package protocol

import (
	"bytes"
	"errors"
	"strings"
)

// ErrTooManyWords is returned for an admin line of more than MaxAdminWords
// words. gearmand closes the connection without a reply; so do we.
var ErrTooManyWords = errors.New("protocol: admin line has too many words")

// MaxAdminWords is the most words gearmand accepts on one admin line.
const MaxAdminWords = 5

// AdminKind says which admin text command a line holds, including the
// malformed variants that gearmand answers with a specific error line.
type AdminKind int

const (
	// AdminUnknown: no such command. Reply: ERR UNKNOWN_COMMAND Unknown+server+command<Word>.
	AdminUnknown AdminKind = iota
	// AdminWorkers: "workers".
	AdminWorkers
	// AdminStatus: "status".
	AdminStatus
	// AdminPriorityStatus: "prioritystatus".
	AdminPriorityStatus
	// AdminShowJobs: "show jobs".
	AdminShowJobs
	// AdminShowUniqueJobs: "show unique jobs".
	AdminShowUniqueJobs
	// AdminShowMaxQueue: "show maxqueue", our addition: the limits set with maxqueue.
	AdminShowMaxQueue
	// AdminShowUnknown: "show" with other words. Reply: ERR UNKNOWN_SHOW_ARGUMENTS.
	AdminShowUnknown
	// AdminCancelJob: "cancel job HANDLE"; Args[0] is the handle.
	AdminCancelJob
	// AdminCancelBad: "cancel" with three or more words that are not "cancel job HANDLE".
	// Reply: ERR UNKNOWN_ERROR.
	AdminCancelBad
	// AdminCreateFunction: "create function NAME"; Args[0] is the name.
	AdminCreateFunction
	// AdminDropFunction: "drop function NAME"; Args[0] is the name.
	AdminDropFunction
	// AdminMaxQueue: "maxqueue FUNC [N | H N [L]]"; Args[0] is the function,
	// Args[1:] the limits as sent.
	AdminMaxQueue
	// AdminGetPID: "getpid".
	AdminGetPID
	// AdminVerbose: "verbose".
	AdminVerbose
	// AdminVersion: "version".
	AdminVersion
	// AdminShutdown: "shutdown" or "shutdown graceful" (Args[0] = "graceful").
	AdminShutdown
	// AdminBadArguments: a known command with the wrong words.
	// Reply: ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+<Word>.
	AdminBadArguments
)

var adminKindNames = [...]string{
	AdminUnknown:        "unknown",
	AdminWorkers:        "workers",
	AdminStatus:         "status",
	AdminPriorityStatus: "prioritystatus",
	AdminShowJobs:       "show jobs",
	AdminShowUniqueJobs: "show unique jobs",
	AdminShowMaxQueue:   "show maxqueue",
	AdminShowUnknown:    "show (unknown)",
	AdminCancelJob:      "cancel job",
	AdminCancelBad:      "cancel (bad)",
	AdminCreateFunction: "create function",
	AdminDropFunction:   "drop function",
	AdminMaxQueue:       "maxqueue",
	AdminGetPID:         "getpid",
	AdminVerbose:        "verbose",
	AdminVersion:        "version",
	AdminShutdown:       "shutdown",
	AdminBadArguments:   "bad arguments",
}

func (k AdminKind) String() string {
	if k >= 0 && int(k) < len(adminKindNames) {
		return adminKindNames[k]
	}
	return "AdminKind(?)"
}

// AdminCommand is one parsed admin text line.
type AdminCommand struct {
	Kind AdminKind
	// Word is the first word as sent (used in error replies).
	Word string
	// Args are the command's operands (see each AdminKind).
	Args []string
}

// ParseAdminCommand parses one admin line (without its line ending) the
// way gearmand 1.1.20 does: command names are case-insensitive and there
// are at most MaxAdminWords words. Words split as gearmand splits them: a
// word ends at a space, the spaces after it are skipped, and the next word
// starts there, so a leading space makes an empty first word (" status" is
// an unknown command), trailing spaces make an empty last word ("show
// jobs " is an unknown show, "cancel job " cancels the empty handle), and
// an empty line is one empty word. A NUL byte ends its word, since
// gearmand compares words as C strings.
func ParseAdminCommand(line []byte) (AdminCommand, error) {
	words := make([]string, 0, MaxAdminWords)
	rest := line
	for {
		if len(words) == MaxAdminWords {
			return AdminCommand{}, ErrTooManyWords
		}
		w := rest
		i := bytes.IndexByte(rest, ' ')
		if i >= 0 {
			w, rest = rest[:i], bytes.TrimLeft(rest[i+1:], " ")
		}
		// gearmand's words are C strings: a NUL ends one early.
		if j := bytes.IndexByte(w, 0); j >= 0 {
			w = w[:j]
		}
		words = append(words, string(w))
		if i < 0 {
			break
		}
	}
	c := AdminCommand{Word: words[0]}
	n := len(words)
	is := func(i int, s string) bool { return i < n && EqualFoldASCII(words[i], s) }
	switch {
	case is(0, "workers"):
		c.Kind = AdminWorkers
	case is(0, "status"):
		c.Kind = AdminStatus
	case is(0, "prioritystatus"):
		c.Kind = AdminPriorityStatus
	case is(0, "cancel") && n >= 3:
		if n == 3 && is(1, "job") {
			c.Kind, c.Args = AdminCancelJob, words[2:]
		} else {
			c.Kind = AdminCancelBad
		}
	case is(0, "show") && n >= 2:
		switch {
		case n == 3 && is(1, "unique") && is(2, "jobs"):
			c.Kind = AdminShowUniqueJobs
		case n == 2 && is(1, "jobs"):
			c.Kind = AdminShowJobs
		case n == 2 && is(1, "maxqueue"):
			c.Kind = AdminShowMaxQueue
		default:
			c.Kind = AdminShowUnknown
		}
	case is(0, "create"):
		if n == 3 && is(1, "function") {
			c.Kind, c.Args = AdminCreateFunction, words[2:]
		} else {
			c.Kind = AdminBadArguments
		}
	case is(0, "drop"):
		if n == 3 && is(1, "function") {
			c.Kind, c.Args = AdminDropFunction, words[2:]
		} else {
			c.Kind = AdminBadArguments
		}
	case is(0, "maxqueue"):
		if n == 1 {
			c.Kind = AdminBadArguments
		} else {
			c.Kind, c.Args = AdminMaxQueue, words[1:]
		}
	case is(0, "getpid"):
		c.Kind = AdminGetPID
	case is(0, "verbose"):
		c.Kind = AdminVerbose
	case is(0, "version"):
		c.Kind = AdminVersion
	case is(0, "shutdown"):
		switch {
		case n == 1:
			c.Kind = AdminShutdown
		case n == 2 && is(1, "graceful"):
			c.Kind, c.Args = AdminShutdown, words[1:]
		default:
			c.Kind = AdminBadArguments
		}
	default:
		c.Kind = AdminUnknown
	}
	return c, nil
}

// EqualFoldASCII compares like C's strcasecmp in the C locale: only
// ASCII letters fold, so "ſtatus" (U+017F) or a Kelvin sign are not
// commands, as they are not for gearmand; strings.EqualFold would accept
// them. Names checked for access (certificate names) compare so too.
func EqualFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Admin reply fragments, byte-exact with gearmand 1.1.20.
const (
	AdminOK           = "OK\r\n"
	AdminEnd          = ".\n"
	AdminUnknownJob   = "ERR UNKNOWN_JOB\r\n"
	AdminUnknownError = "ERR UNKNOWN_ERROR\r\n"
	AdminUnknownShow  = "ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
	// AdminFunctionNotFound and AdminFunctionBusy answer "drop function";
	// unlike other errors their text keeps its spaces.
	AdminFunctionNotFound = "ERR function not found\r\n"
	AdminFunctionBusy     = "ERR there are still connected workers or executing clients\r\n"
	adminUnknownPrefix    = "ERR UNKNOWN_COMMAND Unknown+server+command"
	adminBadArgsPrefix    = "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+"
)

// AppendAdminError appends "ERR CODE text" with spaces in text turned
// into '+', as gearmand formats its admin errors.
func AppendAdminError(b []byte, code, text string) []byte {
	b = append(b, "ERR "...)
	b = append(b, code...)
	if text != "" {
		b = append(b, ' ')
		b = append(b, strings.ReplaceAll(text, " ", "+")...)
	}
	return append(b, "\r\n"...)
}

// AppendAdminReplyError appends the error line gearmand sends for the
// malformed kinds (AdminUnknown, AdminShowUnknown, AdminCancelBad,
// AdminBadArguments). For other kinds it appends nothing.
func AppendAdminReplyError(b []byte, c AdminCommand) []byte {
	switch c.Kind {
	case AdminUnknown:
		b = append(b, adminUnknownPrefix...)
		b = append(b, c.Word...)
		return append(b, "\r\n"...)
	case AdminShowUnknown:
		return append(b, AdminUnknownShow...)
	case AdminCancelBad:
		return append(b, AdminUnknownError...)
	case AdminBadArguments:
		b = append(b, adminBadArgsPrefix...)
		b = append(b, c.Word...)
		return append(b, "\r\n"...)
	}
	return b
}
