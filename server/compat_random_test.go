package server_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
)

// TestCompatRandom plays seeded random conversations, on connections
// that are client, worker and admin at once, against both servers and
// compares the transcripts step by step. The generator stays inside the
// behaviour both servers share: no duplicate CAN_DO, one registered
// function (so priority across functions never matters), no future
// epoch jobs, no malformed packets, no cancelled jobs.
func TestCompatRandom(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		seeds, steps int
		conns        int
	}{
		{"one-connection", 48, 60, 1},
		// Several clients and workers: WORK_* forwarding to other
		// connections, coalescing across clients, the exceptions option
		// per client. No PRE_SLEEP: whom a job wakes is difference p.
		{"three-connections", 32, 80, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for seed := range tt.seeds {
				t.Run(strconv.Itoa(seed), func(t *testing.T) {
					t.Parallel()
					script := randomScript(rand.New(rand.NewPCG(uint64(seed), 0x9e3779b9)), tt.steps, tt.conns)
					var names []string
					var transcripts [][]string
					for _, srv := range servers() {
						names = append(names, srv.name)
						// Random conversations queue background jobs
						// that no worker may take before the end.
						transcripts = append(transcripts, play(t, srv.start(t, options{leavesJobs: true}), script, tt.conns))
					}
					for i := 1; i < len(transcripts); i++ {
						compareTranscripts(t, script, names[0], transcripts[0], names[i], transcripts[i])
					}
				})
			}
		})
	}
}

// step is one request of a random conversation: a packet or an admin
// line, sent on connection conn.
type step struct {
	conn   int
	packet protocol.Packet
	admin  string
}

func (s step) String() string {
	if s.admin != "" {
		return fmt.Sprintf("c%d admin %q", s.conn, s.admin)
	}
	return fmt.Sprintf("c%d %s", s.conn, wiretest.Format(s.packet))
}

func randomScript(r *rand.Rand, n, conns int) []step {
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	submitted := 0
	registered := make([]bool, conns)
	// maxqueue on a function gearmand has not seen yet changes nothing
	// there and creates it here (difference m): only once f exists.
	fExists := false
	conn := 0
	handle := func() string {
		// Mostly a job that exists, sometimes one that does not.
		return handlePrefix + ":" + strconv.Itoa(1+r.IntN(submitted+2))
	}
	req := func(typ protocol.Type, args ...string) step {
		return step{conn: conn, packet: wiretest.Packet(protocol.Req, typ, args...)}
	}
	var out []step
	for len(out) < n {
		conn = r.IntN(conns)
		switch k := r.IntN(20); {
		case k < 6:
			typ := []protocol.Type{protocol.SubmitJob, protocol.SubmitJobBg, protocol.SubmitJobHigh,
				protocol.SubmitJobHighBg, protocol.SubmitJobLow, protocol.SubmitJobLowBg}[r.IntN(6)]
			// GET_STATUS_UNIQUE takes the first job with a unique in any
			// function, in hash order: g's uniques differ from f's.
			// Background and foreground submissions never coalesce with
			// each other (a BG joining a FG job is difference f): they use
			// different uniques and payloads.
			fn, unique, data := "f", pick("", "", "-", "u1", "u2"), pick("a", "b", "")
			if r.IntN(3) == 0 {
				fn, unique = "g", pick("", "-", "g1")
			}
			if strings.HasSuffix(typ.String(), "_BG") {
				unique, data = strings.ToUpper(unique), strings.ToUpper(data)+"B"
			}
			out = append(out, req(typ, fn, unique, data))
			submitted++
			fExists = fExists || fn == "f"
		case k == 6:
			out = append(out, req(protocol.SubmitJobEpoch, "f", pick("", "U1", "U3"), pick("1", "0", "junk"), pick("AB", "EB")))
			submitted++
			fExists = true
		case k == 7:
			if r.IntN(2) == 0 {
				out = append(out, req(protocol.SubmitReduceJob, "f", pick("", "u2", "u4"), pick("r", ""), "", pick("a", "m")))
			} else {
				out = append(out, req(protocol.SubmitReduceJobBackground, "f", pick("", "U2", "U4"), pick("r", ""), "", pick("AB", "MB")))
			}
			submitted++
			fExists = true
		case k == 8:
			if registered[conn] {
				out = append(out, req(protocol.CantDo, "f"))
			} else {
				out = append(out, req(protocol.CanDo, "f"))
			}
			registered[conn] = !registered[conn]
			fExists = true
		case k < 12:
			out = append(out, req([]protocol.Type{protocol.GrabJob, protocol.GrabJobUniq, protocol.GrabJobAll}[r.IntN(3)]))
		case k < 15:
			switch r.IntN(7) {
			case 0:
				out = append(out, req(protocol.WorkData, handle(), "d"))
			case 1:
				out = append(out, req(protocol.WorkWarning, handle(), "w"))
			case 2:
				out = append(out, req(protocol.WorkStatus, handle(), pick("1", "7"), pick("2", "9")))
			case 3, 4:
				out = append(out, req(protocol.WorkComplete, handle(), pick("ok", "")))
			case 5:
				out = append(out, req(protocol.WorkFail, handle()))
			case 6:
				out = append(out, req(protocol.WorkException, handle(), "ex"))
			}
		case k == 15:
			out = append(out, req(protocol.GetStatus, handle()))
		case k == 16:
			out = append(out, req(protocol.GetStatusUnique, pick("u1", "u2", "U1", "U2", "U3", "g1", "-", "zz")))
		case k == 17:
			cmds := []string{"status", "prioritystatus", "show jobs", "show unique jobs"}
			if fExists {
				cmds = append(cmds, "maxqueue f 3", "maxqueue f")
			}
			out = append(out, step{conn: conn, admin: pick(cmds...)})
		case k == 18 && conns == 1:
			out = append(out, req(protocol.PreSleep))
		default:
			out = append(out, req(pick2(r, protocol.OptionReq, protocol.EchoReq), pick("exceptions", "x")))
		}
	}
	return out
}

