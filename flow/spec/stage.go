package spec

import (
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	topFields      = []string{"version", "name", "params", "defaults", "storage", "stages", "output"}
	settingsFields = []string{"concurrency", "priority", "timeout", "retry", "on_failure", "dead_letter", "speculative", "skip_bad_records"}
	stageOwnFields = []string{"name", "kind", "function", "input", "inputs", "combine", "partition", "needs", "encoding", "params"}
	stageFields    = append(append([]string{}, stageOwnFields...), settingsFields...)
	retryFields    = []string{"max_attempts", "backoff", "initial", "max"}
	inputFields    = []string{"name", "from", "split", "format", "header"}
	inputFormats   = []string{"text", "jsonl", "csv"}
	splitUnits     = []string{"lines", "bytes", "records", "files"}
	partitionKeys  = []string{"by", "count"}
	outputFields   = []string{"from", "to", "format"}
	kindValues     = []string{"map", "reduce", "task"}
	priorityValues = []string{"low", "normal", "high"}
	backoffValues  = []string{"exponential", "fixed"}
	failureValues  = []string{"fail_fast", "continue"}
	encodingValues = []string{"msgpack", "raw"}
	formatValues   = []string{"tsv", "csv", "jsonl"}
)

// builtinSettings are the settings of a stage that sets nothing, in a
// pipeline without defaults:.
func builtinSettings() StageSettings {
	return StageSettings{
		Concurrency: DefaultConcurrency,
		Priority:    PriorityNormal,
		Timeout:     DefaultTimeout,
		Retry: Retry{
			MaxAttempts: DefaultMaxAttempts,
			Backoff:     BackoffExponential,
			Initial:     DefaultInitial,
			Max:         DefaultMax,
		},
		OnFailure:   FailurePolicy{Mode: FailFast},
		Speculative: DefaultSpeculative,
	}
}

func (p *parser) parse(data []byte) *Pipeline {
	root := p.decode(data)
	if root == nil {
		return nil
	}
	root = resolve(root)
	pl := &Pipeline{Version: 1, Dir: p.dir}
	fs := p.fields(root, "pipeline", topFields)
	if fs == nil {
		return nil
	}
	var paramsNode, paramsKey *yaml.Node
	if f, ok := fs["params"]; ok {
		paramsNode, paramsKey = f.val, f.key
	}
	pl.ParamDecls = p.parseParams(paramsNode, paramsKey, root)
	pl.Params = p.params

	p.require(root, fs, "pipeline", "name", "stages", "output")
	if f, ok := fs["version"]; ok {
		if v, good := p.integer(f.val, "version", 0); good && v != 1 {
			p.errorf(f.val, "this gearflow reads version: 1", "version: unsupported version %d", v)
		}
	}
	if f, ok := fs["name"]; ok {
		if s, good := p.str(f.val, "name", "a string"); good {
			if msg := checkName(s); msg != "" {
				p.errorf(f.val, nameHint, "name: %s", msg)
			}
			pl.Name = s
		}
	}
	pl.Defaults = builtinSettings()
	if f, ok := fs["defaults"]; ok {
		if dfs := p.fields(f.val, "defaults", settingsFields); dfs != nil {
			pl.Defaults = p.settings(dfs, "defaults", pl.Defaults, f.val)
		}
	}
	if f, ok := fs["storage"]; ok {
		if s, good := p.str(f.val, "storage", "a storage URI"); good {
			if u, msg := storageURI(p.dir, s); msg != "" {
				p.errorf(f.val, storageHint, "storage: %s", msg)
			} else {
				pl.Storage = u
			}
		}
	}
	if f, ok := fs["stages"]; ok {
		pl.Stages = p.stages(f.val, pl.Defaults)
	}
	p.links(pl)
	if f, ok := fs["output"]; ok {
		pl.Output = p.output(f.val, pl)
	}
	return pl
}

const nameHint = "use letters, digits, _ . and -, starting with a letter or digit"

// checkName says what is wrong with a pipeline or stage name, or "".
func checkName(s string) string {
	if s == "" {
		return "must not be empty"
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case i > 0 && (r == '_' || r == '.' || r == '-'):
		default:
			return "bad name " + strconv.Quote(s)
		}
	}
	return ""
}

