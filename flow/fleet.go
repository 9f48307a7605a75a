package flow

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gearflow/gearflow/runtime"
)

// A stage whose concurrency is not set keeps as many jobs in flight as
// its function has worker slots registered across the run's servers.
// gearflow workers tell their slots in their client id (WorkerClientID);
// any other worker counts as one slot.

// fleetPoll is how often the coordinator reads the servers' workers.
const fleetPoll = time.Second

// maxFleetConcurrency bounds a stage's jobs in flight however large the
// fleet.
const maxFleetConcurrency = 4096

const slotsMark = ";slots="

// WorkerClientID returns the client id a worker of slots slots
// registers with: id followed by ";slots=N", which coordinators read
// from the admin workers list to size their stages.
func WorkerClientID(id string, slots int) string {
	return id + slotsMark + strconv.Itoa(slots)
}

// workerSlots returns the slots a client id tells, or 1.
func workerSlots(clientID string) int {
	i := strings.LastIndex(clientID, slotsMark)
	if i < 0 {
		return 1
	}
	n, err := strconv.Atoi(clientID[i+len(slotsMark):])
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// fleet tracks the worker slots registered per function on a run's
// servers.
type fleet struct {
	servers []string
	admin   runtime.Admin // how to reach them

	// local is the slots of the run's own in-process worker, known
	// before it has registered: every function gets them.
	local int

	mu    sync.Mutex
	slots map[string]int // function -> slots
}

// start reads the servers' workers now and then every fleetPoll until
// ctx is done; every fleetPoll/10 while it has seen none, as at the
// start of a run whose workers are still connecting.
func (f *fleet) start(ctx context.Context) {
	f.refresh(ctx)
	go func() {
		for {
			wait := fleetPoll
			if f.empty() {
				wait = fleetPoll / 10
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
				f.refresh(ctx)
			}
		}
	}()
}

func (f *fleet) empty() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.slots) == 0
}

// refresh counts each worker once however many servers it is connected
// to: by its client id when it has one.
func (f *fleet) refresh(ctx context.Context) {
	type worker struct{ id, fn string }
	seen := make(map[worker]bool)
	slots := make(map[string]int)
	reached := 0
	for _, addr := range f.servers {
		actx, cancel := context.WithTimeout(ctx, fleetPoll)
		ws, err := f.admin.Workers(actx, addr)
		cancel()
		if err != nil {
			continue // a server that is down has no workers to count
		}
		reached++
		for _, w := range ws {
			id := w.ClientID
			if id == "" || id == "-" {
				id = addr + "/" + w.FD // no id: one worker per connection
			}
			for _, fn := range w.Functions {
				if k := (worker{id, fn}); !seen[k] {
					seen[k] = true
					slots[fn] += workerSlots(id)
				}
			}
		}
	}
	if reached == 0 {
		return // keep what was known
	}
	f.mu.Lock()
	f.slots = slots
	f.mu.Unlock()
}

// capacity returns how many of fn's tasks to keep in flight: twice the
// slots registered for it, so that a slot that finishes a task finds the
// next one waiting at the server instead of waiting a round trip through
// the coordinator for it; at least 1, so that a stage whose workers are
// yet to come submits a task to wait for them; at most
// maxFleetConcurrency.
func (f *fleet) capacity(fn string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return min(max(queuedPerSlot*max(f.slots[fn], f.local), 1), maxFleetConcurrency)
}

// queuedPerSlot is how many tasks a stage that follows the fleet keeps in
// flight for each worker slot.
const queuedPerSlot = 2

// served reports whether the fleet knows fn's workers (a refresh reached
// a server) and whether any serves fn; local says the run's own worker
// does.
func (f *fleet) served(fn string, local bool) (known, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.slots != nil, f.slots[fn] > 0 || (local && f.local > 0)
}

// unservedEvery is how often a run says again that a function it needs
// still has no worker.
const unservedEvery = 30 * time.Second

// unservedWatch decides when to say that a function has no worker: at
// once, then every unservedEvery while it has none. A function that
// gets a worker is forgotten, so that losing it again is said at once.
type unservedWatch struct {
	every time.Duration
	since map[string]time.Time // function -> when it was first found unserved
	said  map[string]time.Time // function -> when that was last said
}

// due takes the functions found unserved now and returns those to warn
// about, each with how long it has been unserved (zero the first time).
func (w *unservedWatch) due(now time.Time, unserved []string) map[string]time.Duration {
	if w.since == nil {
		w.since, w.said = make(map[string]time.Time), make(map[string]time.Time)
	}
	now = now.Round(0)
	keep := make(map[string]bool, len(unserved))
	out := make(map[string]time.Duration)
	for _, fn := range unserved {
		keep[fn] = true
		first, seen := w.since[fn]
		if !seen {
			w.since[fn], w.said[fn] = now, now
			out[fn] = 0
			continue
		}
		if now.Sub(w.said[fn]) >= w.every {
			w.said[fn] = now
			out[fn] = now.Sub(first)
		}
	}
	for fn := range w.since {
		if !keep[fn] {
			delete(w.since, fn)
			delete(w.said, fn)
		}
	}
	return out
}
