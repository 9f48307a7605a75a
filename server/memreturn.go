package server

import (
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Giving memory back to the operating system after large releases.
//
// Go frees a job's payload at the next garbage collection, but a server
// that has just drained a large queue allocates little, so that
// collection may not come for two minutes (the forced one), and the
// runtime's background scavenger returns pages only down to what the
// last collection's heap goal allows: after a 0.9 GB peak the process
// kept about 926 MB resident for minutes. debug.FreeOSMemory collects
// and returns every free page at once (71 ms at that size, the world
// stopped for part of it), so it is called only after much has been
// released, and not often.
const (
	// memReturnBytes is how many payload bytes the server must have
	// released since its last return to the OS before the next.
	memReturnBytes = 64 << 20
	// memReturnInterval is the least time between two returns: a server
	// that turns over large payloads all day returns memory at most
	// this often, and otherwise leaves it to the Go runtime.
	memReturnInterval = 10 * time.Second
)

// memReturner counts payload bytes released and returns memory to the
// OS when enough has been (see memReturnBytes). Safe for concurrent
// use; released bytes may be noted with or without srv.mu held.
type memReturner struct {
	released atomic.Int64 // bytes released since the last return began
	active   atomic.Bool  // a returning goroutine is running or waiting
	// last is when the last return began, in UnixNano; zero before the
	// first. Written only by the returning goroutine (one at a time).
	last atomic.Int64
	// returns counts the returns done (Stats.MemoryReturns).
	returns atomic.Int64
}

// noteReleased records that n bytes of payload were released, and
// starts the returning goroutine when they make enough and none is
// running. It never blocks and may be called with srv.mu held.
func (s *Server) noteReleased(n int) {
	m := &s.memReturn
	if m.released.Add(int64(n)) < memReturnBytes || !m.active.CompareAndSwap(false, true) {
		return
	}
	s.goroutines.Add(1)
	go func() {
		defer s.goroutines.Add(-1)
		s.returnMemory()
	}()
}

// returnMemory calls debug.FreeOSMemory once memReturnInterval has
// passed since the last call, and again as long as enough has been
// released meanwhile. It ends early when the server stops: the process
// is likely to exit, and a stopped server starts no work. Run by the
// one goroutine noteReleased starts; it holds no lock while it waits or
// returns memory.
func (s *Server) returnMemory() {
	m := &s.memReturn
	for {
		if last := m.last.Load(); last != 0 {
			wait := time.Until(time.Unix(0, last).Add(memReturnInterval))
			if wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-s.stopDone:
					t.Stop()
					m.active.Store(false)
					return
				}
			}
		}
		released := m.released.Swap(0)
		m.last.Store(time.Now().UnixNano())
		start := time.Now()
		debug.FreeOSMemory()
		m.returns.Add(1)
		s.log.Debug("returned free memory to the OS", "released", released, "took", time.Since(start))
		m.active.Store(false)
		// Released while this one ran, with no goroutine started for it
		// because this one was active: go round again.
		if m.released.Load() < memReturnBytes || !m.active.CompareAndSwap(false, true) {
			return
		}
	}
}
