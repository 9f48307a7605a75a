package flow

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Counters are named int64 totals a task's functions add to, as Hadoop's
// user counters are: bad records seen, records skipped, bytes parsed.
// The worker sends a task's counters with its result (the WORK_COMPLETE
// summary); the coordinator adds them to the stage's totals only when
// that attempt wins, so a failed attempt, a retry or the loser of a
// backup race never counts twice. Totals appear in progress events,
// Result, the run's result.json and journal, and `runs show`.

// Count adds n to the counter called name of the task ctx belongs to (the
// context a map, reduce, combine or task function receives). Outside a
// task it does nothing. It is safe to call from any goroutine the
// function starts, and costs a map lookup and an atomic add.
func Count(ctx context.Context, name string, n int64) {
	if s, ok := ctx.Value(infoKey{}).(*taskState); ok {
		s.counters.add(name, n)
	}
}

// taskState is what a running task's context carries: its TaskInfo and
// its counters.
type taskState struct {
	info     TaskInfo
	counters taskCounters
}

// taskCounters are one attempt's counters. A name's first use copies the
// map under mu; later ones read it without a lock, so a counter in a
// record loop costs what a map lookup and an atomic add cost.
type taskCounters struct {
	mu sync.Mutex // serializes adding names
	m  atomic.Pointer[map[string]*atomic.Int64]
}

func (c *taskCounters) add(name string, n int64) {
	if m := c.m.Load(); m != nil {
		if v := (*m)[name]; v != nil {
			v.Add(n)
			return
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var next map[string]*atomic.Int64
	if m := c.m.Load(); m != nil {
		if v := (*m)[name]; v != nil {
			v.Add(n)
			return
		}
		next = maps.Clone(*m)
	} else {
		next = make(map[string]*atomic.Int64)
	}
	v := new(atomic.Int64)
	v.Add(n)
	next[name] = v
	c.m.Store(&next)
}

// snapshot returns the counters' values, nil for none.
func (c *taskCounters) snapshot() map[string]int64 {
	m := c.m.Load()
	if m == nil || len(*m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(*m))
	for k, v := range *m {
		out[k] = v.Load()
	}
	return out
}

// addCounters adds src's counters to *dst, making it when needed.
func addCounters(dst *map[string]int64, src map[string]int64) {
	if len(src) == 0 {
		return
	}
	if *dst == nil {
		*dst = make(map[string]int64, len(src))
	}
	for k, v := range src {
		(*dst)[k] += v
	}
}

// sortedNames returns m's keys in order.
func sortedNames(m map[string]int64) []string {
	return slices.Sorted(maps.Keys(m))
}
