package storage

import (
	"fmt"
	"path"
	"strings"
)

// maxAlternatives bounds the patterns one glob's braces expand to, so a
// pattern such as "{a,b}{a,b}{a,b}..." cannot exhaust memory.
const maxAlternatives = 1024

// maxPatternLen bounds a pattern's length.
const maxPatternLen = 4096

// glob is a compiled List pattern: the alternatives its braces expand to,
// each cut into elements.
type glob struct {
	alts [][]string
}

// compileGlob parses pattern (see the package comment for the syntax).
func compileGlob(pattern string) (*glob, error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: %q: %s", ErrBadPattern, pattern, why)
	}
	if pattern == "" {
		return nil, bad("empty")
	}
	if len(pattern) > maxPatternLen {
		return nil, bad(fmt.Sprintf("longer than %d bytes", maxPatternLen))
	}
	alts, err := expandBraces(pattern)
	if err != nil {
		return nil, bad(err.Error())
	}
	g := &glob{}
	for _, alt := range alts {
		elems := strings.Split(alt, "/")
		for _, e := range elems {
			switch e {
			case "":
				return nil, bad("empty element (leading, trailing or double '/')")
			case ".", "..":
				return nil, bad("'.' or '..' element")
			}
			if e == "**" {
				continue
			}
			// path.Match checks the whole pattern's syntax even when
			// the name does not match.
			if _, err := path.Match(e, ""); err != nil {
				return nil, bad(fmt.Sprintf("element %q: unterminated '[' or trailing '\\'", e))
			}
		}
		// A trailing "**" stands for at least one element: "a/**" is
		// every key under "a/", not "a" itself, so every match keeps
		// the pattern's literal prefix "a/" (what an S3 listing asks
		// for). "**" then "*" is that, with the same hidden-name rule.
		if elems[len(elems)-1] == "**" {
			elems = append(elems, "*")
		}
		g.alts = append(g.alts, elems)
	}
	return g, nil
}

// expandBraces returns the patterns that pattern's {a,b} groups expand
// to, in order. A '\' escapes the next character and braces inside a
// [class] are literal.
func expandBraces(pattern string) ([]string, error) {
	open := -1 // index of the first top-level '{'
	depth := 0
	var commas []int
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '\\':
			i++
		case '[':
			// skip the class: ']' right after '[' or '[^' is literal
			j := i + 1
			if j < len(pattern) && pattern[j] == '^' {
				j++
			}
			if j < len(pattern) && pattern[j] == ']' {
				j++
			}
			for j < len(pattern) && pattern[j] != ']' {
				if pattern[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(pattern) {
				return nil, fmt.Errorf("unterminated '['")
			}
			i = j
		case '{':
			if depth == 0 {
				open = i
				commas = commas[:0]
			}
			depth++
		case ',':
			if depth == 1 {
				commas = append(commas, i)
			}
		case '}':
			if depth == 0 {
				return nil, fmt.Errorf("'}' without '{'")
			}
			depth--
			if depth > 0 {
				continue
			}
			head, tail := pattern[:open], pattern[i+1:]
			tails, err := expandBraces(tail)
			if err != nil {
				return nil, err
			}
			bounds := append(append([]int{open}, commas...), i)
			var out []string
			for k := 0; k+1 < len(bounds); k++ {
				choices, err := expandBraces(pattern[bounds[k]+1 : bounds[k+1]])
				if err != nil {
					return nil, err
				}
				for _, c := range choices {
					for _, t := range tails {
						if len(out) == maxAlternatives {
							return nil, fmt.Errorf("braces expand to more than %d patterns", maxAlternatives)
						}
						out = append(out, head+c+t)
					}
				}
			}
			return out, nil
		}
	}
	if depth > 0 {
		return nil, fmt.Errorf("unterminated '{'")
	}
	return []string{pattern}, nil
}

// match reports whether key matches the pattern.
func (g *glob) match(key string) bool {
	names := strings.Split(key, "/")
	for _, elems := range g.alts {
		if matchElems(elems, names, false) {
			return true
		}
	}
	return false
}

// mayContain reports whether some key under dir + "/" could match, so a
// listing must look inside dir.
func (g *glob) mayContain(dir string) bool {
	names := strings.Split(dir, "/")
	for _, elems := range g.alts {
		if matchElems(elems, names, true) {
			return true
		}
	}
	return false
}

// matchElems matches pattern elements against names. With prefix, it
// reports whether names can be the leading elements of a matching key
// that has more elements after them.
//
// It runs the pattern as an automaton over the names: states[i] says that
// the names so far can be matched by elems[:i]. A "**" element matches
// zero or more names, so it keeps its state alive and also passes it on.
func matchElems(elems, names []string, prefix bool) bool {
	states := make([]bool, len(elems)+1)
	next := make([]bool, len(elems)+1)
	states[0] = true
	closeStars(elems, states)
	for _, name := range names {
		clear(next)
		any := false
		for i, on := range states[:len(elems)] {
			if !on {
				continue
			}
			e := elems[i]
			if e == "**" {
				if !hidden(name) {
					next[i] = true // ** takes this name and may take more
					any = true
				}
				continue
			}
			if matchName(e, name) {
				next[i+1] = true
				any = true
			}
		}
		if !any {
			return false
		}
		closeStars(elems, next)
		states, next = next, states
	}
	if prefix {
		// more names follow: any state short of the end can take them
		for _, on := range states[:len(elems)] {
			if on {
				return true
			}
		}
		return false
	}
	return states[len(elems)]
}

// closeStars adds, for each live state at a "**", the state after it
// (the "**" matching no name).
func closeStars(elems []string, states []bool) {
	for i, e := range elems {
		if states[i] && e == "**" {
			states[i+1] = true
		}
	}
}

// matchName matches one pattern element against one name: hidden names
// only match an element that starts with a literal '.'.
func matchName(elem, name string) bool {
	if hidden(name) && elem[0] != '.' {
		return false
	}
	ok, _ := path.Match(elem, name)
	return ok
}

func hidden(name string) bool { return strings.HasPrefix(name, ".") }

// literalPrefix is the part of pattern before its first glob character:
// every key the pattern matches starts with it.
func literalPrefix(pattern string) string {
	if i := strings.IndexAny(pattern, metaChars); i >= 0 {
		return pattern[:i]
	}
	return pattern
}

// literalDir is the longest folder of literalPrefix(pattern) ("" for
// none): every key the pattern matches lies under it.
func literalDir(pattern string) string {
	p := literalPrefix(pattern)
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}
