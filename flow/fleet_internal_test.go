package flow

import (
	"maps"
	"testing"
	"time"
)

// TestUnservedWatch: a function without worker is said at once, then
// again every period while it has none, with how long; one that got a
// worker is forgotten, so that losing it again is said at once.
func TestUnservedWatch(t *testing.T) {
	t.Parallel()
	w := unservedWatch{every: 30 * time.Second}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		at       time.Duration
		unserved []string
		want     map[string]time.Duration
	}{
		{0, []string{"a", "b"}, map[string]time.Duration{"a": 0, "b": 0}},
		{time.Second, []string{"a", "b"}, map[string]time.Duration{}},
		{29 * time.Second, []string{"a"}, map[string]time.Duration{}},
		{30 * time.Second, []string{"a"}, map[string]time.Duration{"a": 30 * time.Second}},
		{45 * time.Second, []string{"a", "b"}, map[string]time.Duration{"b": 0}},
		{61 * time.Second, []string{"a", "b"}, map[string]time.Duration{"a": 61 * time.Second}},
		{62 * time.Second, nil, map[string]time.Duration{}},
		{63 * time.Second, []string{"a"}, map[string]time.Duration{"a": 0}},
	}
	for _, s := range steps {
		if got := w.due(t0.Add(s.at), s.unserved); !maps.Equal(got, s.want) {
			t.Errorf("at %v with %v unserved: due %v, want %v", s.at, s.unserved, got, s.want)
		}
	}
}
