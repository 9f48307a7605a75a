package server

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// Large request bodies (sharedMin bytes and up, to
// protocol.BodyBufferMax) are read into pooled buffers. A submission's
// payload stays where it was read: the job keeps the buffer, and
// JOB_ASSIGN writes it from there. When the job is gone and no outbox
// still holds the bytes, the buffer returns to the pool for the next
// large body, so a stream of large jobs does not allocate, zero and
// fault in fresh memory for every one.

// payloadBuf is a pooled body buffer with a count of its holders: the
// job that keeps it, and each outbox segment queued from it. A buffer
// goes back to the pool only when the count drops to zero, so its bytes
// cannot change while a holder may still read them.
type payloadBuf struct {
	b    []byte // the whole buffer; cap(b) is at least its class's size
	refs atomic.Int32
	cls  int8
	pool *payloadPool // the pool it returns to; immutable
}

// Buffer size classes: four steps per power of two, from sharedMin to
// protocol.BodyBufferMax, so a buffer wastes at most a fifth of itself.
const (
	minClassShift = 12 // 4 KiB, sharedMin
	maxClassShift = 17 // 128 KiB, protocol.BodyBufferMax
	stepsPerShift = 4
	numClasses    = (maxClassShift-minClassShift)*stepsPerShift + 1
)

// payloadPool is a Server's pool of body buffers, by size class.
type payloadPool struct {
	classes [numClasses]sync.Pool // of *payloadBuf with refs == 0

	// live counts references held on the pool's buffers, and allocated
	// the buffers allocated: the first returns to zero when every job
	// and outbox is gone (Stats.PooledRefs; servertest checks it), and
	// the second stays far below the number of large bodies read.
	live, allocated atomic.Int64
}

// classSize is the size of class i.
func classSize(i int) int {
	shift := minClassShift + i/stepsPerShift
	step := i % stepsPerShift
	return 1<<shift + step<<(shift-2)
}

// classFor is the smallest class of at least n bytes, or -1 when n is
// beyond the largest.
func classFor(n int) int {
	if n <= 1<<minClassShift {
		return 0
	}
	shift := bits.Len(uint(n-1)) - 1 // 2^shift < n <= 2^(shift+1)
	if shift >= maxClassShift {
		if n == 1<<maxClassShift {
			return numClasses - 1
		}
		return -1
	}
	i := (shift-minClassShift)*stepsPerShift + int((uint(n-1)>>(shift-2))&3) + 1
	if i >= numClasses {
		return -1
	}
	return i
}

// get returns an unreferenced buffer of at least n bytes, or nil when n
// is outside the pooled sizes.
func (pp *payloadPool) get(n int) *payloadBuf {
	if n < sharedMin {
		return nil
	}
	i := classFor(n)
	if i < 0 {
		return nil
	}
	if pb, ok := pp.classes[i].Get().(*payloadBuf); ok {
		return pb
	}
	pp.allocated.Add(1)
	return &payloadBuf{b: make([]byte, 0, classSize(i)), cls: int8(i), pool: pp}
}

// putPayload returns an unreferenced buffer to its pool.
func putPayload(pb *payloadBuf) {
	pb.b = pb.b[:0]
	pb.pool.classes[pb.cls].Put(pb)
}

func (pb *payloadBuf) ref() {
	pb.refs.Add(1)
	pb.pool.live.Add(1)
}

// unref drops one reference; the last one returns the buffer to its
// pool. A count below zero (a release without a hold, which would be a
// bug) poisons the buffer so that it never returns to the pool: its
// bytes could still be in use.
func (pb *payloadBuf) unref() {
	pb.pool.live.Add(-1)
	switch n := pb.refs.Add(-1); {
	case n == 0:
		putPayload(pb)
	case n < 0:
		pb.refs.Store(-1 << 30)
	}
}
