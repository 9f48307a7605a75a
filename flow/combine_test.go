package flow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestWireValueMatchesRoundTrip(t *testing.T) {
	t.Parallel()
	for _, v := range []any{
		nil, true, false, "", "word", 0, 1, -1, 127, 128, 255, 256, 65536, -33, -129,
		int64(math.MaxUint32), int64(math.MaxUint32) + 1, int64(math.MaxInt64), int64(math.MinInt64),
		int(math.MaxUint32) + 5, int32(-7), int32(math.MaxInt32), uint(3), uint64(math.MaxUint64),
		uint32(math.MaxUint32), 2.5, float32(1.5), []byte("raw"), []any{"a", 1}, map[string]any{"n": 2},
		[]string{"x", "y"},
	} {
		t.Run(fmt.Sprintf("%T(%v)", v, v), func(t *testing.T) {
			t.Parallel()
			got, err := wireValue(v)
			if err != nil {
				t.Fatal(err)
			}
			want, err := DecodeValue(mustValue(t, v))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("wireValue(%#v) = %#v (%T), the wire gives %#v (%T)", v, got, got, want, want)
			}
		})
	}
}

func TestWireValueDoesNotAlias(t *testing.T) {
	t.Parallel()
	s := []any{"a", int64(1)}
	got, err := wireValue(s)
	if err != nil {
		t.Fatal(err)
	}
	s[0] = "changed"
	if got.([]any)[0] != "a" {
		t.Errorf("wireValue kept a reference to the caller's slice: %v", got)
	}
}

