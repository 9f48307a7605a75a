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
