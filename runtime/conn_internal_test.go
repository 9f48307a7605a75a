package runtime

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// gatedConn holds its first Write until gate is closed, so that other
// writers queue behind it, and then fails every Write when fail is set.
type gatedConn struct {
	net.Conn
	gate    chan struct{}
	entered chan struct{} // closed when the first Write has begun
	fail    bool
	writes  atomic.Int32
}

func (g *gatedConn) Write(b []byte) (int, error) {
	if g.writes.Add(1) == 1 {
		close(g.entered)
		<-g.gate
	}
	if g.fail {
		return 0, errors.New("injected write failure")
	}
	return g.Conn.Write(b)
}

// loopbackPair returns the two ends of a TCP connection on 127.0.0.1.
func loopbackPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		client.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func echoReq(i int) protocol.Packet {
	return protocol.New(protocol.Req, protocol.EchoReq, []byte(strconv.Itoa(i)))
}

// TestWriteCombines checks write combining on a real socket: while one
// write is held in progress, n callers queue; their packets then go out
// in one write, in the order their before callbacks ran, and each caller
// gets that write's error.
func TestWriteCombines(t *testing.T) {
	t.Parallel()
	const n = 50
	tests := []struct {
		name string
		fail bool
	}{
		{"ok", false},
		{"failed write", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			nc, sc := loopbackPair(t)
			g := &gatedConn{Conn: nc, gate: make(chan struct{}), entered: make(chan struct{}), fail: tt.fail}
			c := &conn{addr: "test", nc: g, writeTimeout: 5 * time.Second}
			var gateOnce sync.Once
			openGate := func() { gateOnce.Do(func() { close(g.gate) }) }
			t.Cleanup(openGate)

			errs := make(chan error, n+1)
			go func() { errs <- c.write(nil, echoReq(-1)) }()
			select {
			case <-g.entered:
			case <-time.After(5 * time.Second):
				t.Fatal("the first write did not start")
			}
			var order []int // appended by before callbacks, which c.mu serializes
			joined := make(chan struct{}, n)
			for i := range n {
				go func() {
					errs <- c.write(func() { order = append(order, i); joined <- struct{}{} }, echoReq(i))
				}()
			}
			timeout := time.After(5 * time.Second)
			for range n {
				select {
				case <-joined:
				case <-timeout:
					openGate()
					t.Fatal("callers did not queue while a write was in progress")
				}
			}
			openGate()
			for range n + 1 {
				select {
				case err := <-errs:
					switch {
					case tt.fail && !errors.Is(err, ErrConnectionLost):
						t.Errorf("write error = %v, want ErrConnectionLost", err)
					case !tt.fail && err != nil:
						t.Errorf("write error = %v, want nil", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("a writer did not return")
				}
			}
			if got := g.writes.Load(); got != 2 {
				t.Errorf("%d writes on the socket, want 2 (the held one and one for the %d queued callers)", got, n)
			}
			if tt.fail {
				return
			}
			// The wire order is the before order: the client relies on it
			// to match replies to requests.
			_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
			r := protocol.NewReader(sc, protocol.ReaderConfig{})
			want := append([]int{-1}, order...)
			for k, w := range want {
				p, err := r.ReadPacket()
				if err != nil {
					t.Fatalf("packet %d: %v", k, err)
				}
				if got := string(p.Args[0]); got != strconv.Itoa(w) {
					t.Fatalf("packet %d carries %s, want %d", k, got, w)
				}
			}
		})
	}
}

// TestWriteDropsLargeBuffer checks that a connection does not keep a
// large payload's buffer for reuse, and does keep a small one.
func TestWriteDropsLargeBuffer(t *testing.T) {
	t.Parallel()
	nc, sc := loopbackPair(t)
	go func() { _, _ = io.Copy(io.Discard, sc) }()
	c := &conn{addr: "test", nc: nc, writeTimeout: 5 * time.Second}
	if err := c.write(nil, echoReq(1)); err != nil {
		t.Fatal(err)
	}
	if c.spare == nil {
		t.Errorf("the buffer of a small write was not kept")
	}
	big := protocol.New(protocol.Req, protocol.EchoReq, make([]byte, 2<<20))
	if err := c.write(nil, big); err != nil {
		t.Fatal(err)
	}
	if cap(c.spare) > maxSpareBuf {
		t.Errorf("kept a buffer of %d bytes after a large write, want at most %d", cap(c.spare), maxSpareBuf)
	}
}

// sizedConn records the size of every Write, holding the first until
// gate is closed.
type sizedConn struct {
	net.Conn
	gate    chan struct{}
	entered chan struct{}
	mu      sync.Mutex
	sizes   []int
}

func (s *sizedConn) Write(b []byte) (int, error) {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(b))
	first := len(s.sizes) == 1
	s.mu.Unlock()
	if first {
		close(s.entered)
		<-s.gate
	}
	return s.Conn.Write(b)
}

