package server_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

// soakDuration is how long a soak submits jobs: d, or GEARFLOW_SOAK (a
// Go duration) when set, for longer runs by hand.
func soakDuration(t *testing.T, d time.Duration) time.Duration {
	if s := os.Getenv("GEARFLOW_SOAK"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("GEARFLOW_SOAK=%q: %v", s, err)
		}
		return v
	}
	return d
}

// TestSoakWorkPackets: 16 workers answer jobs with runs of WORK_STATUS,
// WORK_DATA and WORK_WARNING (small, and large enough to be forwarded
// from pooled buffers) and end most of them with WORK_EXCEPTION, the
// rest with WORK_COMPLETE or WORK_FAIL, each in one write with the next
// GRAB_JOB or packet by packet. Clients with and without the exceptions
// option keep four jobs each in flight. No worker connection may drop,
// and every client must get every packet of its jobs, in order, with
// exceptions downgraded to WORK_FAIL for clients without the option.
func TestSoakWorkPackets(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	t.Parallel()
	t.Run("ours", func(t *testing.T) {
		t.Parallel()
		var log syncBuffer
		srv := servertest.Start(t, server.Config{
			Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelInfo})),
		})
		soak(t, srv.Addr, soakDuration(t, 10*time.Second))
		if t.Failed() {
			t.Logf("server log:\n%s", log.String())
		}
	})
	t.Run("gearmand", func(t *testing.T) {
		t.Parallel()
		soak(t, gearmandtest.Start(t).Addr, soakDuration(t, 5*time.Second))
	})
	// With the default 30 s write timeout, a soak longer than 30 s
	// loses workers (EOF, nothing logged); a 1 s timeout shows it here,
	// ten times over. Shorter, it would also cut off the soak's own
	// peers whenever a loaded machine keeps one of them from reading
	// for most of it, which is what the timeout is for.
	t.Run("ours-short-write-timeout", func(t *testing.T) {
		t.Parallel()
		var log syncBuffer
		srv := servertest.Start(t, server.Config{
			WriteTimeout: time.Second,
			Logger:       slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelInfo})),
		})
		soak(t, srv.Addr, soakDuration(t, 10*time.Second))
		if t.Failed() {
			t.Logf("server log:\n%s", log.String())
		}
	})
}

const (
	soakWorkers    = 16
	soakClients    = 8 // half of them with the exceptions option
	soakInFlight   = 4 // jobs per client
	soakFunction   = "soak"
	soakMaxPackets = 12 // intermediate packets per job, at most
)

// soakScript is what a job's payload tells its worker to send; the
// client derives the packets it must receive from the same payload.
type soakScript struct {
	payload string
	n       int  // intermediate packets
	end     byte // 'E' exception, 'C' complete, 'F' fail
	big     int  // every big-th intermediate packet is large (0: none)
	split   bool // one write per packet instead of one for the whole job
}

func newScript(client, seq int) soakScript {
	s := soakScript{n: (client*7 + seq*5) % (soakMaxPackets + 1), end: 'E', split: seq%5 == 3}
	switch seq % 10 {
	case 4:
		s.end = 'C'
	case 8:
		s.end = 'F'
	}
	if seq%6 == 1 {
		s.big = 3
	}
	s.payload = fmt.Sprintf("%d/%d/%d/%c/%d/%t", client, seq, s.n, s.end, s.big, s.split)
	return s
}

func parseScript(payload string) (soakScript, error) {
	f := strings.Split(payload, "/")
	if len(f) != 6 || len(f[3]) != 1 {
		return soakScript{}, fmt.Errorf("bad payload %q", payload)
	}
	n, err1 := strconv.Atoi(f[2])
	big, err2 := strconv.Atoi(f[4])
	if err1 != nil || err2 != nil {
		return soakScript{}, fmt.Errorf("bad payload %q", payload)
	}
	return soakScript{payload: payload, n: n, end: f[3][0], big: big, split: f[5] == "true"}, nil
}

// filler returns a deterministic body of about size bytes for a packet.
func filler(tag string, size int) string {
	if size <= len(tag) {
		return tag
	}
	return tag + strings.Repeat(string(rune('a'+len(tag)%26)), size-len(tag))
}

