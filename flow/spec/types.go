package spec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Built-in defaults: a stage's setting takes its own value, else the
// pipeline's defaults: section, else these.
const (
	// DefaultConcurrency, zero, has a stage keep two jobs in flight per
	// worker slot registered for its function, re-read as the run goes.
	DefaultConcurrency = 0
	DefaultTimeout     = 10 * time.Minute
	DefaultMaxAttempts = 3
	DefaultInitial     = time.Second
	DefaultMax         = 30 * time.Second
	DefaultSpeculative = true

	// DefaultSplitLines is the chunk size of a lines split given without
	// a size.
	DefaultSplitLines = 10000
	// DefaultSplitRecords is the chunk size of a records split (the
	// default split of a stage input).
	DefaultSplitRecords = 10000
	// DefaultSplitBytes is the chunk size of a bytes split given without
	// a size, and of a file or glob input that names no split.
	DefaultSplitBytes = 64 << 20
	// DefaultSplitFiles is the number of files per task of a files split
	// given without a count.
	DefaultSplitFiles = 1
)

// Pipeline is a parsed, validated and resolved pipeline file: params are
// converted and applied, ${params.x} references are replaced, defaults are
// inherited into every stage and relative paths are made absolute.
type Pipeline struct {
	// Version is the file format version; always 1.
	Version int
	// Name names the pipeline (runs, logs, journal).
	Name string
	// Params holds every declared param's resolved value, after defaults
	// and -p overrides, typed by its declaration: string, int64, float64,
	// bool, time.Duration, or string for a path (absolute).
	Params map[string]any
	// ParamDecls lists the declared params in file order.
	ParamDecls []ParamDecl
	// Defaults is the defaults: section laid over the built-in defaults:
	// what a stage that sets nothing inherits.
	Defaults StageSettings
	// Storage is the URI of the run's intermediate data (file:///path or
	// s3://bucket/prefix); empty leaves it to the run (the embedded
	// default keeps it in the run's own folder).
	Storage string
	// Stages lists the stages in file order. Validate guarantees that
	// names are unique, needs exist and have no cycle.
	Stages []*Stage
	// Output says which stage's records are written where.
	Output Output
	// Dir is the absolute directory of the pipeline file: relative paths
	// in the file resolve against it.
	Dir string
}

