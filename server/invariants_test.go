package server

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// checkInvariantsLocked verifies that every index and counter agrees
// with the job table.
func (s *Server) checkInvariantsLocked() error {
	if err := s.jobs.check(); err != nil {
		return err
	}
	running := 0
	perFn := map[*function]int{}
	for id, j := range s.jobs.all() {
		if j.id != id {
			return fmt.Errorf("job %d filed under %d", j.id, id)
		}
		if j.state == jobGone {
			return fmt.Errorf("job %d gone but in the table", id)
		}
		if j.pbuf != nil && j.pbuf.refs.Load() < 1 {
			return fmt.Errorf("job %d keeps a pooled buffer with %d references", id, j.pbuf.refs.Load())
		}
		if s.functions[j.fn.name] != j.fn {
			return fmt.Errorf("job %d of a dropped function %q", id, j.fn.name)
		}
		perFn[j.fn]++
		if j.state == jobRunning {
			running++
			if j.worker == nil || !j.worker.holds(j) {
				return fmt.Errorf("running job %d not in its worker's set", id)
			}
		}
		for _, c := range j.clients {
			if _, ok := c.attached[j]; !ok {
				return fmt.Errorf("job %d client does not list it", id)
			}
		}
		if !j.background && len(j.clients) == 0 && j.state != jobRunning {
			return fmt.Errorf("job %d (%v) is foreground with no clients", id, j.state)
		}
	}
	if running != s.running {
		return fmt.Errorf("running = %d, jobs say %d", s.running, running)
	}
	for name, fn := range s.functions {
		if fn.name != name {
			return fmt.Errorf("function %q filed as %q", fn.name, name)
		}
		queued := 0
		for p := priHigh; p < numPriorities; p++ {
			n := 0
			for j := fn.queues[p].head; j != nil; j = j.next {
				if j.state != jobQueued || j.pri != p || j.fn != fn {
					return fmt.Errorf("function %q list %v holds job %d (%v, %v)", name, p, j.id, j.state, j.pri)
				}
				n++
			}
			if n != fn.queues[p].n {
				return fmt.Errorf("function %q list %v counts %d, holds %d", name, p, fn.queues[p].n, n)
			}
			queued += n
		}
		fnRunning := 0
		for _, j := range s.jobs.all() {
			if j.fn == fn && j.state == jobRunning {
				fnRunning++
			}
		}
		if fn.running != fnRunning {
			return fmt.Errorf("function %q running = %d, jobs say %d", name, fn.running, fnRunning)
		}
		if fn.total != perFn[fn] || fn.total != queued+fn.delayed+fn.running {
			return fmt.Errorf("function %q total %d: table %d, queued %d + delayed %d + running %d",
				name, fn.total, perFn[fn], queued, fn.delayed, fn.running)
		}
		for u, j := range fn.uniques {
			if j.unique != u || s.jobs.get(j.id) != j {
				return fmt.Errorf("function %q unique %q points at a stale job", name, u)
			}
		}
	}
	delayed := 0
	for _, fn := range s.functions {
		delayed += fn.delayed
	}
	if delayed != len(s.delayed) {
		return fmt.Errorf("delayed counts %d, heap holds %d", delayed, len(s.delayed))
	}
	return s.checkCoreIndexLocked()
}

// FuzzServer feeds arbitrary byte streams to a client connection and a
// worker connection at once, then checks that the server's books
// balance and that nothing is left behind for the departed peers.
func FuzzServer(f *testing.F) {
	pkt := func(t protocol.Type, args ...string) []byte {
		b := make([][]byte, len(args))
		for i, a := range args {
			b[i] = []byte(a)
		}
		return protocol.New(protocol.Req, t, b...).Append(nil)
	}
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	f.Add(cat(pkt(protocol.SubmitJob, "f", "u", "x"), pkt(protocol.SubmitJobBg, "f", "", "y")),
		cat(pkt(protocol.CanDo, "f"), pkt(protocol.GrabJobUniq), pkt(protocol.WorkComplete, "H:fz:1", "r")))
	f.Add(cat(pkt(protocol.SubmitJobHigh, "f", "-", "x"), pkt(protocol.SubmitJobLowBg, "g", "-", "x"), []byte("status\n")),
		cat(pkt(protocol.CanDoTimeout, "f", "1"), pkt(protocol.CanDo, "g"), pkt(protocol.GrabJobAll), pkt(protocol.GrabJob), pkt(protocol.WorkFail, "H:fz:2")))
	f.Add(cat(pkt(protocol.SubmitJobEpoch, "f", "e", "1", "x"), pkt(protocol.SubmitReduceJob, "f", "r", "red", "", "x"), []byte("cancel job H:fz:1\n")),
		cat(pkt(protocol.CanDo, "f"), pkt(protocol.PreSleep), pkt(protocol.GrabJobAll), pkt(protocol.CantDo, "f")))
	f.Add(cat(pkt(protocol.SubmitJobSched, "f", "s", "*", "*", "*", "*", "*", "x"), []byte("maxqueue f 1\nshow jobs\n"), pkt(protocol.SubmitJob, "f", "", "z")),
		cat(pkt(protocol.CanDo, "f"), pkt(protocol.GrabJob), pkt(protocol.WorkException, "H:fz:2", "boom"), pkt(protocol.ResetAbilities)))
	f.Fuzz(func(t *testing.T, client, worker []byte) {
		s, err := New(Config{JobHandlePrefix: "H:fz", MaxPacketSize: 1 << 16})
		if err != nil {
			t.Fatal(err)
		}
		l := &chanListener{conns: make(chan net.Conn), done: make(chan struct{})}
		served := make(chan error, 1)
		go func() { served <- s.Serve(l) }()
		var wg sync.WaitGroup
		for _, stream := range [][]byte{client, worker} {
			a, b := net.Pipe()
			l.conns <- b
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(io.Discard, a) }()
			go func() {
				defer wg.Done()
				// Writes in small chunks so packets split across reads.
				for rest := stream; len(rest) > 0; {
					n := min(len(rest), 7)
					if _, err := a.Write(rest[:n]); err != nil {
						break
					}
					rest = rest[n:]
				}
				a.Close()
			}()
		}
		wg.Wait()
		deadline := time.Now().Add(5 * time.Second)
		for s.Stats().Connections > 0 {
			if time.Now().After(deadline) {
				t.Fatal("connections not cleaned up within 5s of closing")
			}
			time.Sleep(time.Millisecond)
		}
		s.mu.Lock()
		err = s.checkInvariantsLocked()
		for _, j := range s.jobs.all() {
			if !j.background || j.state == jobRunning || len(j.clients) > 0 {
				err = fmt.Errorf("job %d left with peers gone: background=%v state=%v clients=%d",
					j.id, j.background, j.state, len(j.clients))
			}
		}
		for _, fn := range s.functions {
			if len(fn.workers) > 0 {
				err = fmt.Errorf("function %q keeps %d workers after they left", fn.name, len(fn.workers))
			}
		}
		s.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		<-served
	})
}

type chanListener struct {
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *chanListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
