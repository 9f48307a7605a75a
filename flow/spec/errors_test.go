package spec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/flow/spec"
)

// minimal is a valid pipeline the error cases start from.
const minimal = `version: 1
name: wc
stages:
  - name: count
    kind: map
    function: wc.map
    input: { from: file:in.txt }
output:
  to: out.tsv
`

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		yaml   string
		params map[string]string
		want   []string // every error, in order
	}{
		{
			name: "unknown field with a suggestion",
			yaml: strings.Replace(minimal, "    function: wc.map\n", "    function: wc.map\n    concurency: 4\n", 1),
			want: []string{`p.yaml:7:5: stage "count": unknown field "concurency" (hint: did you mean "concurrency"?)`},
		},
		{
			name: "unknown top-level field without a near name",
			yaml: minimal + "zzz: 1\n",
			want: []string{`p.yaml:10:1: pipeline: unknown field "zzz" (hint: allowed fields here: version, name, params, defaults, storage, stages, output)`},
		},
		{
			name: "wrong type",
			yaml: strings.Replace(minimal, "    function: wc.map\n", "    function: wc.map\n    concurrency: lots\n", 1),
			want: []string{`p.yaml:7:18: stage "count": concurrency: expected an integer, found "lots"`},
		},
		{
			name: "mapping where a scalar goes",
			yaml: strings.Replace(minimal, "name: wc\n", "name: { a: b }\n", 1),
			want: []string{`p.yaml:2:7: name: expected a string, found a mapping`},
		},
		{
			name: "missing required fields",
			yaml: "version: 1\nstages:\n  - kind: map\n    input: { from: file:a }\noutput: {}\n",
			want: []string{
				`p.yaml:1:1: pipeline: missing required field "name"`,
				`p.yaml:3:5: stages[0]: missing required field "function"`,
				`p.yaml:3:5: stages[0]: missing required field "name"`,
				`p.yaml:5:9: output: missing required field "to"`,
			},
		},
		{
			name: "duplicate stage names",
			yaml: strings.Replace(minimal, "output:", "  - name: count\n    kind: map\n    function: f\n    input: { from: file:b }\noutput:", 1),
			want: []string{`p.yaml:8:5: stage "count": duplicate stage name (first at line 4) (hint: rename one of them)`},
		},
		{
			name: "duplicate field",
			yaml: strings.Replace(minimal, "    function: wc.map\n", "    function: wc.map\n    function: wc.map2\n", 1),
			want: []string{`p.yaml:7:5: stage "count": duplicate field "function" (first at line 6)`},
		},
		{
			name: "needs names no stage",
			yaml: strings.Replace(minimal, "    function: wc.map\n", "    function: wc.map\n    needs: [cuont]\n", 1),
			want: []string{`p.yaml:7:13: stage "count": needs: no stage is called "cuont" (hint: did you mean "count"? stages: count)`},
		},
		{
			name: "cycle in needs",
			yaml: `name: cyc
stages:
  - name: a
    kind: task
    function: f
    needs: [c]
  - name: b
    kind: task
    function: f
    needs: [a]
  - name: c
    kind: task
    function: f
    needs: [b]
output: { to: out.jsonl }
`,
			want: []string{`p.yaml:6:12: stage "a": needs form a cycle: a -> c -> b -> a (hint: remove one of these needs (or the input: from: that implies it))`},
		},
		{
			name: "input from an unknown stage",
			yaml: strings.Replace(minimal, "from: file:in.txt", "from: stage:nope", 1),
			want: []string{`p.yaml:7:20: stage "count": input: from: no stage is called "nope" (hint: stages: count)`},
		},
		{
			name: "bad duration",
			yaml: minimal + "defaults:\n  timeout: 2 minutes\n",
			want: []string{`p.yaml:11:12: defaults: timeout: bad duration "2 minutes" (hint: use Go durations like 2m, 30s, 1h30m, 500ms)`},
		},
		{
			name: "bad priority",
			yaml: strings.Replace(minimal, "    function: wc.map\n", "    function: wc.map\n    priority: urgent\n", 1),
			want: []string{`p.yaml:7:15: stage "count": priority: unknown value "urgent" (hint: use one of low, normal, high)`},
		},
		{
			name: "bad kind",
			yaml: strings.Replace(minimal, "kind: map", "kind: mapper", 1),
			want: []string{`p.yaml:5:11: stage "count": kind: unknown value "mapper" (hint: did you mean "map"? use one of map, reduce, task)`},
		},
		{
			name: "bad on_failure",
			yaml: strings.Replace(minimal, "    function: wc.map\n", "    function: wc.map\n    on_failure: retry\n", 1),
			want: []string{`p.yaml:7:17: stage "count": on_failure: unknown value "retry" (hint: use fail_fast, continue, or { tolerate: "1%" } (a percentage of tasks) or { tolerate: 3 } (a count))`},
		},
		{
			name: "bad tolerate",
			yaml: strings.Replace(minimal, "    function: wc.map\n", "    function: wc.map\n    on_failure: { tolerate: 200% }\n", 1),
			want: []string{`p.yaml:7:29: stage "count": on_failure: tolerate: bad percentage "200%" (hint: use a percentage above 0 and at most 100, like "1%" or "0.5%", or a count like 3)`},
		},
		{
			name: "bad backoff",
			yaml: minimal + "defaults:\n  retry: { backoff: linear }\n",
			want: []string{`p.yaml:11:21: defaults: retry: backoff: unknown value "linear" (hint: use one of exponential, fixed)`},
		},
		{
			name: "bad split",
			yaml: strings.Replace(minimal, "input: { from: file:in.txt }", "input: { from: file:in.txt, split: { words: 10 } }", 1),
			want: []string{`p.yaml:7:42: stage "count": input: split: unknown field "words" (hint: allowed fields here: lines, bytes, records, files)`},
		},
		{
			name: "unknown output extension",
			yaml: strings.Replace(minimal, "to: out.tsv", "to: out.json", 1),
			want: []string{`p.yaml:9:7: output: to: unknown extension ".json": cannot tell the format (hint: name the file .tsv, .csv or .jsonl, or set format: tsv|csv|jsonl)`},
		},
		{
			name: "reduce with a combine",
			yaml: strings.Replace(minimal, "output:", `  - name: total
    kind: reduce
    needs: [count]
    function: wc.sum
    combine: wc.sum
output:`, 1),
			want: []string{`p.yaml:12:5: stage "total": combine applies to map stages only, not to a reduce stage (hint: a combiner runs on the map side: move it to the map stage this stage needs)`},
		},
		{
			name: "map without input",
			yaml: strings.Replace(minimal, "    input: { from: file:in.txt }\n", "", 1),
			want: []string{`p.yaml:4:5: stage "count": a map stage needs an input (hint: add input: { from: file:PATH } (or glob:PATTERN, stage:NAME))`},
		},
		{
			name: "unknown param in interpolation",
			yaml: "params:\n  input: { type: path, default: a.txt }\n" + strings.Replace(minimal, "file:in.txt", "file:${params.inptu}", 1),
			want: []string{`p.yaml:9:25: unknown param "inptu" in ${params.inptu} (hint: did you mean "input"? declared params: input)`},
		},
		{
			name: "expression in interpolation",
			yaml: strings.Replace(minimal, "to: out.tsv", "to: ${env.HOME}/out.tsv", 1),
			want: []string{`p.yaml:9:7: bad interpolation ${env.HOME} (hint: only ${params.NAME} lookups are allowed: there is no expression language)`},
		},
		{
			name:   "override of an undeclared param",
			yaml:   "params:\n  n: { type: int, default: 1 }\n" + minimal,
			params: map[string]string{"m": "2"},
			want:   []string{`p.yaml:1:1: -p m=2: no param "m" is declared (hint: declared params: n)`},
		},
		{
			name:   "override of the wrong type",
			yaml:   "params:\n  n: { type: int, default: 1 }\n" + minimal,
			params: map[string]string{"n": "many"},
			want:   []string{`p.yaml:2:3: -p n=many: param "n" expects an int, found "many" (hint: pass it as -p n=N)`},
		},
		{
			name: "required param without a value",
			yaml: "params:\n  input: { type: path, required: true }\n" + strings.Replace(minimal, "file:in.txt", "file:${params.input}", 1),
			want: []string{`p.yaml:2:3: param "input" is required and has no value (hint: pass it with -p input=PATH)`},
		},
		{
			name: "interpolated count of the wrong type",
			yaml: "params:\n  n: { type: string, default: eight }\n" + strings.Replace(minimal, "    function: wc.map\n", "    function: wc.map\n    partition: { by: key, count: ${params.n} }\n", 1),
			want: []string{`p.yaml:9:34: stage "count": partition: count: expected an integer, found "eight"`},
		},
		{
			name: "not YAML",
			yaml: "name: [unclosed\n",
			want: []string{`p.yaml:2:1: did not find expected ',' or ']' (hint: the file is not valid YAML)`},
		},
		{
			name: "not YAML, further down",
			yaml: strings.Replace(minimal, "input: { from: file:in.txt }", "input: { from: file:in.txt", 1),
			want: []string{`p.yaml:7:1: did not find expected ',' or '}' (hint: the file is not valid YAML)`},
		},
		{
			name: "not YAML, a scanner error",
			yaml: strings.Replace(minimal, "input: { from: file:in.txt }", "input: @x", 1),
			want: []string{`p.yaml:7:1: found character that cannot start any token (hint: the file is not valid YAML)`},
		},
		{
			name: "not YAML, a stray list item",
			yaml: minimal + "- x\n",
			want: []string{`p.yaml:10:1: did not find expected key (hint: the file is not valid YAML)`},
		},
		{
			name: "empty file",
			yaml: "",
			want: []string{`p.yaml:1:1: the pipeline file is empty (hint: start with version: 1, name: and stages:)`},
		},
		{
			name: "two documents",
			yaml: minimal + "---\nname: other\n",
			want: []string{`p.yaml:10:1: a pipeline file holds one YAML document (hint: split the documents into separate files)`},
		},
		{
			name: "unsupported version",
			yaml: strings.Replace(minimal, "version: 1", "version: 2", 1),
			want: []string{`p.yaml:1:10: version: unsupported version 2 (hint: this gearflow reads version: 1)`},
		},
		{
			name: "several independent errors, sorted by position",
			yaml: `name: wc
defaults:
  concurrency: 0
stages:
  - name: count
    kind: map
    function: wc.map
    input: { from: ftp://x }
    timeout: soon
output:
  to: out.xml
`,
			want: []string{
				`p.yaml:3:16: defaults: concurrency: must be at least 1, found 0`,
				`p.yaml:8:20: stage "count": input: from: unknown source "ftp://x" (hint: use file:PATH, glob:PATTERN, s3://BUCKET/KEY or stage:NAME)`,
				`p.yaml:9:14: stage "count": timeout: bad duration "soon" (hint: use Go durations like 2m, 30s, 1h30m, 500ms)`,
				`p.yaml:11:7: output: to: unknown extension ".xml": cannot tell the format (hint: name the file .tsv, .csv or .jsonl, or set format: tsv|csv|jsonl)`,
			},
		},
		{
			name: "bad param type",
			yaml: "params:\n  n: { type: integer }\n" + minimal,
			want: []string{
				`p.yaml:2:14: param "n": type: unknown value "integer" (hint: did you mean "int"? use one of string, int, float, bool, duration, path)`,
			},
		},
		{
			name: "required with default",
			yaml: "params:\n  n: { type: int, required: true, default: 3 }\n" + minimal,
			want: []string{
				`p.yaml:2:35: param "n": a required param cannot have a default (hint: drop required: true, or drop the default)`,
			},
		},
		{
			name: "default of the wrong type",
			yaml: "params:\n  n: { type: int, default: three }\n" + minimal,
			want: []string{
				`p.yaml:2:28: param "n": default expects an int, found "three"`,
			},
		},
		{
			name: "default refers to a param",
			yaml: "params:\n  n: { type: string, default: \"${params.m}\" }\n" + minimal,
			want: []string{
				`p.yaml:2:31: param "n": default cannot refer to params (hint: a param's default is a plain value)`,
			},
		},
		{
			name: "bad param name",
			yaml: "params:\n  9n: { type: int }\n" + minimal,
			want: []string{
				`p.yaml:2:3: params: bad param name "9n" (hint: use letters, digits, _ and -, starting with a letter or _)`,
			},
		},
		{
			name: "param declaration not a mapping",
			yaml: "params:\n  n: int\n" + minimal,
			want: []string{
				`p.yaml:2:6: param "n": expected a mapping, found "int"`,
			},
		},
		{
			name: "required not a bool",
			yaml: "params:\n  n: { required: yes }\n" + minimal,
			want: []string{
				`p.yaml:2:18: param "n": required: expected true or false, found "yes" (hint: use true or false)`,
			},
		},
		{
			name: "split with two units",
			yaml: strings.Replace(minimal, "{ from: file:in.txt }", "{ from: file:in.txt, split: { lines: 1, bytes: 2 } }", 1),
			want: []string{
				`p.yaml:7:40: stage "count": input: split: give exactly one of lines, bytes, records, files (hint: use one of lines, bytes, records, files, as { lines: 20000 })`,
			},
		},
		{
			name: "bare split unknown",
			yaml: strings.Replace(minimal, "{ from: file:in.txt }", "{ from: file:in.txt, split: words }", 1),
			want: []string{
				`p.yaml:7:40: stage "count": input: split: unknown value "words" (hint: use one of lines, bytes, records, files)`,
			},
		},
		{
			name: "split files on a file",
			yaml: strings.Replace(minimal, "{ from: file:in.txt }", "{ from: file:in.txt, split: files }", 1),
			want: []string{
				`p.yaml:7:40: stage "count": input: split: files applies to a glob input (hint: use from: glob:PATTERN to read several files)`,
			},
		},
		{
			name: "bad size",
			yaml: strings.Replace(minimal, "{ from: file:in.txt }", "{ from: file:in.txt, split: { bytes: 4 gigs } }", 1),
			want: []string{
				`p.yaml:7:49: stage "count": input: split: bytes: bad size "4 gigs" (hint: use a byte count like 65536, 64KiB, 4MiB or 1MB)`,
			},
		},
		{
			name: "zero lines",
			yaml: strings.Replace(minimal, "{ from: file:in.txt }", "{ from: file:in.txt, split: { lines: 0 } }", 1),
			want: []string{
				`p.yaml:7:49: stage "count": input: split: lines: must be at least 1, found 0`,
			},
		},
		{
			name: "bad glob",
			yaml: strings.Replace(minimal, "{ from: file:in.txt }", "{ from: \"glob:[a-\" }", 1),
			want: []string{
				`p.yaml:7:20: stage "count": input: from: bad glob pattern "[a-" (hint: see path/filepath.Match: * ? [a-z] and \ escapes)`,
			},
		},
		{
			name: "input without from",
			yaml: strings.Replace(minimal, "{ from: file:in.txt }", "{ split: lines }", 1),
			want: []string{
				`p.yaml:7:12: stage "count": input: missing required field "from" (hint: use file:PATH, glob:PATTERN, s3://BUCKET/KEY or stage:NAME)`,
			},
		},
		{
			name: "empty file source",
			yaml: strings.Replace(minimal, "{ from: file:in.txt }", "{ from: \"file:\" }", 1),
			want: []string{
				`p.yaml:7:20: stage "count": input: from: "file:" names nothing (hint: use file:PATH, glob:PATTERN, s3://BUCKET/KEY or stage:NAME)`,
			},
		},
		{
			name: "stage params nested",
			yaml: strings.Replace(minimal, "    function: wc.map\n", "    function: wc.map\n    params: { a: [1, 2] }\n", 1),
			want: []string{
				`p.yaml:7:18: stage "count": params: a: expected a value, found a list (hint: stage params are plain values: strings, numbers, booleans)`,
			},
		},
		{
			name: "function with a space",
			yaml: strings.Replace(minimal, "function: wc.map", "function: wc map", 1),
			want: []string{
				`p.yaml:6:15: stage "count": function: bad function name "wc map" (hint: a Gearman function name is any non-empty text without spaces)`,
			},
		},
		{
			name: "speculative not a bool",
			yaml: strings.Replace(minimal, "    function: wc.map\n", "    function: wc.map\n    speculative: yes\n", 1),
			want: []string{
				`p.yaml:7:18: stage "count": speculative: expected true or false, found "yes" (hint: use true or false)`,
			},
		},
		{
			name: "needs not a list",
			yaml: strings.Replace(minimal, "    function: wc.map\n", "    function: wc.map\n    needs: other\n", 1),
			want: []string{
				`p.yaml:7:12: stage "count": needs: expected a list of stage names, found "other" (hint: write needs: [stage, ...])`,
			},
		},
		{
			name: "reduce without needs",
			yaml: strings.Replace(minimal, "output:", "  - name: total\n    kind: reduce\n    function: wc.sum\noutput:", 1),
			want: []string{
				`p.yaml:8:5: stage "total": a reduce stage needs the stage it reads (hint: add needs: [STAGE] naming the stage whose output it reduces)`,
			},
		},
		{
			name: "map with two needs",
			yaml: strings.Replace(minimal, "output:", "  - name: b\n    kind: task\n    function: t\n  - name: total\n    kind: map\n    needs: [count, b]\n    function: wc.sum\noutput:", 1),
			want: []string{
				`p.yaml:11:5: stage "total": a map stage with several needs must say which one it reads (hint: add input: { from: stage:NAME } naming one of its needs)`,
			},
		},
		{
			name: "cogroup of unlike partitions",
			yaml: strings.Replace(minimal, "output:", "    partition: { count: 4 }\n  - name: b\n    kind: task\n    function: t\n  - name: total\n    kind: reduce\n    needs: [count, b]\n    function: wc.sum\noutput:", 1),
			want: []string{
				`p.yaml:12:5: stage "total": reads count (4 partitions) and b (1 partitions): a cogroup needs the same count (hint: give the stages it reads the same partition: { count: N })`,
			},
		},
		{
			name: "inputs without a name",
			yaml: strings.Replace(minimal, "input: { from: file:in.txt }", "inputs: [{ from: file:in.txt }, { name: b, from: file:b.txt }]", 1),
			want: []string{
				`p.yaml:7:14: stage "count": inputs[0]: missing required field "name" (hint: add name: NAME; functions see it as the record's Source)`,
			},
		},
		{
			name: "input and inputs",
			yaml: strings.Replace(minimal, "input: { from: file:in.txt }", "input: { from: file:in.txt }\n    inputs: [{ name: a, from: file:in.txt }]", 1),
			want: []string{
				`p.yaml:8:5: stage "count": give input or inputs, not both (hint: list every input under inputs: and drop input:)`,
			},
		},
		{
			name: "header on jsonl",
			yaml: strings.Replace(minimal, "input: { from: file:in.txt }", "input: { from: file:in.txt, format: jsonl, header: true }", 1),
			want: []string{
				`p.yaml:7:48: stage "count": input: header applies to csv input, not jsonl (hint: a header names CSV fields: set format: csv)`,
			},
		},
		{
			name: "bad skip_bad_records",
			yaml: strings.Replace(minimal, "input: { from: file:in.txt }", "input: { from: file:in.txt }\n    skip_bad_records: lots", 1),
			want: []string{
				`p.yaml:8:23: stage "count": skip_bad_records: bad value "lots" (hint: use a count of records per task like 10, or a share of a task's records like "1%")`,
			},
		},
		{
			name: "need listed twice",
			yaml: strings.Replace(minimal, "output:", "  - name: total\n    kind: reduce\n    needs: [count, count]\n    function: wc.sum\noutput:", 1),
			want: []string{
				`p.yaml:10:20: stage "total": needs: "count" is listed twice`,
			},
		},
		{
			name: "output from unknown",
			yaml: strings.Replace(minimal, "  to: out.tsv", "  from: totl\n  to: out.tsv", 1),
			want: []string{
				`p.yaml:9:9: output: from: no stage is called "totl" (hint: stages: count)`,
			},
		},
		{
			name: "empty output path",
			yaml: strings.Replace(minimal, "to: out.tsv", "to: \"file:\"", 1),
			want: []string{
				`p.yaml:9:7: output: to: empty path (hint: give a path such as file:out/result.tsv)`,
			},
		},
		{
			name: "no extension",
			yaml: strings.Replace(minimal, "to: out.tsv", "to: out", 1),
			want: []string{
				`p.yaml:9:7: output: to: no extension: cannot tell the format (hint: name the file .tsv, .csv or .jsonl, or set format: tsv|csv|jsonl)`,
			},
		},
		{
			name: "bad format",
			yaml: strings.Replace(minimal, "to: out.tsv", "to: out\n  format: xml", 1),
			want: []string{
				`p.yaml:10:11: output: format: unknown value "xml" (hint: use one of tsv, csv, jsonl)`,
			},
		},
		{
			name: "stages empty",
			yaml: "name: x\nstages: []\noutput: { to: o.tsv }\n",
			want: []string{
				`p.yaml:2:9: stages: at least one stage is required (hint: add a stage with name, kind and function)`,
			},
		},
		{
			name: "stages a mapping",
			yaml: "name: x\nstages: { a: 1 }\noutput: { to: o.tsv }\n",
			want: []string{
				`p.yaml:2:9: stages: expected a list, found a mapping (hint: write stages: as a list of - name: ... items)`,
			},
		},
		{
			name: "root a list",
			yaml: "- a\n- b\n",
			want: []string{
				`p.yaml:1:1: pipeline: expected a mapping, found a list`,
			},
		},
		{
			name: "bad stage name",
			yaml: strings.Replace(minimal, "name: count", "name: \"a:b\"", 1),
			want: []string{
				`p.yaml:4:11: stages[0]: name: bad name "a:b" (hint: use letters, digits, _ . and -, starting with a letter or digit)`,
			},
		},
		{
			name: "bad pipeline name",
			yaml: strings.Replace(minimal, "name: wc", "name: \"\"", 1),
			want: []string{
				`p.yaml:2:7: name: must not be empty (hint: use letters, digits, _ . and -, starting with a letter or digit)`,
			},
		},
		{
			name: "null value",
			yaml: strings.Replace(minimal, "function: wc.map", "function:", 1),
			want: []string{
				`p.yaml:6:14: stage "count": function: expected a function name, found nothing`,
			},
		},
		{
			name: "tolerate zero count",
			yaml: strings.Replace(minimal, "    function: wc.map\n", "    function: wc.map\n    on_failure: { tolerate: 0 }\n", 1),
			want: []string{
				`p.yaml:7:29: stage "count": on_failure: tolerate: bad value "0" (hint: use a percentage like "1%" or "0.5%", or a count of tasks like 3)`,
			},
		},
		{
			name: "tolerate missing",
			yaml: strings.Replace(minimal, "    function: wc.map\n", "    function: wc.map\n    on_failure: { tol: 1 }\n", 1),
			want: []string{
				`p.yaml:7:17: stage "count": on_failure: missing required field "tolerate" (hint: use fail_fast, continue, or { tolerate: "1%" } (a percentage of tasks) or { tolerate: 3 } (a count))`,
				`p.yaml:7:19: stage "count": on_failure: unknown field "tol" (hint: did you mean "tolerate"?)`,
			},
		},
		{
			name: "on_failure list",
			yaml: strings.Replace(minimal, "    function: wc.map\n", "    function: wc.map\n    on_failure: [continue]\n", 1),
			want: []string{
				`p.yaml:7:17: stage "count": on_failure: expected fail_fast, continue or a tolerate mapping, found a list (hint: use fail_fast, continue, or { tolerate: "1%" } (a percentage of tasks) or { tolerate: 3 } (a count))`,
			},
		},
		{
			name: "negative timeout",
			yaml: strings.Replace(minimal, "    function: wc.map\n", "    function: wc.map\n    timeout: -1s\n", 1),
			want: []string{
				`p.yaml:7:14: stage "count": timeout: must not be negative, found -1s`,
			},
		},
		{
			name: "raw reduce",
			yaml: strings.Replace(minimal, "output:", "  - name: total\n    kind: reduce\n    needs: [count]\n    function: wc.sum\n    encoding: raw\noutput:", 1),
			want: []string{
				`p.yaml:12:15: stage "total": encoding: raw applies to map and task stages (hint: reduce tasks carry key groups, which need msgpack)`,
			},
		},
		{
			name: "stage input split by lines",
			yaml: strings.Replace(minimal, "output:", "  - name: t\n    kind: map\n    function: m\n    input: { from: stage:count, split: { lines: 5 } }\noutput:", 1),
			want: []string{
				`p.yaml:11:40: stage "t": input: split: a stage's output splits by records, not lines (hint: use split: { records: N })`,
			},
		},
		{
			name: "reduce reading itself",
			yaml: strings.Replace(minimal, "output:", "  - name: t\n    kind: reduce\n    function: m\n    input: { from: stage:t }\noutput:", 1),
			want: []string{
				`p.yaml:11:20: stage "t": input: from: stage "t" is this stage (hint: a stage cannot read its own output)`,
			},
		},
		{
			name: "unterminated interpolation",
			yaml: strings.Replace(minimal, "to: out.tsv", "to: \"out-${params.x.tsv\"", 1),
			want: []string{
				`p.yaml:9:7: unterminated "${params.x.tsv" (hint: write ${params.NAME}, or $${ for a literal "${")`,
			},
		},
		{
			name: "partition count missing",
			yaml: strings.Replace(minimal, "    function: wc.map\n", "    function: wc.map\n    partition: { by: key }\n", 1),
			want: []string{
				`p.yaml:7:16: stage "count": partition: missing required field "count" (hint: write partition: { by: key, count: 8 })`,
			},
		},
		{
			name: "aliases",
			yaml: "name: x\nd: &d 1\n",
			want: []string{
				`p.yaml:1:1: pipeline: missing required field "output"`,
				`p.yaml:1:1: pipeline: missing required field "stages"`,
				`p.yaml:2:1: pipeline: unknown field "d" (hint: allowed fields here: version, name, params, defaults, storage, stages, output)`,
			},
		},
		{
			name: "merge key",
			yaml: "name: x\nstages:\n  - &s { name: a, kind: task, function: f }\n  - <<: *s\n    name: b\noutput: { to: o.tsv }\n",
			want: []string{
				`p.yaml:4:5: stage "b": YAML merge keys (<<) are not supported (hint: repeat the fields, or put shared settings under defaults:)`,
				`p.yaml:4:5: stage "b": missing required field "function"`,
				`p.yaml:4:5: stage "b": missing required field "kind"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := spec.Parse([]byte(tt.yaml), "p.yaml", tt.params)
			if err == nil {
				t.Fatalf("Parse succeeded (%q), want errors:\n%s", p.Name, strings.Join(tt.want, "\n"))
			}
			if p != nil {
				t.Errorf("Parse returned a pipeline with its error")
			}
			errs := spec.Errors(err)
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if len(errs) == 1 {
				var e *spec.Error
				if !errors.As(err, &e) || e != errs[0] {
					t.Errorf("a single error is not returned as the *spec.Error itself: %T", err)
				}
			}
			if !errors.Is(err, spec.ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false")
			}
			if err.Error() != strings.Join(tt.want, "\n") {
				t.Errorf("err.Error() = %q, want the errors one per line", err.Error())
			}
		})
	}
}
