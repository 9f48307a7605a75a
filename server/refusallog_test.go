package server

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// lockedBuffer is a bytes.Buffer a logger and a test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) lines(substr string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.b.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// TestDurableRefusalsLogRateLimited: while the durable queue refuses
// background jobs, the log gets one line per interval, not one per
// refusal.
func TestDurableRefusalsLogRateLimited(t *testing.T) {
	var logs lockedBuffer
	srv, c := serveLoopback(t, Config{JobHandlePrefix: "H:l", DataDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	c.Submit(t, protocol.SubmitJobBg, "f", "", "stored")
	srv.store.f.Close() // every write fails from now on

	const n = 300
	start := time.Now()
	for range n {
		c.Req(protocol.SubmitJobBg, "f", "", "refused")
		c.ExpectErrorCode(t, protocol.CodeQueueError)
	}
	if time.Since(start) >= refusalLogEvery {
		t.Skipf("%d refusals took %v, longer than the log interval", n, time.Since(start))
	}
	lines := logs.lines("refusing background jobs")
	if len(lines) != 1 {
		t.Fatalf("%d refusals logged %d lines, want 1:\n%s", n, len(lines), strings.Join(lines[:min(len(lines), 5)], "\n"))
	}
	if !strings.Contains(lines[0], "refused=1") || !strings.Contains(lines[0], "level=ERROR") {
		t.Errorf("line %q: want an error counting 1 refusal", lines[0])
	}
}

// TestRefusalLogCounts: a line goes out at most once per interval and
// counts the refusals since the line before; a job stored after
// refusals reports the refusals not counted yet, at the same pace.
func TestRefusalLogCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r refusalLog
		type step struct {
			wait     time.Duration
			refusals int
			stored   bool
			want     []int // the counts of the lines logged
		}
		steps := []step{
			{refusals: 1000, want: []int{1}},
			{wait: refusalLogEvery / 2, refusals: 10},
			{stored: true}, // within the interval: nothing yet
			{wait: refusalLogEvery / 2, refusals: 5, want: []int{1010}}, // 999 + 10 + this one
			{wait: refusalLogEvery, stored: true, want: []int{4}},
			{stored: true}, // nothing left to report
			{wait: refusalLogEvery, refusals: 2, want: []int{1}},
		}
		for i, s := range steps {
			time.Sleep(s.wait)
			var got []int
			for range s.refusals {
				if log, n := r.refused(); log {
					got = append(got, n)
				}
			}
			if s.stored {
				if log, n := r.stored(); log {
					got = append(got, n)
				}
			}
			if !slices.Equal(got, s.want) {
				t.Errorf("step %d: lines counting %v, want %v", i, got, s.want)
			}
		}
	})
}
