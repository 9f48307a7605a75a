package storage

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, key string
		want         bool
	}{
		{"*", "a", true},
		{"*", "a/b", false},
		{"*", ".a", false},
		{".*", ".a", true},
		{"a/*", "a/.b", false},
		{"a/.b", "a/.b", true},
		{"?", ".", false},
		{"[.]x", ".x", false},
		{"**", "a/b/c", true},
		{"**", "a/.b/c", false},
		{"**/c", "c", true},
		{"**/c", "a/b/c", true},
		{"**/c", ".a/c", false},
		{"**/.a/c", "x/.a/c", true},
		{"a/**", "a/b", true},
		{"a/**", "a/b/c", true},
		{"a/**", "a", false},
		{"a/**/**", "a", false},
		{"{a/**,b}", "a", false},
		{"a/**/b", "a/b", true},
		{"a/**/b", "a/x/y/b", true},
		{"a/**/b", "a/x/y/c", false},
		{"**/**/b", "b", true},
		{"a**b", "axyb", true},
		{"a**b", "ax/yb", false},
		{"{a,b}", "b", true},
		{"{a,b}", "c", false},
		{"{a,{b,c}d}", "cd", true},
		{"x{,y}", "x", true},
		{"{a/b,c}/d", "a/b/d", true},
		{"[{]", "{", true},
		{`\{a\}`, "{a}", true},
		{`\*`, "*", true},
		{`\*`, "a", false},
		{"[a-c]*.log", "b1.log", true},
		{"[^a-c]*.log", "b1.log", false},
	}
	for _, tt := range tests {
		g, err := compileGlob(tt.pattern)
		if err != nil {
			t.Errorf("compileGlob(%q): %v", tt.pattern, err)
			continue
		}
		if got := g.match(tt.key); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.pattern, tt.key, got, tt.want)
		}
	}
}

func TestGlobMayContain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, dir string
		want         bool
	}{
		{"*", "a", false},
		{"a/*", "a", true},
		{"a/*", "b", false},
		{"**/x", "a", true},
		{"**/x", ".git", false},
		{"**/.git/x", ".git", true},
		{"a/b", "a", true},
		{"a/b", "a/b", false},
		{"a/**", "a/b", true},
		{"{a,b}/c", "b", true},
		{"{a,b}/c", "c", false},
	}
	for _, tt := range tests {
		g, err := compileGlob(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := g.mayContain(tt.dir); got != tt.want {
			t.Errorf("%q mayContain(%q) = %v, want %v", tt.pattern, tt.dir, got, tt.want)
		}
	}
}

func TestGlobBad(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "[", "a[b", `a\`, "{", "}", "{a,b", "a/", "/a", "a//b", "./a", "a/..", strings.Repeat("{a,b}", 11), strings.Repeat("a", maxPatternLen+1)} {
		if _, err := compileGlob(p); !errors.Is(err, ErrBadPattern) {
			t.Errorf("compileGlob(%q) = %v, want ErrBadPattern", p, err)
		}
	}
}

// referenceMatch is a slow, independent matcher: it tries every way of
// letting each "**" element stand for k "*" elements, and compares with
// path.Match, which knows no hidden names, so keys holding hidden names
// are left to the table tests.
func referenceMatch(pattern, key string) bool {
	names := strings.Split(key, "/")
	var try func(elems []string) bool
	try = func(elems []string) bool {
		for i, e := range elems {
			if e != "**" {
				continue
			}
			// a trailing "**" stands for one element or more
			k0 := 0
			if i == len(elems)-1 {
				k0 = 1
			}
			for k := k0; k <= len(names); k++ {
				repl := append(append(append([]string{}, elems[:i]...), repeat("*", k)...), elems[i+1:]...)
				if try(repl) {
					return true
				}
			}
			return false
		}
		if len(elems) != len(names) {
			return false
		}
		ok, _ := path.Match(strings.Join(elems, "/"), key)
		return ok
	}
	return try(strings.Split(pattern, "/"))
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// FuzzGlob checks, for any pattern and key: no panic; a key that matches
// starts with the pattern's literal prefix and lies under a folder the
// pattern may contain at every depth (what List relies on to prune); and,
// for patterns without braces and keys without hidden names, agreement
// with referenceMatch.
func FuzzGlob(f *testing.F) {
	seeds := [][2]string{
		{"*.txt", "a.txt"}, {"**/c", "a/b/c"}, {"a/**", "a/b/c"}, {"{a,b}/*", "b/x"},
		{"[a-c]?/**/z", "b1/q/z"}, {`\*x`, "*x"}, {".*", ".h"}, {"**/**", "a/b"},
		{"x/{y,z/w}/**/*.gz", "x/z/w/1/2.gz"}, {"a**b/c", "axxb/c"}, {"**/.git/*", "a/.git/c"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, key string) {
		g, err := compileGlob(pattern)
		if err != nil {
			if !errors.Is(err, ErrBadPattern) {
				t.Fatalf("compileGlob(%q) error %v is not ErrBadPattern", pattern, err)
			}
			return
		}
		if checkKey(key) != nil || len(key) > 200 {
			return
		}
		m := g.match(key)
		if m {
			if !strings.HasPrefix(key, literalPrefix(pattern)) {
				t.Fatalf("%q matches %q, which lacks the literal prefix %q", pattern, key, literalPrefix(pattern))
			}
			if d := literalDir(pattern); d != "" && !strings.HasPrefix(key, d+"/") {
				t.Fatalf("%q matches %q, which is not under %q", pattern, key, d)
			}
			for i := range len(key) {
				if key[i] == '/' && !g.mayContain(key[:i]) {
					t.Fatalf("%q matches %q but mayContain(%q) is false", pattern, key, key[:i])
				}
			}
		}
		if strings.ContainsAny(pattern, "{}") || strings.Contains("/"+key, "/.") || strings.Count(pattern, "**") > 3 {
			return
		}
		if want := referenceMatch(pattern, key); m != want {
			t.Fatalf("%q matches %q = %v, reference says %v", pattern, key, m, want)
		}
	})
}
