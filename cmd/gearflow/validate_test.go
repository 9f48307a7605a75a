package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validPipeline = `version: 1
name: wordcount
params:
  input:      { type: path, required: true }
  partitions: { type: int, default: 8 }
stages:
  - name: count
    kind: map
    function: wc.map
    input: { from: "file:${params.input}" }
    partition: { by: key, count: ${params.partitions} }
  - name: total
    kind: reduce
    needs: [count]
    function: wc.sum
output:
  to: file:out/wordcount.tsv
`

func TestValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good.yaml", validPipeline)
	one := write("one.yaml", "name: single\nstages:\n  - { name: s, kind: task, function: f }\noutput: { to: o.jsonl }\n")
	bad := write("bad.yaml", strings.Replace(strings.Replace(validPipeline, "kind: reduce", "kind: reducer", 1), "count: ${params.partitions}", "count: ${params.parts}", 1))
	tests := []struct {
		name      string
		args      []string
		code      int
		stdout    string
		stderr    string // exact, unless stderrHas is set
		stderrHas string
	}{
		{name: "valid", args: []string{good, "-p", "input=in.txt"}, code: 0, stdout: "ok: wordcount (2 stages)\n"},
		{name: "flags first", args: []string{"-p", "input=in.txt", "-p=partitions=4", good}, code: 0, stdout: "ok: wordcount (2 stages)\n"},
		{name: "one stage", args: []string{one}, code: 0, stdout: "ok: single (1 stage)\n"},
		{
			name:   "missing required param",
			args:   []string{good},
			code:   1,
			stderr: good + ":4:3: param \"input\" is required and has no value (hint: pass it with -p input=PATH)\n",
		},
		{
			name:   "bad override",
			args:   []string{good, "-p", "input=x", "-p", "partitions=many"},
			code:   1,
			stderr: good + ":5:3: -p partitions=many: param \"partitions\" expects an int, found \"many\" (hint: pass it as -p partitions=N)\n",
		},
		{
			name:   "undeclared param",
			args:   []string{good, "-p", "input=x", "-p", "inptu=y"},
			code:   1,
			stderr: good + ":3:1: -p inptu=y: no param \"inptu\" is declared (hint: did you mean \"input\"? declared params: input, partitions)\n",
		},
		{
			name: "several errors, one per line",
			args: []string{bad, "-p", "input=x"},
			code: 1,
			stderr: bad + ":11:34: unknown param \"parts\" in ${params.parts} (hint: declared params: input, partitions)\n" +
				bad + ":13:11: stage \"total\": kind: unknown value \"reducer\" (hint: did you mean \"reduce\"? use one of map, reduce, task)\n",
		},
		{name: "no such file", args: []string{filepath.Join(dir, "nope.yaml")}, code: 1, stderrHas: "nope.yaml: no such file or directory"},
		{name: "no file", args: nil, code: 2, stderrHas: "want exactly one pipeline file"},
		{name: "two files", args: []string{good, one}, code: 2, stderrHas: "want exactly one pipeline file"},
		{name: "bad -p", args: []string{good, "-p", "novalue"}, code: 2, stderrHas: `want name=value, got "novalue"`},
		{name: "help", args: []string{"-h"}, code: 0, stderrHas: "usage: gearflow validate PIPELINE.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"validate"}, tt.args...), &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if stdout.String() != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout.String(), tt.stdout)
			}
			switch {
			case tt.stderrHas != "":
				if !strings.Contains(stderr.String(), tt.stderrHas) {
					t.Errorf("stderr %q does not contain %q", stderr.String(), tt.stderrHas)
				}
			case stderr.String() != tt.stderr:
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), tt.stderr)
			}
		})
	}
}
