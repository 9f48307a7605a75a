package server

import "iter"

// Job table geometry: pages of 1024 consecutive ids, 8 KiB each.
const (
	pageBits = 10
	pageSize = 1 << pageBits
)

// jobTable indexes jobs by id. Ids are issued in increasing order and
// jobs mostly end in about that order, so the table is a run of pages
// of consecutive ids: an insert fills the last page, a lookup is two
// index operations, and a page is freed when its last job ends. A hash
// map cost a cache miss per insert at a million queued jobs (an eighth
// of the submit path's CPU) and about three times the memory per job.
// Guarded by Server.mu.
type jobTable struct {
	pages []*jobPage // pages[i] holds the ids of page number base+i; nil when empty
	base  uint64
	n     int
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
		// The last page is full: free it if its jobs have all ended.
		if last := len(t.pages) - 1; t.pages[last] != nil && t.pages[last].live == 0 {
			t.pages[last] = nil
		}
		for pn-t.base >= uint64(len(t.pages)) {
			t.pages = append(t.pages, nil)
		}
		t.trim()
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

// get returns the job with id, or nil.
func (t *jobTable) get(id uint64) *job {
	pn := id >> pageBits
	if pn < t.base || pn-t.base >= uint64(len(t.pages)) {
		return nil
	}
	p := t.pages[pn-t.base]
	if p == nil {
		return nil
	}
	return p.jobs[id&(pageSize-1)]
}

// delete removes the job with id, which must be in the table. A page
// left empty is freed, except the last one, which new ids still fill.
func (t *jobTable) delete(id uint64) {
	i := id>>pageBits - t.base
	p := t.pages[i]
	p.jobs[id&(pageSize-1)] = nil
	p.live--
	t.n--
	if p.live > 0 || int(i) == len(t.pages)-1 {
		return
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
