package server

import (
	"bytes"
	"hash/maphash"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// Limits gearmand applies to arguments (PROTOCOL.md §1).
const (
	maxUniqueSize   = 64  // longer uniques get ARGUMENT_TOO_LARGE
	maxHandleSize   = 63  // a handle must fit gearmand's 64-byte buffer
	maxOptionSize   = 63  // OPTION_REQ names must be shorter than 64
	maxClientIDSize = 127 // SET_CLIENT_ID is truncated to this
	maxTimeoutChars = 20  // CAN_DO_TIMEOUT values longer than this are refused
)

var (
	textCommandNotExpected = []byte("Command not expected")
	textNoDataJob          = "Job does not exist on server"
	textNoResultJob        = "Job given in work result not found"
	textNoExceptionJob     = "An exception was received for a job that does not exist"
)

// dispatch handles one binary packet from c: one method per type.
func (s *Server) dispatch(c *conn, p protocol.Packet) {
	if p.Magic != protocol.Req {
		c.sendError(protocol.CodeInvalidMagic, "Request magic expected")
		return
	}
	switch p.Type {
	case protocol.CanDo:
		s.canDo(c, p.Args[0], 0)
	case protocol.CanDoTimeout:
		s.canDoTimeout(c, p)
	case protocol.CantDo:
		s.cantDo(c, p.Args[0])
	case protocol.ResetAbilities:
		s.resetAbilities(c)
	case protocol.PreSleep:
		s.preSleep(c)
	case protocol.GrabJob, protocol.GrabJobUniq, protocol.GrabJobAll:
		s.grab(c, p.Type)
	case protocol.SubmitJob, protocol.SubmitJobBg, protocol.SubmitJobHigh,
		protocol.SubmitJobHighBg, protocol.SubmitJobLow, protocol.SubmitJobLowBg,
		protocol.SubmitJobEpoch, protocol.SubmitJobSched,
		protocol.SubmitReduceJob, protocol.SubmitReduceJobBackground:
		s.submit(c, p)
	case protocol.WorkData, protocol.WorkWarning, protocol.WorkStatus,
		protocol.WorkComplete, protocol.WorkFail, protocol.WorkException:
		s.workResult(c, p)
	case protocol.GetStatus:
		s.getStatus(c, p.Args[0])
	case protocol.GetStatusUnique:
		s.getStatusUnique(c, p.Args[0])
	case protocol.EchoReq:
		c.send(protocol.EchoRes, p.Args[0])
	case protocol.SetClientID:
		s.setClientID(c, p.Args[0])
	case protocol.OptionReq:
		s.optionReq(c, p.Args[0])
	default:
		// Response types, UNUSED and ALL_YOURS.
		c.send(protocol.Error, []byte(protocol.CodeInvalidCommand), textCommandNotExpected)
	}
}

// ---- workers: abilities, sleep, grab ----

func (s *Server) canDo(c *conn, name []byte, timeout time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn := s.functionBytesLocked(name)
	for i := range c.regs {
		if c.regs[i].fn == fn {
			// gearmand registers a second time; one connection is one
			// worker, so we only update the timeout.
			c.regs[i].timeout = timeout
			return
		}
	}
	c.regs = append(c.regs, registration{fn: fn, timeout: timeout})
	fn.workers = append(fn.workers, c)
}

func (s *Server) canDoTimeout(c *conn, p protocol.Packet) {
	raw := p.Args[1]
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if len(raw) > maxTimeoutChars || err != nil || ms < 0 || ms > int64(1<<63-1)/int64(time.Millisecond) {
		// gearmand drops such a request without a reply.
		c.sendError(protocol.CodeInvalidArgument, "CAN_DO_TIMEOUT timeout must be a decimal count of milliseconds")
		return
	}
	s.canDo(c, p.Args[0], time.Duration(ms)*time.Millisecond)
}

func (s *Server) cantDo(c *conn, name []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn := s.functions[string(name)]
	if fn == nil {
		return
	}
	// As in gearmand, the jobs go back while c is still registered, so
	// their wake-up may NOOP c itself if it sleeps.
	s.requeueRunningLocked(c, fn)
	s.unregisterLocked(c, fn)
}

func (s *Server) resetAbilities(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(c.regs) > 0 {
		s.unregisterLocked(c, c.regs[len(c.regs)-1].fn)
	}
}

// unregisterLocked removes c's registration of fn and requeues the
// jobs of fn that c is running, as gearmand does.
func (s *Server) unregisterLocked(c *conn, fn *function) {
	for i := range c.regs {
		if c.regs[i].fn == fn {
			c.regs = append(c.regs[:i], c.regs[i+1:]...)
			break
		}
	}
	for i, w := range fn.workers {
		if w == c {
			fn.workers = append(fn.workers[:i], fn.workers[i+1:]...)
			if fn.cursor > i {
				fn.cursor--
			}
			break
		}
	}
	s.requeueRunningLocked(c, fn)
}

// requeueRunningLocked requeues the jobs of fn that c is running, newest
// assignment first, as gearmand does.
func (s *Server) requeueRunningLocked(c *conn, fn *function) {
	for _, j := range slices.Backward(slices.Clone(c.assigned)) {
		if j.fn == fn {
			s.requeueLocked(j)
		}
	}
}

func (s *Server) preSleep(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runnableForLocked(c) {
		// Work arrived between NO_JOB and PRE_SLEEP: wake at once. As
		// in gearmand the sleep flags stay as they were, so a job queued
		// before the worker's GRAB NOOPs a sleeping worker again.
		c.send(protocol.Noop)
		return
	}
	c.sleeping = true
	c.noopSent = false
}

func (s *Server) runnableForLocked(c *conn) bool {
	if s.draining {
		return false
	}
	for _, r := range c.regs {
		if r.fn.runnable() {
			return true
		}
	}
	return false
}

func (s *Server) grab(c *conn, t protocol.Type) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.sleeping = false
	c.noopSent = false
	j, reg := s.pickLocked(c)
	if j == nil {
		c.send(protocol.NoJob)
		return
	}
	j.fn.queues[j.pri].remove(j)
	j.state = jobRunning
	j.worker = c
	j.fn.running++
	s.running++
	c.assigned = append(c.assigned, j)
	if reg.timeout > 0 {
		s.armJobTimerLocked(j, c, reg.timeout)
	}
	var hb handleBuf
	h := s.appendHandle(hb[:0], j.id)
	switch {
	case t == protocol.GrabJob:
		c.sendShared(protocol.JobAssign, j.pbuf, h, j.fn.nameB, j.data)
	case t == protocol.GrabJobAll && j.reducer() != "":
		c.sendAssign(protocol.JobAssignAll, h, j.fn.nameB, j.unique, j.reducer(), j.data, j.pbuf)
	default:
		c.sendAssign(protocol.JobAssignUniq, h, j.fn.nameB, j.unique, "", j.data, j.pbuf)
	}
	if j.fn.runnable() {
		// More work waits: wake one more sleeper, so wake-ups grow with
		// demand instead of stampeding every idle worker at once.
		s.wakeLocked(c, j.fn, 1)
	}
}

