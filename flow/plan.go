package flow

import (
	"context"
	"fmt"
	"strings"

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
		var sources []string
		for _, in := range st.InputList() {
			sources = append(sources, in.From.String())
		}
		sp := StagePlan{Name: st.Name, Kind: st.Kind, Function: st.Function, Combine: st.Combine,
			Needs: st.Needs, Input: strings.Join(sources, ", "), Partitions: st.Partition.Count, Encoding: st.Encoding, Tasks: -1}
		switch {
		case st.Kind == spec.KindReduce:
			if up := p.Stage(st.Input.From.Value); up != nil {
				sp.Partitions = max(up.Partition.Count, 1)
			}
		case readsFiles(st):
			var chunks []chunk
			for _, in := range st.InputList() {
				if in.From.Kind != spec.SourceFile && in.From.Kind != spec.SourceGlob {
					sp.Tasks = -1 // known once the stage it reads is done
					chunks = nil
					break
				}
				cs, err := planInput(context.Background(), in, nil)
				if err != nil {
					return nil, fmt.Errorf("stage %s: %w", st.Name, err)
				}
				chunks = append(chunks, cs...)
			}
			if chunks == nil {
				break
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

// readsFiles reports whether a stage reads a file or glob input.
func readsFiles(st *spec.Stage) bool {
	for _, in := range st.InputList() {
		if in.From.Kind == spec.SourceFile || in.From.Kind == spec.SourceGlob {
			return true
		}
	}
	return false
}

// readsOnlyFiles reports whether a stage reads file or glob inputs and
// nothing else: its tasks can be planned before any stage has run.
func readsOnlyFiles(st *spec.Stage) bool {
	ins := st.InputList()
	for _, in := range ins {
		if in.From.Kind != spec.SourceFile && in.From.Kind != spec.SourceGlob {
			return false
		}
	}
	return len(ins) > 0
}

// inputName is the name an input's records carry as their Source: its
// name:, else, for a stage's output, the stage's name.
func inputName(in spec.Input) string {
	if in.Name == "" && in.From.Kind == spec.SourceStage {
		return in.From.Value
	}
	return in.Name
}
