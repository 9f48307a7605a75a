package flow

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/gearflow/gearflow/flow/internal/msgp"
)

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
			r := rawRecord{Key: string(key) + string(rune('a'+i%26)), Value: msgp.AppendBin(nil, bytes.Repeat(value, i%7))}
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
		batch := msgp.AppendArrayLen(nil, n)
		batch = append(batch, data...)
		recs, err := decodeBatch(nil, batch)
		if err != nil || len(recs) != n {
			t.Fatalf("as a batch: %d records, %v", len(recs), err)
		}
	})
}