// pickLocked chooses the job c gets: the highest priority across all
// of c's functions, the oldest within a priority (gearmand 2.0 order).
func (s *Server) pickLocked(c *conn) (*job, registration) {
	if s.draining {
		return nil, registration{}
	}
	for p := priHigh; p < numPriorities; p++ {
		var best *job
		var bestReg registration
		for _, r := range c.regs {
			h := r.fn.queues[p].head
			if h != nil && (best == nil || h.seq < best.seq) {
				best, bestReg = h, r
			}
		}
		if best != nil {
			return best, bestReg
		}
	}
	return nil, registration{}
}

// armJobTimerLocked starts j's CAN_DO_TIMEOUT timer. The timer is per
// job and stopped when the job ends or leaves the worker, so it can
// never fire against a later job (gearmand's per-connection timer can).
func (s *Server) armJobTimerLocked(j *job, w *conn, d time.Duration) {
	j.more().timer = time.AfterFunc(d, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if j.state != jobRunning || j.worker != w {
			return
		}
		w.log.Info("job timed out; requeueing", "handle", s.handleString(j), "func", j.fn.name, "timeout", d)
		s.requeueLocked(j)
	})
}

// wakeLocked sends NOOP to up to n sleeping workers of fn that have not
// been woken yet, starting at a rotating cursor. via is the connection
// whose read loop runs this, nil for any other goroutine (see sendVia).
func (s *Server) wakeLocked(via *conn, fn *function, n int) {
	if n <= 0 || len(fn.workers) == 0 {
		return
	}
	count := len(fn.workers)
	for i := 0; i < count && n > 0; i++ {
		idx := (fn.cursor + i) % count
		w := fn.workers[idx]
		if w.sleeping && !w.noopSent {
			w.noopSent = true
			w.sendVia(via, protocol.Noop)
			n--
			fn.cursor = (idx + 1) % count
		}
	}
}

// ---- clients: submissions ----

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

