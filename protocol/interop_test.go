package protocol_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/protocol"
)

// TestAdminAgainstGearmand sends every line of the parser table to a real
// gearmand 1.1.20 and checks that it answers as the parsed command says:
// the exact error bytes for malformed kinds, no parse error for valid
// ones, and a silent close for too many words. The shutdown lines are
// skipped: 1.1.20 answers every one of them with UNKNOWN_COMMAND.
func TestAdminAgainstGearmand(t *testing.T) {
	t.Parallel()
	s := gearmandtest.Start(t)
	for _, tc := range adminCases {
		t.Run(tc.line, func(t *testing.T) {
			c, err := protocol.ParseAdminCommand([]byte(tc.line))
			switch {
			case err == nil && strings.EqualFold(c.Word, "shutdown"):
				t.Skip("shutdown was removed in gearmand 1.1.15; the parser still recognises it")
			case err == nil && c.Kind == protocol.AdminShowMaxQueue:
				t.Skip("show maxqueue is our addition")
			}
			first, rerr := firstReplyLine(t, s.Addr, tc.line+"\r\n")
			if errors.Is(err, protocol.ErrTooManyWords) {
				if rerr != io.EOF || first != "" {
					t.Fatalf("gearmand replied %q (%v), want a silent close", first, rerr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if rerr != nil {
				t.Fatalf("reading gearmand's reply: %v", rerr)
			}
			if want := string(protocol.AppendAdminReplyError(nil, c)); want != "" {
				if first != want {
					t.Fatalf("gearmand replied %q, parser predicts %q", first, want)
				}
				return
			}
			for _, parseErr := range []string{"ERR UNKNOWN_COMMAND", "ERR INVALID_ARGUMENTS", "ERR UNKNOWN_SHOW_ARGUMENTS", "ERR UNKNOWN_ERROR"} {
				if strings.HasPrefix(first, parseErr) {
					t.Fatalf("gearmand replied %q to a %v command", first, c.Kind)
				}
			}
		})
	}
}

// firstReplyLine sends line on a new connection and returns the first
// reply line with its "\n", or io.EOF when gearmand closes first.
func firstReplyLine(t *testing.T, addr, line string) (string, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, line); err != nil {
		t.Fatal(err)
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err == io.EOF && reply == "" {
		return "", io.EOF
	}
	return reply, err
}
