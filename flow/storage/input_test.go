package storage_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/gearflow/gearflow/flow/storage"
)

func TestOpenInput(t *testing.T) {
	forEachStore(t, func(t *testing.T, st storage.Store) {
		text := strings.Repeat("the quick brown fox\n", 5000)
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		io.WriteString(zw, text[:len(text)/2])
		zw.Close()
		zw = gzip.NewWriter(&gz) // a second member, as `cat a.gz b.gz` makes
		io.WriteString(zw, text[len(text)/2:])
		zw.Close()
		var zst bytes.Buffer
		ze, _ := zstd.NewWriter(&zst)
		io.WriteString(ze, text)
		ze.Close()
		put(t, st, "in/a.txt", text)
		put(t, st, "in/a.txt.gz", gz.String())
		put(t, st, "in/a.txt.zst", zst.String())
		put(t, st, "in/bad.gz", "not gzip at all")
		put(t, st, "in/cut.zst", zst.String()[:zst.Len()/2])
		for _, key := range []string{"in/a.txt", "in/a.txt.gz", "in/a.txt.zst"} {
			r, err := storage.OpenInput(context.Background(), st, key)
			if err != nil {
				t.Fatalf("OpenInput(%s): %v", key, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || string(got) != text {
				t.Errorf("OpenInput(%s) read %d bytes, %v; want %d", key, len(got), err, len(text))
			}
		}
		for _, key := range []string{"in/bad.gz", "in/cut.zst"} {
			r, err := storage.OpenInput(context.Background(), st, key)
			if err == nil {
				_, err = io.ReadAll(r)
				r.Close()
			}
			if err == nil || !strings.Contains(err.Error(), key) {
				t.Errorf("OpenInput(%s) error = %v, want one naming the object", key, err)
			}
		}
		if !storage.Compressed("x.gz") || !storage.Compressed("x.zst") || storage.Compressed("x.txt") {
			t.Error("Compressed gives the wrong answer")
		}
	})
}
