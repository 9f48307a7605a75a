package spec_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/flow/spec"
)

// FuzzSpec feeds any bytes to Parse: it must not panic, every error must
// be a positioned *spec.Error, and a pipeline it accepts must validate
// and parse again to the same value.
func FuzzSpec(f *testing.F) {
	f.Add([]byte(full), "input=in.txt")
	f.Add([]byte(minimal), "")
	f.Add([]byte(pipeline("  n: { type: int, default: 2 }\n", "    partition: { count: ${params.n} }\n    input: { from: stage:up }\n", "  to: o.jsonl\n")), "n=3")
	f.Add([]byte(`version: 1
name: shop
defaults: { skip_bad_records: "1%" }
stages:
  - name: users
    kind: map
    function: m
    inputs: [{ name: u, from: file:u.csv, format: csv, header: true }, { name: o, from: "glob:o/*.jsonl", format: jsonl, split: records }]
    partition: { count: 2 }
  - name: orders
    kind: map
    function: m
    input: { name: o, from: file:o.jsonl }
    partition: { count: 2 }
    skip_bad_records: 3
  - name: j
    kind: reduce
    needs: [users, orders]
    function: j
output: { to: out.jsonl }
`), "")
	// param is one -p override, name=value, or "" for none.
	f.Fuzz(func(t *testing.T, data []byte, param string) {
		var params map[string]string
		if name, value, ok := strings.Cut(param, "="); ok {
			params = map[string]string{name: value}
		}
		p, err := spec.Parse(data, "f.yaml", params)
		if err != nil {
			if p != nil {
				t.Fatalf("Parse returned a pipeline and an error: %v", err)
			}
			errs := spec.Errors(err)
			if len(errs) == 0 {
				t.Fatalf("Parse error holds no *spec.Error: %T %v", err, err)
			}
			for _, e := range errs {
				if e.Line < 1 || e.Column < 1 || e.File != "f.yaml" || e.Msg == "" {
					t.Fatalf("error without a position: %#v", e)
				}
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted pipeline does not validate: %v\n%s", err, data)
		}
		again, err := spec.Parse(data, "f.yaml", params)
		if err != nil || !reflect.DeepEqual(p, again) {
			t.Fatalf("second Parse differs: %v", err)
		}
		// The resolved params, given back as -p values, reproduce the pipeline.
		resumed, err := spec.Parse(data, "f.yaml", p.ParamStrings())
		if err != nil || !reflect.DeepEqual(p, resumed) {
			t.Fatalf("Parse with ParamStrings %v differs: %v", p.ParamStrings(), err)
		}
	})
}
