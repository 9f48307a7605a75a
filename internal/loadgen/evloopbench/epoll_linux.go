package main

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

// The epoll variant: one thread runs one loop over every socket, as
// gearmand --threads 0 and Redis do. Level-triggered: each pass waits in
// epoll_wait, reads each readable socket once and dispatches the whole
// packets the read brought, then gives each connection the pass touched
// one write of everything queued for it. A write the socket cannot take
// in full keeps the rest and waits for EPOLLOUT.

type econn struct {
	fd      int
	in      []byte
	held    int
	pending []byte // written in part; the rest waits for EPOLLOUT
	wantOut bool
}

func serveEpoll(addr string) error {
	runtime.LockOSThread()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := syscall.SetsockoptInt(lfd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return err
	}
	if err := syscall.Bind(lfd, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		return err
	}
	if err := syscall.Listen(lfd, 1024); err != nil {
		return err
	}
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, lfd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(lfd)}); err != nil {
		return err
	}
	r := newRouter()
	conns := make(map[int]*conn)
	events := make([]syscall.EpollEvent, 256)
	var dirty []*conn
	closeConn := func(c *conn) {
		e := c.io.(*econn)
		if c.gone {
			return
		}
		r.gone(c)
		delete(conns, e.fd)
		syscall.Close(e.fd) // also takes it out of the epoll set
	}
	// EVL_SPIN_US, when set, makes the loop poll without sleeping for
	// that long before it sleeps in epoll_wait: an experiment on what a
	// wake-up costs the latency with one job in flight.
	spin, _ := strconv.Atoi(os.Getenv("EVL_SPIN_US"))
	for {
		n := 0
		if spin > 0 {
			for t0 := time.Now(); n == 0 && time.Since(t0) < time.Duration(spin)*time.Microsecond; {
				r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_WAIT, uintptr(epfd),
					uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
				if e == 0 {
					n = int(r)
				}
			}
		}
		var err error
		if n == 0 {
			n, err = syscall.EpollWait(epfd, events, -1)
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == lfd {
				nfd, _, err := syscall.Accept4(lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
				if err != nil {
					continue // EAGAIN, or a connection reset before accept
				}
				// Go's net package sets TCP_NODELAY on every TCP socket.
				_ = syscall.SetsockoptInt(nfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
				c := r.newConn()
				c.io = &econn{fd: nfd, in: make([]byte, 64<<10)}
				if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, nfd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(nfd)}); err != nil {
					syscall.Close(nfd)
					continue
				}
				conns[nfd] = c
				continue
			}
			c := conns[fd]
			if c == nil {
				continue
			}
			e := c.io.(*econn)
			if ev.Events&syscall.EPOLLOUT != 0 && len(e.pending) > 0 {
				w, errno := rawWrite(uintptr(fd), e.pending)
				if errno != 0 && errno != syscall.EAGAIN {
					closeConn(c)
					continue
				}
				e.pending = e.pending[w:]
				if len(e.pending) == 0 {
					e.pending = nil
					r.queued(c) // what was queued meanwhile goes out this pass
				}
			}
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR) == 0 {
				continue
			}
			if e.held == len(e.in) {
				e.in = append(e.in, make([]byte, len(e.in))...)
			}
			m, errno := rawRead(uintptr(fd), e.in[e.held:])
			if errno == syscall.EAGAIN {
				continue
			}
			if errno != 0 || m == 0 {
				closeConn(c)
				continue
			}
			e.held += m
			used, perr := r.feed(c, e.in[:e.held])
			if perr != nil {
				closeConn(c)
				continue
			}
			e.held = copy(e.in, e.in[used:e.held])
		}
		dirty = r.takeDirty(dirty)
		for i, c := range dirty {
			dirty[i] = nil
			if c.gone {
				continue
			}
			e := c.io.(*econn)
			switch {
			case len(e.pending) > 0:
				// Still waiting for room: keep the order, write later.
				e.pending = append(e.pending, c.out...)
				c.out = c.out[:0]
			case len(c.out) > 0:
				w, errno := rawWrite(uintptr(e.fd), c.out)
				if errno == syscall.EAGAIN {
					w, errno = 0, 0
				}
				if errno != 0 {
					closeConn(c)
					continue
				}
				if w < len(c.out) {
					e.pending = append([]byte(nil), c.out[w:]...)
				}
				c.out = c.out[:0]
			}
			want := len(e.pending) > 0
			if want != e.wantOut {
				e.wantOut = want
				evs := uint32(syscall.EPOLLIN)
				if want {
					evs |= syscall.EPOLLOUT
				}
				_ = syscall.EpollCtl(epfd, syscall.EPOLL_CTL_MOD, e.fd, &syscall.EpollEvent{Events: evs, Fd: int32(e.fd)})
			}
		}
	}
}
