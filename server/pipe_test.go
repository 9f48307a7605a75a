package server_test

import (
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

// pipeListener hands out in-memory net.Pipe connections, so a server can
// run inside a testing/synctest bubble where time is virtual.
type pipeListener struct {
	conns  chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// pipeServer is a server on a pipeListener.
type pipeServer struct {
	t   *testing.T
	srv *server.Server
	l   *pipeListener
	wg  sync.WaitGroup
}

func startPipeServer(t *testing.T, cfg server.Config) *pipeServer {
	t.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ps := &pipeServer{t: t, srv: srv, l: newPipeListener()}
	ps.wg.Add(1)
	go func() {
		defer ps.wg.Done()
		if err := srv.Serve(ps.l); !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	}()
	return ps
}

// stop closes the server and waits for every goroutine it started.
func (ps *pipeServer) stop() {
	ps.srv.Close()
	ps.wg.Wait()
}

// pipeConn is the peer side of one connection.
type pipeConn struct {
	t  *testing.T
	nc net.Conn
	r  *protocol.Reader

	mu      sync.Mutex
	packets []protocol.Packet // received, not yet taken
	eof     bool
}

func (ps *pipeServer) dial() *pipeConn {
	a, b := net.Pipe()
	ps.l.conns <- b
	pc := &pipeConn{t: ps.t, nc: a, r: protocol.NewReader(a, protocol.ReaderConfig{AllowText: true})}
	go pc.readLoop()
	return pc
}

func (pc *pipeConn) readLoop() {
	for {
		p, err := pc.r.ReadPacket()
		pc.mu.Lock()
		if err != nil {
			pc.eof = true
			pc.mu.Unlock()
			return
		}
		args := make([][]byte, len(p.Args))
		for i, a := range p.Args {
			args[i] = append([]byte(nil), a...)
		}
		pc.packets = append(pc.packets, protocol.Packet{Magic: p.Magic, Type: p.Type, Args: args})
		pc.mu.Unlock()
	}
}

func (pc *pipeConn) send(t protocol.Type, args ...string) {
	pc.t.Helper()
	b := make([][]byte, len(args))
	for i, a := range args {
		b[i] = []byte(a)
	}
	if _, err := pc.nc.Write(protocol.New(protocol.Req, t, b...).Append(nil)); err != nil {
		pc.t.Fatalf("send %v: %v", t, err)
	}
}

// take returns and clears what the peer has received so far. Call it
// after synctest.Wait so every reply in flight has arrived.
func (pc *pipeConn) take() []protocol.Packet {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	p := pc.packets
	pc.packets = nil
	return p
}

func (pc *pipeConn) closed() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.eof
}

// expect checks that exactly the given packet types arrived, in order,
// and returns them.
func (pc *pipeConn) expect(types ...protocol.Type) []protocol.Packet {
	pc.t.Helper()
	got := pc.take()
	ok := len(got) == len(types)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].Type == types[i]
	}
	if !ok {
		gt := make([]protocol.Type, len(got))
		for i, p := range got {
			gt[i] = p.Type
		}
		pc.t.Fatalf("received %v, want %v", gt, types)
	}
	return got
}

func (pc *pipeConn) close() { pc.nc.Close() }
