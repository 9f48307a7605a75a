package spec_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/flow/spec"
)

const full = `version: 1
name: wordcount
params:
  input:      { type: path, required: true, description: text to count }
  partitions: { type: int, default: 8 }
  lang:       { type: string, default: en }
  rate:       { type: float, default: 0.5 }
  verbose:    { type: bool, default: false }
  wait:       { type: duration, default: 90s }
  outdir:     { type: path, default: out }
defaults:
  concurrency: 32
  timeout: 2m
  retry: { max_attempts: 4, backoff: fixed, initial: 2s, max: 20s }
  on_failure: continue
  speculative: false
stages:
  - name: count
    kind: map
    function: wc.map
    input:
      from: file:${params.input}
      split: { lines: 20000 }
    combine: wc.sum
    partition: { by: key, count: ${params.partitions} }
    concurrency: 64
    priority: high
    on_failure: { tolerate: "0.5%" }
    params:
      lang: ${params.lang}
      min: 3
      note: cost is $${HOME}
  - name: total
    kind: reduce
    needs: [count]
    function: wc.sum
    retry: { max_attempts: 5 }
    dead_letter: failed.jsonl
    speculative: true
  - name: notify
    kind: task
    function: notify.py
    encoding: raw
    input: { from: stage:total, split: { records: 100 } }
    timeout: ${params.wait}
    on_failure: { tolerate: 3 }
  - name: scan
    kind: map
    function: logs.scan
    input: { from: "glob:logs/*.log", split: { files: 2 } }
    priority: low
  - name: chunks
    kind: map
    function: bytes.map
    input: { from: file:/data/big.txt, split: { bytes: 4MiB } }
    retry: { initial: 0s, max: 0s }
output:
  from: stage:total
  to: file:${params.outdir}/result.txt
  format: jsonl
`

