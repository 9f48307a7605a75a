package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCountMatchesPipeline: the baseline writes the same bytes as the
// wordcount pipeline's expected output for the example's input.
func TestCountMatchesPipeline(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out.tsv")
	if err := count("../data/input.txt", out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../testdata/want.tsv")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("plain output:\n%s\nwant (testdata/want.tsv):\n%s", got, want)
	}
}

func TestCountMissingInput(t *testing.T) {
	t.Parallel()
	if err := count(filepath.Join(t.TempDir(), "nope.txt"), filepath.Join(t.TempDir(), "out.tsv")); err == nil {
		t.Error("count of a missing file: no error")
	}
}
