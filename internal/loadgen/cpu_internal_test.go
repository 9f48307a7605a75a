package loadgen

import (
	"fmt"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, stat string
		want       time.Duration
		ok         bool
	}{
		{"plain", "4242 (gearmand) S 1 4242 4242 0 -1 4194560 900 0 0 0 153 47 0 0 20 0 6 0 1 0", 200 * clockTick, true},
		{"name with spaces and parens", "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0", 11 * clockTick, true},
		{"no name", "7 a R 1", 0, false},
		{"too short", "7 (x) R 1 2 3", 0, false},
		{"not a number", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 5x 6 0 0", 0, false},
		{"negative", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 -5 6 0 0", 0, false},
		{"largest", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 922337203685 0 0 0", 922337203685 * clockTick, true},
		{"past time.Duration", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 922337203686 0 0 0", 0, false},
		{"sum past time.Duration", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 922337203685 1 0 0", 0, false},
		{"sum past int64", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 9223372036854775807 9223372036854775807 0 0", 0, false},
	}
	for _, tt := range tests {
		got, err := parseProcStat([]byte(tt.stat))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%s: parseProcStat = %v, %v; want %v (ok %v)", tt.name, got, err, tt.want, tt.ok)
		}
	}
}

// FuzzParseProcStat checks that any command name, however odd, leaves
// the CPU times readable, and that no input makes the parser panic.
func FuzzParseProcStat(f *testing.F) {
	f.Add("gearmand", uint32(153), uint32(47), []byte("4242 (x) S 1"))
	f.Add("a) (b", uint32(0), uint32(1), []byte(")"))
	f.Fuzz(func(t *testing.T, comm string, utime, stime uint32, raw []byte) {
		if d, err := parseProcStat(raw); err == nil && d < 0 {
			t.Fatalf("parseProcStat(%q) = %v", raw, d)
		}
		stat := fmt.Sprintf("99 (%s) S 1 99 99 0 -1 4194560 900 0 0 0 %d %d 0 0 20 0 1 0 5 0", comm, utime, stime)
		got, err := parseProcStat([]byte(stat))
		if want := time.Duration(uint64(utime)+uint64(stime)) * clockTick; err != nil || got != want {
			t.Fatalf("parseProcStat(%q) = %v, %v; want %v", stat, got, err, want)
		}
	})
}