// runCombined runs a map task emitting n values for each of keys through
// combine fn and returns what reached the batches, by key.
func runCombined(t *testing.T, fn ReduceFunc, keys []string, n int) map[string][]any {
	t.Helper()
	out := map[string][]any{}
	for _, r := range runCombinedRaw(t, fn, keys, n) {
		v, err := DecodeValue(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		out[r.Key] = append(out[r.Key], v)
	}
	return out
}

// runCombinedRaw is runCombined returning the records in the order the
// batches carried them.
func runCombinedRaw(t *testing.T, fn ReduceFunc, keys []string, n int) []rawRecord {
	t.Helper()
	reg := NewRegistry()
	reg.Map("m", func(ctx context.Context, rec Record, emit Emit) error {
		for i := 0; i < n; i++ {
			for _, k := range keys {
				if err := emit(k, 1); err != nil {
					return err
				}
			}
		}
		return nil
	})
	reg.Reduce("c", fn)
	var got []rawRecord
	io := taskIO{
		data: func(b []byte) error {
			var err error
			got, err = decodeBatch(got, b)
			return err
		},
		status: func(uint64, uint64) error { return nil },
	}
	h := taskHeader{Run: "r", Stage: "s", Kind: TaskMap, Combine: "c"}
	res, err := reg.execute(context.Background(), "m", appendMapPayload(nil, &h, []rawRecord{{Value: mustValue(t, "x")}}), io)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := decodeSummary(res)
	if err != nil {
		t.Fatal(err)
	}
	if sum.RecordsOut != int64(len(got)) {
		t.Fatalf("summary says %d records out, batches held %d", sum.RecordsOut, len(got))
	}
	return got
}

func TestCombinerCombinesInPlace(t *testing.T) {
	t.Parallel()
	var calls, most int
	sum := func(ctx context.Context, key string, seq iter.Seq[any], emit Emit) error {
		values := slices.Collect(seq)
		calls++
		most = max(most, len(values))
		var n int64
		for _, v := range values {
			x, ok := v.(int64) // combiners see values as decoded from the wire
			if !ok {
				return fmt.Errorf("value %#v is a %T, want int64", v, v)
			}
			n += x
		}
		return emit(key, n)
	}
	const n = 1000
	got := runCombined(t, sum, []string{"a", "b"}, n)
	want := map[string][]any{"a": {int64(n)}, "b": {int64(n)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if most > combineEvery {
		t.Errorf("combine function got %d values at once, want at most %d", most, combineEvery)
	}
	if calls < 2*n/combineEvery {
		t.Errorf("combine function called %d times, want values combined as they gather (>= %d)", calls, 2*n/combineEvery)
	}
}

func TestCombinerThatDoesNotShrink(t *testing.T) {
	t.Parallel()
	var calls int
	identity := func(ctx context.Context, key string, seq iter.Seq[any], emit Emit) error {
		values := slices.Collect(seq)
		calls++
		for _, v := range values {
			if err := emit(key, v); err != nil {
				return err
			}
		}
		return nil
	}
	const n = 1000
	got := runCombined(t, identity, []string{"a"}, n)
	if len(got["a"]) != n {
		t.Errorf("got %d values for a, want all %d", len(got["a"]), n)
	}
	if calls > n/(combineEvery/2)+1 {
		t.Errorf("identity combiner called %d times for %d values: called again on every emit", calls, n)
	}
}

func TestCombinerOtherKeys(t *testing.T) {
	t.Parallel()
	// A combiner that renames keys: its records for other keys go on as
	// they are emitted, and nothing is lost.
	upper := func(ctx context.Context, key string, seq iter.Seq[any], emit Emit) error {
		values := slices.Collect(seq)
		for range values {
			if err := emit(strings.ToUpper(key), 1); err != nil {
				return err
			}
		}
		return nil
	}
	const n = 200
	got := runCombined(t, upper, []string{"a", "b"}, n)
	if len(got) != 2 || len(got["A"]) != n || len(got["B"]) != n {
		t.Errorf("got keys %d, A %d values, B %d values; want 2 keys of %d values", len(got), len(got["A"]), len(got["B"]), n)
	}
}

func TestCombinerError(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	reg.Map("m", func(ctx context.Context, rec Record, emit Emit) error {
		for i := 0; i < 2*combineEvery; i++ {
			if err := emit("k", 1); err != nil {
				return err
			}
		}
		return nil
	})
	reg.Reduce("c", func(ctx context.Context, key string, values iter.Seq[any], emit Emit) error {
		return fmt.Errorf("no")
	})
	io := taskIO{data: func([]byte) error { return nil }, status: func(uint64, uint64) error { return nil }}
	h := taskHeader{Run: "r", Stage: "s", Kind: TaskMap, Combine: "c"}
	_, err := reg.execute(context.Background(), "m", appendMapPayload(nil, &h, []rawRecord{{Value: mustValue(t, "x")}}), io)
	var fe *FunctionError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "c: no") {
		t.Fatalf("err = %v, want the combiner's error", err)
	}
}

func TestCombinerFlushesInKeyOrder(t *testing.T) {
	t.Parallel()
	keys := []string{"b", "a", "ab\x00", "ab", "abcdefgh2", "abcdefgh1", "abcdefgh", "é", "z", "", "A", "abcdefg\xff"}
	first := func(ctx context.Context, key string, values iter.Seq[any], emit Emit) error {
		for v := range values {
			return emit(key, v)
		}
		return nil
	}
	var order []string
	for _, r := range runCombinedRaw(t, first, keys, 1) {
		order = append(order, r.Key)
	}
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(order, want) {
		t.Errorf("keys sent in order %q, want %q", order, want)
	}
}

// TestSumCombinerMatchesGeneric: a combiner registered with Sum sends
// exactly the bytes SumInt64 sends as an ordinary combiner, past the
// combineKeys bound too.
func TestSumCombinerMatchesGeneric(t *testing.T) {
	t.Parallel()
	values := []any{1, int64(2), -3, int64(math.MaxUint32) + 1, uint64(math.MaxUint64), 2.9, "x", nil, int32(4), true}
	reg := NewRegistry()
	reg.Map("m", func(ctx context.Context, rec Record, emit Emit) error {
		for i := 0; i < combineKeys+5000; i++ {
			if err := emit(fmt.Sprintf("k%06d", i%(combineKeys+3000)), values[i%len(values)]); err != nil {
				return err
			}
		}
		for _, v := range values {
			if err := emit("mixed", v); err != nil {
				return err
			}
		}
		return nil
	})
	reg.Reduce("generic", SumInt64)
	reg.Sum("fast")
	run := func(combine string) []byte {
		var out []byte
		io := taskIO{data: func(b []byte) error { out = append(out, b...); return nil }, status: func(uint64, uint64) error { return nil }}
		h := taskHeader{Run: "r", Stage: "s", Kind: TaskMap, Combine: combine}
		sum, err := reg.execute(context.Background(), "m", appendMapPayload(nil, &h, []rawRecord{{Value: mustValue(t, "x")}}), io)
		if err != nil {
			t.Fatal(err)
		}
		return append(out, sum...)
	}
	generic, fast := run("generic"), run("fast")
	if !bytes.Equal(generic, fast) {
		t.Errorf("Sum's combiner sent %d bytes that differ from SumInt64's %d", len(fast), len(generic))
	}
	if kind, ok := reg.Kind("fast"); !ok || kind != TaskReduce {
		t.Errorf("Kind(fast) = %v, %v; want a reduce function", kind, ok)
	}
}

func TestSumCombinerRejectsUnencodable(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	reg.Map("m", func(ctx context.Context, rec Record, emit Emit) error { return emit("k", make(chan int)) })
	reg.Sum("fast")
	io := taskIO{data: func([]byte) error { return nil }, status: func(uint64, uint64) error { return nil }}
	h := taskHeader{Run: "r", Stage: "s", Kind: TaskMap, Combine: "fast"}
	if _, err := reg.execute(context.Background(), "m", appendMapPayload(nil, &h, []rawRecord{{Value: mustValue(t, "x")}}), io); err == nil {
		t.Error("emitting a channel: no error")
	}
}