// settings lays the settings in fs over base. at is the mapping, for
// cross-field errors.
func (p *parser) settings(fs map[string]field, what string, base StageSettings, at *yaml.Node) StageSettings {
	s := base
	if f, ok := fs["concurrency"]; ok {
		if v, good := p.integer(f.val, what+": concurrency", 1); good {
			s.Concurrency = v
		}
	}
	if f, ok := fs["priority"]; ok {
		if v, good := p.enum(f.val, what+": priority", priorityValues); good {
			s.Priority = map[string]Priority{"low": PriorityLow, "normal": PriorityNormal, "high": PriorityHigh}[v]
		}
	}
	if f, ok := fs["timeout"]; ok {
		if v, good := p.duration(f.val, what+": timeout"); good {
			s.Timeout = v
		}
	}
	if f, ok := fs["retry"]; ok {
		if rfs := p.fields(f.val, what+": retry", retryFields); rfs != nil {
			if g, ok := rfs["max_attempts"]; ok {
				if v, good := p.integer(g.val, what+": retry: max_attempts", 1); good {
					s.Retry.MaxAttempts = v
				}
			}
			if g, ok := rfs["backoff"]; ok {
				if v, good := p.enum(g.val, what+": retry: backoff", backoffValues); good {
					s.Retry.Backoff = map[string]Backoff{"exponential": BackoffExponential, "fixed": BackoffFixed}[v]
				}
			}
			if g, ok := rfs["initial"]; ok {
				if v, good := p.duration(g.val, what+": retry: initial"); good {
					s.Retry.Initial = v
				}
			}
			if g, ok := rfs["max"]; ok {
				if v, good := p.duration(g.val, what+": retry: max"); good {
					s.Retry.Max = v
				}
			}
			if s.Retry.Max < s.Retry.Initial {
				p.errorf(f.val, "raise max or lower initial", "%s: retry: max (%s) is below initial (%s)", what, s.Retry.Max, s.Retry.Initial)
			}
		}
	}
	if f, ok := fs["on_failure"]; ok {
		if v, good := p.onFailure(f.val, what+": on_failure"); good {
			s.OnFailure = v
		}
	}
	if f, ok := fs["dead_letter"]; ok {
		if v, good := p.str(f.val, what+": dead_letter", "a path"); good {
			v = strings.TrimPrefix(v, "file:")
			if v == "" {
				p.errorf(f.val, "give a path such as failed.jsonl", "%s: dead_letter: empty path", what)
			} else {
				s.DeadLetter = absPath(p.dir, v)
			}
		}
	}
	if f, ok := fs["speculative"]; ok {
		if v, good := p.boolean(f.val, what+": speculative"); good {
			s.Speculative = v
		}
	}
	if f, ok := fs["skip_bad_records"]; ok {
		if v, good := p.badRecords(f.val, what+": skip_bad_records"); good {
			s.SkipBadRecords = v
		}
	}
	return s
}

const badRecordsHint = `use a count of records per task like 10, or a share of a task's records like "1%"`

// badRecords reads skip_bad_records: a count (0 skips none) or a
// percentage.
func (p *parser) badRecords(n *yaml.Node, what string) (BadRecordLimit, bool) {
	s, ok := p.str(n, what, "a count or a percentage")
	if !ok {
		return BadRecordLimit{}, false
	}
	s = strings.TrimSpace(s)
	if pct, isPct := strings.CutSuffix(s, "%"); isPct {
		v, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
		if err != nil || !(v >= 0 && v <= 100) {
			p.errorf(n, badRecordsHint, "%s: bad percentage %q", what, s)
			return BadRecordLimit{}, false
		}
		return BadRecordLimit{Fraction: v / 100}, true
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		p.errorf(n, badRecordsHint, "%s: bad value %q", what, s)
		return BadRecordLimit{}, false
	}
	return BadRecordLimit{Count: v}, true
}

const failureHint = `use fail_fast, continue, or { tolerate: "1%" } (a percentage of tasks) or { tolerate: 3 } (a count)`

