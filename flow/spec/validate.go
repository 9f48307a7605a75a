package spec

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Validate checks the invariants the engine relies on, for a Pipeline
// from Parse (which always passes) or one built in Go: a name, at least
// one stage, unique stage names, known kinds, functions, needs that exist
// and have no cycle, inputs that fit their stage, settings in range and an
// output. Errors are *Error at the stage's Pos (line 1 when unset), joined.
func (p *Pipeline) Validate() error {
	var errs []error
	add := func(pos Pos, format string, args ...any) {
		line, col := max(pos.Line, 1), max(pos.Column, 1)
		errs = append(errs, &Error{Line: line, Column: col, Msg: fmt.Sprintf(format, args...)})
	}
	if msg := checkName(p.Name); msg != "" {
		add(Pos{}, "name: %s", msg)
	}
	if len(p.Stages) == 0 {
		add(Pos{}, "stages: at least one stage is required")
	}
	byName := map[string]*Stage{}
	for _, st := range p.Stages {
		if st == nil {
			add(Pos{}, "stages: nil stage")
			continue
		}
		what := fmt.Sprintf("stage %q", st.Name)
		if msg := checkName(st.Name); msg != "" {
			add(st.Pos, "%s: name: %s", what, msg)
		}
		if byName[st.Name] != nil {
			add(st.Pos, "%s: duplicate stage name", what)
		}
		byName[st.Name] = st
		if _, ok := kindNames[st.Kind]; !ok {
			add(st.Pos, "%s: unknown kind %s", what, st.Kind)
		}
		if msg := checkFunction(st.Function); msg != "" {
			add(st.Pos, "%s: function: %s", what, msg)
		}
		if st.Combine != "" && st.Kind != KindMap {
			add(st.Pos, "%s: combine applies to map stages only", what)
		}
		if st.Partition.Count < 0 || (st.Partition.Count > 0 && st.Partition.By != "key") {
			add(st.Pos, "%s: bad partition %+v", what, st.Partition)
		}
		if st.Concurrency < 0 {
			add(st.Pos, "%s: concurrency must be at least 1", what)
		}
		if st.Timeout < 0 {
			add(st.Pos, "%s: negative timeout", what)
		}
		if st.Retry.MaxAttempts < 1 || st.Retry.Initial < 0 || st.Retry.Max < st.Retry.Initial {
			add(st.Pos, "%s: bad retry %+v", what, st.Retry)
		}
		if st.DeadLetter != "" && !filepath.IsAbs(st.DeadLetter) {
			add(st.Pos, "%s: dead_letter %q is not absolute", what, st.DeadLetter)
		}
		switch st.OnFailure.Mode {
		case FailFast, Continue:
		case Tolerate:
			if st.OnFailure.Fraction < 0 || st.OnFailure.Fraction > 1 || st.OnFailure.Count < 0 ||
				(st.OnFailure.Fraction == 0) == (st.OnFailure.Count == 0) {
				add(st.Pos, "%s: bad tolerance %+v", what, st.OnFailure)
			}
		default:
			add(st.Pos, "%s: unknown on_failure mode %s", what, st.OnFailure.Mode)
		}
		if st.Encoding != EncodingMsgpack && st.Encoding != EncodingRaw {
			add(st.Pos, "%s: unknown encoding %s", what, st.Encoding)
		}
		ins := st.InputList()
		if len(ins) == 0 && st.Kind != KindTask {
			add(st.Pos, "%s: a %s stage needs an input", what, st.Kind)
		}
		if st.SkipBadRecords.Count < 0 || st.SkipBadRecords.Fraction < 0 || st.SkipBadRecords.Fraction > 1 ||
			(st.SkipBadRecords.Count > 0 && st.SkipBadRecords.Fraction > 0) {
			add(st.Pos, "%s: bad skip_bad_records %+v", what, st.SkipBadRecords)
		}
		names := map[string]bool{}
		for _, in := range ins {
			if len(ins) > 1 {
				if in.Name == "" || names[in.Name] {
					add(st.Pos, "%s: each of several inputs needs a name of its own (%q)", what, in.Name)
				}
				names[in.Name] = true
			}
			if in.Header && in.Format != FormatCSVRows && in.Format != FormatAuto {
				add(st.Pos, "%s: header applies to csv input, not %s", what, in.Format)
			}
			validateInput(st, in, what, add)
		}
	}
	p.validateLinks(byName, add)
	if len(errs) == 0 {
		return nil
	}
	return errors.Join(errs...)
}

func validateInput(st *Stage, in Input, what string, add func(Pos, string, ...any)) {
	from := in.From
	switch from.Kind {
	case SourceNone:
	case SourceFile, SourceGlob:
		if st.Kind == KindReduce {
			add(st.Pos, "%s: a reduce stage reads a stage, not %s", what, from)
		}
		if !filepath.IsAbs(from.Value) && !strings.HasPrefix(from.Value, "s3://") {
			add(st.Pos, "%s: input path %q is not absolute", what, from.Value)
		}
	case SourceStage:
		if !contains(st.Needs, from.Value) {
			add(st.Pos, "%s: input stage %q is not in needs", what, from.Value)
		}
	default:
		add(st.Pos, "%s: unknown input kind %s", what, from.Kind)
	}
	if st.Kind != KindReduce && from.Kind != SourceNone && in.Split.N < 1 {
		add(st.Pos, "%s: split size must be at least 1", what)
	}
}

func (p *Pipeline) validateLinks(byName map[string]*Stage, add func(Pos, string, ...any)) {
	for _, st := range p.Stages {
		if st == nil {
			continue
		}
		for _, need := range st.Needs {
			if byName[need] == nil {
				add(st.Pos, "stage %q: needs: no stage is called %q", st.Name, need)
			}
		}
	}
	if cycle := findCycle(p.Stages, byName); cycle != nil {
		add(byName[cycle[0]].Pos, "stage %q: needs form a cycle: %s", cycle[0], strings.Join(cycle, " -> "))
	}
	if byName[p.Output.From] == nil {
		add(Pos{}, "output: from: no stage is called %q", p.Output.From)
	}
	if p.Output.To == "" || (!filepath.IsAbs(p.Output.To) && !strings.HasPrefix(p.Output.To, "s3://")) {
		add(Pos{}, "output: to: %q is not an absolute path", p.Output.To)
	}
	switch p.Output.Format {
	case FormatTSV, FormatCSV, FormatJSONL:
	default:
		add(Pos{}, "output: unknown format %s", p.Output.Format)
	}
}

// findCycle returns the first cycle of needs, as a -> b -> a, or nil.
func findCycle(stages []*Stage, byName map[string]*Stage) []string {
	state := map[string]int{} // 0 unvisited, 1 on the stack, 2 done
	var stack []string
	var cycle []string
	var visit func(name string) bool
	visit = func(name string) bool {
		state[name] = 1
		stack = append(stack, name)
		if st := byName[name]; st != nil {
			for _, need := range st.Needs {
				switch state[need] {
				case 0:
					if visit(need) {
						return true
					}
				case 1:
					for i, s := range stack {
						if s == need {
							cycle = append(append([]string{}, stack[i:]...), need)
							return true
						}
					}
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = 2
		return false
	}
	for _, st := range stages {
		if st != nil && state[st.Name] == 0 && visit(st.Name) {
			return cycle
		}
	}
	return nil
}
