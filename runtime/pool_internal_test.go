package runtime

import (
	"context"
	"errors"
	"fmt"
	"go/build"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	b := backoff{min: 100 * time.Millisecond, max: 2 * time.Second}
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{0, 0, 0},
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 800 * time.Millisecond, 1600 * time.Millisecond},
		{6, time.Second, 2 * time.Second},
		{60, time.Second, 2 * time.Second},
	}
	for _, tt := range tests {
		for range 50 {
			if d := b.delay(tt.attempt); d < tt.min || d > tt.max {
				t.Errorf("delay(%d) = %v, want in [%v, %v]", tt.attempt, d, tt.min, tt.max)
			}
		}
	}
}

// TestRedialBackoff checks the worker's reconnect schedule in a bubble:
// dial failures back off exponentially, and a useful session resets it.
func TestRedialBackoff(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := backoff{min: 100 * time.Millisecond, max: time.Second}
		ctx, cancel := context.WithCancel(t.Context())
		var dials []time.Time
		start := time.Now()
		connect := func(context.Context) (*conn, error) {
			dials = append(dials, time.Now())
			if len(dials) == 6 {
				return &conn{}, nil
			}
			if len(dials) == 8 {
				cancel()
			}
			return nil, errors.New("refused")
		}
		served := 0
		serve := func(*conn) bool { served++; return true }
		var attempts []int
		redial(ctx, b, connect, serve, func(_ error, attempt int) { attempts = append(attempts, attempt) })
		if served != 1 {
			t.Errorf("served %d sessions, want 1", served)
		}
		// After the session the count restarts: one short wait, then a
		// failed dial is attempt 2.
		if got := fmt.Sprint(attempts); got != "[1 2 3 4 5 2]" {
			t.Errorf("attempts = %s, want [1 2 3 4 5 2] (reset after the session)", got)
		}
		// Gaps after failures 1..5 lie in [d/2, d] for d = 100ms doubling
		// to the 1s cap; after the session, one step; then two.
		caps := []time.Duration{100, 200, 400, 800, 1000, 100, 200}
		prev := start
		for i, at := range dials {
			if i > 0 {
				gap, ceiling := at.Sub(prev), caps[i-1]*time.Millisecond
				if gap < ceiling/2 || gap > ceiling {
					t.Errorf("gap before dial %d = %v, want in [%v, %v]", i+1, gap, ceiling/2, ceiling)
				}
			}
			prev = at
		}
	})
}

func TestRingOrder(t *testing.T) {
	t.Parallel()
	servers := []string{"a:4730", "b:4730", "c:4730"}
	r := newRing(servers)
	counts := make([]int, len(servers))
	for i := range 3000 {
		order := r.order([]byte(fmt.Sprintf("job-%d", i)))
		if len(order) != 3 || order[0] == order[1] || order[1] == order[2] || order[0] == order[2] {
			t.Fatalf("order = %v, want a permutation of 3 servers", order)
		}
		counts[order[0]]++
	}
	for i, n := range counts {
		if n < 700 || n > 1300 {
			t.Errorf("server %s owns %d of 3000 keys, want about 1000", servers[i], n)
		}
	}
	// The owner depends on the addresses, not their order in the list.
	r2 := newRing([]string{"c:4730", "a:4730", "b:4730"})
	for i := range 200 {
		key := []byte(fmt.Sprintf("k%d", i))
		if a, b := servers[r.order(key)[0]], []string{"c:4730", "a:4730", "b:4730"}[r2.order(key)[0]]; a != b {
			t.Fatalf("key %s: owner %s vs %s with the list reordered", key, a, b)
		}
	}
	// Removing a server moves only its own keys.
	r3 := newRing([]string{"a:4730", "b:4730"})
	for i := range 1000 {
		key := []byte(fmt.Sprintf("job-%d", i))
		if owner := servers[r.order(key)[0]]; owner != "c:4730" {
			if got := []string{"a:4730", "b:4730"}[r3.order(key)[0]]; got != owner {
				t.Fatalf("key %s moved from %s to %s when c left", key, owner, got)
			}
		}
	}
}

func TestRoundRobin(t *testing.T) {
	t.Parallel()
	p := picker{ring: newRing([]string{"a", "b", "c"})}
	firsts := map[int]int{}
	for range 30 {
		o := p.roundRobin()
		firsts[o[0]]++
		if len(o) != 3 || (o[0]+1)%3 != o[1] {
			t.Fatalf("roundRobin = %v", o)
		}
	}
	for s, n := range firsts {
		if n != 10 {
			t.Errorf("server %d first %d times of 30, want 10", s, n)
		}
	}
}

