package loadgen

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// client is one client connection keeping cfg.InFlight jobs submitted.
// All its fields are owned by the goroutine running loop; the run reads
// the counts after loop returns.
type client struct {
	r      *run
	conn   net.Conn
	rd     *protocol.Reader
	out    []byte   // submissions not yet written
	unique [20]byte // scratch for a job's unique id (Config.UniqueKeys)

	// created holds the submit times of jobs awaiting JOB_CREATED, oldest
	// first: servers answer submissions in order.
	created ring
	// running maps a foreground job's handle to its submit time.
	running map[string]time.Time

	inflight  int   // submitted, not yet finished
	completed int64 // finished without error
	errors    int64
	lost      bool // the connection failed with jobs in flight
	hist      Histogram
}

func (r *run) newClient(c net.Conn) *client {
	return &client{
		r:       r,
		conn:    c,
		rd:      protocol.NewReader(c, protocol.ReaderConfig{}),
		created: newRing(r.cfg.InFlight),
		running: make(map[string]time.Time, r.cfg.InFlight),
	}
}

// submit queues one submission, if the run's budget allows it.
func (c *client) submit(now time.Time) bool {
	if !c.r.take(now) {
		return false
	}
	if c.r.cfg.UniqueKeys {
		id := strconv.AppendInt(c.unique[:0], c.r.uniques.Add(1), 10)
		c.out = protocol.AppendPacket(c.out, protocol.Req, c.r.submitType, []byte(c.r.cfg.Function), id, c.r.payload)
	} else {
		c.out = append(c.out, c.r.submitPkt...)
	}
	c.created.push(now)
	c.inflight++
	return true
}

// finish ends one job: its latency is recorded and, budget allowing, the
// next job is queued in its place.
func (c *client) finish(now, submitted time.Time, ok bool) {
	c.hist.Record(now.Sub(submitted))
	if ok {
		c.completed++
	} else {
		c.errors++
	}
	c.inflight--
	c.submit(now)
}

// loop submits the client's first jobs, then reads replies until it has
// nothing in flight and nothing left to submit. Replies read in one
// batch are answered with one write.
func (c *client) loop() error {
	now := time.Now()
	for range c.r.cfg.InFlight {
		if !c.submit(now) {
			break
		}
	}
	bg := c.r.cfg.Mode == ModeBackground
	for c.inflight > 0 {
		if len(c.out) > 0 && (c.rd.Buffered() == 0 || len(c.out) >= 64<<10) {
			if _, err := c.conn.Write(c.out); err != nil {
				return c.broken(err)
			}
			c.out = c.out[:0]
		}
		p, err := c.rd.ReadPacket()
		if err != nil {
			return c.broken(err)
		}
		now := time.Now()
		switch p.Type {
		case protocol.JobCreated:
			t, ok := c.created.pop()
			if !ok {
				return c.broken(fmt.Errorf("JOB_CREATED %q with no submission pending", p.Arg(0)))
			}
			if bg {
				c.finish(now, t, true)
				continue
			}
			c.running[string(p.Arg(0))] = t
		case protocol.Error:
			// An ERROR answers the oldest submission.
			t, ok := c.created.pop()
			if !ok {
				return c.broken(protocol.ParseError(p))
			}
			c.r.cfg.Logger.Debug("submit refused", "err", protocol.ParseError(p))
			c.finish(now, t, false)
		case protocol.WorkComplete, protocol.WorkFail, protocol.WorkException:
			h := p.Arg(0)
			t, ok := c.running[string(h)]
			if !ok {
				return c.broken(fmt.Errorf("%s for unknown handle %q", p.Type, h))
			}
			delete(c.running, string(h))
			good := p.Type == protocol.WorkComplete && bytes.Equal(p.Arg(1), c.r.payload)
			c.finish(now, t, good)
		case protocol.WorkData, protocol.WorkWarning, protocol.WorkStatus, protocol.Noop:
			// Not sent by an echo worker; harmless.
		default:
			return c.broken(fmt.Errorf("unexpected %s packet", p.Type))
		}
	}
	return nil
}

// broken wraps a failure of the client's connection.
func (c *client) broken(err error) error {
	if c.r.isClosing() {
		return nil
	}
	c.lost = true
	return fmt.Errorf("loadgen: client connection to %s: %w", c.r.cfg.Addr, err)
}

// ring is a fixed-capacity FIFO of times.
type ring struct {
	buf        []time.Time
	head, size int
}

func newRing(n int) ring { return ring{buf: make([]time.Time, n)} }

func (q *ring) push(t time.Time) {
	q.buf[(q.head+q.size)%len(q.buf)] = t
	q.size++
}

func (q *ring) pop() (time.Time, bool) {
	if q.size == 0 {
		return time.Time{}, false
	}
	t := q.buf[q.head]
	q.head = (q.head + 1) % len(q.buf)
	q.size--
	return t, true
}
