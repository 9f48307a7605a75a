package flow

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/gearflow/gearflow/flow/internal/msgp"
)

func mustValue(t testing.TB, v any) []byte {
	t.Helper()
	b, err := EncodeValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValueRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   any
		want any
	}{
		{"nil", nil, nil},
		{"string", "héllo", "héllo"},
		{"long string", string(bytes.Repeat([]byte("x"), 70000)), string(bytes.Repeat([]byte("x"), 70000))},
		{"small int", 3, int64(3)},
		{"negative", -40, int64(-40)},
		{"int64 min", int64(-1 << 63), int64(-1 << 63)},
		{"uint64 max", uint64(1<<64 - 1), uint64(1<<64 - 1)},
		{"big uint fits", 300000, int64(300000)},
		{"float", 2.5, 2.5},
		{"bool", true, true},
		{"slice", []any{"a", 1}, []any{"a", int64(1)}},
		{"map", map[string]any{"n": 2}, map[string]any{"n": int64(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeValue(mustValue(t, tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if u, ok := got.(uint64); ok && u <= 1<<63-1 {
				got = int64(u)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodeValue(EncodeValue(%v)) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestTaskPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	h := taskHeader{Run: "r1", Stage: "count", Task: 7, Attempt: 2, Kind: TaskMap, Combine: "wc.sum",
		Input: "in.txt:1-2", Params: map[string]string{"b": "2", "a": "1"}, Source: "users", SkipBad: "1%",
		File: "/data/users.csv", Lines: []int64{2, 4},
		BadLines: []badLine{{Before: 0, Line: 1, Offset: 0, Err: "bare \" in non-quoted-field", Text: ""},
			{Before: 2, Line: 5, Offset: 30, Err: "a record of 3 fields under a header of 2", Text: `["a","b","c"]`}}}
	recs := []rawRecord{{Key: "", Value: mustValue(t, "a b")}, {Key: "k", Value: mustValue(t, 5)}}
	got, err := decodeTask(appendMapPayload(nil, &h, recs))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.taskHeader, h) || !reflect.DeepEqual(got.Records, recs) {
		t.Errorf("decoded %+v, want %+v %+v", got, h, recs)
	}

	h.Kind, h.Combine, h.BadLines = TaskReduce, "", nil
	groups := []group{{Key: "a", Values: [][]byte{mustValue(t, 1), mustValue(t, 2)}}, {Key: "b", Values: [][]byte{mustValue(t, 3)}}}
	got, err = decodeTask(appendReducePayload(nil, &h, groups))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Groups, groups) {
		t.Errorf("groups = %+v, want %+v", got.Groups, groups)
	}
}

func TestDecodeTaskErrors(t *testing.T) {
	t.Parallel()
	good := appendMapPayload(nil, &taskHeader{Run: "r", Stage: "s", Kind: TaskMap}, nil)
	// The executor would read only one data field and drop the other.
	reduce := taskHeader{Run: "r", Stage: "s", Kind: TaskReduce}
	recs := []rawRecord{{Key: "a", Value: []byte{0x01}}}
	twice := appendMapPayload(nil, &taskHeader{Run: "r", Stage: "s", Kind: TaskMap}, recs)
	twice[0]++ // one more map entry: a second "records"
	twice = appendRecords(msgp.AppendString(twice, "records"), recs)
	badLines := func(kind TaskKind, recs []rawRecord, lines ...badLine) []byte {
		h := &taskHeader{Run: "r", Stage: "s", Kind: kind, File: "f", BadLines: lines}
		if kind == TaskReduce {
			return appendReducePayload(nil, h, []group{{Key: "a", Values: [][]byte{{0x01}}}})
		}
		return appendMapPayload(nil, h, recs)
	}
	line := badLine{Line: 3, Err: "not JSON", Text: "x"}
	shortLine := badLines(TaskMap, recs, line)
	i := bytes.Index(shortLine, []byte("bad_lines"))
	shortLine[i+len("bad_lines")+1] = 0x94 // [before, line, offset, error]
	tests := []struct {
		name string
		in   []byte
	}{
		{"bad line past the records", badLines(TaskMap, recs, badLine{Before: 2, Line: 3, Err: "e"})},
		{"bad lines out of order", badLines(TaskMap, recs, badLine{Before: 1, Line: 3, Err: "e"}, badLine{Before: 0, Line: 1, Err: "e"})},
		{"bad lines in a reduce payload", badLines(TaskReduce, nil, line)},
		{"bad line without its error", badLines(TaskMap, recs, badLine{Line: 3})},
		{"bad line at a negative line", badLines(TaskMap, recs, badLine{Line: -1, Err: "e"})},
		{"bad line of four elements", shortLine},
		{"empty", nil},
		{"not a map", []byte{0x91, 0x01}},
		{"truncated", good[:len(good)-3]},
		{"wrong version", bytes.Replace(good, []byte{0xa1, 'v', 0x01}, []byte{0xa1, 'v', 0x09}, 1)},
		{"no kind", msgp.AppendInt(msgp.AppendString(msgp.AppendMapLen(nil, 1), "v"), 1)},
		{"reduce with records", appendRecords(msgp.AppendString(appendTaskHeader(nil, &reduce), "records"), recs)},
		{"map with groups", appendReducePayload(nil, &taskHeader{Run: "r", Stage: "s", Kind: TaskMap}, []group{{Key: "a", Values: [][]byte{{0x01}}}})},
		{"records twice", twice},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := decodeTask(tt.in); !errors.Is(err, ErrMalformed) {
				t.Errorf("decodeTask(%x) error = %v, want ErrMalformed", tt.in, err)
			}
		})
	}
}

func TestSummaryRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range []Summary{
		{RecordsIn: 10, RecordsOut: 1 << 40, Batches: 3},
		{RecordsIn: 7, RecordsOut: 5, Files: []outFile{{Key: "r/s/task-000001/attempt-1/part-00000.rec", Part: 0, Records: 2, Bytes: 40}, {Key: "r/s/task-000001/attempt-1/part-00003.rec", Part: 3, Records: 3, Bytes: 1 << 33}}},
		{RecordsIn: 3, RecordsOut: 1, Bad: []BadRecord{{Where: "in.jsonl:2", Err: "invalid character 'x'", Record: `{"n": x}`}, {Where: "in.jsonl@54", Err: "e", Record: ""}}},
	} {
		got, err := decodeSummary(appendSummary(nil, s))
		if err != nil || !reflect.DeepEqual(got, s) {
			t.Errorf("decodeSummary = %+v, %v; want %+v", got, err, s)
		}
	}
}

// FuzzDecodeTask checks that no payload crashes the decoder, and that a
// decoded payload encodes back to one that decodes the same.
func FuzzDecodeTask(f *testing.F) {
	h := taskHeader{Run: "r", Stage: "s", Task: 1, Attempt: 1, Kind: TaskMap, Params: map[string]string{"x": "y"}}
	f.Add(appendMapPayload(nil, &h, []rawRecord{{Key: "a", Value: []byte{0x01}}}))
	h.File, h.BadLines = "in.jsonl", []badLine{{Before: 0, Line: 1, Err: "invalid character 'x'", Text: "x"}, {Before: 1, Line: 3, Offset: 8, Err: "e", Text: ""}}
	f.Add(appendMapPayload(nil, &h, []rawRecord{{Key: "a", Value: []byte{0x01}}}))
	h.File, h.BadLines = "", nil
	h.Kind = TaskReduce
	f.Add(appendReducePayload(nil, &h, []group{{Key: "a", Values: [][]byte{{0x01}, {0xa1, 'x'}}}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := decodeTask(data)
		if err != nil {
			return
		}
		var again []byte
		if tk.Kind == TaskReduce {
			again = appendReducePayload(nil, &tk.taskHeader, tk.Groups)
		} else {
			again = appendMapPayload(nil, &tk.taskHeader, tk.Records)
		}
		tk2, err := decodeTask(again)
		if err != nil {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
		if tk2.Run != tk.Run || tk2.Task != tk.Task || len(tk2.Records) != len(tk.Records) || len(tk2.Groups) != len(tk.Groups) ||
			!reflect.DeepEqual(tk2.BadLines, tk.BadLines) {
			t.Fatalf("round trip changed the task: %+v vs %+v", tk, tk2)
		}
	})
}

func TestExecuteMapWithCombiner(t *testing.T) {
	t.Parallel()
	reg := testRegistry()
	var recs []rawRecord
	for _, line := range []string{"a b a", "b c", ""} {
		recs = append(recs, rawRecord{Value: mustValue(t, line)})
	}
	h := taskHeader{Run: "r", Stage: "count", Task: 0, Attempt: 1, Kind: TaskMap, Combine: "wc.sum"}
	var got []rawRecord
	var batches int
	io := taskIO{
		data: func(b []byte) error {
			batches++
			var err error
			got, err = decodeBatch(got, b)
			return err
		},
		status: func(uint64, uint64) error { return nil },
	}
	res, err := reg.execute(context.Background(), "wc.map", appendMapPayload(nil, &h, recs), io)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := decodeSummary(res)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"a": 2, "b": 2, "c": 1}
	if len(got) != len(want) || sum.RecordsOut != int64(len(got)) || sum.Batches != int64(batches) || sum.RecordsIn != 3 {
		t.Fatalf("got %d records %+v, summary %+v", len(got), got, sum)
	}
	for _, r := range got {
		v, _ := DecodeValue(r.Value)
		if n, _ := Int64(v); n != want[r.Key] {
			t.Errorf("%s = %v, want %d", r.Key, v, want[r.Key])
		}
	}
}

func TestExecuteErrors(t *testing.T) {
	t.Parallel()
	reg := testRegistry()
	reg.Map("boom", func(ctx context.Context, rec Record, emit Emit) error { panic("kaboom") })
	io := taskIO{data: func([]byte) error { return nil }, status: func(uint64, uint64) error { return nil }}
	payload := appendMapPayload(nil, &taskHeader{Run: "r", Stage: "s", Kind: TaskMap}, []rawRecord{{Value: mustValue(t, "x")}})
	if _, err := reg.execute(context.Background(), "nope", payload, io); !errors.Is(err, ErrUnknownFunction) {
		t.Errorf("unknown function: err = %v", err)
	}
	var fe *FunctionError
	if _, err := reg.execute(context.Background(), "boom", payload, io); !errors.As(err, &fe) {
		t.Errorf("panic: err = %v, want *FunctionError", err)
	}
	if _, err := reg.execute(context.Background(), "wc.sum", payload, io); err == nil {
		t.Error("reduce function on a map task: no error")
	}
}

func testRegistry() *Registry {
	reg := NewRegistry()
	reg.Map("wc.map", func(ctx context.Context, rec Record, emit Emit) error {
		s, _ := rec.Value.(string)
		for _, w := range bytes.Fields([]byte(s)) {
			if err := emit(string(w), 1); err != nil {
				return err
			}
		}
		return nil
	})
	reg.Reduce("wc.sum", func(ctx context.Context, key string, seq iter.Seq[any], emit Emit) error {
		values := slices.Collect(seq)
		var n int64
		for _, v := range values {
			x, _ := Int64(v)
			n += x
		}
		return emit(key, n)
	})
	return reg
}

func BenchmarkCodec(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run("records="+strconv.Itoa(n), func(b *testing.B) {
			recs := make([]rawRecord, n)
			for i := range recs {
				recs[i] = rawRecord{Key: "key" + strconv.Itoa(i), Value: mustValue(b, int64(i))}
			}
			h := taskHeader{Run: "0b7c2a4e-8c0a-4b53-9d39-3f6f2f6f7a11", Stage: "count", Kind: TaskMap}
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				buf = appendMapPayload(buf[:0], &h, recs)
				if _, err := decodeTask(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(buf)))
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

func TestWriteBatchRejectsMalformed(t *testing.T) {
	t.Parallel()
	good := appendRecords(nil, []rawRecord{{Key: "a", Value: mustValue(t, 1)}})
	tests := []struct {
		name string
		in   []byte
	}{
		{"not an array", []byte{0x81}},
		{"record not a pair", append(msgp.AppendArrayLen(nil, 1), 0x91, 0xa1, 'a')},
		{"key not a string", append(msgp.AppendArrayLen(nil, 1), 0x92, 0x01, 0x01)},
		{"truncated", good[:len(good)-1]},
		{"trailing bytes", append(good, 0x01)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			w := &attemptOutput{path: func() string { return dir + "/r.rec" }}
			defer w.discard()
			if _, err := writeBatch(w, tt.in); !errors.Is(err, ErrMalformed) {
				t.Errorf("writeBatch(%x) = %v, want ErrMalformed", tt.in, err)
			}
			if len(w.mem) != 0 || w.f != nil {
				t.Errorf("writeBatch(%x) kept %d bytes of a malformed batch", tt.in, len(w.mem))
			}
		})
	}
}