func (p *parser) onFailure(n *yaml.Node, what string) (FailurePolicy, bool) {
	if n.Kind == yaml.MappingNode {
		fs := p.fields(n, what, []string{"tolerate"})
		if fs == nil {
			return FailurePolicy{}, false
		}
		f, ok := fs["tolerate"]
		if !ok {
			p.errorf(n, failureHint, "%s: missing required field %q", what, "tolerate")
			return FailurePolicy{}, false
		}
		s, ok := p.str(f.val, what+": tolerate", "a percentage or a count")
		if !ok {
			return FailurePolicy{}, false
		}
		s = strings.TrimSpace(s)
		if pct, isPct := strings.CutSuffix(s, "%"); isPct {
			v, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
			if err != nil || !(v > 0 && v <= 100) {
				p.errorf(f.val, `use a percentage above 0 and at most 100, like "1%" or "0.5%", or a count like 3`, "%s: tolerate: bad percentage %q", what, s)
				return FailurePolicy{}, false
			}
			return FailurePolicy{Mode: Tolerate, Fraction: v / 100}, true
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			p.errorf(f.val, `use a percentage like "1%" or "0.5%", or a count of tasks like 3`, "%s: tolerate: bad value %q", what, s)
			return FailurePolicy{}, false
		}
		return FailurePolicy{Mode: Tolerate, Count: v}, true
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, failureHint, "%s: expected fail_fast, continue or a tolerate mapping, found %s", what, describe(n))
		return FailurePolicy{}, false
	}
	s, ok := p.str(n, what, "")
	if !ok {
		return FailurePolicy{}, false
	}
	switch strings.TrimSpace(s) {
	case "fail_fast":
		return FailurePolicy{Mode: FailFast}, true
	case "continue":
		return FailurePolicy{Mode: Continue}, true
	}
	hint := failureHint
	if c := closest(s, append(failureValues, "tolerate")); c != "" {
		hint = "did you mean " + strconv.Quote(c) + "? " + hint
	}
	p.errorf(n, hint, "%s: unknown value %q", what, s)
	return FailurePolicy{}, false
}

// stageInfo keeps what the cross-stage checks need to point at.
type stageInfo struct {
	node      *yaml.Node
	needsNode *yaml.Node
	needNodes map[string]*yaml.Node
	fromNodes []*yaml.Node // input.from (or each inputs[i].from), when given
	hasInput  bool
	ok        bool // the name and kind were read
}

func (p *parser) stages(n *yaml.Node, defaults StageSettings) []*Stage {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "write stages: as a list of - name: ... items", "stages: expected a list, found %s", describe(n))
		return nil
	}
	if len(n.Content) == 0 {
		p.errorf(n, "add a stage with name, kind and function", "stages: at least one stage is required")
		return nil
	}
	var out []*Stage
	seen := map[string]*yaml.Node{}
	p.info = map[*Stage]*stageInfo{}
	for i, orig := range n.Content {
		sn := resolve(orig)
		st, info := p.stage(sn, i, defaults)
		if st == nil {
			continue
		}
		if st.Name != "" {
			if prev, dup := seen[st.Name]; dup {
				// orig, not sn: an alias repeats a stage at the alias.
				p.errorf(orig, "rename one of them", "stage %q: duplicate stage name (first at line %d)", st.Name, prev.Line)
				continue
			}
			seen[st.Name] = sn
		}
		p.info[st] = info
		out = append(out, st)
	}
	return out
}

func (p *parser) stage(n *yaml.Node, index int, defaults StageSettings) (*Stage, *stageInfo) {
	what := "stages[" + strconv.Itoa(index) + "]"
	if n.Kind == yaml.MappingNode {
		// Name the stage in every message about it, when its name reads.
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
			if k.Value == "name" && v.Kind == yaml.ScalarNode && !strings.Contains(v.Value, "$") && checkName(v.Value) == "" {
				what = "stage " + strconv.Quote(v.Value)
				break
			}
		}
	}
	fs := p.fields(n, what, stageFields)
	if fs == nil {
		return nil, nil
	}
	st := &Stage{Pos: Pos{Line: n.Line, Column: n.Column}}
	info := &stageInfo{node: n, needNodes: map[string]*yaml.Node{}, ok: true}
	if f, ok := fs["name"]; ok {
		if s, good := p.str(f.val, what+": name", "a string"); good {
			if msg := checkName(s); msg != "" {
				p.errorf(f.val, nameHint, "%s: name: %s", what, msg)
				info.ok = false
			} else {
				st.Name = s
			}
		} else {
			info.ok = false
		}
	} else {
		p.errorf(n, "", "%s: missing required field %q", what, "name")
		info.ok = false
	}
	p.require(n, fs, what, "kind", "function")
	if f, ok := fs["kind"]; ok {
		if v, good := p.enum(f.val, what+": kind", kindValues); good {
			st.Kind = map[string]Kind{"map": KindMap, "reduce": KindReduce, "task": KindTask}[v]
		} else {
			info.ok = false
		}
	} else {
		info.ok = false
	}
	if f, ok := fs["function"]; ok {
		if s, good := p.str(f.val, what+": function", "a function name"); good {
			if msg := checkFunction(s); msg != "" {
				p.errorf(f.val, "a Gearman function name is any non-empty text without spaces", "%s: function: %s", what, msg)
			}
			st.Function = s
		}
	}
	if f, ok := fs["combine"]; ok {
		if s, good := p.str(f.val, what+": combine", "a function name"); good {
			if msg := checkFunction(s); msg != "" {
				p.errorf(f.val, "a Gearman function name is any non-empty text without spaces", "%s: combine: %s", what, msg)
			}
			st.Combine = s
			if st.Kind == KindReduce || st.Kind == KindTask {
				p.errorf(f.key, "a combiner runs on the map side: move it to the map stage this stage needs", "%s: combine applies to map stages only, not to a %s stage", what, st.Kind)
			}
		}
	}
	if f, ok := fs["needs"]; ok {
		info.needsNode = f.val
		if f.val.Kind != yaml.SequenceNode {
			p.errorf(f.val, "write needs: [stage, ...]", "%s: needs: expected a list of stage names, found %s", what, describe(f.val))
		} else {
			for _, nn := range f.val.Content {
				nn = resolve(nn)
				s, good := p.str(nn, what+": needs", "a stage name")
				if !good {
					continue
				}
				s = strings.TrimPrefix(s, "stage:")
				if _, dup := info.needNodes[s]; dup {
					p.errorf(nn, "", "%s: needs: %q is listed twice", what, s)
					continue
				}
				info.needNodes[s] = nn
				st.Needs = append(st.Needs, s)
			}
		}
	}
	if f, ok := fs["input"]; ok {
		info.hasInput = true
		in, from := p.input(f.val, what+": input", st.Kind)
		st.Inputs, info.fromNodes = []Input{in}, []*yaml.Node{from}
		if g, both := fs["inputs"]; both {
			p.errorf(g.key, "list every input under inputs: and drop input:", "%s: give input or inputs, not both", what)
		}
	} else if f, ok := fs["inputs"]; ok {
		info.hasInput = true
		st.Inputs, info.fromNodes = p.inputs(f.val, what, st.Kind)
	}
	if len(st.Inputs) > 0 {
		st.Input = st.Inputs[0]
	}
	if f, ok := fs["partition"]; ok {
		st.Partition = p.partition(f.val, what)
	}
	if f, ok := fs["encoding"]; ok {
		if v, good := p.enum(f.val, what+": encoding", encodingValues); good {
			if v == "raw" {
				st.Encoding = EncodingRaw
				if st.Kind == KindReduce {
					p.errorf(f.val, "reduce tasks carry key groups, which need msgpack", "%s: encoding: raw applies to map and task stages", what)
				}
			}
		}
	}
	if f, ok := fs["params"]; ok {
		st.Params = p.stageParams(f.val, what)
	}
	settings := map[string]field{}
	for _, k := range settingsFields {
		if f, ok := fs[k]; ok {
			settings[k] = f
		}
	}
	st.StageSettings = p.settings(settings, what, defaults, n)
	return st, info
}

func checkFunction(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if strings.ContainsAny(s, " \t\r\n\x00") {
		return "bad function name " + strconv.Quote(s)
	}
	return ""
}

const sourceHint = "use file:PATH, glob:PATTERN, s3://BUCKET/KEY or stage:NAME"

const storageHint = "use a folder (file:///shared/gearflow or a path) or s3://bucket/prefix"

// storageURI makes a storage: value a URI: an s3:// URI stays as it is,
// a path or file: URI becomes file:// and an absolute path.
func storageURI(dir, s string) (string, string) {
	switch {
	case strings.HasPrefix(s, "s3://"):
		if strings.TrimPrefix(s, "s3://") == "" || strings.HasPrefix(s, "s3:///") {
			return "", "s3:// needs a bucket"
		}
		return strings.TrimSuffix(s, "/"), ""
	case strings.Contains(s, "://") && !strings.HasPrefix(s, "file://"):
		return "", "unknown storage scheme in " + strconv.Quote(s)
	}
	path := strings.TrimPrefix(strings.TrimPrefix(s, "file://"), "file:")
	if path == "" {
		return "", "empty path"
	}
	return "file://" + absPath(dir, path), ""
}