// Stage returns the stage called name, or nil.
func (p *Pipeline) Stage(name string) *Stage {
	for _, s := range p.Stages {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// ParamDecl is the declaration of one pipeline param.
type ParamDecl struct {
	Name        string
	Type        ParamType
	Required    bool
	Default     any // typed like Pipeline.Params; nil when none
	Description string
}

// ParamType is the declared type of a param.
type ParamType int

const (
	ParamString   ParamType = iota // "string" (the default type)
	ParamInt                       // "int": a decimal integer, held as int64
	ParamFloat                     // "float": held as float64
	ParamBool                      // "bool": true/false, held as bool
	ParamDuration                  // "duration": a Go duration such as 2m, held as time.Duration
	ParamPath                      // "path": a file path, held as an absolute string
)

var paramTypeNames = []string{"string", "int", "float", "bool", "duration", "path"}

func (t ParamType) String() string {
	if t >= 0 && int(t) < len(paramTypeNames) {
		return paramTypeNames[t]
	}
	return "ParamType(" + strconv.Itoa(int(t)) + ")"
}

// Kind is what a stage does with its input.
type Kind int

const (
	// KindMap runs the function on every input record; its output may be
	// combined and partitioned by key.
	KindMap Kind = iota + 1
	// KindReduce runs the function on every key with all its values,
	// reading the partitions of the stage it needs.
	KindReduce
	// KindTask runs the function once per input chunk (or once, with no
	// input), taking the job's result as output.
	KindTask
)

var kindNames = map[Kind]string{KindMap: "map", KindReduce: "reduce", KindTask: "task"}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Stage is one step of a pipeline, with its settings resolved.
type Stage struct {
	Name string
	Kind Kind
	// Function is the Gearman function name the stage's tasks are
	// submitted to.
	Function string
	// Input is what the stage reads: its first input (Inputs[0]), or
	// the zero Input when it has none. For a reduce stage Input.From is
	// always a stage in Needs (by default its single need). A task stage
	// may have no input (Input.From.Kind == SourceNone).
	Input Input
	// Inputs lists every input of the stage, in file order: the one of
	// input:, the entries of inputs:, or, for a reduce stage with several
	// needs and no input, one per need (a cogroup: each key's values
	// come grouped by input). Empty when the stage has no input.
	Inputs []Input
	// Combine is the optional map-side combiner function ("" = none).
	Combine string
	// Partition shuffles the stage's output by key; Count 0 = no shuffle.
	Partition Partition
	// Needs lists the stages that must finish first, including the stage
	// named by Input.From when it is not listed.
	Needs []string
	// Encoding is the task payload format.
	Encoding Encoding
	// Params are passed to the stage's functions, after interpolation.
	Params map[string]string
	// Pos is where the stage starts in the pipeline file.
	Pos Pos
	// StageSettings are resolved: the stage's value, else the pipeline's
	// defaults, else the built-in default.
	StageSettings
}

// InputList returns the stage's inputs: Inputs, or Input alone for a
// Stage built in Go that sets only Input, or none.
func (s *Stage) InputList() []Input {
	if len(s.Inputs) > 0 {
		return s.Inputs
	}
	if s.Input.From.Kind != SourceNone {
		return []Input{s.Input}
	}
	return nil
}

// CoGroup reports whether the stage is a reduce stage reading several
// stages together.
func (s *Stage) CoGroup() bool { return s.Kind == KindReduce && len(s.InputList()) > 1 }

// Pos is a position in the pipeline file (1-based).
type Pos struct {
	Line, Column int
}

// StageSettings are the settings a stage inherits from defaults:.
type StageSettings struct {
	// Concurrency is the number of the stage's jobs in flight; 0 (the
	// default) keeps two per worker slot registered for its function.
	Concurrency int
	// Priority is the Gearman priority of the stage's jobs.
	Priority Priority
	// Timeout bounds each attempt; default 10m; 0 = no timeout.
	Timeout time.Duration
	Retry   Retry
	// OnFailure says what a task that runs out of attempts does to the run.
	OnFailure FailurePolicy
	// DeadLetter is the absolute path of a JSON lines file that receives
	// failed tasks under continue/tolerate and the bad records skipped
	// under SkipBadRecords; "" = none.
	DeadLetter string
	// Speculative allows backup attempts for stragglers; default true.
	Speculative bool
	// SkipBadRecords is how many input records of a task may fail their
	// function call before the task fails; the zero value skips none.
	SkipBadRecords BadRecordLimit
}

// BadRecordLimit is a stage's skip_bad_records: how many records of a
// task may fail their function call (each written to the dead letter)
// before the task itself fails. At most one of Count and Fraction is set;
// neither set (the zero value) skips no record.
type BadRecordLimit struct {
	// Count is the number of bad records a task may skip (10 -> 10).
	Count int
	// Fraction is the share of a task's input records that may be bad
	// ("1%" -> 0.01).
	Fraction float64
}

// Zero reports whether the limit skips no record.
func (b BadRecordLimit) Zero() bool { return b.Count == 0 && b.Fraction == 0 }

// Allows reports whether a task that read in records may have bad of
// them fail.
func (b BadRecordLimit) Allows(bad, in int64) bool {
	if bad == 0 {
		return true
	}
	if b.Fraction > 0 {
		return float64(bad) <= b.Fraction*float64(in)
	}
	return bad <= int64(b.Count)
}

func (b BadRecordLimit) String() string {
	if b.Fraction > 0 {
		return strconv.FormatFloat(b.Fraction*100, 'f', -1, 64) + "%"
	}
	return strconv.Itoa(b.Count)
}

// Retry says how a failed attempt is retried.
type Retry struct {
	// MaxAttempts counts the first attempt; default 3; 1 = no retry.
	MaxAttempts int
	Backoff     Backoff
	// Initial is the wait before the first retry; default 1s.
	Initial time.Duration
	// Max caps the wait between attempts; default 30s.
	Max time.Duration
}

// Priority is the Gearman priority of a stage's jobs.
type Priority int

const (
	PriorityNormal Priority = iota // SUBMIT_JOB (the default)
	PriorityHigh                   // SUBMIT_JOB_HIGH
	PriorityLow                    // SUBMIT_JOB_LOW
)

func (p Priority) String() string {
	switch p {
	case PriorityNormal:
		return "normal"
	case PriorityHigh:
		return "high"
	case PriorityLow:
		return "low"
	}
	return "Priority(" + strconv.Itoa(int(p)) + ")"
}

// Backoff is how the wait between attempts grows.
type Backoff int

const (
	BackoffExponential Backoff = iota // doubles from Initial up to Max (the default)
	BackoffFixed                      // always Initial
)

func (b Backoff) String() string {
	switch b {
	case BackoffExponential:
		return "exponential"
	case BackoffFixed:
		return "fixed"
	}
	return "Backoff(" + strconv.Itoa(int(b)) + ")"
}

// FailureMode says what a task that runs out of attempts does to the run.
type FailureMode int

const (
	// FailFast fails the run (the default).
	FailFast FailureMode = iota
	// Continue records the failed task (dead letter) and goes on.
	Continue
	// Tolerate goes on while failed tasks stay within the policy's
	// Fraction or Count, and fails the run beyond it.
	Tolerate
)

func (m FailureMode) String() string {
	switch m {
	case FailFast:
		return "fail_fast"
	case Continue:
		return "continue"
	case Tolerate:
		return "tolerate"
	}
	return "FailureMode(" + strconv.Itoa(int(m)) + ")"
}

// FailurePolicy is a stage's on_failure.
type FailurePolicy struct {
	Mode FailureMode
	// Fraction is the tolerated share of the stage's tasks ("1%" ->
	// 0.01); set when the tolerance is a percentage.
	Fraction float64
	// Count is the tolerated number of failed tasks ("3" -> 3); set when
	// the tolerance is a count.
	Count int
}

func (f FailurePolicy) String() string {
	if f.Mode != Tolerate {
		return f.Mode.String()
	}
	if f.Fraction > 0 || f.Count == 0 {
		return "tolerate " + strconv.FormatFloat(f.Fraction*100, 'f', -1, 64) + "%"
	}
	return "tolerate " + strconv.Itoa(f.Count)
}

// Input is what a stage reads and how it is cut into tasks.
type Input struct {
	// Name names the input: functions see it as Record.Source, and a
	// cogroup reduce groups values by it. An entry of inputs: has one
	// (a stage source defaults to the stage's name); input: may.
	Name  string
	From  Source
	Split Split
	// Format is how a file's lines become records. FormatAuto reads a
	// .csv file as CSV, any file as JSON lines under a records split,
	// and text otherwise.
	Format InputFormat
	// Header, for CSV, takes each file's first record as the field
	// names: records are then maps from field name to value.
	Header bool
}

// InputFormat is how the lines of an input file become records.
type InputFormat int

const (
	// FormatAuto decides by the file name and the split (see Input).
	FormatAuto InputFormat = iota
	// FormatText makes each line a string record.
	FormatText
	// FormatJSONLines makes each non-blank line the JSON value it holds.
	FormatJSONLines
	// FormatCSVRows makes each CSV record (quoted fields may span lines)
	// the array of its fields, or a map with Header.
	FormatCSVRows
)

func (f InputFormat) String() string {
	switch f {
	case FormatAuto:
		return "auto"
	case FormatText:
		return "text"
	case FormatJSONLines:
		return "jsonl"
	case FormatCSVRows:
		return "csv"
	}
	return "InputFormat(" + strconv.Itoa(int(f)) + ")"
}

// Source is where input comes from.
type Source struct {
	Kind SourceKind
	// Value is the absolute file path, the absolute glob pattern (either
	// may be an s3:// URI instead), or the stage name.
	Value string
}

func (s Source) String() string {
	if s.Kind == SourceNone {
		return ""
	}
	return s.Kind.String() + ":" + s.Value
}

// SourceKind is the kind of a Source.
type SourceKind int

const (
	SourceNone  SourceKind = iota // no input (task stages only)
	SourceFile                    // "file:PATH"
	SourceGlob                    // "glob:PATTERN" (path/filepath.Match syntax)
	SourceStage                   // "stage:NAME"
)

func (k SourceKind) String() string {
	switch k {
	case SourceNone:
		return "none"
	case SourceFile:
		return "file"
	case SourceGlob:
		return "glob"
	case SourceStage:
		return "stage"
	}
	return "SourceKind(" + strconv.Itoa(int(k)) + ")"
}

// Split says how input is cut into tasks.
type Split struct {
	By SplitBy
	// N is the lines, bytes or records per task, or the files per task.
	N int
}

func (s Split) String() string { return s.By.String() + ":" + strconv.Itoa(s.N) }

// SplitBy is the unit a Split counts.
type SplitBy int

const (
	SplitLines   SplitBy = iota // lines of text
	SplitBytes                  // bytes, cut at line ends (default for files and globs: 64 MiB)
	SplitRecords                // records of the input's format, or a stage's records (default for stages: 10000)
	SplitFiles                  // whole files per task
)

func (s SplitBy) String() string {
	switch s {
	case SplitLines:
		return "lines"
	case SplitBytes:
		return "bytes"
	case SplitRecords:
		return "records"
	case SplitFiles:
		return "files"
	}
	return "SplitBy(" + strconv.Itoa(int(s)) + ")"
}

// Partition shuffles a stage's output by key hash.
type Partition struct {
	// By is what is hashed: always "key" when Count > 0.
	By string
	// Count is the number of partitions; 0 = no shuffle.
	Count int
}

// Encoding is the payload format of a stage's tasks.
type Encoding int

const (
	// EncodingMsgpack is the gearflow task format (the default).
	EncodingMsgpack Encoding = iota
	// EncodingRaw sends the raw input chunk and takes the job's result as
	// one output value, for workers in any language.
	EncodingRaw
)

func (e Encoding) String() string {
	switch e {
	case EncodingMsgpack:
		return "msgpack"
	case EncodingRaw:
		return "raw"
	}
	return "Encoding(" + strconv.Itoa(int(e)) + ")"
}

// Output is where the pipeline's result goes.
type Output struct {
	// From is the stage whose records are written (default: the last stage).
	From string
	// To is the absolute path of the output file, or an s3:// URI; with
	// Dir, of the folder (or prefix) of its part files.
	To     string
	Format Format
	// Dir ("to:" ends in "/") writes one part file per task of the output
	// stage, part-NNNNN.<format>, and an empty _SUCCESS once all are
	// there, instead of one file; the format defaults to tsv.
	Dir bool
}

// Format is the output file format.
type Format int

const (
	FormatTSV   Format = iota + 1 // ".tsv": key<TAB>value lines
	FormatCSV                     // ".csv": key,value rows
	FormatJSONL                   // ".jsonl": one {"key":...,"value":...} object per line
)

func (f Format) String() string {
	switch f {
	case FormatTSV:
		return "tsv"
	case FormatCSV:
		return "csv"
	case FormatJSONL:
		return "jsonl"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// ParseFormat returns the Format called s: "tsv", "csv" or "jsonl".
func ParseFormat(s string) (Format, error) {
	for _, f := range []Format{FormatTSV, FormatCSV, FormatJSONL} {
		if f.String() == s {
			return f, nil
		}
	}
	return 0, fmt.Errorf("unknown output format %q (want tsv, csv or jsonl)", s)
}

// ErrInvalid matches every *Error with errors.Is: the pipeline file (or
// a -p param) is wrong, as opposed to unreadable.
var ErrInvalid = errors.New("spec: invalid pipeline")

// Error is one problem in a pipeline file, at a position. Line and Column
// are 1-based; Column is 1 when only the line is known (YAML syntax
// errors). Errors about a -p param point at the param's declaration, or
// at the params: key (line 1 when there is none) for an undeclared one.
type Error struct {
	File         string
	Line, Column int
	Msg          string
	Hint         string // "" = none
}

// Error returns "file:line:column: msg (hint: ...)".
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	fmt.Fprintf(&b, "%d:%d: %s", e.Line, e.Column, e.Msg)
	if e.Hint != "" {
		b.WriteString(" (hint: ")
		b.WriteString(e.Hint)
		b.WriteByte(')')
	}
	return b.String()
}

// Unwrap returns ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }
