package server_test

import (
	"strings"
	"testing"

	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/server"
)

// TestAdminCreateRefusesUnsafeNames: "create function" and "maxqueue",
// which create the function they name, refuse the names CAN_DO refuses
// (they would add lines or columns to `status` and `workers`) with an
// admin ERR line; nothing is created and the connection goes on. A tab,
// which Perl's clients put in names, is accepted and shown as \t.
func TestAdminCreateRefusesUnsafeNames(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t, server.Config{})
	a := wiretest.Dial(t, srv.Addr)
	const refused = "ERR INVALID_ARGUMENT function+name+must+not+contain+control+characters"
	for _, name := range []string{".", "x\x7f", "\x01", "a\rb", "\x1b[2J"} {
		for _, line := range []string{"create function " + name, "maxqueue " + name, "maxqueue " + name + " 5"} {
			if got := admin(t, a, line); !strings.HasPrefix(got, refused) {
				t.Errorf("%q: got %q, want %q...", line, got, refused)
			}
		}
	}
	expectAdmin(t, a, "create function ok", "OK\r\n")
	expectAdmin(t, a, "maxqueue ok.2 3", "OK\r\n")
	expectAdmin(t, a, "create function ns\tok", "OK\r\n")
	expectAdmin(t, a, "status", "ns\\tok\t0\t0\t0\nok\t0\t0\t0\nok.2\t0\t0\t0\n.\n")
	a.ExpectOpen(t)
}