// hasGlob reports whether s has glob syntax: * ? [ or {.
func hasGlob(s string) bool { return strings.ContainsAny(s, "*?[{") }

// inputs reads a stage's inputs: list, each entry an input mapping
// with a name unique in the stage.
func (p *parser) inputs(n *yaml.Node, what string, kind Kind) ([]Input, []*yaml.Node) {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.errorf(n, "write inputs: [{ name: users, from: users.csv }, { name: orders, from: orders.jsonl }]", "%s: inputs: expected a list of inputs, found %s", what, describe(n))
		return nil, nil
	}
	var ins []Input
	var froms []*yaml.Node
	seen := map[string]bool{}
	for i, e := range n.Content {
		e = resolve(e)
		w := what + ": inputs[" + strconv.Itoa(i) + "]"
		in, from := p.input(e, w, kind)
		if in.Name == "" && in.From.Kind == SourceStage {
			in.Name = in.From.Value
		}
		switch {
		case in.Name == "" && from != nil:
			p.errorf(e, "add name: NAME; functions see it as the record's Source", "%s: missing required field %q", w, "name")
		case seen[in.Name]:
			p.errorf(e, "give each input its own name", "%s: name: %q is used twice", w, in.Name)
		}
		seen[in.Name] = true
		ins = append(ins, in)
		froms = append(froms, from)
	}
	return ins, froms
}

// input reads one input mapping; what names it ("stage \"x\": input").
func (p *parser) input(n *yaml.Node, what string, kind Kind) (Input, *yaml.Node) {
	var in Input
	fs := p.fields(n, what, inputFields)
	if fs == nil {
		return in, nil
	}
	if f, ok := fs["name"]; ok {
		if s, good := p.str(f.val, what+": name", "a name"); good {
			if msg := checkName(s); msg != "" {
				p.errorf(f.val, nameHint, "%s: name: %s", what, msg)
			}
			in.Name = s
		}
	}
	if f, ok := fs["format"]; ok {
		if v, good := p.enum(f.val, what+": format", inputFormats); good {
			in.Format = map[string]InputFormat{"text": FormatText, "jsonl": FormatJSONLines, "csv": FormatCSVRows}[v]
		}
	}
	if f, ok := fs["header"]; ok {
		if v, good := p.boolean(f.val, what+": header"); good {
			in.Header = v
			if v && in.Format != FormatCSVRows && in.Format != FormatAuto {
				p.errorf(f.key, "a header names CSV fields: set format: csv", "%s: header applies to csv input, not %s", what, in.Format)
			}
		}
	}
	f, ok := fs["from"]
	if !ok {
		p.errorf(n, sourceHint, "%s: missing required field %q", what, "from")
		return in, nil
	}
	fromNode := f.val
	if s, good := p.str(f.val, what+": from", "a source"); good {
		prefix, rest, found := strings.Cut(s, ":")
		switch {
		case prefix == "s3" && strings.HasPrefix(rest, "//"):
			if strings.TrimPrefix(rest, "//") == "" || strings.HasPrefix(rest, "///") {
				p.errorf(f.val, sourceHint, "%s: from: %q names no bucket", what, s)
			} else if hasGlob(rest) {
				in.From = Source{Kind: SourceGlob, Value: s}
			} else {
				in.From = Source{Kind: SourceFile, Value: s}
			}
		case !found || (prefix != "file" && prefix != "glob" && prefix != "stage"):
			p.errorf(f.val, sourceHint, "%s: from: unknown source %q", what, s)
		case rest == "":
			p.errorf(f.val, sourceHint, "%s: from: %q names nothing", what, s)
		case prefix == "file":
			in.From = Source{Kind: SourceFile, Value: absPath(p.dir, strings.TrimPrefix(rest, "//"))}
		case prefix == "glob":
			pattern := absPath(p.dir, rest)
			if _, err := filepath.Match(pattern, ""); err != nil {
				p.errorf(f.val, "see path/filepath.Match: * ? [a-z] and \\ escapes", "%s: from: bad glob pattern %q", what, rest)
			} else {
				in.From = Source{Kind: SourceGlob, Value: pattern}
			}
		case prefix == "stage":
			in.From = Source{Kind: SourceStage, Value: rest}
		}
	}
	if kind == KindReduce && in.From.Kind != SourceStage && in.From.Kind != SourceNone {
		p.errorf(f.val, "a reduce stage reads the partitions of a stage it needs: from: stage:NAME", "%s: a reduce stage cannot read %s", what, in.From.Kind)
	}
	// Default split: by bytes for files, by records for stage output.
	switch in.From.Kind {
	case SourceStage:
		in.Split = Split{By: SplitRecords, N: DefaultSplitRecords}
	default:
		in.Split = Split{By: SplitBytes, N: DefaultSplitBytes}
	}
	if g, ok := fs["split"]; ok {
		if kind == KindReduce {
			p.errorf(g.key, "a reduce stage's tasks are the partitions of its input", "%s: split does not apply to a reduce stage", what)
		} else if sp, good := p.split(g.val, what+": split"); good {
			switch {
			case in.From.Kind == SourceStage && sp.By != SplitRecords:
				p.errorf(g.val, "use split: { records: N }", "%s: split: a stage's output splits by records, not %s", what, sp.By)
			case sp.By == SplitFiles && in.From.Kind != SourceGlob && in.From.Kind != SourceNone:
				p.errorf(g.val, "use from: glob:PATTERN to read several files", "%s: split: files applies to a glob input", what)
			default:
				in.Split = sp
			}
		}
	}
	return in, fromNode
}

