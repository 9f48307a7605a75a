package flow

import (
	"strings"
	"testing"

	"github.com/gearflow/gearflow/flow/spec"
)

// TestSizeWarnings: thousands of tiny tasks and tasks over a gigabyte
// (a split, or a compressed file read whole) are warned of; a few small
// tasks, tasks of a sensible size and tasks of unknown size are not.
func TestSizeWarnings(t *testing.T) {
	t.Parallel()
	st := &spec.Stage{Name: "s", Input: spec.Input{Split: spec.Split{By: spec.SplitLines, N: 4}}}
	many := func(n int, c chunk) []chunk {
		out := make([]chunk, n)
		for i := range out {
			out[i] = c
		}
		return out
	}
	split := func(n int64) chunk {
		return chunk{Lines: 4, Split: &splitRef{objectRef: objectRef{Key: "in.txt"}, Len: n, Size: n}}
	}
	tests := []struct {
		name   string
		chunks []chunk
		n      int      // warnings
		want   []string // what they say
	}{
		{"tiny", many(2000, split(100)), 1, []string{"stage s: 2000 tasks of 100 B each", "split: { lines: 41000 } (one task)"}},
		{"tiny inline", many(1500, chunk{File: "in.txt", Lines: 4, Length: 100}), 1, []string{"1500 tasks of 100 B"}},
		{"tiny of a big input", many(200000, split(1000)), 1, []string{"split: { lines: 12000 } (about 64 tasks)"}},
		{"few small", many(10, split(100)), 0, nil},
		{"sensible", many(2000, split(8<<20)), 0, nil},
		{"unknown sizes", many(5000, chunk{Stage: "up", Count: 1}), 0, nil},
		{"huge split", append(many(3, split(1<<20)), split(3<<30)), 1, []string{"1 of its 4 tasks read more than 1.0 GiB (task 3: 3.0 GiB"}},
		{"huge gz", []chunk{{Split: &splitRef{objectRef: objectRef{Key: "big.gz"}, Len: -1, Size: 1 << 30}}}, 1,
			[]string{"1 of its 1 tasks read more than 1.0 GiB (task 0: 4.0 GiB"}},
	}
	for _, tt := range tests {
		got := sizeWarnings(st, tt.chunks)
		all := strings.Join(got, "\n")
		if len(got) != tt.n {
			t.Errorf("%s: warnings %q, want %d", tt.name, got, tt.n)
		}
		for _, w := range tt.want {
			if !strings.Contains(all, w) {
				t.Errorf("%s: warnings %q lack %q", tt.name, got, w)
			}
		}
	}
}
