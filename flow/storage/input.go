package storage

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Compressed reports whether OpenInput decompresses the object at key,
// which is then read whole, as one split.
func Compressed(key string) bool {
	return strings.HasSuffix(key, ".gz") || strings.HasSuffix(key, ".zst")
}

// OpenInput reads the whole object at key, decompressing it when its name
// ends in ".gz" (gzip, several members allowed) or ".zst" (zstandard).
// Corrupt or truncated compressed data gives an error from Read.
func OpenInput(ctx context.Context, st Store, key string) (io.ReadCloser, error) {
	r, err := st.Open(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	name := Join(st.URI(), key)
	switch {
	case strings.HasSuffix(key, ".gz"):
		z, err := gzip.NewReader(r)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("storage: gunzip %s: %w", name, err)
		}
		return &decoded{r: z, name: name, closers: []func() error{z.Close, r.Close}}, nil
	case strings.HasSuffix(key, ".zst"):
		// One goroutine: decoding runs at the pace of the reader, and
		// many splits are read at once on a worker.
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("storage: unzstd %s: %w", name, err)
		}
		return &decoded{r: z, name: name, closers: []func() error{
			func() error { z.Close(); return nil }, r.Close,
		}}, nil
	}
	return r, nil
}

// decoded is a decompressing reader that closes its layers in order and
// names the object in decoding errors.
type decoded struct {
	r       io.Reader
	name    string
	closers []func() error
}

func (d *decoded) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("storage: decompress %s: %w", d.name, err)
	}
	return n, err
}

func (d *decoded) Close() error {
	var first error
	for _, c := range d.closers {
		if err := c(); err != nil && first == nil {
			first = err
		}
	}
	d.closers = nil
	return first
}
