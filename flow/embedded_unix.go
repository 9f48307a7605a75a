//go:build unix

package flow

import (
	"net"
	"os"
	"syscall"
)

// connPair returns the two ends of a connected pair of Unix stream
// sockets that have no name: no other process can connect to them. The
// job server serves them as it serves TCP (*net.UnixConn, read and
// written with raw system calls where it can), and they cost less than
// loopback TCP.
func connPair() (net.Conn, net.Conn, error) {
	// Held as package net holds it, so that a child another goroutine
	// starts meanwhile does not inherit the sockets.
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	a, err := fileConn(fds[0], "embedded-client")
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, err
	}
	b, err := fileConn(fds[1], "embedded-server")
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

// fileConn makes a net.Conn of the socket fd, which it takes over.
func fileConn(fd int, name string) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close() // FileConn works on a duplicate
	return net.FileConn(f)
}
