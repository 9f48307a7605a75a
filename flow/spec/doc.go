// Package spec reads gearflow pipeline files: one YAML document that names
// a pipeline's params, its stages (map, reduce and task steps, each a
// Gearman function) and its output.
//
// Load and Parse return a *Pipeline that is fully resolved: params are
// converted to their declared types and -p overrides applied, every
// ${params.NAME} is replaced, each stage carries its settings (its own
// value, else the pipeline's defaults:, else the built-in default),
// default inputs and implicit needs are filled in, and relative paths are
// absolute. Parsing is strict: an unknown field, a wrong type, a missing
// required field, a bad value, a need that names no stage or a cycle is
// an error. Every error is an *Error whose text is
//
//	file:line:column: message (hint: ...)
//
// and Parse reports all the independent errors it finds, sorted by
// position, as an errors.Join of *Error (Errors lists them).
//
// docs/PIPELINE.md holds the same reference with a complete example.
//
// # The file
//
//	version: 1                    # optional; 1 is the only version
//	name: wordcount               # required
//	params: {...}                 # optional: typed inputs of the pipeline
//	defaults: {...}               # optional: settings every stage inherits
//	stages: [...]                 # required: at least one stage
//	output: {...}                 # required
//
// name is letters, digits, "_", "." and "-", starting with a letter or a
// digit; so are stage names.
//
// # Params
//
// params maps a param name (letters, digits, "_", "-") to its declaration:
//
//	params:
//	  input:      { type: path, required: true, description: text to count }
//	  partitions: { type: int, default: 8 }
//
// The fields of a declaration:
//
//   - type: string (the default), int (held as int64), float (float64),
//     bool (true or false), duration (a Go duration such as 90s or 1h30m,
//     held as time.Duration), or path (a string, made absolute).
//   - required: true or false (default false). A required param has no
//     default: it must be given with -p.
//   - default: the value when -p does not give one, written as the type
//     reads it. A default is literal: it cannot refer to params. A
//     relative path default resolves against the pipeline file's
//     directory.
//   - description: free text, for help output.
//
// A param's value is its -p override (gearflow run -p partitions=16),
// else its default, else, when it is not required, the zero value of its
// type ("" for string and path). A -p value is converted to the declared
// type, and a relative path given with -p resolves against the working
// directory, where the command runs. A -p naming an undeclared param is an
// error that lists the declared ones, and so is a required param left
// without a value, whose error says how to pass it (-p input=PATH).
//
// # Interpolation
//
// ${params.NAME} in any string value of defaults:, stages: and output:
// is replaced by the param's value: ints in decimal, floats in their
// shortest form, bools as true/false, durations as Go writes them (1m30s),
// paths absolute. Spaces inside the braces are allowed. It works inside
// YAML flow collections too:
//
//	partition: { by: key, count: ${params.partitions} }
//
// The replaced text is then read as the field's type, and an error in it
// points at the field in the file. Nothing but params.NAME may appear
// between the braces: there is no expression language. $${ writes a
// literal "${". Keys and the params: section are not interpolated.
//
// # Defaults and stage settings
//
// These settings may appear under defaults: and in any stage; a stage's
// own value wins over defaults:, which wins over the built-in default:
//
//   - concurrency: int >= 1: the stage's jobs in flight; by default two
//     per worker slot registered for its function, re-read as the run
//     goes.
//   - priority: low, normal (default) or high: the Gearman priority of the
//     stage's jobs (SUBMIT_JOB_LOW, SUBMIT_JOB, SUBMIT_JOB_HIGH).
//   - timeout: duration, default 10m: the limit of one attempt; 0s means
//     no limit.
//   - retry: a mapping, inherited field by field:
//     max_attempts (int >= 1, default 3, counting the first attempt; an
//     attempt lost with its job server does not count, up to 10 of them),
//     backoff (exponential, the default, or fixed),
//     initial (duration, default 1s: the first wait) and
//     max (duration, default 30s: the longest wait; not below initial).
//   - on_failure: what a task that runs out of attempts does: fail_fast
//     (default) fails the run; continue records it and goes on;
//     { tolerate: "1%" } goes on while at most that share of the stage's
//     tasks fail ("0.5%" works; the share is above 0 and at most 100%), and
//     { tolerate: 3 } while at most that many tasks fail.
//   - dead_letter: path of a JSON lines file that receives the tasks that
//     failed under continue or tolerate, and the records skipped under
//     skip_bad_records; default none; "file:" prefix optional; relative
//     to the pipeline file's directory.
//   - speculative: bool, default true: allow backup attempts for
//     stragglers near the end of a stage.
//   - skip_bad_records: a count of input records per task (10), or a
//     share of them ("1%"), that may fail their function call or fail to
//     read before the task fails; each goes to the dead letter. Default 0:
//     none.
//
// # Stages
//
// stages is a list; each stage is a mapping with the settings above and:
//
//   - name: required, unique among the stages.
//   - kind: required: map (the function gets each input record and emits
//     records), reduce (the function gets each key with all its values),
//     or task (the function gets each input chunk; its result is the
//     output).
//   - function: required: the Gearman function the stage's tasks are
//     submitted to (no spaces).
//   - input: where the stage reads from: a mapping with
//     from (required: file:PATH, glob:PATTERN or stage:NAME; paths and
//     patterns relative to the pipeline file's directory; patterns in
//     path/filepath.Match syntax) and
//     split (how input is cut into tasks: { lines: N }, { bytes: SIZE },
//     { records: N } (records of its format, or a stage's), or { files: N }
//     (whole files per task, glob inputs); a bare lines, bytes, records or
//     files takes the default size). SIZE is a byte count with an optional
//     unit: 65536, 64KiB, 4MiB, 1MB. The default split is { lines: 10000 }
//     for files and globs and { records: 10000 } for a stage, which only
//     splits by records. N is at least 1. Also name (the input's name,
//     as functions see it), format (text, jsonl or csv; by default a
//     .csv file is CSV and a records split reads JSON lines) and header
//     (CSV: the first record names the fields).
//   - inputs: several inputs, a list of mappings like input:, each with a
//     name unique in the stage (a stage: input defaults to the stage's
//     name); a stage has input or inputs, not both.
//   - needs: a list of stage names (a "stage:" prefix is accepted) that
//     must finish first. Each must name a stage, once, and needs may not
//     form a cycle. A stage read by input: from: stage:NAME is needed
//     implicitly: it is added to Needs when not listed.
//   - combine: a map-side combiner function (map stages only).
//   - partition: { by: key, count: N }: shuffle the stage's output by key
//     hash into N >= 1 partitions; by is optional and "key" is its only
//     value. Without partition there is no shuffle.
//   - encoding: msgpack (default: the gearflow task format) or raw (the
//     task payload is the raw input chunk and the job's result is one
//     output value, so a worker in any language can serve the stage; not
//     for reduce stages).
//   - params: a mapping of names to plain values (strings, numbers,
//     booleans), passed to the stage's functions as strings after
//     interpolation.
//
// A stage without input reads the output of its single need, when it has
// exactly one. Otherwise a map stage needs an input, a reduce stage needs
// the stage it reduces (needs: [NAME]), and a map stage with several
// needs must name the one it reads; a task stage may have no input at
// all. A reduce stage with several needs and no input reads them all (a
// cogroup), which must have the same partition count. A reduce stage
// reads only stages (never a file), takes no split and no combine: its
// tasks are the partitions of its input.
//
// # Output
//
//   - from: the stage whose records are written ("stage:" prefix
//     accepted); default: the last stage in the file.
//   - to: required: the output file ("file:" prefix optional), relative to
//     the pipeline file's directory.
//   - format: tsv, csv or jsonl; default: from the extension of to
//     (.tsv, .csv, .jsonl). Another extension needs format:.
//
// # YAML
//
// A file holds one YAML document. Anchors and aliases are followed; merge
// keys (<<) are not supported. Scalars are read as text and then as the
// field's type, so a quoted "64" is a valid concurrency.
package spec
