//go:build !linux

package server

import "syscall"

// haveRawIO reports whether rawRead, rawWrite and rawWritev work here:
// not on this system, where rawConn returns nil and sockets are read and
// written through their net.Conn.
const haveRawIO = false

func rawRead(fd uintptr, p []byte) (int, syscall.Errno) { return 0, syscall.EINVAL }

func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) { return 0, syscall.EINVAL }

func rawWritev(fd uintptr, pieces [][]byte) (int, syscall.Errno) { return 0, syscall.EINVAL }
