package main

import "unsafe"

func unsafePointer(p []byte) unsafe.Pointer {
	return unsafe.Pointer(unsafe.SliceData(p))
}
