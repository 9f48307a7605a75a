package flow

import (
	"context"
	"maps"
	"sync"
	"testing"
)

// TestSummaryCountersRoundTrip: counters and worker travel in the
// summary and come back; a summary without them (an older worker's, or
// one in another language) still decodes.
func TestSummaryCountersRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   Summary
	}{
		{"plain", Summary{RecordsIn: 2, RecordsOut: 3, Batches: 1}},
		{"counters", Summary{RecordsIn: 2, Counters: map[string]int64{"bad_dates": 7, "skipped": -1, "zero": 0}}},
		{"worker", Summary{RecordsOut: 1, Worker: "w1;slots=4"}},
		{"both with files", Summary{Files: []outFile{{Key: "a/part-00000.rec", Records: 1, Bytes: 9}},
			Counters: map[string]int64{"x": 1 << 40}, Worker: "host/1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := appendSummary(nil, tt.in)
			got, err := decodeSummary(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.RecordsIn != tt.in.RecordsIn || got.RecordsOut != tt.in.RecordsOut || got.Batches != tt.in.Batches ||
				got.Worker != tt.in.Worker || !maps.Equal(got.Counters, tt.in.Counters) || len(got.Files) != len(tt.in.Files) {
				t.Errorf("decode(append(%+v)) = %+v", tt.in, got)
			}
		})
	}
	// A counter that is not an int is a malformed summary, not a crash.
	bad := []byte{0x81, 0xa8, 'c', 'o', 'u', 'n', 't', 'e', 'r', 's', 0x81, 0xa1, 'x', 0xa1, 'y'}
	if _, err := decodeSummary(bad); err == nil {
		t.Error("a string counter value decoded")
	}
}

// TestCountConcurrent: Count is safe from the goroutines a function
// starts, and loses no increment.
func TestCountConcurrent(t *testing.T) {
	t.Parallel()
	s := &taskState{}
	ctx := context.WithValue(context.Background(), infoKey{}, s)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; i < 1000; i++ {
				Count(ctx, "all", 1)
				Count(ctx, string(rune('a'+i%5)), 2)
			}
		})
	}
	wg.Wait()
	got := s.counters.snapshot()
	want := map[string]int64{"all": 8000, "a": 3200, "b": 3200, "c": 3200, "d": 3200, "e": 3200}
	if !maps.Equal(got, want) {
		t.Errorf("counters %v, want %v", got, want)
	}
	Count(context.Background(), "outside", 1) // no task: nothing, no panic
}

// BenchmarkCount is the cost of a counter in a record loop.
func BenchmarkCount(b *testing.B) {
	s := &taskState{}
	ctx := context.WithValue(context.Background(), infoKey{}, s)
	ctx, cancel := context.WithCancel(ctx) // a layer above, as a task has
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		Count(ctx, "records", 1)
	}
	if s.counters.snapshot()["records"] != int64(b.N) {
		b.Fatal("lost increments")
	}
}