// packets returns the packets the worker sends for handle (type and
// arguments after the handle), the terminal one last.
func (s soakScript) packets() []protocol.Packet {
	var ps []protocol.Packet
	for i := 0; i < s.n; i++ {
		size := 10 + i*3
		if s.big > 0 && i%s.big == s.big-1 {
			size = 5000 + i*3001 // past the server's pooled-buffer threshold
		}
		switch i % 3 {
		case 0:
			ps = append(ps, protocol.Packet{Type: protocol.WorkStatus, Args: [][]byte{[]byte(strconv.Itoa(i + 1)), []byte(strconv.Itoa(s.n))}})
		case 1:
			ps = append(ps, protocol.Packet{Type: protocol.WorkData, Args: [][]byte{[]byte(filler(fmt.Sprintf("d%d-%s-", i, s.payload), size))}})
		case 2:
			ps = append(ps, protocol.Packet{Type: protocol.WorkWarning, Args: [][]byte{[]byte(filler(fmt.Sprintf("w%d-%s-", i, s.payload), size))}})
		}
	}
	switch s.end {
	case 'E':
		size := 20
		if s.big > 0 {
			size = 9000
		}
		ps = append(ps, protocol.Packet{Type: protocol.WorkException, Args: [][]byte{[]byte(filler("x-"+s.payload+"-", size))}})
	case 'C':
		ps = append(ps, protocol.Packet{Type: protocol.WorkComplete, Args: [][]byte{[]byte("r-" + s.payload)}})
	default:
		ps = append(ps, protocol.Packet{Type: protocol.WorkFail})
	}
	return ps
}

// expected is what a client receives for packets: WORK_EXCEPTION
// becomes WORK_FAIL without the exceptions option.
func expected(ps []protocol.Packet, exceptions bool) []protocol.Packet {
	if exceptions || ps[len(ps)-1].Type != protocol.WorkException {
		return ps
	}
	out := append([]protocol.Packet(nil), ps[:len(ps)-1]...)
	return append(out, protocol.Packet{Type: protocol.WorkFail})
}

// soak runs the workers and clients against addr for d.
func soak(t *testing.T, addr string, d time.Duration) {
	var (
		stopping atomic.Bool
		wg       sync.WaitGroup
		jobsDone atomic.Int64
		sent     [soakWorkers]atomic.Int64 // jobs each worker finished
		conns    []net.Conn
		mu       sync.Mutex
	)
	dial := func() net.Conn {
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		mu.Lock()
		conns = append(conns, nc)
		mu.Unlock()
		return nc
	}
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for w := 0; w < soakWorkers; w++ {
		nc := dial()
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := soakWorker(nc, &sent[w])
			if !stopping.Load() {
				t.Errorf("worker %d: connection ended after %d jobs: %v", w, sent[w].Load(), err)
			}
		}()
	}
	deadline := time.Now().Add(d)
	var cwg sync.WaitGroup
	for c := 0; c < soakClients; c++ {
		nc := dial()
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			n, err := soakClient(nc, c, c%2 == 0, deadline)
			jobsDone.Add(int64(n))
			if err != nil {
				t.Errorf("client %d (exceptions %v) after %d jobs: %v", c, c%2 == 0, n, err)
			}
		}()
	}
	cwg.Wait()
	stopping.Store(true)
	for _, nc := range conns[:soakWorkers] {
		nc.Close()
	}
	wg.Wait()
	idle := 0
	for w := range sent {
		if sent[w].Load() == 0 {
			idle++
		}
	}
	t.Logf("%v: %d jobs through %d workers (%d did none), %d clients", d, jobsDone.Load(), soakWorkers, idle, soakClients)
	if jobsDone.Load() < int64(soakClients*soakInFlight) {
		t.Errorf("only %d jobs done", jobsDone.Load())
	}
}

