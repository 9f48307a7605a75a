// Package msgp reads and writes the MessagePack that flow's hot paths
// use (task payloads, record files, WORK_DATA batches) without
// reflection: a Cursor that reads values in place, and Append functions
// that encode them. Everything else goes through
// github.com/vmihailenco/msgpack.
package msgp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrShort means the buffer ends inside a msgpack value.
var ErrShort = errors.New("truncated msgpack value")

// Cursor reads msgpack from a byte slice without copying: the hot paths
// of the codec (records, batches, record files) use it instead of a
// reflection-based decoder. Slices it returns alias the buffer.
type Cursor struct {
	b []byte
	i int
}

// NewCursor returns a Cursor at the start of b.
func NewCursor(b []byte) *Cursor { return &Cursor{b: b} }

// NewCursorAt returns a Cursor at offset off of b.
func NewCursorAt(b []byte, off int) *Cursor { return &Cursor{b: b, i: off} }

// Pos returns the offset of the next byte to read.
func (c *Cursor) Pos() int { return c.i }

func (c *Cursor) Rest() int { return len(c.b) - c.i }

func (c *Cursor) need(n int) error {
	if n < 0 || c.Rest() < n {
		return ErrShort
	}
	return nil
}

func (c *Cursor) be(n int) (uint64, error) {
	if err := c.need(n); err != nil {
		return 0, err
	}
	var v uint64
	switch n {
	case 1:
		v = uint64(c.b[c.i])
	case 2:
		v = uint64(binary.BigEndian.Uint16(c.b[c.i:]))
	case 4:
		v = uint64(binary.BigEndian.Uint32(c.b[c.i:]))
	case 8:
		v = binary.BigEndian.Uint64(c.b[c.i:])
	}
	c.i += n
	return v, nil
}

func (c *Cursor) code() (byte, error) {
	if c.i >= len(c.b) {
		return 0, ErrShort
	}
	b := c.b[c.i]
	c.i++
	return b, nil
}

func (c *Cursor) MapLen() (int, error) {
	b, err := c.code()
	if err != nil {
		return 0, err
	}
	switch {
	case b >= 0x80 && b <= 0x8f:
		return int(b & 0x0f), nil
	case b == 0xde:
		n, err := c.be(2)
		return c.count(n, 2, err)
	case b == 0xdf:
		n, err := c.be(4)
		return c.count(n, 2, err)
	}
	return 0, fmt.Errorf("want a map, got code %#x", b)
}

func (c *Cursor) ArrayLen() (int, error) {
	b, err := c.code()
	if err != nil {
		return 0, err
	}
	switch {
	case b >= 0x90 && b <= 0x9f:
		return int(b & 0x0f), nil
	case b == 0xdc:
		n, err := c.be(2)
		return c.count(n, 1, err)
	case b == 0xdd:
		n, err := c.be(4)
		return c.count(n, 1, err)
	}
	return 0, fmt.Errorf("want an array, got code %#x", b)
}

// count checks that n elements of at least per bytes each can fit in
// what is left, so a forged length cannot make a caller allocate.
func (c *Cursor) count(n uint64, per int, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	if n > uint64(c.Rest()/per) {
		return 0, ErrShort
	}
	return int(n), nil
}

// strBytes reads a str or bin value.
func (c *Cursor) StrBytes() ([]byte, error) {
	b, err := c.code()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case b >= 0xa0 && b <= 0xbf:
		n = uint64(b & 0x1f)
	case b == 0xd9 || b == 0xc4:
		n, err = c.be(1)
	case b == 0xda || b == 0xc5:
		n, err = c.be(2)
	case b == 0xdb || b == 0xc6:
		n, err = c.be(4)
	default:
		return nil, fmt.Errorf("want a string, got code %#x", b)
	}
	if err != nil {
		return nil, err
	}
	if n > uint64(c.Rest()) {
		return nil, ErrShort
	}
	s := c.b[c.i : c.i+int(n) : c.i+int(n)]
	c.i += int(n)
	return s, nil
}

func (c *Cursor) Str() (string, error) {
	b, err := c.StrBytes()
	return string(b), err
}

