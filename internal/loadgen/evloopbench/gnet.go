package main

import (
	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
)

// The gnet variant: the same protocol core on gnet v2, one event loop
// (no multicore), so every connection's callbacks run on one goroutine
// and the core needs no lock. gnet has no end-of-pass hook, so what a
// read queued for each connection goes out at the end of that read's
// OnTraffic: one write per connection per read, not per pass.

type gnetServer struct {
	gnet.BuiltinEventEngine
	r     *router
	dirty []*conn
}

func serveGnet(addr string) error {
	s := &gnetServer{r: newRouter()}
	return gnet.Run(s, "tcp://"+addr, gnet.WithMulticore(false), gnet.WithLockOSThread(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithLogLevel(logging.ErrorLevel))
}

func (s *gnetServer) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	c := s.r.newConn()
	c.io = gc
	gc.SetContext(c)
	return nil, gnet.None
}

func (s *gnetServer) OnClose(gc gnet.Conn, _ error) gnet.Action {
	if c, ok := gc.Context().(*conn); ok {
		s.r.gone(c)
		s.flush()
	}
	return gnet.None
}

func (s *gnetServer) OnTraffic(gc gnet.Conn) gnet.Action {
	c := gc.Context().(*conn)
	buf, _ := gc.Peek(-1)
	used, err := s.r.feed(c, buf)
	if used > 0 {
		_, _ = gc.Discard(used) // Discard(0) would drop everything buffered
	}
	s.flush()
	if err != nil {
		return gnet.Close
	}
	return gnet.None
}

// flush writes what is queued for each connection the core touched.
func (s *gnetServer) flush() {
	s.dirty = s.r.takeDirty(s.dirty)
	for i, c := range s.dirty {
		s.dirty[i] = nil
		if len(c.out) > 0 && !c.gone {
			_, _ = c.io.(gnet.Conn).Write(c.out)
		}
		c.out = c.out[:0]
	}
}