// TestImports keeps the layering of STYLE rule 1: runtime speaks to
// servers only over the wire. Besides protocol it may use
// internal/retry, the retry schedule it shares with flow, which imports
// nothing of the module.
func TestImports(t *testing.T) {
	t.Parallel()
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/gearflow/gearflow/") && imp != "github.com/gearflow/gearflow/protocol" &&
			imp != "github.com/gearflow/gearflow/internal/retry" {
			t.Errorf("runtime imports %s; it may import only protocol and internal/retry from this module", imp)
		}
	}
}

func TestJobValidate(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := []struct {
		name string
		job  Job
		ok   bool
	}{
		{"plain", Job{Function: "f"}, true},
		{"no function", Job{}, false},
		{"63-byte unique", Job{Function: "f", Unique: strings.Repeat("u", 63)}, true},
		{"64-byte unique", Job{Function: "f", Unique: strings.Repeat("u", 64)}, false},
		{"epoch background", Job{Function: "f", When: now, Background: true}, true},
		{"epoch foreground", Job{Function: "f", When: now}, false},
		{"epoch high", Job{Function: "f", When: now, Background: true, Priority: PriorityHigh}, false},
		{"reduce", Job{Function: "f", Reducer: "r"}, true},
		{"reduce and epoch", Job{Function: "f", Reducer: "r", When: now, Background: true}, false},
		{"NUL in function", Job{Function: "f\x00g"}, false},
		{"bad priority", Job{Function: "f", Priority: 7}, false},
	}
	for _, tt := range tests {
		err := tt.job.validate()
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidJob)) {
			t.Errorf("%s: validate = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestSubmitPacket(t *testing.T) {
	t.Parallel()
	when := time.Unix(1700000000, 0)
	tests := []struct {
		job  Job
		want string
	}{
		{Job{Function: "f", Payload: []byte("p")}, "SUBMIT_JOB [f  p]"},
		{Job{Function: "f", Priority: PriorityHigh}, "SUBMIT_JOB_HIGH [f  ]"},
		{Job{Function: "f", Priority: PriorityLow}, "SUBMIT_JOB_LOW [f  ]"},
		{Job{Function: "f", Background: true, Unique: "u"}, "SUBMIT_JOB_BG [f u ]"},
		{Job{Function: "f", Background: true, Priority: PriorityHigh}, "SUBMIT_JOB_HIGH_BG [f  ]"},
		{Job{Function: "f", Background: true, Priority: PriorityLow}, "SUBMIT_JOB_LOW_BG [f  ]"},
		{Job{Function: "f", Background: true, When: when}, "SUBMIT_JOB_EPOCH [f  1700000000 ]"},
		{Job{Function: "f", Reducer: "r", Payload: []byte("p")}, "SUBMIT_REDUCE_JOB [f  r  p]"},
		{Job{Function: "f", Reducer: "r", Background: true}, "SUBMIT_REDUCE_JOB_BACKGROUND [f  r  ]"},
	}
	for _, tt := range tests {
		p := tt.job.submitPacket()
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", tt.job, err)
		}
		if got := fmt.Sprintf("%v %s", p.Type, p.Args); got != tt.want {
			t.Errorf("submitPacket(%+v) = %s, want %s", tt.job, got, tt.want)
		}
	}
}

// TestSlotBackoff: after a failed dial a client skips the server until
// its backoff has passed, then dials again.
func TestSlotBackoff(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	synctest.Test(t, func(t *testing.T) {
		c, err := NewClient(ClientConfig{Servers: []string{addr}, ReconnectMin: time.Second, ReconnectMax: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s := c.slots[0]
		if _, err := s.get(t.Context()); !errors.Is(err, ErrConnectionLost) || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("first get = %v, want a refused dial", err)
		}
		time.Sleep(400 * time.Millisecond) // within [500ms, 1s]: still backing off
		if _, err := s.get(t.Context()); err == nil || !strings.Contains(err.Error(), "reconnecting") {
			t.Fatalf("get during backoff = %v, want it skipped", err)
		}
		if s.failures != 1 {
			t.Errorf("failures = %d, want 1 (no dial during backoff)", s.failures)
		}
		time.Sleep(time.Second)
		if _, err := s.get(t.Context()); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("get after backoff = %v, want a new dial", err)
		}
		if s.failures != 2 {
			t.Errorf("failures = %d, want 2", s.failures)
		}
	})
}
