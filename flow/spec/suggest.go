package spec

import (
	"path/filepath"
	"strconv"
	"strings"
)

// closest returns the candidate nearest to s by edit distance, or "" when
// none is near enough to be a likely typo.
func closest(s string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		// A longer or shorter spelling of a name ("mapper" for "map").
		ls, lc := strings.ToLower(s), strings.ToLower(c)
		if len(c) >= 3 && len(s) >= 3 && (strings.HasPrefix(ls, lc) || strings.HasPrefix(lc, ls)) {
			return c
		}
	}
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := 2
	if l := len(s) / 3; l > limit {
		limit = l
	}
	if bestDist < 0 || bestDist > limit || bestDist >= len(s) {
		return ""
	}
	return best
}

// suggest is the hint for an unknown field name.
func suggest(s string, allowed []string) string {
	if c := closest(s, allowed); c != "" {
		return "did you mean " + strconv.Quote(c) + "?"
	}
	return "allowed fields here: " + strings.Join(allowed, ", ")
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		// Not a typo of a field name; skip the quadratic work.
		return len(a) + len(b)
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// absPath resolves path against dir.
func absPath(dir, path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(dir, path)
}
