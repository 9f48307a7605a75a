package server

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// check verifies the table's counters against its pages.
func (t *jobTable) check() error {
	n := 0
	for i, p := range t.pages {
		if p == nil {
			continue
		}
		live := 0
		for k, j := range p.jobs {
			if j == nil {
				continue
			}
			live++
			if id := (t.base+uint64(i))<<pageBits | uint64(k); j.id != id {
				return fmt.Errorf("job %d filed under %d", j.id, id)
			}
		}
		if live != p.live {
			return fmt.Errorf("page %d counts %d jobs, holds %d", t.base+uint64(i), p.live, live)
		}
		if live <= strayMax && i != len(t.pages)-1 {
			return fmt.Errorf("page %d kept with only %d jobs", t.base+uint64(i), live)
		}
		n += live
	}
	for id, j := range t.strays {
		if j.id != id {
			return fmt.Errorf("stray job %d filed under %d", j.id, id)
		}
		if t.page(id) != nil {
			return fmt.Errorf("stray job %d has a page", id)
		}
	}
	n += len(t.strays)
	if n != t.n {
		return fmt.Errorf("table counts %d jobs, holds %d", t.n, n)
	}
	if len(t.pages) > 0 && t.pages[0] == nil && len(t.pages) > 1 {
		return fmt.Errorf("leading empty page %d kept", t.base)
	}
	return nil
}

// TestJobTableAgainstMap drives the table and a map with the same
// random inserts and deletes (FIFO-ish, random, and long-lived jobs
// that pin old pages) and compares them after every step.
func TestJobTableAgainstMap(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 7))
			var tab jobTable
			model := map[uint64]*job{}
			var live []uint64
			next := uint64(rng.IntN(5000)) // ids need not start at a page boundary
			for step := range 20000 {
				switch r := rng.IntN(10); {
				case r == 9 && rng.IntN(100) == 0: // end every job but the oldest
					for len(live) > 1 {
						id := live[len(live)-1]
						live = live[:len(live)-1]
						tab.delete(id)
						delete(model, id)
					}
				case r < 5 || len(live) == 0:
					next++
					j := &job{id: next}
					tab.put(j)
					model[next] = j
					live = append(live, next)
				case r < 8: // the oldest, mostly
					k := min(rng.IntN(4), len(live)-1)
					id := live[k]
					live = append(live[:k], live[k+1:]...)
					tab.delete(id)
					delete(model, id)
				default:
					k := rng.IntN(len(live))
					if k == 0 && rng.IntN(50) != 0 {
						continue // let the oldest live long: it pins its page
					}
					id := live[k]
					live = append(live[:k], live[k+1:]...)
					tab.delete(id)
					delete(model, id)
				}
				if err := tab.check(); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				if tab.len() != len(model) {
					t.Fatalf("step %d: len %d, model %d", step, tab.len(), len(model))
				}
				probe := next - uint64(rng.IntN(3000))
				if got := tab.get(probe); got != model[probe] {
					t.Fatalf("step %d: get(%d) = %v, model %v", step, probe, got, model[probe])
				}
			}
			prev, n := uint64(0), 0
			for id, j := range tab.all() {
				if model[id] != j || id <= prev && n > 0 {
					t.Fatalf("all: %d out of order or wrong", id)
				}
				prev = id
				n++
			}
			if n != len(model) {
				t.Fatalf("all yielded %d, model holds %d", n, len(model))
			}
			if len(live) > 0 && len(tab.pages) > int(next>>pageBits-live[0]>>pageBits)+1 {
				t.Fatalf("%d pages for ids %d..%d", len(tab.pages), live[0], next)
			}
		})
	}
}

// TestJobTableLongLivedJobsDoNotPinPages: one job in a thousand lives on
// while the others end at once; the table keeps them in strays, not in
// an 8 KiB page each.
func TestJobTableLongLivedJobsDoNotPinPages(t *testing.T) {
	t.Parallel()
	var tab jobTable
	kept := 0
	for id := uint64(1); id <= 200*pageSize; id++ {
		tab.put(&job{id: id})
		if id%1000 == 0 {
			kept++
			continue
		}
		tab.delete(id)
	}
	if err := tab.check(); err != nil {
		t.Fatal(err)
	}
	if tab.len() != kept {
		t.Fatalf("len %d, want %d", tab.len(), kept)
	}
	pages := 0
	for _, p := range tab.pages {
		if p != nil {
			pages++
		}
	}
	if pages > 1 {
		t.Fatalf("%d pages kept for %d long-lived jobs", pages, kept)
	}
	if len(tab.pages) > 2 {
		t.Fatalf("page index of %d entries", len(tab.pages))
	}
	for id := uint64(1000); id <= 200*pageSize; id += 1000 {
		if tab.get(id) == nil {
			t.Fatalf("job %d lost", id)
		}
	}
}