func parseSubmission(c *conn, p protocol.Packet) (submission, bool) {
	sub := submission{fn: p.Args[0], unique: p.Args[1], pri: priNormal}
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
			c.sendError(protocol.CodeInvalidArgument, "SUBMIT_JOB_EPOCH time out of range")
			return sub, false
		}
		if epoch > 0 && epoch < 1<<62/int64(time.Second) {
			sub.when = epoch * int64(time.Second)
		}
	case protocol.SubmitJobSched:
		sched, err := parseSchedule(p.Args[2:7])
		if err != nil {
			c.sendError(protocol.CodeInvalidArgument, err.Error())
			return sub, false
		}
		sub.background = true
		sub.schedule = sched
	}
	if len(sub.unique) > maxUniqueSize {
		c.sendError(protocol.CodeArgumentTooLarge, "Unique value too large")
		return sub, false
	}
	return sub, true
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

func (s *Server) submit(c *conn, p protocol.Packet) {
	sub, ok := parseSubmission(c, p)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fn := s.functionBytesLocked(sub.fn)

	if j := s.coalesceLocked(fn, sub); j != nil {
		if sub.background {
			// A background request must not be lost if the foreground
			// clients it joined go away (gearmand loses it).
			j.background = true
		} else {
			s.attachLocked(j, c)
		}
		var hb handleBuf
		c.send(protocol.JobCreated, s.appendHandle(hb[:0], j.id))
		return
	}

	limit := s.cfg.MaxQueuedJobs
	if m := fn.maxQueue[sub.pri]; m > 0 && m < limit {
		limit = m
	}
	if fn.total >= limit {
		c.sendError(protocol.CodeQueueError, "Job queue is full")
		return
	}

	s.nextID++
	data, pb := s.keepPayload(c, sub.data)
	j := &job{
		id:         s.nextID,
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
	s.indexLocked(j)
	if !sub.background {
		s.attachLocked(j, c)
	}
	// The job is queued (and sleeping workers NOOPed) before JOB_CREATED
	// goes out, as in gearmand; no worker can take it before this
	// handler releases the lock, so the client still learns its handle
	// before any WORK_* packet for it.
	switch {
	case j.sched() != nil:
		j.when = j.sched().next(time.Now()).UnixNano()
		s.delayLocked(j)
	case sub.when > 0 && sub.when > time.Now().UnixNano():
		j.when = sub.when
		s.delayLocked(j)
	default:
		s.enqueueLocked(c, j)
	}
	var hb handleBuf
	c.send(protocol.JobCreated, s.appendHandle(hb[:0], j.id))
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
		j.fn.uniques[j.unique] = j
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
		}
	}
}

// attachLocked attaches client c to j once per submission: gearmand
// sends every WORK_* packet once per submission, and libgearman relies
// on that to finish each of several tasks sharing one unique.
func (s *Server) attachLocked(j *job, c *conn) {
	j.clients = append(j.clients, c)
	c.attached[j] = struct{}{}
}

// enqueueLocked appends j to its priority list and wakes workers. via is
// as for wakeLocked.
func (s *Server) enqueueLocked(via *conn, j *job) {
	s.seq++
	j.seq = s.seq
	j.state = jobQueued
	j.fn.queues[j.pri].pushBack(j)
	s.wakeLocked(via, j.fn, s.cfg.WorkerWakeup)
}

// requeueLocked takes a running job back from its worker (worker lost,
// CANT_DO, timeout). Within the retry limit the job goes to the tail of
// its queue; past it, or when nobody waits for it any more, it is dropped.
func (s *Server) requeueLocked(j *job) {
	s.unassignLocked(j)
	if j.retries < 1<<16-1 {
		j.retries++
	}
	j.num, j.den = 0, 0
	if j.cancelled || (!j.background && len(j.clients) == 0) {
		s.removeLocked(j)
		return
	}
	if s.cfg.JobRetries > 0 && int(j.retries) >= s.cfg.JobRetries {
		s.log.Info("job dropped: retry limit reached", "handle", s.handleString(j), "func", j.fn.name, "retries", j.retries)
		var hb handleBuf
		h := s.appendHandle(hb[:0], j.id)
		for _, cl := range j.clients {
			cl.send(protocol.WorkFail, h)
		}
		s.removeLocked(j)
		return
	}
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
	w := j.worker
	if i := slices.Index(w.assigned, j); i >= 0 {
		w.assigned = slices.Delete(w.assigned, i, i+1)
	}
	j.worker = nil
	j.fn.running--
	s.running--
	j.state = jobQueued // the caller queues or removes it
	s.runningChangedLocked()
}

