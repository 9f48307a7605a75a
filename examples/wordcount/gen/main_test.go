package main

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

func gen(t *testing.T, size int64, seed uint64) []byte {
	t.Helper()
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	if err := generate(w, size, seed, 1000); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestGenerateIsDeterministic(t *testing.T) {
	t.Parallel()
	a, b, c := gen(t, 20000, 1), gen(t, 20000, 1), gen(t, 20000, 2)
	if !bytes.Equal(a, b) {
		t.Error("the same seed gave different texts")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds gave the same text")
	}
	if len(a) < 20000 || len(a) > 20000+200 || a[len(a)-1] != '\n' {
		t.Errorf("%d bytes, want whole lines just past 20000", len(a))
	}
}

func TestGenerateLines(t *testing.T) {
	t.Parallel()
	var sentences int
	lines := strings.Split(strings.TrimSuffix(string(gen(t, 50000, 7)), "\n"), "\n")
	for _, l := range lines {
		if n := len(strings.Fields(l)); n < 5 || n > 15 {
			t.Fatalf("line %q has %d words, want 5 to 15", l, n)
		}
		if strings.HasSuffix(l, ".") {
			sentences++
			if c := l[0]; (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
				t.Errorf("sentence %q does not start with a capital", l)
			}
		}
	}
	if sentences == 0 || sentences == len(lines) {
		t.Errorf("%d of %d lines are sentences, want some", sentences, len(lines))
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"200MB": 200e6, "5KB": 5000, "1GB": 1e9, "123": 123, "64B": 64} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseSize("lots"); err == nil {
		t.Error(`parseSize("lots"): no error`)
	}
}