// soakWorker serves jobs until its connection ends, and returns why it
// ended. Any packet other than NOOP, NO_JOB and JOB_ASSIGN is an error.
func soakWorker(nc net.Conn, done *atomic.Int64) error {
	r := protocol.NewReader(nc, protocol.ReaderConfig{})
	write := func(b []byte) error {
		nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := nc.Write(b)
		return err
	}
	grab := protocol.New(protocol.Req, protocol.GrabJob).Append(nil)
	b := protocol.New(protocol.Req, protocol.CanDo, []byte(soakFunction)).Append(nil)
	if err := write(append(b, grab...)); err != nil {
		return err
	}
	for {
		p, err := r.ReadPacket()
		if err != nil {
			return err
		}
		switch p.Type {
		case protocol.Noop:
			if err := write(grab); err != nil {
				return err
			}
		case protocol.NoJob:
			if err := write(protocol.New(protocol.Req, protocol.PreSleep).Append(nil)); err != nil {
				return err
			}
		case protocol.JobAssign:
			handle := bytes.Clone(p.Arg(0))
			s, err := parseScript(string(p.Arg(2)))
			if err != nil {
				return err
			}
			var out []byte
			for _, q := range s.packets() {
				q.Magic = protocol.Req
				q.Args = append([][]byte{handle}, q.Args...)
				out = q.Append(out)
				if s.split {
					if err := write(out); err != nil {
						return err
					}
					out = out[:0]
				}
			}
			done.Add(1)
			if err := write(append(out, grab...)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected %s %q", p.Type, p.Args)
		}
	}
}

// soakClient keeps soakInFlight jobs in flight until deadline, checks
// every packet it receives against its job's script, and returns the
// jobs it saw through.
func soakClient(nc net.Conn, id int, exceptions bool, deadline time.Time) (int, error) {
	r := protocol.NewReader(nc, protocol.ReaderConfig{})
	nc.SetDeadline(deadline.Add(30 * time.Second)) // a lost packet ends the wait
	write := func(b []byte) error {
		_, err := nc.Write(b)
		return err
	}
	if exceptions {
		if err := write(protocol.New(protocol.Req, protocol.OptionReq, []byte("exceptions")).Append(nil)); err != nil {
			return 0, err
		}
		if p, err := r.ReadPacket(); err != nil || p.Type != protocol.OptionRes {
			return 0, fmt.Errorf("OPTION_REQ exceptions: %v %v", p.Type, err)
		}
	}
	type running struct {
		want []protocol.Packet
		got  int
	}
	var (
		seq      int
		created  []soakScript // submitted, JOB_CREATED not yet read
		jobs     = map[string]*running{}
		finished int
	)
	submit := func() error {
		s := newScript(id, seq)
		seq++
		created = append(created, s)
		return write(protocol.New(protocol.Req, protocol.SubmitJob, []byte(soakFunction), nil, []byte(s.payload)).Append(nil))
	}
	for i := 0; i < soakInFlight; i++ {
		if err := submit(); err != nil {
			return 0, err
		}
	}
	for len(created) > 0 || len(jobs) > 0 {
		p, err := r.ReadPacket()
		if err != nil {
			return finished, fmt.Errorf("read with %d jobs running and %d awaiting JOB_CREATED: %w", len(jobs), len(created), err)
		}
		if p.Type == protocol.JobCreated {
			if len(created) == 0 {
				return finished, errors.New("JOB_CREATED for no submission")
			}
			jobs[string(p.Arg(0))] = &running{want: expected(created[0].packets(), exceptions)}
			created = created[1:]
			continue
		}
		h := string(p.Arg(0))
		if p.Type == protocol.WorkFail {
			h = strings.TrimSuffix(h, "\x00") // gearmand's downgraded exception
		}
		j := jobs[h]
		if j == nil {
			return finished, fmt.Errorf("%s for unknown handle %q", p.Type, h)
		}
		w := j.want[j.got]
		if p.Type != w.Type || len(p.Args) != len(w.Args)+1 && p.Type != protocol.WorkFail {
			return finished, fmt.Errorf("job %s packet %d: got %s %q, want %s", h, j.got, p.Type, p.Args, w.Type)
		}
		for i, a := range w.Args {
			if !bytes.Equal(p.Args[i+1], a) {
				return finished, fmt.Errorf("job %s packet %d (%s): argument %d differs: %.60q, want %.60q", h, j.got, p.Type, i+1, p.Args[i+1], a)
			}
		}
		if j.got++; j.got < len(j.want) {
			continue
		}
		delete(jobs, h)
		finished++
		if time.Now().Before(deadline) {
			if err := submit(); err != nil {
				return finished, err
			}
		}
	}
	return finished, nil
}

// TestLongJobThenException is the dropped connection of a worker that
// reports an exception after a long job: once the server's writer
// goroutine has written to a worker (a NOOP after another worker's loss)
// and set the socket's write deadline, a job that runs longer than
// WriteTimeout ends with WORK_EXCEPTION and the next GRAB_JOB, and the
// reply to that grab must still reach the worker.
func TestLongJobThenException(t *testing.T) {
	t.Parallel()
	const writeTimeout = 200 * time.Millisecond
	var log syncBuffer
	srv := servertest.Start(t, server.Config{
		WriteTimeout: writeTimeout,
		Logger:       slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", log.String())
		}
	})
	client := wiretest.Dial(t, srv.Addr)
	client.Req(protocol.OptionReq, "exceptions")
	client.Expect(t, protocol.OptionRes, "exceptions")
	w1, w2 := wiretest.Dial(t, srv.Addr), wiretest.Dial(t, srv.Addr)
	w1.CanDo("f")
	w1.Sleep(t)
	h := client.Submit(t, protocol.SubmitJob, "f", "", "x")
	w2.CanDo("f")
	w2.Grab(t, h, "f", "x")
	w1.Expect(t, protocol.Noop) // for the submission
	w1.NoJob(t)
	w1.Sleep(t)
	// w2 goes away with the job: its requeue wakes w1 from the cleanup
	// goroutine, through w1's writer goroutine.
	w2.Close()
	w1.Expect(t, protocol.Noop)
	w1.Grab(t, h, "f", "x")
	time.Sleep(3 * writeTimeout) // a long job
	w1.Send(protocol.Packet{Type: protocol.WorkException, Args: [][]byte{[]byte(h), []byte("boom")}})
	w1.Req(protocol.GrabJob)
	w1.Expect(t, protocol.NoJob)
	client.Expect(t, protocol.WorkException, h, "boom")
}
