// Package wordcount is the classic first map/reduce: count the words of
// a text. Its map function splits lines into lower-cased words, and one
// reduce function sums the counts, serving both as the map-side combiner
// and as the reducer.
package wordcount

import (
	"context"
	"iter"
	"strings"
	"unicode"

	"github.com/gearflow/gearflow/flow"
)

// Register adds the example's functions to reg: "wc.map", and "wc.sum"
// registered with flow's Registry.Sum: it computes what Sum does, and as
// the map-side combiner it keeps a running count per word.
func Register(reg *flow.Registry) {
	reg.Map("wc.map", Map)
	reg.Sum("wc.sum")
}

// Map emits (word, 1) for every word of the line in rec.Value. Words are
// runs of letters, digits and apostrophes, lower-cased.
func Map(ctx context.Context, rec flow.Record, emit flow.Emit) error {
	line, _ := rec.Value.(string)
	words := strings.FieldsFunc(strings.ToLower(line), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	})
	for _, w := range words {
		w = strings.Trim(w, "'")
		if w == "" {
			continue
		}
		if err := emit(w, 1); err != nil {
			return err
		}
	}
	return nil
}

// Sum emits the key with the sum of its values, as flow.SumInt64 does;
// Register serves "wc.sum" with the latter, which has a fast path as a
// combiner.
func Sum(ctx context.Context, key string, values iter.Seq[any], emit flow.Emit) error {
	var n int64
	for v := range values {
		x, _ := flow.Int64(v)
		n += x
	}
	return emit(key, n)
}
