package flow

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/flow/spec"
)

// TestAppendTextRecordsMatchesRecords checks the direct encoding of text
// lines against the record-by-record one, across string header sizes,
// CRLF ends, empty lines and a last line without an end.
func TestAppendTextRecordsMatchesRecords(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"empty":        "",
		"one line":     "hello\n",
		"no final end": "a\nb",
		"crlf":         "a\r\nb\r\n\r\n",
		"blank lines":  "\n\n\nx\n",
		"sizes":        strings.Repeat("s", 31) + "\n" + strings.Repeat("m", 32) + "\n" + strings.Repeat("l", 256) + "\n" + strings.Repeat("h", 70000),
		"utf8":         "héllo wörld\n日本語\n",
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "in.txt")
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			chunks, err := splitFile(path, spec.Split{By: spec.SplitLines, N: 3})
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range chunks {
				recs, err := fileChunkRecords(ch)
				if err != nil {
					t.Fatal(err)
				}
				data, err := readFileChunk(ch)
				if err != nil {
					t.Fatal(err)
				}
				want := appendRecords([]byte{0xff}, recs)
				got := appendTextRecords([]byte{0xff}, data)
				if !bytes.Equal(got, want) {
					t.Errorf("chunk %s: appendTextRecords = %x, want %x", ch, got, want)
				}
			}
		})
	}
}

// TestInputFilesReadChunk: chunks read through the open files (small
// ones from the read-ahead window, in any order) hold the file's bytes.
func TestInputFilesReadChunk(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := 0; b.Len() < 3*readAhead/2; i++ {
		fmt.Fprintf(&b, "line %d %s\n", i, strings.Repeat("x", i%1500))
	}
	data := []byte(b.String())
	path := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var in inputFiles
	defer in.close()
	for _, n := range []int{1, 40, 2000} {
		chunks, err := splitFile(path, spec.Split{By: spec.SplitLines, N: n})
		if err != nil {
			t.Fatal(err)
		}
		// Forwards, then backwards, then every third: window hits and misses.
		var order []int
		for i := range chunks {
			order = append(order, i)
		}
		for i := len(chunks) - 1; i >= 0; i-- {
			order = append(order, i)
		}
		for i := 0; i < len(chunks); i += 3 {
			order = append(order, i)
		}
		for _, i := range order {
			got, err := in.readChunk(chunks[i])
			if err != nil {
				t.Fatal(err)
			}
			want := data[chunks[i].Offset : chunks[i].Offset+chunks[i].Length]
			if !bytes.Equal(got, want) {
				t.Fatalf("%d lines a chunk, chunk %d (%s): %d bytes differ from the %d read directly", n, i, chunks[i], len(got), len(want))
			}
		}
	}
	if _, err := in.readChunk(chunk{File: filepath.Join(t.TempDir(), "missing"), Length: 1}); err == nil {
		t.Error("missing file: no error")
	}
}

// TestInputFilesManySmallFiles: a run over many small files keeps at
// most maxOpenInputs of them open, with windows no larger than the
// files, and still reads every chunk right, also after eviction.
func TestInputFilesManySmallFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var in inputFiles
	defer in.close()
	const files = 5 * maxOpenInputs
	for round := range 2 { // the second round reopens evicted files
		for i := range files {
			path := filepath.Join(dir, fmt.Sprintf("f%03d.txt", i))
			data := []byte(fmt.Sprintf("file %d\nline two\n", i))
			if round == 0 {
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := in.readChunk(chunk{File: path, Offset: 5, Length: int64(len(data)) - 5})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data[5:]) {
				t.Fatalf("round %d file %d: %q, want %q", round, i, got, data[5:])
			}
			in.mu.Lock()
			open := len(in.files)
			for p, f := range in.files {
				if int64(cap(f.win)) > max(f.size, 1) {
					t.Errorf("%s: window of %d bytes for a %d-byte file", p, cap(f.win), f.size)
				}
			}
			in.mu.Unlock()
			if open > maxOpenInputs {
				t.Fatalf("%d files open, at most %d wanted", open, maxOpenInputs)
			}
		}
	}
}