func TestParseFull(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "wc.yaml")
	if err := os.WriteFile(file, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := spec.Load(file, map[string]string{"input": "data/in.txt", "partitions": "16"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(cwd, "data/in.txt") // -p paths are relative to the working directory
	defaults := spec.StageSettings{
		Concurrency: 32,
		Priority:    spec.PriorityNormal,
		Timeout:     2 * time.Minute,
		Retry:       spec.Retry{MaxAttempts: 4, Backoff: spec.BackoffFixed, Initial: 2 * time.Second, Max: 20 * time.Second},
		OnFailure:   spec.FailurePolicy{Mode: spec.Continue},
		Speculative: false,
	}
	with := func(f func(*spec.StageSettings)) spec.StageSettings {
		s := defaults
		f(&s)
		return s
	}
	want := &spec.Pipeline{
		Version: 1,
		Name:    "wordcount",
		Params: map[string]any{
			"input":      input,
			"partitions": int64(16),
			"lang":       "en",
			"rate":       0.5,
			"verbose":    false,
			"wait":       90 * time.Second,
			"outdir":     filepath.Join(dir, "out"),
		},
		ParamDecls: []spec.ParamDecl{
			{Name: "input", Type: spec.ParamPath, Required: true, Description: "text to count"},
			{Name: "partitions", Type: spec.ParamInt, Default: int64(8)},
			{Name: "lang", Type: spec.ParamString, Default: "en"},
			{Name: "rate", Type: spec.ParamFloat, Default: 0.5},
			{Name: "verbose", Type: spec.ParamBool, Default: false},
			{Name: "wait", Type: spec.ParamDuration, Default: 90 * time.Second},
			{Name: "outdir", Type: spec.ParamPath, Default: filepath.Join(dir, "out")},
		},
		Defaults: defaults,
		Stages: []*spec.Stage{
			{
				Name:      "count",
				Kind:      spec.KindMap,
				Function:  "wc.map",
				Input:     spec.Input{From: spec.Source{Kind: spec.SourceFile, Value: input}, Split: spec.Split{By: spec.SplitLines, N: 20000}},
				Inputs:    []spec.Input{spec.Input{From: spec.Source{Kind: spec.SourceFile, Value: input}, Split: spec.Split{By: spec.SplitLines, N: 20000}}},
				Combine:   "wc.sum",
				Partition: spec.Partition{By: "key", Count: 16},
				Params:    map[string]string{"lang": "en", "min": "3", "note": "cost is ${HOME}"},
				Pos:       spec.Pos{Line: 18, Column: 5},
				StageSettings: with(func(s *spec.StageSettings) {
					s.Concurrency = 64
					s.Priority = spec.PriorityHigh
					s.OnFailure = spec.FailurePolicy{Mode: spec.Tolerate, Fraction: 0.005}
				}),
			},
			{
				Name:     "total",
				Kind:     spec.KindReduce,
				Function: "wc.sum",
				Input:    spec.Input{From: spec.Source{Kind: spec.SourceStage, Value: "count"}},
				Inputs:   []spec.Input{spec.Input{From: spec.Source{Kind: spec.SourceStage, Value: "count"}}},
				Needs:    []string{"count"},
				Pos:      spec.Pos{Line: 33, Column: 5},
				StageSettings: with(func(s *spec.StageSettings) {
					s.Retry.MaxAttempts = 5 // the rest of retry is inherited
					s.DeadLetter = filepath.Join(dir, "failed.jsonl")
					s.Speculative = true
				}),
			},
			{
				Name:     "notify",
				Kind:     spec.KindTask,
				Function: "notify.py",
				Input:    spec.Input{From: spec.Source{Kind: spec.SourceStage, Value: "total"}, Split: spec.Split{By: spec.SplitRecords, N: 100}},
				Inputs:   []spec.Input{spec.Input{From: spec.Source{Kind: spec.SourceStage, Value: "total"}, Split: spec.Split{By: spec.SplitRecords, N: 100}}},
				Needs:    []string{"total"}, // implied by input: from: stage:total
				Encoding: spec.EncodingRaw,
				Pos:      spec.Pos{Line: 40, Column: 5},
				StageSettings: with(func(s *spec.StageSettings) {
					s.Timeout = 90 * time.Second
					s.OnFailure = spec.FailurePolicy{Mode: spec.Tolerate, Count: 3}
				}),
			},
			{
				Name:          "scan",
				Kind:          spec.KindMap,
				Function:      "logs.scan",
				Input:         spec.Input{From: spec.Source{Kind: spec.SourceGlob, Value: filepath.Join(dir, "logs/*.log")}, Split: spec.Split{By: spec.SplitFiles, N: 2}},
				Inputs:        []spec.Input{spec.Input{From: spec.Source{Kind: spec.SourceGlob, Value: filepath.Join(dir, "logs/*.log")}, Split: spec.Split{By: spec.SplitFiles, N: 2}}},
				Pos:           spec.Pos{Line: 47, Column: 5},
				StageSettings: with(func(s *spec.StageSettings) { s.Priority = spec.PriorityLow }),
			},
			{
				Name:     "chunks",
				Kind:     spec.KindMap,
				Function: "bytes.map",
				Input:    spec.Input{From: spec.Source{Kind: spec.SourceFile, Value: "/data/big.txt"}, Split: spec.Split{By: spec.SplitBytes, N: 4 << 20}},
				Inputs:   []spec.Input{spec.Input{From: spec.Source{Kind: spec.SourceFile, Value: "/data/big.txt"}, Split: spec.Split{By: spec.SplitBytes, N: 4 << 20}}},
				Pos:      spec.Pos{Line: 52, Column: 5},
				StageSettings: with(func(s *spec.StageSettings) {
					s.Retry.Initial, s.Retry.Max = 0, 0
				}),
			},
		},
		Output: spec.Output{From: "total", To: filepath.Join(dir, "out/result.txt"), Format: spec.FormatJSONL},
		Dir:    dir,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load:\n got %s\nwant %s", dump(got), dump(want))
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate of a loaded pipeline: %v", err)
	}

	wantStrings := map[string]string{
		"input": input, "partitions": "16", "lang": "en", "rate": "0.5",
		"verbose": "false", "wait": "1m30s", "outdir": filepath.Join(dir, "out"),
	}
	if ps := got.ParamStrings(); !reflect.DeepEqual(ps, wantStrings) {
		t.Errorf("ParamStrings = %v, want %v", ps, wantStrings)
	}
	again, err := spec.Load(file, got.ParamStrings())
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Errorf("Load with ParamStrings gives another pipeline (err %v)", err)
	}
}

// dump prints a pipeline with its stages, for failure messages.
func dump(p *spec.Pipeline) string {
	var b strings.Builder
	c := *p
	c.Stages = nil
	b.WriteString(strings.ReplaceAll(sprint(c), ", ", ",\n  "))
	for _, s := range p.Stages {
		b.WriteString("\n  stage " + sprint(*s))
	}
	return b.String()
}

// TestOutputFolderAndStorage: "to:" ending in "/" names a folder of part
// files (tsv unless format: says otherwise); storage: and s3:// sources
// are kept as URIs, a storage path made absolute.
func TestOutputFolderAndStorage(t *testing.T) {
	t.Parallel()
	src := `name: x
storage: tmp/data
stages:
  - name: m
    kind: map
    function: f
    input: { from: "s3://bucket/logs/**/*.gz" }
output: { to: out/parts/, format: jsonl }
`
	p, err := spec.Parse([]byte(src), "/work/p.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Output.Dir || p.Output.To != "/work/out/parts" || p.Output.Format != spec.FormatJSONL {
		t.Errorf("output %+v, want the folder /work/out/parts in jsonl", p.Output)
	}
	if p.Storage != "file:///work/tmp/data" {
		t.Errorf("storage %q, want file:///work/tmp/data", p.Storage)
	}
	if in := p.Stages[0].Input; in.From != (spec.Source{Kind: spec.SourceGlob, Value: "s3://bucket/logs/**/*.gz"}) || in.Split.By != spec.SplitBytes || in.Split.N != 64<<20 {
		t.Errorf("input %+v, want the s3 glob with 64 MiB byte splits", in)
	}
	p, err = spec.Parse([]byte(strings.Replace(src, "out/parts/, format: jsonl", "s3://b/out/", 1)), "/work/p.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Output.Dir || p.Output.To != "s3://b/out" || p.Output.Format != spec.FormatTSV {
		t.Errorf("output %+v, want the folder s3://b/out in tsv", p.Output)
	}
	if _, err := spec.Parse([]byte(strings.Replace(src, "tmp/data", "ftp://x/y", 1)), "/work/p.yaml", nil); err == nil || !strings.Contains(err.Error(), "unknown storage scheme") {
		t.Errorf("an ftp storage: err = %v, want an unknown scheme", err)
	}
}

// TestParseInputsAndCoGroup: inputs: gives a stage several named inputs,
// each with its format, header and split; skip_bad_records reads a count
// or a percentage, inherited from defaults; a reduce stage with several
// needs and no input reads them all, named by stage.
func TestParseInputsAndCoGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := `version: 1
name: shop
defaults:
  skip_bad_records: "0.5%"
stages:
  - name: tag
    kind: map
    function: shop.tag
    inputs:
      - { name: users, from: file:users.csv, format: csv, header: true, split: { records: 100 } }
      - { name: orders, from: "glob:orders/*.jsonl", format: jsonl }
    partition: { count: 4 }
  - name: other
    kind: map
    function: shop.other
    input: { from: file:x.txt, format: text }
    partition: { count: 4 }
    skip_bad_records: 3
  - name: joined
    kind: reduce
    needs: [tag, other]
    function: shop.join
output: { to: out.jsonl }
`
	p, err := spec.Parse([]byte(src), filepath.Join(dir, "p.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tag, other, joined := p.Stages[0], p.Stages[1], p.Stages[2]
	want := []spec.Input{
		{Name: "users", From: spec.Source{Kind: spec.SourceFile, Value: filepath.Join(dir, "users.csv")},
			Split: spec.Split{By: spec.SplitRecords, N: 100}, Format: spec.FormatCSVRows, Header: true},
		{Name: "orders", From: spec.Source{Kind: spec.SourceGlob, Value: filepath.Join(dir, "orders/*.jsonl")},
			Split: spec.Split{By: spec.SplitBytes, N: spec.DefaultSplitBytes}, Format: spec.FormatJSONLines},
	}
	if !reflect.DeepEqual(tag.Inputs, want) || !reflect.DeepEqual(tag.Input, want[0]) {
		t.Errorf("tag inputs %+v (input %+v), want %+v", tag.Inputs, tag.Input, want)
	}
	if tag.SkipBadRecords != (spec.BadRecordLimit{Fraction: 0.005}) || other.SkipBadRecords != (spec.BadRecordLimit{Count: 3}) {
		t.Errorf("skip_bad_records %+v and %+v, want 0.5%% and 3", tag.SkipBadRecords, other.SkipBadRecords)
	}
	if !joined.CoGroup() || len(joined.Inputs) != 2 || joined.Inputs[0].Name != "tag" || joined.Inputs[1].Name != "other" ||
		joined.Inputs[1].From != (spec.Source{Kind: spec.SourceStage, Value: "other"}) {
		t.Errorf("joined inputs %+v: want a cogroup of tag and other", joined.Inputs)
	}
	if err := p.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}
