package server

// RunDelayedNow queues every delayed job as if its time had come, for
// the black-box tests of scheduled jobs, which would otherwise wait for
// the next minute.
func (s *Server) RunDelayedNow() {
	s.mu.Lock()
	for _, j := range s.delayed {
		j.when = 0 // all equal: the heap stays in order
	}
	s.mu.Unlock()
	s.wakeDelayed()
}
