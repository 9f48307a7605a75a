package flow_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/examples/wordcount"
	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
)

// BenchmarkRunWordcount runs the wordcount pipeline end to end on the
// embedded default (server, workers, shuffle, reduce, output) over
// 100,000 lines of 8 words, in tasks of 10,000 lines.
func BenchmarkRunWordcount(b *testing.B) {
	dir := b.TempDir()
	const lines = 100000
	var sb strings.Builder
	for i := 0; i < lines; i++ {
		for j := 0; j < 8; j++ {
			fmt.Fprintf(&sb, "w%04d ", (i*31+j*17)%5000)
		}
		sb.WriteByte('\n')
	}
	in := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(in, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	p, err := spec.Load("../examples/wordcount/wordcount.yaml", map[string]string{
		"input": in, "out": filepath.Join(dir, "out.tsv"), "lines": "10000"})
	if err != nil {
		b.Fatal(err)
	}
	reg := flow.NewRegistry()
	wordcount.Register(reg)
	b.SetBytes(int64(sb.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := flow.Run(b.Context(), p, reg, flow.Options{StateDir: b.TempDir()}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(lines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
