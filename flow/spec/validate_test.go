package spec_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/flow/spec"
)

// built is a valid pipeline made in Go, the way a program (or a test of
// the engine) may build one without a file.
func built() *spec.Pipeline {
	settings := spec.StageSettings{
		Concurrency: 1,
		Timeout:     time.Minute,
		Retry:       spec.Retry{MaxAttempts: 1},
	}
	return &spec.Pipeline{
		Version: 1,
		Name:    "built",
		Stages: []*spec.Stage{
			{Name: "m", Kind: spec.KindMap, Function: "f", Input: spec.Input{From: spec.Source{Kind: spec.SourceFile, Value: "/in.txt"}, Split: spec.Split{N: 10}}, Partition: spec.Partition{By: "key", Count: 2}, StageSettings: settings},
			{Name: "r", Kind: spec.KindReduce, Function: "g", Needs: []string{"m"}, Input: spec.Input{From: spec.Source{Kind: spec.SourceStage, Value: "m"}}, StageSettings: settings},
		},
		Output: spec.Output{From: "r", To: "/out.tsv", Format: spec.FormatTSV},
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(p *spec.Pipeline)
		want   string // "" = valid
	}{
		{name: "valid", change: func(*spec.Pipeline) {}},
		{name: "no name", change: func(p *spec.Pipeline) { p.Name = "" }, want: "1:1: name: must not be empty"},
		{name: "no stages", change: func(p *spec.Pipeline) { p.Stages = nil; p.Output.From = "" }, want: "1:1: stages: at least one stage is required\n1:1: output: from: no stage is called \"\""},
		{name: "duplicate", change: func(p *spec.Pipeline) { p.Stages[1].Name = "m"; p.Stages[1].Pos = spec.Pos{Line: 7, Column: 3} }, want: "7:3: stage \"m\": duplicate stage name\n7:3: stage \"m\": needs form a cycle: m -> m\n1:1: output: from: no stage is called \"r\""},
		{name: "unknown need", change: func(p *spec.Pipeline) { p.Stages[1].Needs = []string{"m", "x"} }, want: "1:1: stage \"r\": needs: no stage is called \"x\""},
		{name: "cycle", change: func(p *spec.Pipeline) {
			p.Stages[0].Needs = []string{"r"}
		}, want: "1:1: stage \"m\": needs form a cycle: m -> r -> m"},
		{name: "input not needed", change: func(p *spec.Pipeline) { p.Stages[1].Needs = nil }, want: "1:1: stage \"r\": input stage \"m\" is not in needs"},
		{name: "reduce from a file", change: func(p *spec.Pipeline) {
			p.Stages[1].Input.From = spec.Source{Kind: spec.SourceFile, Value: "/x"}
		}, want: "1:1: stage \"r\": a reduce stage reads a stage, not file:/x"},
		{name: "relative path", change: func(p *spec.Pipeline) { p.Stages[0].Input.From.Value = "in.txt" }, want: "1:1: stage \"m\": input path \"in.txt\" is not absolute"},
		{name: "negative concurrency", change: func(p *spec.Pipeline) { p.Stages[0].Concurrency = -1 }, want: "1:1: stage \"m\": concurrency must be at least 1"},
		{name: "bad tolerance", change: func(p *spec.Pipeline) { p.Stages[0].OnFailure = spec.FailurePolicy{Mode: spec.Tolerate} }, want: "1:1: stage \"m\": bad tolerance tolerate 0%"},
		{name: "no output format", change: func(p *spec.Pipeline) { p.Output.Format = 0 }, want: "1:1: output: unknown format Format(0)"},
		{name: "unknown kind", change: func(p *spec.Pipeline) { p.Stages[0].Kind = 0 }, want: "1:1: stage \"m\": unknown kind Kind(0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := built()
			tt.change(p)
			err := p.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate succeeded, want %q", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Validate:\n%s\nwant:\n%s", got, tt.want)
			}
			if !errors.Is(err, spec.ErrInvalid) || len(spec.Errors(err)) != strings.Count(tt.want, "\n")+1 {
				t.Errorf("Validate's error is not a join of *spec.Error: %#v", err)
			}
		})
	}
}
