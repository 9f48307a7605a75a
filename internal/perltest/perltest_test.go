package perltest_test

import (
	"net"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/internal/perltest"
	"github.com/gearflow/gearflow/internal/wiretest"
)

// TestAdminStatusNames: a function name holding a tab (Gearman::Worker's
// prefix) is read whole from gearmand's status reply, whose columns are
// tab-separated too.
func TestAdminStatusNames(t *testing.T) {
	t.Parallel()
	g := gearmandtest.Start(t)
	w := wiretest.Dial(t, g.Addr)
	w.CanDo("ns\tupper", "plain")
	perltest.WaitWorkers(t, g.Addr, 1, "ns\tupper", "plain")
	counts, err := perltest.AdminStatus(g.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 2 || counts["ns\tupper"] != 1 || counts["plain"] != 1 {
		t.Errorf("AdminStatus = %v, want ns\\tupper and plain with 1 worker each", counts)
	}
}

// TestDeadAddr: nothing answers at the address DeadAddr returns.
func TestDeadAddr(t *testing.T) {
	t.Parallel()
	addr := perltest.DeadAddr(t)
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("dial %s: connected, want refused", addr)
	}
}
