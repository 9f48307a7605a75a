//go:build linux

package server

import (
	"syscall"
	"unsafe"
)

// haveRawIO reports whether rawRead, rawWrite and rawWritev work here.
const haveRawIO = true

// rawRead is one non-blocking read(2) of fd into p.
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

// rawWrite is one non-blocking write(2) of p to fd.
func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

// rawWritev is one non-blocking writev(2) of the pieces to fd, at most
// maxIovecs of them.
func rawWritev(fd uintptr, pieces [][]byte) (int, syscall.Errno) {
	var iov [maxIovecs]syscall.Iovec
	k := 0
	for _, p := range pieces {
		if len(p) == 0 {
			continue
		}
		iov[k].Base = unsafe.SliceData(p)
		iov[k].SetLen(len(p))
		k++
	}
	if k == 0 {
		return 0, 0
	}
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(k))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}
