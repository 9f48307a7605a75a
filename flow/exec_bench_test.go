package flow

import (
	"context"
	"fmt"
	"testing"

	"github.com/gearflow/gearflow/flow/internal/msgp"
)

// BenchmarkExecuteMap measures a worker running a word-count map task
// with a combiner over 20,000 lines of 8 words.
func BenchmarkExecuteMap(b *testing.B) {
	reg := testRegistry()
	recs := make([]rawRecord, 20000)
	for i := range recs {
		line := ""
		for j := 0; j < 8; j++ {
			line += fmt.Sprintf("w%04d ", (i*31+j*17)%5000)
		}
		recs[i] = rawRecord{Value: msgp.AppendString(nil, line)}
	}
	payload := appendMapPayload(nil, &taskHeader{Run: "r", Stage: "count", Kind: TaskMap, Combine: "wc.sum"}, recs)
	io := taskIO{data: func([]byte) error { return nil }, status: func(uint64, uint64) error { return nil }}
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := reg.execute(context.Background(), "wc.map", payload, io); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
