package spec_test

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/gearflow/gearflow/flow/spec"
)

// pipeline builds a file from a params section and one map stage's extra lines.
func pipeline(params, stage, output string) string {
	return "name: p\nparams:\n" + params + `stages:
  - name: up
    kind: map
    function: f
    input: { from: file:in.txt }
  - name: s
    kind: map
    function: g
` + stage + "output:\n" + output
}

func TestInterpolation(t *testing.T) {
	t.Parallel()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		params string
		stage  string
		output string
		args   map[string]string
		check  func(*spec.Pipeline) (got, want any)
	}{
		{
			name:   "int override inside a flow mapping",
			params: "  n: { type: int, default: 8 }\n",
			stage:  "    input: { from: stage:up }\n    partition: { by: key, count: ${params.n} }\n",
			output: "  to: out.tsv\n",
			args:   map[string]string{"n": "16"},
			check: func(p *spec.Pipeline) (any, any) {
				return []any{p.Stage("s").Partition.Count, p.Params["n"]}, []any{16, int64(16)}
			},
		},
		{
			name:   "several references in one string",
			params: "  dir: { type: string, default: res }\n  n: { type: int, default: 3 }\n",
			stage:  "    input: { from: stage:up }\n",
			output: "  to: file:${params.dir}/part-${params.n}.tsv\n",
			check: func(p *spec.Pipeline) (any, any) {
				return p.Output.To, filepath.Join(dir, "res/part-3.tsv")
			},
		},
		{
			name:   "typed values format back as they read",
			params: "  r: { type: float, default: 0.25 }\n  b: { type: bool, default: true }\n  d: { type: duration, default: 90s }\n",
			stage:  "    input: { from: stage:up }\n    params: { r: \"${params.r}\", b: \"${params.b}\", d: \"${params.d}\" }\n    timeout: ${params.d}\n",
			output: "  to: out.tsv\n",
			check: func(p *spec.Pipeline) (any, any) {
				s := p.Stage("s")
				return []any{s.Params, s.Timeout}, []any{map[string]string{"r": "0.25", "b": "true", "d": "1m30s"}, 90 * time.Second}
			},
		},
		{
			name:   "overrides of every type",
			params: "  r: { type: float }\n  b: { type: bool }\n  d: { type: duration }\n  s: { type: string }\n",
			stage:  "    input: { from: stage:up }\n",
			output: "  to: out.tsv\n",
			args:   map[string]string{"r": "1e3", "b": "false", "d": "250ms", "s": "x y"},
			check: func(p *spec.Pipeline) (any, any) {
				return p.Params, map[string]any{"r": 1000.0, "b": false, "d": 250 * time.Millisecond, "s": "x y"}
			},
		},
		{
			name:   "optional params without a value are zero",
			params: "  n: { type: int }\n  s: { type: string }\n",
			stage:  "    input: { from: stage:up }\n",
			output: "  to: out.tsv\n",
			check: func(p *spec.Pipeline) (any, any) {
				return p.Params, map[string]any{"n": int64(0), "s": ""}
			},
		},
		{
			name:   "spaces inside the braces, quoted scalars, escape",
			params: "  up: { type: string, default: up }\n",
			stage:  "    needs: [${ params.up }]\n    params: { q: '$${params.up}', p: \"a ${params.up} b\" }\n",
			output: "  from: stage:${params.up}\n  to: out.csv\n",
			check: func(p *spec.Pipeline) (any, any) {
				s := p.Stage("s")
				return []any{s.Needs, s.Input.From, s.Params, p.Output.From, p.Output.Format},
					[]any{[]string{"up"}, spec.Source{Kind: spec.SourceStage, Value: "up"}, map[string]string{"q": "${params.up}", "p": "a up b"}, "up", spec.FormatCSV}
			},
		},
		{
			name:   "a path param's default resolves against the pipeline's directory",
			params: "  in: { type: path, default: data/in.txt }\n",
			stage:  "    input: { from: file:${params.in} }\n",
			output: "  to: out.tsv\n",
			check: func(p *spec.Pipeline) (any, any) {
				return p.Stage("s").Input.From.Value, filepath.Join(dir, "data/in.txt")
			},
		},
		{
			name:   "an absolute path override stays as given",
			params: "  in: { type: path, default: data/in.txt }\n",
			stage:  "    input: { from: file:${params.in} }\n",
			output: "  to: out.tsv\n",
			args:   map[string]string{"in": "/srv/in.txt"},
			check: func(p *spec.Pipeline) (any, any) {
				return p.Stage("s").Input.From.Value, "/srv/in.txt"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := pipeline(tt.params, tt.stage, tt.output)
			p, err := spec.Parse([]byte(src), "p.yaml", tt.args)
			if err != nil {
				t.Fatalf("Parse:\n%s\nerror: %v", src, err)
			}
			got, want := tt.check(p)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestDefaultsInheritance(t *testing.T) {
	t.Parallel()
	builtin := spec.StageSettings{
		Concurrency: 0, // follow the fleet
		Timeout:     10 * time.Minute,
		Retry:       spec.Retry{MaxAttempts: 3, Backoff: spec.BackoffExponential, Initial: time.Second, Max: 30 * time.Second},
		Speculative: true,
	}
	set := func(f func(*spec.StageSettings)) spec.StageSettings {
		s := builtin
		f(&s)
		return s
	}
	tests := []struct {
		name     string
		defaults string
		stage    string
		want     spec.StageSettings
	}{
		{name: "built-in defaults", want: builtin},
		{
			name:     "defaults apply to every stage",
			defaults: "defaults:\n  concurrency: 4\n  priority: low\n  dead_letter: dl.jsonl\n",
			want: set(func(s *spec.StageSettings) {
				s.Concurrency, s.Priority, s.DeadLetter = 4, spec.PriorityLow, abs(t, "dl.jsonl")
			}),
		},
		{
			name:     "a stage's own value wins",
			defaults: "defaults:\n  concurrency: 4\n  timeout: 1m\n",
			stage:    "    concurrency: 2\n",
			want:     set(func(s *spec.StageSettings) { s.Concurrency, s.Timeout = 2, time.Minute }),
		},
		{
			name:     "retry inherits field by field",
			defaults: "defaults:\n  retry: { backoff: fixed, initial: 5s }\n",
			stage:    "    retry: { max_attempts: 1 }\n",
			want: set(func(s *spec.StageSettings) {
				s.Retry = spec.Retry{MaxAttempts: 1, Backoff: spec.BackoffFixed, Initial: 5 * time.Second, Max: 30 * time.Second}
			}),
		},
		{
			name:     "on_failure and speculative",
			defaults: "defaults:\n  on_failure: { tolerate: 2 }\n  speculative: false\n",
			stage:    "    on_failure: { tolerate: 1% }\n",
			want: set(func(s *spec.StageSettings) {
				s.OnFailure = spec.FailurePolicy{Mode: spec.Tolerate, Fraction: 0.01}
				s.Speculative = false
			}),
		},
		{
			name:  "zero timeout means none",
			stage: "    timeout: 0s\n",
			want:  set(func(s *spec.StageSettings) { s.Timeout = 0 }),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := "name: d\n" + tt.defaults + "stages:\n  - name: s\n    kind: task\n    function: f\n" + tt.stage + "output: { to: o.tsv }\n"
			p, err := spec.Parse([]byte(src), "p.yaml", nil)
			if err != nil {
				t.Fatalf("Parse:\n%s\nerror: %v", src, err)
			}
			if got := p.Stages[0].StageSettings; got != tt.want {
				t.Errorf("stage settings:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func abs(t *testing.T, path string) string {
	t.Helper()
	a, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