// removeLocked deletes j from every index.
func (s *Server) removeLocked(j *job) {
	switch j.state {
	case jobRunning:
		s.unassignLocked(j)
	case jobDelayed:
		s.undelayLocked(j)
	case jobQueued:
		if j.prev != nil || j.next != nil || j.fn.queues[j.pri].head == j {
			j.fn.queues[j.pri].remove(j)
		}
	}
	if j.state == jobGone {
		return
	}
	j.state = jobGone
	for _, cl := range j.clients {
		delete(cl.attached, j)
	}
	j.clients = nil
	s.unindexLocked(j)
	s.jobs.delete(j.id)
	j.fn.total--
	if j.pbuf != nil {
		// Outboxes still writing the payload hold their own references.
		j.pbuf.unref()
		j.pbuf, j.data = nil, nil
	}
}

// ---- results ----

// jobByHandleLocked looks a handle up: PREFIX:N.
func (s *Server) jobByHandleLocked(h []byte) *job {
	if len(h) <= len(s.prefix) || string(h[:len(s.prefix)]) != s.prefix {
		return nil
	}
	digits := h[len(s.prefix):]
	if len(digits) > 1 && digits[0] == '0' {
		return nil // not a handle we formatted
	}
	id, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil {
		return nil
	}
	return s.jobs.get(id)
}

func (s *Server) workResult(c *conn, p protocol.Packet) {
	handle := p.Args[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobByHandleLocked(handle)
	if j == nil || j.state != jobRunning || j.worker != c {
		s.jobNotFound(c, p.Type, handle)
		return
	}
	switch p.Type {
	case protocol.WorkStatus:
		j.num = atou32(p.Args[1])
		j.den = atou32(p.Args[2])
		s.forwardLocked(c, j, p)
	case protocol.WorkData, protocol.WorkWarning:
		s.forwardLocked(c, j, p)
	case protocol.WorkComplete, protocol.WorkFail:
		s.forwardLocked(c, j, p)
		s.finishLocked(j)
	case protocol.WorkException:
		if !j.cancelled {
			for _, cl := range j.clients {
				if cl.exceptions || s.cfg.Exceptions {
					cl.sendVia(c, protocol.WorkException, handle, p.Args[1])
				} else {
					// gearmand downgrades to WORK_FAIL with a trailing NUL.
					cl.sendVia(c, protocol.WorkFail, handle, nil)
				}
			}
		}
		s.finishLocked(j)
	}
}

func (s *Server) jobNotFound(c *conn, t protocol.Type, handle []byte) {
	switch t {
	case protocol.WorkData, protocol.WorkWarning:
		c.sendError(protocol.CodeJobNotFound, textNoDataJob)
	case protocol.WorkException:
		c.sendError(protocol.CodeJobNotFound, textNoExceptionJob)
	case protocol.WorkFail:
		if len(handle) > maxHandleSize {
			c.sendError(protocol.CodeArgumentTooLarge, "Error occurred due to GEARMAND_JOB_HANDLE_SIZE being too small from snprintf")
			return
		}
		c.sendError(protocol.CodeJobNotFound, textNoResultJob)
	default:
		c.sendError(protocol.CodeJobNotFound, textNoResultJob)
	}
}

// forwardLocked re-sends worker w's WORK_* packet to every client
// waiting for the job; w's read loop writes them at the end of its
// batch. A cancelled job's results go nowhere.
//
// A large payload read into a pooled buffer is not copied: the clients'
// outboxes write it from that buffer, which the reader leaves to them.
// A small one is copied into each outbox.
func (s *Server) forwardLocked(w *conn, j *job, p protocol.Packet) {
	if j.cancelled || len(j.clients) == 0 {
		return
	}
	var pb *payloadBuf
	if last := p.Args[len(p.Args)-1]; len(last) >= sharedMin {
		pb = w.takeBody(last)
	}
	if pb == nil {
		for _, cl := range j.clients {
			cl.sendVia(w, p.Type, p.Args...)
		}
		return
	}
	for _, cl := range j.clients {
		cl.sendSharedVia(w, p.Type, pb, p.Args...)
	}
	pb.unref() // the outboxes hold their own references
}

// finishLocked ends a job after its terminal packet. A scheduled job
// goes back to wait for its next time.
func (s *Server) finishLocked(j *job) {
	if j.sched() != nil && !j.cancelled {
		s.unassignLocked(j)
		j.num, j.den, j.retries = 0, 0, 0
		j.when = j.sched().next(time.Now()).UnixNano()
		s.delayLocked(j)
		return
	}
	s.removeLocked(j)
}

// handleString returns j's handle, for logs.
func (s *Server) handleString(j *job) string {
	var hb handleBuf
	return string(s.appendHandle(hb[:0], j.id))
}

func atou32(b []byte) uint32 {
	// atoi semantics: leading digits, garbage ends the number.
	var v uint64
	i := 0
	for i < len(b) && b[i] == ' ' {
		i++
	}
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + uint64(b[i]-'0')
		if v > 1<<32-1 {
			return 1<<32 - 1
		}
	}
	return uint32(v)
}

