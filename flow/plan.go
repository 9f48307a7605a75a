package flow

import (
	"context"
	"fmt"

	"github.com/gearflow/gearflow/flow/spec"
)

// StagePlan is what a dry run says about one stage.
type StagePlan struct {
	Name     string
	Kind     spec.Kind
	Function string
	Combine  string
	Needs    []string
	Input    string // the source, as in the pipeline file
	// Tasks is the number of tasks, or -1 when it depends on an upstream
	// stage's output (stage inputs, reduce stages).
	Tasks int
	// Inputs describes the first tasks' inputs (at most 5).
	Inputs []string
	// Partitions is the shuffle's partition count (0 = no shuffle); for
	// a reduce stage, that of the stage it reads, which is the minimum
	// number of its tasks when every partition has keys.
	Partitions int
	Encoding   spec.Encoding
	// Warnings say what is wrong with the sizes of its tasks: many much
	// too small for their round trip, or some too large for one worker.
	Warnings []string
}

// Plan works out the tasks of every stage of p without running anything:
// file and glob inputs (local or s3://) are split as a run with storage
// would split them.
func Plan(p *spec.Pipeline) ([]StagePlan, error) {
	var out []StagePlan
	for _, st := range p.Stages {
		sp := StagePlan{Name: st.Name, Kind: st.Kind, Function: st.Function, Combine: st.Combine,
			Needs: st.Needs, Input: st.Input.From.String(), Partitions: st.Partition.Count, Encoding: st.Encoding, Tasks: -1}
		switch {
		case st.Kind == spec.KindReduce:
			if up := p.Stage(st.Input.From.Value); up != nil {
				sp.Partitions = max(up.Partition.Count, 1)
			}
		case st.Input.From.Kind == spec.SourceFile || st.Input.From.Kind == spec.SourceGlob:
			chunks, err := planInputRefs(context.Background(), st.Input.From, st.Input.Split)
			if err != nil {
				return nil, fmt.Errorf("stage %s: %w", st.Name, err)
			}
			sp.Tasks = len(chunks)
			sp.Warnings = sizeWarnings(st, chunks)
			for _, c := range chunks[:min(len(chunks), 5)] {
				sp.Inputs = append(sp.Inputs, c.String())
			}
		case st.Input.From.Kind == spec.SourceNone:
			sp.Tasks = 1
		}
		out = append(out, sp)
	}
	return out, nil
}
