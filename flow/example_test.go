package flow_test

import (
	"context"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
)

// A pipeline of two stages run with an embedded job server and local
// workers: the map emits each word's length, the reduce keeps the
// longest word of each length.
func Example() {
	dir, err := os.MkdirTemp("", "gearflow-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "words.txt"), []byte("map\nreduce\nshuffle\njob\nworker\ngearman\n"), 0o644)
	pipeline := `
version: 1
name: lengths
stages:
  - name: measure
    kind: map
    function: len.map
    input: { from: "file:words.txt", split: { lines: 2 } }
    partition: { by: key, count: 2 }
  - name: longest
    kind: reduce
    needs: [measure]
    function: len.max
output:
  to: out/lengths.tsv
`
	p, err := spec.Parse([]byte(pipeline), filepath.Join(dir, "lengths.yaml"), nil)
	if err != nil {
		panic(err)
	}

	reg := flow.NewRegistry()
	reg.Map("len.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		w := rec.Value.(string)
		return emit(fmt.Sprint(len(w)), w)
	})
	reg.Reduce("len.max", func(ctx context.Context, key string, seq iter.Seq[any], emit flow.Emit) error {
		values := slices.Collect(seq)
		best := ""
		for _, v := range values {
			if s := v.(string); s > best {
				best = s
			}
		}
		return emit(key, best)
	})

	res, err := flow.Run(context.Background(), p, reg, flow.Options{StateDir: filepath.Join(dir, "state")})
	if err != nil {
		panic(err)
	}
	out, _ := os.ReadFile(res.Output)
	fmt.Print(string(out))
	fmt.Println(strings.TrimPrefix(res.Output, dir), res.OutputRecords, "records")
	// Output:
	// 3	map
	// 6	worker
	// 7	shuffle
	// /out/lengths.tsv 3 records
}