const splitHint = "use one of lines, bytes, records, files, as { lines: 20000 }"

// split reads { unit: N } or a bare unit with its default size.
func (p *parser) split(n *yaml.Node, what string) (Split, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		unit, ok := p.enum(n, what, splitUnits)
		if !ok {
			return Split{}, false
		}
		switch unit {
		case "lines":
			return Split{By: SplitLines, N: DefaultSplitLines}, true
		case "bytes":
			return Split{By: SplitBytes, N: DefaultSplitBytes}, true
		case "records":
			return Split{By: SplitRecords, N: DefaultSplitRecords}, true
		default:
			return Split{By: SplitFiles, N: DefaultSplitFiles}, true
		}
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, splitHint, "%s: expected a mapping, found %s", what, describe(n))
		return Split{}, false
	}
	fs := p.fields(n, what, splitUnits)
	if fs == nil {
		return Split{}, false
	}
	if len(fs) != 1 {
		if len(fs) > 1 {
			p.errorf(n, splitHint, "%s: give exactly one of lines, bytes, records, files", what)
		} else if len(n.Content) == 0 {
			p.errorf(n, splitHint, "%s: empty split", what)
		}
		return Split{}, false
	}
	for unit, f := range fs {
		var v int
		var ok bool
		if unit == "bytes" {
			v, ok = p.size(f.val, what+": bytes")
		} else {
			v, ok = p.integer(f.val, what+": "+unit, 1)
		}
		if !ok {
			return Split{}, false
		}
		by := map[string]SplitBy{"lines": SplitLines, "bytes": SplitBytes, "records": SplitRecords, "files": SplitFiles}[unit]
		return Split{By: by, N: v}, true
	}
	return Split{}, false
}

var sizeUnits = []struct {
	suffix string
	mult   int
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30},
}

