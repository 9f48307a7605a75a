package server

import (
	"strconv"
	"time"
)

// priority is a job's queue: the three lists of every function.
type priority uint8

const (
	priHigh priority = iota
	priNormal
	priLow
	numPriorities
)

func (p priority) String() string {
	switch p {
	case priHigh:
		return "high"
	case priNormal:
		return "normal"
	case priLow:
		return "low"
	}
	return "priority(" + strconv.Itoa(int(p)) + ")"
}

// jobState says where a job is. Transitions: delayed -> queued (its time
// came); queued -> running (a worker grabbed it); running -> queued (its
// worker was lost, within the retry limit); any -> gone (removed).
type jobState uint8

const (
	jobQueued  jobState = iota // in its function's priority list
	jobDelayed                 // waiting for its time in the server's timer heap
	jobRunning                 // assigned to a worker
	jobGone                    // removed from every index
	// jobPending: a background job of a durable server whose record is
	// not yet synced; it is queued (or delayed) once it is, and no
	// worker sees it before its JOB_CREATED goes out.
	jobPending
)

func (s jobState) String() string {
	switch s {
	case jobQueued:
		return "queued"
	case jobDelayed:
		return "delayed"
	case jobRunning:
		return "running"
	case jobGone:
		return "gone"
	case jobPending:
		return "pending"
	}
	return "jobState(" + strconv.Itoa(int(s)) + ")"
}

// job is one Gearman job. All fields are guarded by Server.mu. Fields
// are ordered and sized to keep a queued job small: its handle is not
// stored but formatted from id (Server.appendHandle).
type job struct {
	id     uint64 // the handle's counter; key in Server.jobs
	fn     *function
	unique string
	data   []byte
	pbuf   *payloadBuf // the pooled buffer data is in, or nil
	extra  *jobExtra   // what few jobs have; nil for most
	seq    uint64      // queueing order, for FIFO across functions
	// when is, for a delayed job, the unix nanoseconds when it becomes
	// runnable; for a queued or running one, when it was queued or
	// assigned, in nowNanos (for the wait and run times of metrics.go;
	// far in the past as a unix time, should a record keep it).
	when int64

	// prev and next link the job into its function's priority list
	// while queued, and into its worker's registration list while running.
	prev, next *job

	clients []*conn       // attached foreground clients
	worker  *registration // the registration running the job, while running

	num        uint32 // last WORK_STATUS numerator
	den        uint32 // last WORK_STATUS denominator
	heapIdx    int32  // index in the delayed heap, -1 when not there
	retries    uint16
	pri        priority
	state      jobState
	background bool // survives the loss of every attached client
	cancelled  bool // admin "cancel job" on a running job: results are dropped
	stored     bool // in the durable queue (Config.DataDir): deleted there when it ends
}

// jobExtra holds the fields only some jobs use, so that the common job
// (queued by the million) stays in a smaller allocation size class.
type jobExtra struct {
	reducer  string      // SUBMIT_REDUCE_JOB*: the reducer function
	schedule *schedule   // SUBMIT_JOB_SCHED: requeued after each run
	timer    *time.Timer // CAN_DO_TIMEOUT, while the job runs
}

// more returns j's extra fields, allocating them on first use.
func (j *job) more() *jobExtra {
	if j.extra == nil {
		j.extra = &jobExtra{}
	}
	return j.extra
}

// reducer is the reducer function of a reduce job, "" for others.
func (j *job) reducer() string {
	if j.extra == nil {
		return ""
	}
	return j.extra.reducer
}

// sched is a scheduled job's schedule, nil for others.
func (j *job) sched() *schedule {
	if j.extra == nil {
		return nil
	}
	return j.extra.schedule
}

// jobList is an intrusive FIFO of jobs with O(1) removal.
type jobList struct {
	head, tail *job
	n          int
}

func (l *jobList) pushBack(j *job) {
	j.prev, j.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = j
	} else {
		l.head = j
	}
	l.tail = j
	l.n++
}

func (l *jobList) remove(j *job) {
	if j.prev != nil {
		j.prev.next = j.next
	} else {
		l.head = j.next
	}
	if j.next != nil {
		j.next.prev = j.prev
	} else {
		l.tail = j.prev
	}
	j.prev, j.next = nil, nil
	l.n--
}

