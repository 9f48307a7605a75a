package flow

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/vmihailenco/msgpack/v5"
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
		c := &cursor{b: data}
		raw, err := c.raw()
		if err != nil {
			return
		}
		if len(raw) > len(data) || c.i != len(raw) {
			t.Fatalf("raw %d bytes, cursor at %d, input %d", len(raw), c.i, len(data))
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

// FuzzRecordFile checks that a record file reads back the same records
// whatever its content and however the reads are cut.
func FuzzRecordFile(f *testing.F) {
	f.Add([]byte("k1"), []byte("v"), 3)
	f.Add([]byte(""), []byte{}, 1000)
	f.Fuzz(func(t *testing.T, key, value []byte, n int) {
		n = (n%200+200)%200 + 1
		path := filepath.Join(t.TempDir(), "r.rec")
		w, err := createRecFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var want []rawRecord
		for i := 0; i < n; i++ {
			r := rawRecord{Key: string(key) + string(rune('a'+i%26)), Value: appendBin(nil, bytes.Repeat(value, i%7))}
			want = append(want, r)
			w.write(r)
		}
		if err := w.close(false); err != nil {
			t.Fatal(err)
		}
		var got []rawRecord
		if err := eachRecord(path, func(r rawRecord) error { got = append(got, r); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("read %d records, wrote %d", len(got), len(want))
		}
		for i := range got {
			if got[i].Key != want[i].Key || !bytes.Equal(got[i].Value, want[i].Value) {
				t.Fatalf("record %d: %+v, want %+v", i, got[i], want[i])
			}
		}
		// Read one byte at a time, the file decodes the same.
		data, _ := os.ReadFile(path)
		r := newRecReader(iotest.OneByteReader(bytes.NewReader(data)), "one-byte")
		for i := 0; ; i++ {
			rec, err := r.next()
			if err == io.EOF {
				if i != n {
					t.Fatalf("one-byte reads: %d records, want %d", i, n)
				}
				break
			}
			if err != nil || rec.Key != want[i].Key || !bytes.Equal(rec.Value, want[i].Value) {
				t.Fatalf("one-byte reads: record %d = %+v, %v", i, rec, err)
			}
		}
		// The same bytes as one WORK_DATA batch decode the same.
		batch := appendArrayLen(nil, n)
		batch = append(batch, data...)
		recs, err := decodeBatch(nil, batch)
		if err != nil || len(recs) != n {
			t.Fatalf("as a batch: %d records, %v", len(recs), err)
		}
	})
}