// size reads a byte count: 65536, 64KiB, 4MiB, 1MB.
func (p *parser) size(n *yaml.Node, what string) (int, bool) {
	s, ok := p.str(n, what, "a size")
	if !ok {
		return 0, false
	}
	t := strings.TrimSpace(s)
	mult := 1
	for _, u := range sizeUnits {
		if num, found := strings.CutSuffix(t, u.suffix); found {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	v, err := strconv.Atoi(t)
	if err != nil || v < 1 || v > (1<<40)/mult {
		p.errorf(n, "use a byte count like 65536, 64KiB, 4MiB or 1MB", "%s: bad size %q", what, s)
		return 0, false
	}
	return v * mult, true
}

func (p *parser) partition(n *yaml.Node, what string) Partition {
	fs := p.fields(n, what+": partition", partitionKeys)
	if fs == nil {
		return Partition{}
	}
	part := Partition{By: "key"}
	if f, ok := fs["by"]; ok {
		if _, good := p.enum(f.val, what+": partition: by", []string{"key"}); !good {
			return Partition{}
		}
	}
	f, ok := fs["count"]
	if !ok {
		p.errorf(n, "write partition: { by: key, count: 8 }", "%s: partition: missing required field %q", what, "count")
		return Partition{}
	}
	c, good := p.integer(f.val, what+": partition: count", 1)
	if !good {
		return Partition{}
	}
	part.Count = c
	return part
}

func (p *parser) stageParams(n *yaml.Node, what string) map[string]string {
	fs := p.fields(n, what+": params", nil)
	if fs == nil {
		return nil
	}
	out := make(map[string]string, len(fs))
	for name, f := range fs {
		if f.val.Kind != yaml.ScalarNode {
			p.errorf(f.val, "stage params are plain values: strings, numbers, booleans", "%s: params: %s: expected a value, found %s", what, name, describe(f.val))
			continue
		}
		if f.val.Tag == "!!null" {
			out[name] = ""
			continue
		}
		if s, good := p.str(f.val, what+": params: "+name, "a value"); good {
			out[name] = s
		}
	}
	return out
}

// links resolves inputs and needs between stages: default inputs, the
// implicit need of an input stage, unknown stages and cycles.
func (p *parser) links(pl *Pipeline) {
	byName := map[string]*Stage{}
	var names []string
	for _, st := range pl.Stages {
		if st.Name != "" {
			byName[st.Name] = st
			names = append(names, st.Name)
		}
	}
	stageHint := func(name string) string {
		h := "stages: " + strings.Join(names, ", ")
		if c := closest(name, names); c != "" {
			h = "did you mean " + strconv.Quote(c) + "? " + h
		}
		return h
	}
	for _, st := range pl.Stages {
		info := p.info[st]
		what := "stage " + strconv.Quote(st.Name)
		var known []string
		for _, need := range st.Needs {
			switch {
			case need == st.Name:
				p.errorf(info.needNodes[need], "a stage cannot need itself", "%s: needs form a cycle: %s -> %s", what, need, need)
			case byName[need] == nil:
				p.errorf(info.needNodes[need], stageHint(need), "%s: needs: no stage is called %q", what, need)
			default:
				known = append(known, need)
			}
		}
		st.Needs = known
		for i, in := range st.Inputs {
			if in.From.Kind != SourceStage {
				continue
			}
			src := in.From.Value
			switch {
			case src == st.Name:
				p.errorf(info.fromNodes[i], "a stage cannot read its own output", "%s: input: from: stage %q is this stage", what, src)
			case byName[src] == nil:
				p.errorf(info.fromNodes[i], stageHint(src), "%s: input: from: no stage is called %q", what, src)
			case !contains(st.Needs, src):
				// Reading a stage implies needing it.
				st.Needs = append(st.Needs, src)
			}
		}
		if !info.hasInput && info.ok {
			switch {
			case len(st.Needs) == 1 && (len(info.needNodes) == 1):
				st.Input = Input{From: Source{Kind: SourceStage, Value: st.Needs[0]}, Split: Split{By: SplitRecords, N: DefaultSplitRecords}}
				st.Inputs = []Input{st.Input}
			case len(st.Needs) > 1 && len(st.Needs) == len(info.needNodes) && st.Kind == KindReduce:
				// A cogroup: each key's values, grouped by the need
				// they came from.
				for _, need := range st.Needs {
					st.Inputs = append(st.Inputs, Input{Name: need, From: Source{Kind: SourceStage, Value: need}})
				}
				st.Input = st.Inputs[0]
			case len(info.needNodes) > 1 && st.Kind != KindTask:
				p.errorf(info.node, "add input: { from: stage:NAME } naming one of its needs", "%s: a %s stage with several needs must say which one it reads", what, st.Kind)
			case len(info.needNodes) == 0 && st.Kind == KindMap:
				p.errorf(info.node, "add input: { from: file:PATH } (or glob:PATTERN, stage:NAME)", "%s: a map stage needs an input", what)
			case len(info.needNodes) == 0 && st.Kind == KindReduce:
				p.errorf(info.node, "add needs: [STAGE] naming the stage whose output it reduces", "%s: a reduce stage needs the stage it reads", what)
			}
		}
		if st.Kind == KindReduce {
			for i := range st.Inputs {
				st.Inputs[i].Split = Split{}
			}
			if len(st.Inputs) > 0 {
				st.Input = st.Inputs[0]
			}
			p.cogroupParts(st, info, byName)
		}
	}
	p.cycles(pl, byName)
}

// cogroupParts checks that the stages a reduce stage reads together are
// cut into the same number of partitions: partition p of one meets
// partition p of the others.
func (p *parser) cogroupParts(st *Stage, info *stageInfo, byName map[string]*Stage) {
	if len(st.Inputs) < 2 {
		return
	}
	first := ""
	want := 0
	for _, in := range st.Inputs {
		up := byName[in.From.Value]
		if up == nil {
			continue
		}
		if first == "" {
			first, want = up.Name, max(up.Partition.Count, 1)
			continue
		}
		if got := max(up.Partition.Count, 1); got != want {
			p.errorf(info.node, "give the stages it reads the same partition: { count: N }",
				"stage %q: reads %s (%d partitions) and %s (%d partitions): a cogroup needs the same count", st.Name, first, want, up.Name, got)
			return
		}
	}
}

// cycles reports each cycle of needs once, naming its stages.
func (p *parser) cycles(pl *Pipeline, byName map[string]*Stage) {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		color[name] = grey
		stack = append(stack, name)
		st := byName[name]
		for _, need := range st.Needs {
			switch color[need] {
			case white:
				visit(need)
			case grey:
				start := 0
				for i, s := range stack {
					if s == need {
						start = i
					}
				}
				cycle := append(append([]string{}, stack[start:]...), need)
				first := byName[cycle[0]]
				at := p.info[first].needsNode
				if at == nil {
					at = p.info[first].node
				}
				p.errorf(at, "remove one of these needs (or the input: from: that implies it)", "stage %q: needs form a cycle: %s", first.Name, strings.Join(cycle, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		color[name] = black
	}
	for _, st := range pl.Stages {
		if st.Name != "" && color[st.Name] == white {
			visit(st.Name)
		}
	}
}

func (p *parser) output(n *yaml.Node, pl *Pipeline) Output {
	var out Output
	fs := p.fields(n, "output", outputFields)
	if fs == nil {
		return out
	}
	p.require(n, fs, "output", "to")
	if len(pl.Stages) > 0 {
		out.From = pl.Stages[len(pl.Stages)-1].Name
	}
	if f, ok := fs["from"]; ok {
		if s, good := p.str(f.val, "output: from", "a stage name"); good {
			s = strings.TrimPrefix(s, "stage:")
			if pl.Stage(s) == nil {
				var names []string
				for _, st := range pl.Stages {
					names = append(names, st.Name)
				}
				hint := "stages: " + strings.Join(names, ", ")
				if c := closest(s, names); c != "" {
					hint = "did you mean " + strconv.Quote(c) + "? " + hint
				}
				p.errorf(f.val, hint, "output: from: no stage is called %q", s)
			}
			out.From = s
		}
	}
	formatNode := (*yaml.Node)(nil)
	if f, ok := fs["format"]; ok {
		formatNode = f.val
		if v, good := p.enum(f.val, "output: format", formatValues); good {
			out.Format = map[string]Format{"tsv": FormatTSV, "csv": FormatCSV, "jsonl": FormatJSONL}[v]
		}
	}
	if f, ok := fs["to"]; ok {
		if s, good := p.str(f.val, "output: to", "a path"); good {
			path := strings.TrimPrefix(strings.TrimPrefix(s, "file:"), "//")
			if path == "" {
				p.errorf(f.val, "give a path such as file:out/result.tsv", "output: to: empty path")
				return out
			}
			if strings.HasPrefix(s, "s3://") {
				out.To = s
			} else {
				out.To = absPath(p.dir, path)
			}
			if strings.HasSuffix(s, "/") {
				// A folder of part files, one per task.
				out.Dir = true
				out.To = strings.TrimSuffix(out.To, "/")
				if formatNode == nil {
					out.Format = FormatTSV
				}
			} else if formatNode == nil {
				switch ext := strings.ToLower(filepath.Ext(path)); ext {
				case ".tsv":
					out.Format = FormatTSV
				case ".csv":
					out.Format = FormatCSV
				case ".jsonl":
					out.Format = FormatJSONL
				default:
					what := "no extension"
					if ext != "" {
						what = "unknown extension " + strconv.Quote(ext)
					}
					p.errorf(f.val, "name the file .tsv, .csv or .jsonl, or set format: tsv|csv|jsonl", "output: to: %s: cannot tell the format", what)
				}
			}
		}
	}
	return out
}
