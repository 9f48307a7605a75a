package flow

import (
	"context"
	"strconv"
)

// JoinKind says which keys a Join keeps.
type JoinKind int

const (
	// InnerJoin keeps the keys with values on both sides.
	InnerJoin JoinKind = iota + 1
	// LeftJoin keeps every left value: one with no right value for its
	// key is joined with nil.
	LeftJoin
)

func (k JoinKind) String() string {
	switch k {
	case InnerJoin:
		return "inner"
	case LeftJoin:
		return "left"
	}
	return "JoinKind(" + strconv.Itoa(int(k)) + ")"
}

// JoinFunc is called by a Join with a key and one left and one right
// value of it; right is nil for a left value without a match in a
// LeftJoin.
type JoinFunc func(ctx context.Context, key string, left, right any, emit Emit) error

// Join returns the CoGroupFunc of a reduce stage that reads two inputs,
// called left and right (the names of the stages it needs), and joins
// them on the key, as SQL joins two tables: fn is called once for each
// pair of a left and a right value of a key, left values in order, and
// for each pair in that order. The map stages before it key their
// records by the join field.
//
// A key with values on one side only gets no call in an InnerJoin; in a
// LeftJoin each of its left values is joined with nil, and right values
// without a left one are dropped.
func Join(kind JoinKind, left, right string, fn JoinFunc) CoGroupFunc {
	return func(ctx context.Context, key string, groups map[string][]any, emit Emit) error {
		rs := groups[right]
		for _, l := range groups[left] {
			if len(rs) == 0 {
				if kind == LeftJoin {
					if err := fn(ctx, key, l, nil, emit); err != nil {
						return err
					}
				}
				continue
			}
			for _, r := range rs {
				if err := fn(ctx, key, l, r, emit); err != nil {
					return err
				}
			}
		}
		return nil
	}
}
