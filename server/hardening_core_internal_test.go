package server

import (
	"fmt"
	"slices"
)

// holds reports whether j is in r's list of running jobs.
func (r *registration) holds(j *job) bool {
	for o := r.running.head; o != nil; o = o.next {
		if o == j {
			return true
		}
	}
	return false
}

// checkCoreIndexLocked verifies the indexes of coreIndex, registrations
// and running lists against the connections, functions and jobs.
func (s *Server) checkCoreIndexLocked() error {
	regs := 0
	for _, fn := range s.functions {
		for i, r := range fn.workers {
			if r.idx != i || r.fn != fn {
				return fmt.Errorf("function %q worker %d filed at %d", fn.name, i, r.idx)
			}
			if s.core.regs[regKey{r.c, fn}] != r {
				return fmt.Errorf("function %q worker %d missing from the registration index", fn.name, i)
			}
			if !slices.Contains(r.c.regs, r) {
				return fmt.Errorf("function %q worker %d not in its connection's list", fn.name, i)
			}
			n := 0
			for j := r.running.head; j != nil; j = j.next {
				if j.state != jobRunning || j.worker != r || j.fn != fn {
					return fmt.Errorf("function %q worker %d lists job %d (%v)", fn.name, i, j.id, j.state)
				}
				n++
			}
			if n != r.running.n {
				return fmt.Errorf("function %q worker %d counts %d running, holds %d", fn.name, i, r.running.n, n)
			}
			regs++
		}
		if want := fn.runnable(); want != (fn.runIdx >= 0) {
			return fmt.Errorf("function %q runnable %v but runIdx %d", fn.name, want, fn.runIdx)
		}
		if fn.runIdx >= 0 && (fn.runIdx >= len(s.core.runnable) || s.core.runnable[fn.runIdx] != fn) {
			return fmt.Errorf("function %q misfiled in the runnable list", fn.name)
		}
		for u, j := range fn.uniques {
			e, ok := s.core.uniques[u]
			if !ok || e.first != j && e.more[fn] != j {
				return fmt.Errorf("function %q unique %q missing from the server-wide index", fn.name, u)
			}
		}
	}
	if regs != len(s.core.regs) {
		return fmt.Errorf("registration index holds %d, functions list %d", len(s.core.regs), regs)
	}
	for i, fn := range s.core.runnable {
		if fn.runIdx != i || s.functions[fn.name] != fn {
			return fmt.Errorf("runnable list entry %d is function %q filed at %d", i, fn.name, fn.runIdx)
		}
	}
	for u, e := range s.core.uniques {
		for _, j := range append([]*job{e.first}, mapValues(e.more)...) {
			if j.unique != u || j.fn.uniques[u] != j || s.jobs.get(j.id) != j {
				return fmt.Errorf("server-wide unique %q points at a stale job", u)
			}
		}
	}
	return nil
}

func mapValues(m map[*function]*job) []*job {
	var out []*job
	for _, j := range m {
		out = append(out, j)
	}
	return out
}
