package retry_test

import (
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/retry"
)

func TestDelay(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		p        retry.Policy
		failures int
		min, max time.Duration
	}{
		{retry.Policy{Initial: 100 * ms, Max: time.Second}, 0, 0, 0},
		{retry.Policy{Initial: 100 * ms, Max: time.Second}, 1, 100 * ms, 100 * ms},
		{retry.Policy{Initial: 100 * ms, Max: time.Second}, 3, 400 * ms, 400 * ms},
		{retry.Policy{Initial: 100 * ms, Max: time.Second}, 5, time.Second, time.Second},
		{retry.Policy{Initial: 100 * ms, Max: time.Second}, 1000, time.Second, time.Second},
		{retry.Policy{Initial: 100 * ms, Max: time.Second, Fixed: true}, 4, 100 * ms, 100 * ms},
		{retry.Policy{Initial: 100 * ms}, 4, 100 * ms, 100 * ms}, // no Max: Initial
		{retry.Policy{Initial: 100 * ms, Max: time.Second, Jitter: 0.5}, 2, 100 * ms, 200 * ms},
		{retry.Policy{Initial: 100 * ms, Max: time.Second, Jitter: 0.5}, 9, 500 * ms, time.Second},
		{retry.Policy{Initial: 100 * ms, Max: time.Second, Jitter: 1}, 1, 0, 100 * ms},
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := tt.p.Delay(tt.failures)
			if d < tt.min || d > tt.max {
				t.Errorf("%+v.Delay(%d) = %v, want in [%v, %v]", tt.p, tt.failures, d, tt.min, tt.max)
			}
			seen[d] = true
		}
		if tt.p.Jitter > 0 && len(seen) < 10 {
			t.Errorf("%+v.Delay(%d): %d distinct waits in 200, want jitter", tt.p, tt.failures, len(seen))
		}
	}
}
