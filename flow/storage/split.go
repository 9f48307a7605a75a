package storage

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
)

// Chunk sizes for the reads past a split's end, which look for the end
// of its last line: small first, as most lines are short, then growing.
const (
	tailChunkMin = 64 << 10
	tailChunkMax = 4 << 20
)

// OpenSplit reads the lines of the object at key (of the given size) that
// belong to the byte split [off, off+length): those whose first byte lies
// in it. It skips the partial line the split starts in (unless off is 0)
// and reads on past the split's end through the end of the line that
// crosses it. So the splits of any partition of [0, size) read every line
// exactly once, together the whole object byte for byte.
//
// Lines end at '\n' and keep their bytes (a "\r\n" line keeps its '\r');
// the last line may lack a '\n'. A split in which no line starts, inside
// a line longer than the split, reads nothing.
//
// It reads the split with one ranged read starting a byte before it, and
// what lies past the split in growing ranged chunks, never the whole
// object.
func OpenSplit(ctx context.Context, st Store, key string, off, length, size int64) (io.ReadCloser, error) {
	if off < 0 || length < 0 || size < 0 {
		return nil, fmt.Errorf("storage: split %s [%d, +%d) of %d bytes: negative value", key, off, length, size)
	}
	end := min(off+length, size)
	r := &splitReader{ctx: ctx, st: st, key: key, size: size, end: end}
	if off >= end {
		r.done = true
		return r, nil
	}
	from := off
	if off > 0 {
		from = off - 1 // a '\n' there means a line starts at off
	}
	body, err := st.Open(ctx, key, from, end-from)
	if err != nil {
		return nil, err
	}
	r.body = body
	r.pos = from
	if off > 0 {
		if err := r.skipPartialLine(); err != nil {
			r.Close()
			return nil, err
		}
	}
	r.start = r.pos
	return r, nil
}

// Start returns the offset in the object of the split's first line: off,
// or past the partial line it skipped.
func (r *splitReader) Start() int64 { return r.start }

// splitReader is the io.ReadCloser OpenSplit returns.
type splitReader struct {
	ctx       context.Context
	st        Store
	key       string
	size, end int64
	start     int64 // offset of the first line read

	body  io.ReadCloser // the current ranged read, nil between reads
	br    *bufio.Reader // over body during the skip, then drained
	pos   int64         // position in the object of body's next byte
	last  byte          // the last byte returned
	tail  bool          // reading past end, to the line's '\n'
	chunk int64         // size of the next tail read
	want  int64         // bytes the current tail read asked for
	got   int64         // bytes the current tail read gave
	done  bool
}

// skipPartialLine consumes the main read up to and including the first
// '\n' at or after off-1: the line before it belongs to the previous
// split. Without one, no line starts in the split.
func (r *splitReader) skipPartialLine() error {
	// No bigger than the read: a short split (a lines split of a few
	// lines) would otherwise cost more in buffer than in data.
	r.br = bufio.NewReaderSize(r.body, int(min(32<<10, r.end-r.pos)))
	for {
		b, err := r.br.ReadSlice('\n')
		r.pos += int64(len(b))
		if err == nil {
			break
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			r.finish()
			return nil
		}
		return r.wrap(err)
	}
	if r.pos >= r.end {
		r.finish() // the '\n' was the split's last byte
	}
	return nil
}

func (r *splitReader) wrap(err error) error {
	return fmt.Errorf("storage: read split of %s at %d: %w", r.key, r.pos, err)
}

func (r *splitReader) finish() {
	r.done = true
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
}

func (r *splitReader) Read(p []byte) (int, error) {
	for !r.done {
		if len(p) == 0 {
			return 0, nil
		}
		if r.body == nil {
			if err := r.openTail(); err != nil {
				return 0, err
			}
			continue
		}
		var n int
		var err error
		if r.br != nil {
			n, err = r.br.Read(p)
		} else {
			n, err = r.body.Read(p)
		}
		if r.tail {
			if i := bytes.IndexByte(p[:n], '\n'); i >= 0 {
				r.finish()
				return i + 1, nil
			}
		}
		r.pos += int64(n)
		r.got += int64(n)
		if n > 0 {
			r.last = p[n-1]
		}
		if err == io.EOF {
			r.body.Close()
			r.body, r.br = nil, nil
			switch {
			case r.pos >= r.size:
				r.done = true // the object ended without a final '\n'
			case r.tail && r.got < r.want, !r.tail && r.pos < r.end:
				r.done = true // the object is shorter than size said
			case !r.tail && r.last == '\n':
				r.done = true // the split ends with a whole line
			}
			r.tail = true
			err = nil
		}
		if err != nil {
			return n, r.wrap(err)
		}
		if n > 0 {
			return n, nil
		}
	}
	return 0, io.EOF
}

// openTail starts the next ranged read past the split's end.
func (r *splitReader) openTail() error {
	if r.chunk == 0 {
		r.chunk = tailChunkMin
	}
	body, err := r.st.Open(r.ctx, r.key, r.pos, r.chunk)
	if err != nil {
		return err
	}
	r.body = body
	r.want, r.got = r.chunk, 0
	r.chunk = min(2*r.chunk, tailChunkMax)
	return nil
}

func (r *splitReader) Close() error {
	r.finish()
	return nil
}
