package flow

import (
	"bytes"
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