// ---- status, options, identity ----

func (s *Server) getStatus(c *conn, handle []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobByHandleLocked(handle)
	if j == nil {
		c.send(protocol.StatusRes, handle, zero, zero, zero, zero)
		return
	}
	c.send(protocol.StatusRes, handle, one, bit(j.state == jobRunning),
		strconv.AppendUint(nil, uint64(j.num), 10), strconv.AppendUint(nil, uint64(j.den), 10))
}

func (s *Server) getStatusUnique(c *conn, unique []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var j *job
	if len(unique) > 0 && len(unique) <= maxUniqueSize {
		for _, fn := range s.functions {
			if j = fn.uniques[string(unique)]; j != nil {
				break
			}
		}
	}
	if j == nil {
		c.send(protocol.StatusResUnique, unique, zero, zero, zero, zero, zero)
		return
	}
	c.send(protocol.StatusResUnique, unique, one, bit(j.state == jobRunning),
		strconv.AppendUint(nil, uint64(j.num), 10), strconv.AppendUint(nil, uint64(j.den), 10),
		strconv.AppendInt(nil, int64(len(j.clients)), 10))
}

var (
	zero = []byte("0")
	one  = []byte("1")
)

func bit(b bool) []byte {
	if b {
		return one
	}
	return zero
}

func (s *Server) optionReq(c *conn, name []byte) {
	if len(name) <= maxOptionSize && strings.EqualFold(string(name), "exceptions") {
		s.mu.Lock()
		c.exceptions = true
		s.mu.Unlock()
		c.send(protocol.OptionRes, name)
		return
	}
	c.sendError(protocol.CodeUnknownOption, "Server does not recognize given option")
}

func (s *Server) setClientID(c *conn, id []byte) {
	if len(id) > maxClientIDSize {
		id = id[:maxClientIDSize]
	}
	s.mu.Lock()
	c.clientID = string(id)
	s.mu.Unlock()
}

// functionLocked returns the named function, creating it on first use.
// functionBytesLocked is functionLocked for a name read off the wire;
// it allocates only to create the function.
func (s *Server) functionBytesLocked(name []byte) *function {
	if fn := s.functions[string(name)]; fn != nil {
		return fn
	}
	return s.functionLocked(string(name))
}

func (s *Server) functionLocked(name string) *function {
	fn := s.functions[name]
	if fn == nil {
		fn = newFunction(name)
		s.functions[name] = fn
	}
	return fn
}

// ---- connection loss ----

// cleanup releases everything a closed connection held: its running
// jobs are requeued (or dropped past the retry limit), its waits on
// jobs end, and its registrations go.
func (c *conn) cleanup() {
	s := c.srv
	if c.lent != nil { // the reader is done with it
		putPayload(c.lent)
		c.lent = nil
	}
	c.releaseAbandoned()
	c.closeIfOpen(io.EOF)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.gone {
		return
	}
	c.gone = true
	delete(s.conns, c)
	c.outMu.Lock()
	reason := c.closeErr
	c.outMu.Unlock()
	c.log.Debug("disconnected", "reason", reason)
	// Registrations go first, so the wake-ups for requeued jobs reach
	// live workers rather than this one.
	for len(c.regs) > 0 {
		s.unregisterLocked(c, c.regs[len(c.regs)-1].fn)
	}
	for _, j := range slices.Backward(slices.Clone(c.assigned)) {
		s.requeueLocked(j)
	}
	for j := range c.attached {
		s.detachLocked(j, c)
	}
}

// detachLocked removes client c from j. A foreground job nobody waits
// for any more is dropped if it has not started; a running one is left
// to finish, its results discarded.
func (s *Server) detachLocked(j *job, c *conn) {
	j.clients = slices.DeleteFunc(j.clients, func(o *conn) bool { return o == c })
	delete(c.attached, j)
	if len(j.clients) > 0 || j.background {
		return
	}
	if j.state != jobRunning {
		s.removeLocked(j)
	}
}