func pick2(r *rand.Rand, a, b protocol.Type) protocol.Type {
	if r.IntN(2) == 0 {
		return a
	}
	return b
}

// play runs script on conns connections. After each step it sends an
// ECHO_REQ marker on the step's connection, then on every other one,
// and records everything each received up to its marker's echo: packets
// in order, then admin text lines sorted (their order is a hash order in
// gearmand). A packet the step made the server send to another
// connection was queued there before that connection's marker was read,
// so it is recorded in the same step.
func play(t *testing.T, p *peer, script []step, conns int) []string {
	t.Helper()
	cs := make([]*wiretest.Conn, conns)
	for i := range cs {
		cs[i] = p.dial(t)
	}
	out := make([]string, len(script))
	for i, s := range script {
		c := cs[s.conn]
		if s.admin != "" {
			c.SendText(s.admin + "\r\n")
		} else {
			c.Send(s.packet)
		}
		var got []string
		for k := range conns {
			j := (s.conn + k) % conns
			if rec := drainToMarker(t, cs[j], "marker-"+strconv.Itoa(i)); rec != "" || conns == 1 {
				got = append(got, fmt.Sprintf("c%d: %s", j, rec))
			}
		}
		out[i] = strings.Join(got, " ; ")
	}
	return out
}

// drainToMarker sends an ECHO_REQ marker on c and returns what arrived
// before its echo.
func drainToMarker(t *testing.T, c *wiretest.Conn, marker string) string {
	t.Helper()
	c.Req(protocol.EchoReq, marker)
	var packets, text []string
	for range 1000 {
		r := c.ReadAny(t)
		if r.Text {
			text = append(text, string(r.Raw))
			continue
		}
		if r.Packet.Type == protocol.EchoRes && string(r.Packet.Arg(0)) == marker {
			break
		}
		packets = append(packets, r.String())
	}
	slices.Sort(text)
	return strings.Join(append(packets, text...), " | ")
}

// compareTranscripts fails t at the first step where the servers
// answered differently, showing the conversation up to there.
func compareTranscripts(t *testing.T, script []step, name1 string, got1 []string, name2 string, got2 []string) {
	t.Helper()
	for i := range script {
		if got1[i] == got2[i] {
			continue
		}
		var sb strings.Builder
		for j := max(0, i-12); j < i; j++ {
			fmt.Fprintf(&sb, "  %3d %s\n      -> %s\n", j, script[j], got1[j])
		}
		t.Fatalf("step %d differs\nconversation before it:\n%s  %3d %s\n%s: %s\n%s: %s",
			i, sb.String(), i, script[i], name1, got1[i], name2, got2[i])
	}
}
