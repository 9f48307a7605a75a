package spec_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/gearflow/gearflow/flow/spec"
)

func ExampleParse() {
	src := `name: wordcount
params:
  partitions: { type: int, default: 8 }
stages:
  - name: count
    kind: map
    function: wc.map
    input: { from: glob:books/*.txt }
    partition: { by: key, count: ${params.partitions} }
  - name: total
    kind: reduce
    needs: [count]
    function: wc.sum
output:
  to: out/wordcount.tsv
`
	p, err := spec.Parse([]byte(src), "wordcount.yaml", map[string]string{"partitions": "16"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range p.Stages {
		fmt.Printf("%s: %s %s, reads %s %s, %d partitions, %d attempts, timeout %s\n",
			s.Name, s.Kind, s.Function, s.Input.From.Kind, filepath.Base(s.Input.From.Value), s.Partition.Count, s.Retry.MaxAttempts, s.Timeout)
	}
	fmt.Println("output:", p.Output.From, p.Output.Format)

	_, err = spec.Parse([]byte("name: x\nstages:\n  - name: a\n    kind: mapp\n"), "bad.yaml", nil)
	for _, e := range spec.Errors(err) {
		fmt.Println(e)
	}
	// Output:
	// count: map wc.map, reads glob *.txt, 16 partitions, 3 attempts, timeout 10m0s
	// total: reduce wc.sum, reads stage count, 0 partitions, 3 attempts, timeout 10m0s
	// output: total tsv
	// bad.yaml:1:1: pipeline: missing required field "output"
	// bad.yaml:3:5: stage "a": missing required field "function"
	// bad.yaml:4:11: stage "a": kind: unknown value "mapp" (hint: did you mean "map"? use one of map, reduce, task)
}

// TestDocsExample keeps the complete example of docs/PIPELINE.md valid.
func TestDocsExample(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/PIPELINE.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## A complete example\n\n```yaml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/PIPELINE.md has no complete example")
	}
	p, err := spec.Parse(m[1], "wordcount.yaml", map[string]string{"input": "books/moby.txt"})
	if err != nil {
		t.Fatalf("the example does not parse:\n%v", err)
	}
	if len(p.Stages) != 3 || p.Output.From != "total" {
		t.Errorf("example: %d stages, output from %q", len(p.Stages), p.Output.From)
	}
}
