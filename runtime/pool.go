package runtime

import (
	"context"
	"hash/fnv"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearflow/gearflow/internal/retry"
)

// This file holds the whole reconnect policy: the backoff schedule, the
// client's lazily dialled server slots, the worker's redial loop, and how
// a request picks its servers (consistent hashing for uniques, round
// robin for the rest).

// Backoff defaults shared by ClientConfig and WorkerConfig.
const (
	defaultBackoffMin   = 50 * time.Millisecond
	defaultBackoffMax   = 5 * time.Second
	defaultDialTimeout  = 5 * time.Second
	defaultWriteTimeout = 10 * time.Second
)

// backoff is an exponential schedule with jitter: attempt n (from 1)
// waits a random duration in [d/2, d], d = min(max, min<<(n-1)).
type backoff struct {
	min, max time.Duration
}

func (b backoff) delay(attempt int) time.Duration {
	return retry.Policy{Initial: b.min, Max: b.max, Jitter: 0.5}.Delay(attempt)
}

// sleep waits for attempt's delay or until ctx or stop is done. It reports
// whether the full delay passed.
func (b backoff) sleep(ctx context.Context, attempt int) bool {
	t := time.NewTimer(b.delay(attempt))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// slot is the client's link to one server: at most one live connection,
// dialled lazily by the first request that needs it, and a backoff after
// failed dials during which requests skip the server.
type slot struct {
	addr string // immutable
	c    *Client

	mu       sync.Mutex    // guards the fields below
	conn     *clientConn   // nil or live
	dialing  chan struct{} // non-nil while a dial runs; closed when it ends
	failures int           // consecutive failed dials
	retryAt  time.Time     // no dial before this time
	lastErr  error         // the last dial error
}

// get returns a live connection, dialling one if needed. It fails fast,
// without dialling, while the server is in its backoff window.
func (s *slot) get(ctx context.Context) (*clientConn, error) {
	for {
		s.mu.Lock()
		if s.conn != nil && !s.conn.isClosed() {
			cc := s.conn
			s.mu.Unlock()
			return cc, nil
		}
		s.conn = nil
		if wait := s.dialing; wait != nil {
			s.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if now := time.Now(); now.Before(s.retryAt) {
			err := s.lastErr
			s.mu.Unlock()
			return nil, errorf(ErrConnectionLost, "%s: reconnecting (last error: %v)", s.addr, err)
		}
		done := make(chan struct{})
		s.dialing = done
		s.mu.Unlock()

		// The dial serves every request waiting on it, so it is bounded by
		// DialTimeout and the client's life, not by this caller's ctx.
		cc, err := s.c.connect(s.addr)

		s.mu.Lock()
		s.dialing = nil
		close(done)
		if err != nil {
			s.failures++
			s.lastErr = err
			s.retryAt = time.Now().Add(s.c.backoff.delay(s.failures))
			s.mu.Unlock()
			return nil, errorf(ErrConnectionLost, "%s: %v", s.addr, err)
		}
		s.failures = 0
		s.lastErr = nil
		s.conn = cc
		s.mu.Unlock()
		return cc, nil
	}
}

// current returns the live connection without dialling, or nil.
func (s *slot) current() *clientConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// redial runs serve on a fresh connection to addr again and again until
// ctx is done, waiting out an exponential backoff with jitter after each
// failed dial or lost connection. connect dials; serve runs one session
// and reports whether it got as far as being useful (which resets the
// backoff).
func redial(ctx context.Context, b backoff, connect func(context.Context) (*conn, error),
	serve func(*conn) bool, onDialError func(error, int)) {
	attempt := 0
	for ctx.Err() == nil {
		c, err := connect(ctx)
		if err != nil {
			attempt++
			if ctx.Err() == nil {
				onDialError(err, attempt)
			}
			b.sleep(ctx, attempt)
			continue
		}
		if serve(c) {
			attempt = 0
		}
		if ctx.Err() != nil {
			return
		}
		attempt++
		b.sleep(ctx, attempt)
	}
}

// ring is a consistent-hash ring with virtual nodes over server indexes.
// It depends only on the server address strings, so every client given
// the same list sends a unique to the same server.
type ring struct {
	points []ringPoint // sorted by hash
	n      int         // number of servers
}

type ringPoint struct {
	hash   uint64
	server int
}

// ringVirtualNodes per server keeps the share of each server within a
// few percent of even.
const ringVirtualNodes = 160

func newRing(servers []string) *ring {
	r := &ring{n: len(servers)}
	for i, s := range servers {
		for v := 0; v < ringVirtualNodes; v++ {
			r.points = append(r.points, ringPoint{hash: hashKey([]byte(s + "#" + strconv.Itoa(v))), server: i})
		}
	}
	slices.SortFunc(r.points, func(a, b ringPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return a.server - b.server
	})
	return r
}

// order returns every server index, the one owning key first, then the
// others in ring order: the failover sequence for key.
func (r *ring) order(key []byte) []int {
	out := make([]int, 0, r.n)
	if r.n == 0 {
		return out
	}
	h := hashKey(key)
	i, _ := slices.BinarySearchFunc(r.points, h, func(p ringPoint, h uint64) int {
		switch {
		case p.hash < h:
			return -1
		case p.hash > h:
			return 1
		}
		return 0
	})
	seen := make([]bool, r.n)
	for k := 0; k < len(r.points) && len(out) < r.n; k++ {
		p := r.points[(i+k)%len(r.points)]
		if !seen[p.server] {
			seen[p.server] = true
			out = append(out, p.server)
		}
	}
	return out
}

// hashKey is FNV-1a with a splitmix64 finaliser: FNV alone spreads short,
// similar keys poorly over the ring.
func hashKey(b []byte) uint64 {
	f := fnv.New64a()
	_, _ = f.Write(b)
	x := f.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// picker chooses the servers a request tries, in order.
type picker struct {
	ring *ring
	next atomic.Uint64 // round-robin cursor
}

// forJob returns the failover order for a job: by its unique (by payload
// for "-") on the ring, else round robin.
func (p *picker) forJob(j *Job) []int {
	switch j.Unique {
	case "":
		return p.roundRobin()
	case "-":
		return p.ring.order(append([]byte(j.Function+"\x00"), j.Payload...))
	}
	// By the unique alone, not (function, unique): StatusUnique must find
	// the job knowing only its unique.
	return p.ring.order([]byte(j.Unique))
}

// roundRobin returns every server index, starting at the next one in turn.
func (p *picker) roundRobin() []int {
	n := p.ring.n
	out := make([]int, n)
	start := int(p.next.Add(1) % uint64(n))
	for i := range out {
		out[i] = (start + i) % n
	}
	return out
}
