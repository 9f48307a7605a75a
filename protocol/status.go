package protocol

import "math"

// ParseCount reads a WORK_STATUS or STATUS_RES numerator or denominator
// as gearmand and libgearman read its digits (atoi): leading spaces are
// skipped, then decimal digits are read up to the first byte that is
// not one. So "33.333" is 33, "12abc" is 12, and "", "abc", "+5" and
// "-1" are 0 (C would read the sign; no peer sends one). A number too
// large for a uint64 is math.MaxUint64.
//
// The protocol sends these numbers as text and does not say they are
// integers: some workers send fractions ("33.33333333333333"), and a
// strict parse would read those as 0 where every C peer reads 33.
func ParseCount(b []byte) uint64 {
	i := 0
	for i < len(b) && b[i] == ' ' {
		i++
	}
	var v uint64
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := uint64(b[i] - '0')
		if v > (math.MaxUint64-d)/10 {
			return math.MaxUint64
		}
		v = v*10 + d
	}
	return v
}
