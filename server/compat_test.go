package server_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
)

// The compatibility suite: every scenario runs against a real gearmand
// 1.1.20 and against our server, each freshly started with the options
// the scenario asks for, and checks the exact bytes each one sends.
// Where our server deliberately differs (docs/COMPATIBILITY.md), the
// scenario asserts both behaviours, branching on peer.gearmand.

// handlePrefix makes both servers hand out the same job handles
// (H:test:1, H:test:2, ...) so replies compare byte for byte.
const handlePrefix = "H:test"

// peer is the server a scenario talks to.
type peer struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	// gearmand is true for the reference server, false for ours.
	gearmand bool
	// pid is the process id that getpid must report.
	pid int
}

// dial opens a raw connection to the peer.
func (p *peer) dial(t *testing.T) *wiretest.Conn {
	t.Helper()
	return wiretest.Dial(t, p.Addr)
}

// options are a scenario's server settings, spelled for both servers.
type options struct {
	// flags are gearmand's extra command-line flags.
	flags []string
	// config adjusts our server's configuration.
	config configFunc
	// leavesJobs says that the scenario ends with jobs in the server on
	// purpose (background jobs it queued to look at and never ran), so
	// our server's stop does not count them as left behind.
	leavesJobs bool
}

// scenario is one conversation checked against both servers.
type scenario struct {
	name string
	opts options
	run  func(t *testing.T, p *peer)
}

// startFunc starts one kind of server for a scenario.
type startFunc func(t *testing.T, o options) *peer

func startGearmand(t *testing.T, o options) *peer {
	s := gearmandtest.Start(t, append([]string{"--job-handle-prefix=" + handlePrefix}, o.flags...)...)
	return &peer{Addr: s.Addr, gearmand: true, pid: s.PID()}
}

// runScenarios runs each scenario against every server, in parallel.
func runScenarios(t *testing.T, scenarios []scenario) {
	t.Helper()
	seen := map[string]bool{}
	for _, sc := range scenarios {
		if seen[sc.name] {
			t.Fatalf("duplicate scenario name %q", sc.name)
		}
		seen[sc.name] = true
	}
	for _, srv := range servers() {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					t.Parallel()
					sc.run(t, srv.start(t, sc.opts))
				})
			}
		})
	}
}

// namedServer pairs a server kind with its name in test output.
type namedServer struct {
	name  string
	start startFunc
}

// sortedLines returns text's lines sorted, for replies whose line order
// is a hash order (status, prioritystatus, show jobs).
func sortedLines(text string) string {
	body, end := strings.CutSuffix(text, ".\n")
	lines := strings.SplitAfter(body, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	slices.Sort(lines)
	out := strings.Join(lines, "")
	if end {
		out += ".\n"
	}
	return out
}

// admin sends one admin command ending in "\r\n", as gearadmin does,
// and returns its reply with lines sorted.
func admin(t *testing.T, c *wiretest.Conn, line string) string {
	t.Helper()
	c.SendText(line + "\r\n")
	return sortedLines(c.ReadText(t))
}

// expectAdmin sends an admin command and compares the reply, line order
// aside.
func expectAdmin(t *testing.T, c *wiretest.Conn, line, want string) {
	t.Helper()
	if got := admin(t, c, line); got != sortedLines(want) {
		t.Fatalf("%q:\n got: %q\nwant: %q", line, got, sortedLines(want))
	}
}

// eventually polls cond every 10 ms until it holds or 3 s pass. It is
// for effects of a disconnect, which no reply on another connection
// orders.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 3s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// uniqueClients returns the client count GET_STATUS_UNIQUE reports for
// unique (0 for an unknown job).
func uniqueClients(t *testing.T, c *wiretest.Conn, unique string) string {
	t.Helper()
	c.Req(protocol.GetStatusUnique, unique)
	p := c.Next(t)
	if p.Type != protocol.StatusResUnique || len(p.Args) != 6 {
		t.Fatalf("GET_STATUS_UNIQUE %q: got %s", unique, wiretest.Format(p))
	}
	return string(p.Args[5])
}

// waitClients waits until the job with this unique has n attached
// clients, so a disconnect is known to be processed.
func waitClients(t *testing.T, c *wiretest.Conn, unique, n string) {
	t.Helper()
	eventually(t, "job "+unique+" has "+n+" clients", func() bool { return uniqueClients(t, c, unique) == n })
}

// waitStatus waits until "status" reports want (lines sorted).
func waitStatus(t *testing.T, c *wiretest.Conn, want string) {
	t.Helper()
	var got string
	eventually(t, "status = "+want, func() bool {
		got = admin(t, c, "status")
		return got == sortedLines(want)
	})
}

func TestCompat(t *testing.T) {
	t.Parallel()
	var all []scenario
	all = append(all, packetScenarios()...)
	all = append(all, badInputScenarios()...)
	all = append(all, coalesceScenarios()...)
	all = append(all, schedulingScenarios()...)
	all = append(all, workScenarios()...)
	all = append(all, adminScenarios()...)
	all = append(all, edgeScenarios()...)
	runScenarios(t, all)
}
