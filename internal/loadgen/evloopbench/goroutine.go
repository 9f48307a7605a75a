package main

import (
	"net"
	"sync"
	"syscall"
)

// The goroutine variant: gearflow's server design, cut to its bones. A
// goroutine per connection reads its socket, dispatches every whole
// packet the read brought under one mutex, then writes what that batch
// queued, for its own socket and for the peers it sent to, one write
// each. Reads and writes are raw non-blocking calls through
// syscall.RawConn, parked on Go's netpoller on EAGAIN, as the server's
// rawio.go does.

type gconn struct {
	raw   syscall.RawConn
	nc    net.Conn
	wmu   sync.Mutex // held while writing; before router mu
	spare []byte     // guarded by wmu
}

func serveGoroutines(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	r := newRouter()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return err
		}
		raw, err := nc.(*net.TCPConn).SyscallConn()
		if err != nil {
			nc.Close()
			continue
		}
		mu.Lock()
		c := r.newConn()
		c.io = &gconn{raw: raw, nc: nc}
		mu.Unlock()
		go serveConn(&mu, r, c)
	}
}

func serveConn(mu *sync.Mutex, r *router, c *conn) {
	g := c.io.(*gconn)
	defer g.nc.Close()
	buf := make([]byte, 64<<10)
	held := 0
	var dirty []*conn
	for {
		if held == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
		}
		var n int
		var errno syscall.Errno
		err := g.raw.Read(func(fd uintptr) bool {
			n, errno = rawRead(fd, buf[held:])
			return errno != syscall.EAGAIN
		})
		if err != nil || errno != 0 || n == 0 {
			mu.Lock()
			r.gone(c)
			dirty = r.takeDirty(dirty)
			mu.Unlock()
			flushAll(mu, dirty)
			return
		}
		held += n
		mu.Lock()
		used, perr := r.feed(c, buf[:held])
		dirty = r.takeDirty(dirty)
		if perr != nil {
			r.gone(c)
		}
		mu.Unlock()
		flushAll(mu, dirty)
		if perr != nil {
			return
		}
		held = copy(buf, buf[used:held])
	}
}

// flushAll writes what is queued for each of conns.
func flushAll(mu *sync.Mutex, conns []*conn) {
	for i, c := range conns {
		g := c.io.(*gconn)
		g.wmu.Lock()
		mu.Lock()
		out := c.out
		c.out = g.spare[:0]
		mu.Unlock()
		if len(out) > 0 {
			writeAll(g.raw, out)
		}
		g.spare = out[:0]
		g.wmu.Unlock()
		conns[i] = nil
	}
}

// writeAll writes b with non-blocking raw writes, waiting on the poller
// when the socket is full. An error drops the rest: the reader sees the
// connection fail and cleans up.
func writeAll(raw syscall.RawConn, b []byte) {
	_ = raw.Write(func(fd uintptr) bool {
		for len(b) > 0 {
			n, errno := rawWrite(fd, b)
			if errno == syscall.EAGAIN {
				return false
			}
			if errno != 0 {
				return true
			}
			b = b[n:]
		}
		return true
	})
}

// rawRead and rawWrite are read(2) and write(2) without the scheduler's
// notice (see gearflow's server/rawio.go for why).
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafePointer(p)), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafePointer(p)), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}