// function is one Gearman function: its queues, counters and the
// connections that registered it. Guarded by Server.mu.
type function struct {
	name     string
	nameB    []byte // name, for packets
	queues   [numPriorities]jobList
	delayed  int // jobs waiting for their time
	total    int // all jobs of the function: queued, delayed, running
	running  int
	maxQueue [numPriorities]int // admin "maxqueue" limits; 0 = none

	workers []*registration // in registration order; registration.idx is the position
	cursor  int             // rotating start for wake-ups
	runIdx  int             // position in coreIndex.runnable, -1 when not runnable

	// wakeTimer checks, while jobs wait, that the workers woken for
	// them came (see recheckWake); wakeArmed says it is pending, wakeSeq
	// is the last queueing sequence number when it was armed, and
	// wakeRound counts the checks that woke more since a worker last
	// took a job.
	wakeTimer *time.Timer
	wakeSeq   uint64
	wakeArmed bool
	wakeRound uint8

	uniques map[string]*job   // coalescing index by unique; nil until used
	byData  map[uint64][]*job // unique "-": coalescing by payload hash

	counts fnCounts // jobs submitted, ended, requeued (metrics.go)
}

func newFunction(name string) *function {
	return &function{name: name, nameB: []byte(name), runIdx: -1}
}

// queued returns the number of jobs waiting to run, per priority,
// counting delayed jobs as NORMAL as gearmand does.
func (f *function) queued(p priority) int {
	n := f.queues[p].n
	if p == priNormal {
		n += f.delayed
	}
	return n
}

func (f *function) runnable() bool {
	return f.queues[priHigh].n+f.queues[priNormal].n+f.queues[priLow].n > 0
}

// queuedJobs is the number of jobs waiting in f's priority lists.
func (f *function) queuedJobs() int {
	return f.queues[priHigh].n + f.queues[priNormal].n + f.queues[priLow].n
}

// coreIndex holds the server-wide indexes of the job core, so that no
// request walks every function, registration or job. Guarded by
// Server.mu; its maps are made on first use.
type coreIndex struct {
	// regs finds a connection's registration of a function.
	regs map[regKey]*registration
	// runnable lists the functions with queued jobs, so a grab by a
	// worker with many registrations looks only at those with work.
	runnable []*function
	// uniques finds a job by unique alone, across functions, for
	// GET_STATUS_UNIQUE (coalescing uses function.uniques).
	uniques map[string]uniqueEntry
}

type regKey struct {
	c  *conn
	fn *function
}

// uniqueEntry is the jobs of one unique: usually one, of one function;
// more holds the others when several functions have a job with it.
type uniqueEntry struct {
	first *job
	more  map[*function]*job
}

// markRunnable notes that fn has queued jobs (it may have had some).
func (x *coreIndex) markRunnable(fn *function) {
	if fn.runIdx < 0 {
		fn.runIdx = len(x.runnable)
		x.runnable = append(x.runnable, fn)
	}
}

// unmarkRunnable drops fn from the runnable list once its queues are
// empty.
func (x *coreIndex) unmarkRunnable(fn *function) {
	if fn.runIdx < 0 || fn.runnable() {
		return
	}
	last := len(x.runnable) - 1
	moved := x.runnable[last]
	x.runnable[fn.runIdx] = moved
	moved.runIdx = fn.runIdx
	x.runnable[last] = nil
	x.runnable = x.runnable[:last]
	fn.runIdx = -1
}

// addUnique files j, which has a plain unique (not "" or "-").
func (x *coreIndex) addUnique(j *job) {
	if x.uniques == nil {
		x.uniques = make(map[string]uniqueEntry)
	}
	e, ok := x.uniques[j.unique]
	switch {
	case !ok:
		x.uniques[j.unique] = uniqueEntry{first: j}
		return
	case e.more == nil:
		e.more = make(map[*function]*job)
	}
	e.more[j.fn] = j
	x.uniques[j.unique] = e
}

// removeUnique unfiles j.
func (x *coreIndex) removeUnique(j *job) {
	e, ok := x.uniques[j.unique]
	if !ok {
		return
	}
	if e.first != j {
		if e.more[j.fn] == j {
			delete(e.more, j.fn)
		}
		return
	}
	for fn, o := range e.more { // any of the others takes the lead
		delete(e.more, fn)
		more := e.more
		if len(more) == 0 {
			more = nil
		}
		x.uniques[j.unique] = uniqueEntry{first: o, more: more}
		return
	}
	delete(x.uniques, j.unique)
}

// byUnique returns a job with the given unique, of any function.
func (x *coreIndex) byUnique(unique []byte) *job {
	return x.uniques[string(unique)].first
}
