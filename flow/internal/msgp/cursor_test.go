package msgp_test

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gearflow/gearflow/flow/internal/msgp"
)

// FuzzCursorSkip checks the cursor against the msgpack library: where
// both accept a value, they agree on its length; the cursor never
// panics and never reads past the input.
func FuzzCursorSkip(f *testing.F) {
	for _, v := range []any{nil, true, 1, -1, 300, -70000, 1 << 40, 2.5, "s", string(make([]byte, 40)), []byte{1, 2},
		[]any{1, "a", []any{}}, map[string]any{"k": map[string]any{"x": 1}}, make([]any, 20)} {
		b, _ := msgpack.Marshal(v)
		f.Add(b)
	}
	f.Add([]byte{0xd4, 0x01, 0x02}) // fixext1
	f.Add([]byte{0xc7, 0x02, 0x01, 0xaa, 0xbb})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := msgp.NewCursor(data)
		raw, err := c.Raw()
		if err != nil {
			return
		}
		if len(raw) > len(data) || c.Pos() != len(raw) {
			t.Fatalf("raw %d bytes, cursor at %d, input %d", len(raw), c.Pos(), len(data))
		}
		d := msgpack.NewDecoder(bytes.NewReader(data))
		if d.Skip() == nil {
			if rest := d.Buffered(); rest != nil {
				n, _ := bytes.NewBuffer(nil).ReadFrom(rest)
				if int(n) != len(data)-len(raw) {
					t.Fatalf("cursor says %d bytes, msgpack says %d", len(raw), len(data)-int(n))
				}
			}
		}
	})
}

// TestForgedLengthsRefused checks that a header claiming more elements
// than the input could hold is refused before a caller allocates for
// them, for every array and map length encoding.
func TestForgedLengthsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		data []byte
		read func(*msgp.Cursor) (int, error)
	}{
		{"array16", []byte{0xdc, 0xff, 0xff}, (*msgp.Cursor).ArrayLen},
		{"array32", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, (*msgp.Cursor).ArrayLen},
		{"map16", []byte{0xde, 0xff, 0xff, 0x01}, (*msgp.Cursor).MapLen},
		{"map32", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, (*msgp.Cursor).MapLen},
	} {
		if n, err := tc.read(msgp.NewCursor(tc.data)); err == nil {
			t.Errorf("%s: length %d accepted from a %d-byte input", tc.name, n, len(tc.data))
		}
	}
	// A length the input can hold is still read.
	if n, err := msgp.NewCursor([]byte{0xdc, 0x00, 0x02, 0x01, 0x02}).ArrayLen(); n != 2 || err != nil {
		t.Errorf("array16 of 2: %d, %v", n, err)
	}
	if n, err := msgp.NewCursor([]byte{0xde, 0x00, 0x01, 0x01, 0x02}).MapLen(); n != 1 || err != nil {
		t.Errorf("map16 of 1: %d, %v", n, err)
	}
}
