package protocol

import (
	"math"
	"testing"
)

func TestParseCount(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
	}{
		{"", 0},
		{"0", 0},
		{"100", 100},
		{"33.33333333333333", 33},
		{"66.66666666666667", 66},
		{"  7", 7},
		{"12abc", 12},
		{"abc", 0},
		{"-5", 0},
		{"18446744073709551615", math.MaxUint64},
		{"18446744073709551616", math.MaxUint64},
		{"99999999999999999999999", math.MaxUint64},
	} {
		if got := ParseCount([]byte(c.in)); got != c.want {
			t.Errorf("ParseCount(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}
