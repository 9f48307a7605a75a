package server

import (
	"bytes"
	"hash/maphash"
	"strconv"
	"strings"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// Clients: submissions.

// submission is a parsed SUBMIT_* request.
type submission struct {
	fn         []byte
	unique     []byte
	data       []byte
	reducer    []byte
	pri        priority
	background bool
	when       int64 // unix nanoseconds; 0 = now
	schedule   *schedule
}

// parseSubmission reads a SUBMIT_* packet. A refusal is a clientError:
// the client gets ERROR in the place of JOB_CREATED, which keeps later
// replies matched to their submissions.
func parseSubmission(p protocol.Packet) (submission, error) {
	sub := submission{fn: p.Args[0], unique: p.Args[1], pri: priNormal}
	if err := checkFunctionName(sub.fn); err != nil {
		return sub, err
	}
	sub.data = p.Args[len(p.Args)-1]
	switch p.Type {
	case protocol.SubmitJobBg:
		sub.background = true
	case protocol.SubmitJobHigh:
		sub.pri = priHigh
	case protocol.SubmitJobHighBg:
		sub.pri, sub.background = priHigh, true
	case protocol.SubmitJobLow:
		sub.pri = priLow
	case protocol.SubmitJobLowBg:
		sub.pri, sub.background = priLow, true
	case protocol.SubmitReduceJob:
		sub.reducer = p.Args[2]
	case protocol.SubmitReduceJobBackground:
		sub.reducer, sub.background = p.Args[2], true
	case protocol.SubmitJobEpoch:
		sub.background = true
		epoch, ok := parseEpoch(p.Args[2])
		if !ok {
			// gearmand drops the request silently, which shifts every
			// later JOB_CREATED onto the wrong submission.
			return sub, refuse(protocol.CodeInvalidArgument, "SUBMIT_JOB_EPOCH time out of range")
		}
		if epoch > 0 && epoch < 1<<62/int64(time.Second) {
			sub.when = epoch * int64(time.Second)
		}
	case protocol.SubmitJobSched:
		sched, err := parseSchedule(p.Args[2:7])
		if err != nil {
			return sub, refuse(protocol.CodeInvalidArgument, err.Error())
		}
		sub.background = true
		sub.schedule = sched
	}
	if len(sub.unique) > maxUniqueSize {
		return sub, refuse(protocol.CodeArgumentTooLarge, "Unique value too large")
	}
	return sub, nil
}

// parseEpoch parses like C's strtoll: leading space and sign, then
// digits; trailing garbage ignored; no digits is 0. Out of range fails.
func parseEpoch(b []byte) (int64, bool) {
	s := strings.TrimLeft(string(b), " \t\n\r\v\f")
	end := 0
	if end < len(s) && (s[end] == '+' || s[end] == '-') {
		end++
	}
	digits := end
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	if end == digits {
		return 0, true
	}
	v, err := strconv.ParseInt(s[:end], 10, 64)
	return v, err == nil
}

var dataSeed = maphash.MakeSeed()

func (s *Server) submit(c *conn, p protocol.Packet) error {
	sub, err := parseSubmission(p)
	durable := s.store != nil && err == nil && sub.background
	if !durable {
		// Its reply (or, for a foreground job, its WORK_* packets) must
		// not overtake the JOB_CREATED replies still parked.
		c.resolveParked()
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	j, ticket, err := s.submitLocked(c, sub)
	s.mu.Unlock()
	if !durable {
		return err
	}
	if err != nil {
		c.resolveParked()
		return err
	}
	c.park(j, ticket)
	return nil
}

// parked is a background submission of a durable server whose
// JOB_CREATED waits for its record's sync: ticket is the store's, 0
// when the job was durable already (a request that joined it).
type parked struct {
	j      *job
	ticket uint64
}

// maxParked bounds the submissions a connection's read loop parks
// before it waits for their sync.
const maxParked = 1024

// park queues j's JOB_CREATED until ticket is synced. The read loop
// goes on reading while whole requests are buffered and they are
// background submissions too, so a client that pipelines them shares
// one sync among them; any other request, or the end of what is
// buffered, sends the parked replies first (resolveParked), so the
// replies of a connection keep their order.
func (c *conn) park(j *job, ticket uint64) {
	c.parked = append(c.parked, parked{j: j, ticket: ticket})
	if len(c.parked) >= maxParked {
		c.resolveParked()
	}
}

// parkable reports whether p is a submission that may be parked behind
// those already parked: a background one (see Server.submit).
func parkable(p protocol.Packet) bool {
	if p.Magic != protocol.Req {
		return false
	}
	switch p.Type {
	case protocol.SubmitJobBg, protocol.SubmitJobHighBg, protocol.SubmitJobLowBg,
		protocol.SubmitJobEpoch, protocol.SubmitJobSched, protocol.SubmitReduceJobBackground:
		return true
	}
	return false
}

// resolveParked waits until the records of the parked submissions are
// synced, then lets workers see their jobs and sends their JOB_CREATED
// replies (or ERROR QUEUE_ERROR when the store failed), in order. The
// replies already queued go out before the wait. Called by the read
// loop, holding no lock.
func (c *conn) resolveParked() {
	if len(c.parked) == 0 {
		return
	}
	s := c.srv
	// While it waits for the sync, c is not in a batch: what other read
	// loops queue for it meanwhile goes out without waiting for the sync
	// (see flushPeers).
	holding := c.holding.Swap(false)
	c.flushPeers()
	c.flushInline()
	errs := make([]error, len(c.parked))
	for i, pk := range c.parked {
		if pk.ticket != 0 {
			errs[i] = s.store.wait(pk.ticket)
		}
	}
	c.holding.Store(holding)
	s.mu.Lock()
	for i, pk := range c.parked {
		j := pk.j
		var hb handleBuf
		h := s.appendHandle(hb[:0], j.id)
		if err := errs[i]; err != nil {
			if log, n := s.refusals.refused(); log {
				s.log.Error("durable queue failed; refusing background jobs", "err", err, "refused", n)
			}
			if j.state == jobPending {
				for _, cl := range j.clients {
					cl.send(protocol.WorkFail, h)
				}
				s.removeLocked(j, endDropped)
			}
			c.sendError(protocol.CodeQueueError, "Job could not be stored: "+err.Error())
			continue
		}
		if j.state == jobPending {
			s.placeLocked(c, j)
		}
		if pk.ticket != 0 && s.refusals.pending > 0 {
			if log, n := s.refusals.stored(); log {
				s.log.Warn("durable queue stores background jobs again", "refused", n)
			}
		}
		c.send(protocol.JobCreated, h)
	}
	s.mu.Unlock()
	clear(c.parked)
	c.parked = c.parked[:0]
}

// submitLocked creates or joins the job of sub. For a background
// submission to a durable server it sends nothing and returns the job
// and the ticket of its record (0 when it is durable already), for the
// caller to park; otherwise it has sent the JOB_CREATED.
func (s *Server) submitLocked(c *conn, sub submission) (*job, uint64, error) {
	fn := s.functionBytesLocked(sub.fn)

	if j := s.coalesceLocked(fn, sub); j != nil {
		if sub.background {
			// A background request must not be lost if the foreground
			// clients it joined go away (gearmand loses it).
			j.background = true
			if s.store != nil {
				// The job it joined may be one nothing stored yet (a
				// foreground one), or one whose record is being synced.
				if !j.stored {
					j.stored = true
					return j, s.store.put(s.storedJobLocked(j)), nil
				}
				if j.state == jobPending {
					return j, s.store.last(), nil
				}
				return j, 0, nil
			}
		} else {
			s.attachLocked(j, c)
		}
		var hb handleBuf
		c.send(protocol.JobCreated, s.appendHandle(hb[:0], j.id))
		return j, 0, nil
	}

	limit := s.cfg.MaxQueuedJobs
	if m := fn.maxQueue[sub.pri]; m > 0 && m < limit {
		limit = m
	}
	if fn.total >= limit {
		return nil, 0, refuse(protocol.CodeQueueError, "Job queue is full")
	}

	id := s.newIDLocked()
	data, pb := s.keepPayload(c, sub.data)
	j := &job{
		id:         id,
		fn:         fn,
		unique:     string(sub.unique),
		data:       data,
		pbuf:       pb,
		pri:        sub.pri,
		background: sub.background,
		heapIdx:    -1,
	}
	if len(sub.reducer) > 0 || sub.schedule != nil {
		j.extra = &jobExtra{reducer: string(sub.reducer), schedule: sub.schedule}
	}
	if j.data == nil {
		j.data = []byte{}
	}
	s.jobs.put(j)
	fn.total++
	fn.counts.submitted++
	s.indexLocked(j)
	if !sub.background {
		s.attachLocked(j, c)
	}
	j.when = sub.when
	if s.store != nil && sub.background {
		// Durable: nobody sees the job before its record is synced.
		j.stored = true
		j.state = jobPending
		return j, s.store.put(s.storedJobLocked(j)), nil
	}
	// The job is queued (and sleeping workers NOOPed) before JOB_CREATED
	// goes out, as in gearmand; no worker can take it before this
	// handler releases the lock, so the client still learns its handle
	// before any WORK_* packet for it.
	s.placeLocked(c, j)
	var hb handleBuf
	c.send(protocol.JobCreated, s.appendHandle(hb[:0], j.id))
	return j, 0, nil
}

// placeLocked queues new job j, or parks it until its time: j.when, set
// from SUBMIT_JOB_EPOCH (0 for none), or its schedule's next minute.
func (s *Server) placeLocked(c *conn, j *job) {
	switch {
	case j.sched() != nil:
		j.when = j.sched().next(time.Now()).UnixNano()
		s.delayLocked(j)
	case j.when > 0 && j.when > time.Now().UnixNano():
		s.delayLocked(j)
	default:
		j.when = 0
		s.enqueueLocked(c, j)
	}
}

// keepPayload returns a submission's payload for its new job to keep. A
// large one is not copied: the job takes the read loop's buffer, with
// its reference when the buffer is pooled (pb), unless that buffer is
// much larger than the payload (grown by an earlier packet) and would
// pin the difference for the job's life.
func (s *Server) keepPayload(c *conn, data []byte) (kept []byte, pb *payloadBuf) {
	if len(data) < sharedMin {
		return bytes.Clone(data), nil
	}
	if pb := c.takeBody(data); pb != nil {
		return data[:len(data):len(data)], pb // a pooled class wastes at most a fifth
	}
	if cap(data)-len(data) > len(data)/4 {
		return bytes.Clone(data), nil
	}
	c.reader.DetachBody()
	return data[:len(data):len(data)], nil
}

// coalesceLocked finds the job a submission joins (PROTOCOL.md §3.5):
// same function and unique; unique "-" matches on the payload; an
// empty unique never matches.
func (s *Server) coalesceLocked(fn *function, sub submission) *job {
	switch {
	case len(sub.unique) == 0:
		return nil
	case len(sub.unique) == 1 && sub.unique[0] == '-':
		if len(sub.data) == 0 {
			return nil
		}
		for _, j := range fn.byData[maphash.Bytes(dataSeed, sub.data)] {
			if bytes.Equal(j.data, sub.data) {
				return j
			}
		}
		return nil
	default:
		return fn.uniques[string(sub.unique)]
	}
}

func (s *Server) indexLocked(j *job) {
	switch {
	case j.unique == "":
	case j.unique == "-":
		if len(j.data) == 0 {
			return
		}
		if j.fn.byData == nil {
			j.fn.byData = make(map[uint64][]*job)
		}
		h := maphash.Bytes(dataSeed, j.data)
		j.fn.byData[h] = append(j.fn.byData[h], j)
	default:
		if j.fn.uniques == nil {
			j.fn.uniques = make(map[string]*job)
		}
		j.fn.uniques[j.unique] = j
		s.core.addUnique(j)
	}
}

func (s *Server) unindexLocked(j *job) {
	switch {
	case j.unique == "":
	case j.unique == "-":
		h := maphash.Bytes(dataSeed, j.data)
		list := j.fn.byData[h]
		for i, o := range list {
			if o == j {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(j.fn.byData, h)
		} else {
			j.fn.byData[h] = list
		}
	default:
		if j.fn.uniques[j.unique] == j {
			delete(j.fn.uniques, j.unique)
			s.core.removeUnique(j)
		}
	}
}

// attachLocked attaches client c to j once per submission: gearmand
// sends every WORK_* packet once per submission, and libgearman relies
// on that to finish each of several tasks sharing one unique.
func (s *Server) attachLocked(j *job, c *conn) {
	j.clients = append(j.clients, c)
	c.attach(j)
}

// enqueueLocked appends j to its priority list and wakes workers. via is
// as for wakeLocked.
func (s *Server) enqueueLocked(via *conn, j *job) {
	s.seq++
	j.seq = s.seq
	j.state = jobQueued
	j.when = nowNanos() // for the wait time (metrics.go)
	j.fn.queues[j.pri].pushBack(j)
	s.core.markRunnable(j.fn)
	s.wakeLocked(via, j.fn, s.cfg.WorkerWakeup)
}

// unqueueLocked takes queued j out of its priority list.
func (s *Server) unqueueLocked(j *job) {
	j.fn.queues[j.pri].remove(j)
	s.core.unmarkRunnable(j.fn)
}

// requeueLocked takes a running job back from its worker (worker lost,
// CANT_DO, timeout). Within the retry limit the job goes to the tail of
// its queue; past it, it is dropped. A cancelled job, or a foreground
// one nobody waits for any more, is removed instead.
func (s *Server) requeueLocked(j *job) {
	s.unassignLocked(j)
	if j.retries < 1<<16-1 {
		j.retries++
	}
	j.num, j.den = 0, 0
	if j.cancelled {
		s.removeLocked(j, endCancelled)
		return
	}
	if !j.background && len(j.clients) == 0 {
		s.removeLocked(j, endAbandoned)
		return
	}
	if j.stored && s.store != nil {
		s.store.setRetries(j.id, j.retries)
	}
	if s.cfg.JobRetries > 0 && int(j.retries) >= s.cfg.JobRetries {
		s.log.Info("job dropped: retry limit reached", "handle", s.handleString(j), "func", j.fn.name, "retries", j.retries)
		var hb handleBuf
		h := s.appendHandle(hb[:0], j.id)
		for _, cl := range j.clients {
			cl.send(protocol.WorkFail, h)
		}
		s.removeLocked(j, endDropped)
		return
	}
	j.fn.counts.requeued++
	s.enqueueLocked(nil, j)
}

// unassignLocked detaches a running job from its worker.
func (s *Server) unassignLocked(j *job) {
	if j.state != jobRunning {
		return
	}
	if j.extra != nil && j.extra.timer != nil {
		j.extra.timer.Stop()
		j.extra.timer = nil
	}
	j.worker.running.remove(j)
	j.worker = nil
	j.fn.running--
	s.running--
	j.state = jobQueued // the caller queues or removes it
	s.runningChangedLocked()
}

// removeLocked deletes j from every index, counting its end (a job
// removed twice is counted once).
func (s *Server) removeLocked(j *job, end jobEnd) {
	switch j.state {
	case jobRunning:
		s.unassignLocked(j)
	case jobDelayed:
		s.undelayLocked(j)
	case jobQueued:
		if j.prev != nil || j.next != nil || j.fn.queues[j.pri].head == j {
			s.unqueueLocked(j)
		}
	}
	if j.state == jobGone {
		return
	}
	j.state = jobGone
	j.fn.counts.ended[end]++
	if j.stored && s.store != nil {
		s.store.del(j.id)
	}
	for _, cl := range j.clients {
		cl.detach(j)
	}
	j.clients = nil
	s.unindexLocked(j)
	s.jobs.delete(j.id)
	j.fn.total--
	if len(j.data) >= sharedMin {
		s.noteReleased(cap(j.data))
	}
	if j.pbuf != nil {
		// Outboxes still writing the payload hold their own references.
		j.pbuf.unref()
		j.pbuf, j.data = nil, nil
	}
}