func (c *Cursor) Int64() (int64, error) {
	b, err := c.code()
	if err != nil {
		return 0, err
	}
	switch {
	case b <= 0x7f:
		return int64(b), nil
	case b >= 0xe0:
		return int64(int8(b)), nil
	}
	var v uint64
	switch b {
	case 0xcc, 0xd0:
		v, err = c.be(1)
	case 0xcd, 0xd1:
		v, err = c.be(2)
	case 0xce, 0xd2:
		v, err = c.be(4)
	case 0xcf, 0xd3:
		v, err = c.be(8)
	default:
		return 0, fmt.Errorf("want an integer, got code %#x", b)
	}
	if err != nil {
		return 0, err
	}
	switch b {
	case 0xd0:
		return int64(int8(v)), nil
	case 0xd1:
		return int64(int16(v)), nil
	case 0xd2:
		return int64(int32(v)), nil
	case 0xcf:
		if v > math.MaxInt64 {
			return 0, fmt.Errorf("integer %d overflows int64", v)
		}
	}
	return int64(v), nil
}

// raw returns the next value, whole, as a slice of the buffer.
func (c *Cursor) Raw() ([]byte, error) {
	start := c.i
	if err := c.Skip(); err != nil {
		c.i = start
		return nil, err
	}
	return c.b[start:c.i:c.i], nil
}

// skip moves past the next value, nested values included.
func (c *Cursor) Skip() error {
	for pending := 1; pending > 0; pending-- {
		b, err := c.code()
		if err != nil {
			return err
		}
		var n uint64 // bytes of payload to skip
		switch {
		case b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3:
		case b >= 0xa0 && b <= 0xbf:
			n = uint64(b & 0x1f)
		case b >= 0x90 && b <= 0x9f:
			pending += int(b & 0x0f)
		case b >= 0x80 && b <= 0x8f:
			pending += 2 * int(b&0x0f)
		default:
			switch b {
			case 0xc4, 0xd9:
				n, err = c.be(1)
			case 0xc5, 0xda:
				n, err = c.be(2)
			case 0xc6, 0xdb:
				n, err = c.be(4)
			case 0xcc, 0xd0:
				n = 1
			case 0xcd, 0xd1:
				n = 2
			case 0xce, 0xd2, 0xca:
				n = 4
			case 0xcf, 0xd3, 0xcb:
				n = 8
			case 0xd4:
				n = 2
			case 0xd5:
				n = 3
			case 0xd6:
				n = 5
			case 0xd7:
				n = 9
			case 0xd8:
				n = 17
			case 0xc7, 0xc8, 0xc9: // ext 8/16/32: length, type, data
				w := map[byte]int{0xc7: 1, 0xc8: 2, 0xc9: 4}[b]
				n, err = c.be(w)
				n++
			case 0xdc, 0xdd, 0xde, 0xdf:
				w := 2
				if b == 0xdd || b == 0xdf {
					w = 4
				}
				var m uint64
				if m, err = c.be(w); err == nil {
					if b >= 0xde {
						m *= 2
					}
					if m > uint64(c.Rest()) { // every element takes a byte at least
						return ErrShort
					}
					pending += int(m)
				}
			default:
				return fmt.Errorf("invalid msgpack code %#x", b)
			}
			if err != nil {
				return err
			}
		}
		if n > uint64(c.Rest()) {
			return ErrShort
		}
		c.i += int(n)
	}
	return nil
}

// rawRecord reads one [key, value] record as slices of the buffer.
func (c *Cursor) RawRecord() (key, value []byte, err error) {
	n, err := c.ArrayLen()
	if err != nil {
		return nil, nil, err
	}
	if n != 2 {
		return nil, nil, fmt.Errorf("a record is [key, value], got %d elements", n)
	}
	if key, err = c.StrBytes(); err != nil {
		return nil, nil, err
	}
	if value, err = c.Raw(); err != nil {
		return nil, nil, err
	}
	return key, value, nil
}

// checkRecord moves past one [key, value] record, checking its shape,
// without copying the key.
func (c *Cursor) CheckRecord() error {
	n, err := c.ArrayLen()
	if err != nil {
		return err
	}
	if n != 2 {
		return fmt.Errorf("a record is [key, value], got %d elements", n)
	}
	if _, err := c.StrBytes(); err != nil {
		return err
	}
	return c.Skip()
}
