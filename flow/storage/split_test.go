package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/flow/storage"
)

// readSplit reads one split whole.
func readSplit(t testing.TB, st storage.Store, key string, off, length, size int64) []byte {
	t.Helper()
	r, err := storage.OpenSplit(context.Background(), st, key, off, length, size)
	if err != nil {
		t.Fatalf("OpenSplit(%s, %d, %d, %d): %v", key, off, length, size, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading split (%s, %d, %d, %d): %v", key, off, length, size, err)
	}
	return b
}

// wantSplit is the rule stated plainly: the lines whose first byte lies
// in [off, off+length).
func wantSplit(data []byte, off, length int64) []byte {
	var out []byte
	start := int64(0)
	for start < int64(len(data)) {
		end := int64(len(data))
		if i := bytes.IndexByte(data[start:], '\n'); i >= 0 {
			end = start + int64(i) + 1
		}
		if start >= off && start < off+length {
			out = append(out, data[start:end]...)
		}
		start = end
	}
	return out
}

// randomFile makes a file of random lines: lengths from 0 to maxLine,
// bytes that include '\r', with "\r\n" endings when crlf, and a final
// newline only when final.
func randomFile(rng *rand.Rand, lines, maxLine int, crlf, final bool) []byte {
	var b bytes.Buffer
	for i := range lines {
		n := rng.IntN(maxLine + 1)
		for range n {
			c := byte('a' + rng.IntN(26))
			if rng.IntN(20) == 0 {
				c = '\r'
			}
			b.WriteByte(c)
		}
		if i < lines-1 || final {
			if crlf {
				b.WriteString("\r\n")
			} else {
				b.WriteByte('\n')
			}
		}
	}
	return b.Bytes()
}

// checkSplits reads data (stored at key) as consecutive splits of the
// given lengths (the last repeated to the end) and checks each split
// against the rule and all of them together against the file.
func checkSplits(t *testing.T, st storage.Store, key string, data []byte, lengths []int64) {
	t.Helper()
	size := int64(len(data))
	var all []byte
	off := int64(0)
	for i := 0; off < size || (size == 0 && i == 0); i++ {
		length := lengths[min(i, len(lengths)-1)]
		got := readSplit(t, st, key, off, length, size)
		if want := wantSplit(data, off, length); !bytes.Equal(got, want) {
			t.Fatalf("%s split [%d, +%d) of %d bytes read %q, want %q", key, off, length, size, trim(got), trim(want))
		}
		all = append(all, got...)
		off += length
	}
	if !bytes.Equal(all, data) {
		t.Fatalf("%s: the splits (%v) read %d bytes together, want the file's %d", key, lengths, len(all), len(data))
	}
}

func trim(b []byte) string {
	if len(b) > 80 {
		return fmt.Sprintf("%s...(%d bytes)", b[:80], len(b))
	}
	return string(b)
}

// TestSplitProperty: over random files, line lengths and split sizes,
// the splits read every line exactly once, with LF and CRLF endings,
// with and without a final newline, and with lines longer than a split.
func TestSplitProperty(t *testing.T) {
	forEachStore(t, func(t *testing.T, st storage.Store) {
		files := 60
		if strings.HasPrefix(st.URI(), "s3:") {
			files = 15 // each split is a request or two
		}
		rng := rand.New(rand.NewPCG(9, uint64(files)))
		for i := range files {
			crlf, final := i%2 == 1, i%4 < 2
			lines := rng.IntN(40)
			maxLine := []int{0, 1, 5, 40, 300}[rng.IntN(5)]
			data := randomFile(rng, lines, maxLine, crlf, final)
			key := fmt.Sprintf("prop/f%d", i)
			put(t, st, key, string(data))
			sizes := [][]int64{{1}, {2}, {3}, {int64(1 + rng.IntN(50))}, {int64(len(data) + 1)}}
			var uneven []int64
			for range 8 {
				uneven = append(uneven, int64(1+rng.IntN(max(1, len(data)/3))))
			}
			sizes = append(sizes, uneven)
			for _, lengths := range sizes {
				checkSplits(t, st, key, data, lengths)
			}
		}
	})
}

// TestSplitLongLines covers lines much longer than a split and than the
// reader's chunks past a split's end, so the end of a line is found
// several ranged reads away.
func TestSplitLongLines(t *testing.T) {
	forEachStore(t, func(t *testing.T, st storage.Store) {
		var b bytes.Buffer
		for _, n := range []int{10, 300_000, 5, 0, 150_000, 1, 70_000} {
			b.WriteString(strings.Repeat("x", n))
			b.WriteString("\r\n")
		}
		b.WriteString(strings.Repeat("y", 200_000)) // no final newline
		data := b.Bytes()
		put(t, st, "long", string(data))
		for _, lengths := range [][]int64{{1000}, {65536}, {7, 100_000, 3, 50_000}, {300_012}, {int64(len(data))}} {
			checkSplits(t, st, "long", data, lengths)
		}
	})
}

func TestSplitEdges(t *testing.T) {
	forEachStore(t, func(t *testing.T, st storage.Store) {
		put(t, st, "e", "ab\ncd\n")
		put(t, st, "empty", "")
		put(t, st, "x150", strings.Repeat("x", 150))
		tests := []struct {
			key               string
			off, length, size int64
			want              string
		}{
			{"e", 0, 1, 6, "ab\n"},
			{"e", 1, 2, 6, ""},     // holds the '\n' at 2 only: the next line starts at 3
			{"e", 3, 1, 6, "cd\n"}, // a line starts exactly at off
			{"e", 2, 2, 6, "cd\n"},
			{"e", 6, 5, 6, ""},
			{"e", 0, 0, 6, ""},
			{"e", 0, 100, 6, "ab\ncd\n"},
			{"e", 0, 3, 3, "ab\n"}, // size smaller than the object: its bytes past size are not read
			{"empty", 0, 10, 0, ""},
			// a size larger than the object (it was replaced meanwhile):
			// the split ends with the object instead of reading forever
			{"x150", 0, 100, 1000, strings.Repeat("x", 150)},
			{"x150", 0, 1000, 1000, strings.Repeat("x", 150)},
		}
		for _, tt := range tests {
			if got := readSplit(t, st, tt.key, tt.off, tt.length, tt.size); string(got) != tt.want {
				t.Errorf("split (%s, %d, %d, %d) = %q, want %q", tt.key, tt.off, tt.length, tt.size, got, tt.want)
			}
		}
		if _, err := storage.OpenSplit(context.Background(), st, "e", -1, 1, 6); err == nil {
			t.Error("OpenSplit with a negative offset gave no error")
		}
		if r, err := storage.OpenSplit(context.Background(), st, "nothere", 0, 10, 10); err == nil {
			if _, err := io.ReadAll(r); err == nil {
				t.Error("OpenSplit of a missing object gave no error")
			}
		}
	})
}
