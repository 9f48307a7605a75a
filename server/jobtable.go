package server

import (
	"cmp"
	"iter"
	"slices"
)

// Job table geometry: pages of 1024 consecutive ids, 8 KiB each.
const (
	pageBits = 10
	pageSize = 1 << pageBits
)

// strayMax is the most jobs a page may keep before its survivors move
// to the strays map: a page costs 8 KiB, so a few long-lived jobs among
// many short ones must not each pin one.
const strayMax = pageSize / 32

// jobTable indexes jobs by id. Ids are issued in increasing order and
// jobs mostly end in about that order, so the table is a run of pages
// of consecutive ids: an insert fills the last page, a lookup is two
// index operations, and a page is freed when its last job ends. A hash
// map cost a cache miss per insert at a million queued jobs (an eighth
// of the submit path's CPU) and about three times the memory per job.
// When an older page is down to strayMax jobs, they move to a map, so
// memory stays within about 250 bytes per job whatever the pattern.
// Guarded by Server.mu.
type jobTable struct {
	pages  []*jobPage // pages[i] holds the ids of page number base+i; nil when empty
	base   uint64
	n      int             // jobs in pages and strays
	strays map[uint64]*job // jobs of freed pages that were still live
}

type jobPage struct {
	jobs [pageSize]*job
	live int
}

func (t *jobTable) len() int { return t.n }

// put adds j. Its id must be greater than every id put before.
func (t *jobTable) put(j *job) {
	pn := j.id >> pageBits
	if len(t.pages) == 0 {
		t.base = pn
		t.pages = append(t.pages, nil)
	}
	if pn-t.base >= uint64(len(t.pages)) {
		// The last page is full and becomes an older one.
		last := len(t.pages) - 1
		for pn-t.base >= uint64(len(t.pages)) {
			t.pages = append(t.pages, nil)
		}
		t.retire(last)
	}
	p := t.pages[pn-t.base]
	if p == nil {
		p = new(jobPage)
		t.pages[pn-t.base] = p
	}
	p.jobs[j.id&(pageSize-1)] = j
	p.live++
	t.n++
}

// page returns the page holding id, or nil.
func (t *jobTable) page(id uint64) *jobPage {
	pn := id >> pageBits
	if pn < t.base || pn-t.base >= uint64(len(t.pages)) {
		return nil
	}
	return t.pages[pn-t.base]
}

// get returns the job with id, or nil.
func (t *jobTable) get(id uint64) *job {
	if p := t.page(id); p != nil {
		return p.jobs[id&(pageSize-1)]
	}
	return t.strays[id] // nil map: nil
}

// delete removes the job with id, which must be in the table. A page
// left empty is freed, except the last one, which new ids still fill;
// an older page down to strayMax jobs hands them to strays.
func (t *jobTable) delete(id uint64) {
	t.n--
	p := t.page(id)
	if p == nil {
		delete(t.strays, id)
		return
	}
	p.jobs[id&(pageSize-1)] = nil
	p.live--
	t.retire(int(id>>pageBits - t.base))
}

// retire frees pages[i] if it is an older page (not the last) down to
// strayMax jobs, moving them to strays.
func (t *jobTable) retire(i int) {
	p := t.pages[i]
	if p == nil || p.live > strayMax || i == len(t.pages)-1 {
		return
	}
	if p.live > 0 {
		if t.strays == nil {
			t.strays = make(map[uint64]*job)
		}
		for _, j := range p.jobs {
			if j != nil {
				t.strays[j.id] = j
			}
		}
	}
	t.pages[i] = nil
	t.trim()
}

// trim drops the empty pages at the front.
func (t *jobTable) trim() {
	for len(t.pages) > 1 && t.pages[0] == nil {
		t.pages = t.pages[1:]
		t.base++
	}
}

// all yields every job in increasing id order.
func (t *jobTable) all() iter.Seq2[uint64, *job] {
	return func(yield func(uint64, *job) bool) {
		if len(t.strays) > 0 {
			// Rare (admin listings): merge by sorting everything.
			js := make([]*job, 0, t.n)
			for _, p := range t.pages {
				if p != nil {
					for _, j := range p.jobs {
						if j != nil {
							js = append(js, j)
						}
					}
				}
			}
			for _, j := range t.strays {
				js = append(js, j)
			}
			slices.SortFunc(js, func(a, b *job) int { return cmp.Compare(a.id, b.id) })
			for _, j := range js {
				if !yield(j.id, j) {
					return
				}
			}
			return
		}
		for i, p := range t.pages {
			if p == nil {
				continue
			}
			for k, j := range p.jobs {
				if j != nil && !yield((t.base+uint64(i))<<pageBits|uint64(k), j) {
					return
				}
			}
		}
	}
}