// TestWriteBatchesBounded checks the bounds of combining: small packets
// queued behind a write share writes of at most maxBatch bytes, and a
// packet larger than that goes out in a write of its own, not copied
// while it waits. Without them a batch of many callers' packets had to
// go out within one write timeout, and held a copy of every waiting
// payload.
func TestWriteBatchesBounded(t *testing.T) {
	t.Parallel()
	nc, sc := loopbackPair(t)
	go func() { _, _ = io.Copy(io.Discard, sc) }()
	w := &sizedConn{Conn: nc, gate: make(chan struct{}), entered: make(chan struct{})}
	c := &conn{addr: "test", nc: w, writeTimeout: 10 * time.Second}

	small := protocol.New(protocol.Req, protocol.EchoReq, make([]byte, 20<<10))
	large := protocol.New(protocol.Req, protocol.EchoReq, make([]byte, maxBatch+1))
	smallSize := protocol.HeaderSize + small.BodySize()
	largeSize := protocol.HeaderSize + large.BodySize()

	errs := make(chan error, 64)
	go func() { errs <- c.write(nil, echoReq(-1)) }()
	select {
	case <-w.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the first write did not start")
	}
	// 40 small callers (800 KiB in all) and 2 large ones queue behind it.
	joined := make(chan struct{}, 64)
	const nSmall, nLarge = 40, 2
	for i := range nSmall + nLarge {
		p := small
		if i%20 == 10 {
			p = large
		}
		go func() { errs <- c.write(func() { joined <- struct{}{} }, p) }()
	}
	for range nSmall + nLarge {
		select {
		case <-joined:
		case <-time.After(5 * time.Second):
			close(w.gate)
			t.Fatal("callers did not queue")
		}
	}
	c.mu.Lock()
	for _, b := range c.queue {
		if b.pkts != nil && len(b.buf) != 0 {
			t.Errorf("a large packet's batch holds %d encoded bytes while it waits", len(b.buf))
		}
	}
	c.mu.Unlock()
	close(w.gate)
	for range nSmall + nLarge + 1 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a writer did not return")
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var total, larges int
	for _, n := range w.sizes[1:] {
		total += n
		switch {
		case n == largeSize:
			larges++
		case n > maxBatch:
			t.Errorf("a write of %d bytes, more than maxBatch (%d) and not one large packet", n, maxBatch)
		case n%smallSize != 0:
			t.Errorf("a write of %d bytes mixes a large packet with small ones", n)
		}
	}
	if larges != nLarge || total != nSmall*smallSize+nLarge*largeSize {
		t.Errorf("writes %v: %d large ones, %d bytes; want %d, %d", w.sizes[1:], larges, total, nLarge, nSmall*smallSize+nLarge*largeSize)
	}
	if len(w.sizes)-1 >= nSmall {
		t.Errorf("%d writes for %d queued callers: nothing combined", len(w.sizes)-1, nSmall+nLarge)
	}
}
