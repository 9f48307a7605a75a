package flow

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gearflow/gearflow/flow/internal/msgp"
	"github.com/gearflow/gearflow/flow/spec"
)

// Position is where an input record was read.
type Position struct {
	// File is the input file (a path, or an s3:// URI), or the record
	// file of an upstream stage's output.
	File string
	// Line is the 1-based line the record starts on, when known (lines
	// and records splits, files read whole, CSV); 0 otherwise.
	Line int64
	// Offset is the byte offset in File where the record starts (in the
	// decompressed data for a compressed file); for a record file, the
	// record's index in it.
	Offset int64
}

// String returns "file:line", or "file@offset" when the line is not
// known, or "" for the zero Position.
func (p Position) String() string {
	switch {
	case p.File == "":
		return ""
	case p.Line > 0:
		return p.File + ":" + strconv.FormatInt(p.Line, 10)
	}
	return p.File + "@" + strconv.FormatInt(p.Offset, 10)
}

// BadRecord is an input record a task skipped: its function failed on
// it, or it did not read as its input's format. Under skip_bad_records
// each one goes to the stage's dead letter.
type BadRecord struct {
	// Where names the record: "file:line", "file@offset", or the task's
	// input and the record's number in it.
	Where string `json:"where"`
	// Err is the error's text.
	Err string `json:"error"`
	// Record is the record as JSON ({"key":…,"value":…}), or the input
	// line that did not read; cut to maxBadRecordText bytes.
	Record string `json:"record"`
}

// maxBadRecordText bounds the text of a skipped record kept for the
// dead letter.
const maxBadRecordText = 4 << 10

// maxBadRecords bounds the bad records one task may skip, whatever its
// stage's limit says, so that its summary stays a small packet.
const maxBadRecords = 10000

// ErrPermanent is matched (errors.Is) by the error of an attempt that
// failed with an error its function marked permanent: the task is not
// retried.
var ErrPermanent = errors.New("flow: permanent error")

// PermanentError marks an error that retrying cannot mend: bad input, a
// record that breaks a rule. A task that fails with one is not retried.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Is makes every PermanentError match ErrPermanent.
func (e *PermanentError) Is(target error) bool { return target == ErrPermanent }

// Permanent marks err as permanent: a function that returns it (or an
// error wrapping it) fails its task without a retry. Under
// skip_bad_records the record is skipped like any other bad record.
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// permanentPrefix starts the WORK_EXCEPTION text of a task that failed
// with a permanent error; the coordinator does not retry it
// (docs/TASKFORMAT.md).
const permanentPrefix = "permanent: "

// exceptionText returns the WORK_EXCEPTION text of a task's error.
func exceptionText(err error) string {
	if errors.Is(err, ErrPermanent) {
		return permanentPrefix + err.Error()
	}
	return err.Error()
}

// exceptionError is the error a worker reports as WORK_EXCEPTION: err,
// with its text marked when it is permanent.
func exceptionError(err error) error {
	if errors.Is(err, ErrPermanent) {
		return &PermanentError{Err: errors.New(exceptionText(err))}
	}
	return err
}

// jobError turns the error of a failed job as the coordinator sees it
// (the WORK_EXCEPTION text) back into a permanent error when the worker
// marked it so.
func jobError(err error) error {
	if err == nil || errors.Is(err, ErrPermanent) {
		return err
	}
	if strings.HasPrefix(err.Error(), permanentPrefix) {
		return &PermanentError{Err: err}
	}
	return err
}

// RecordError is the error of one input record: its function failed on
// it, or it did not read as its format. It names the record's place.
type RecordError struct {
	Where string
	Err   error
}

func (e *RecordError) Error() string { return e.Where + ": " + e.Err.Error() }
func (e *RecordError) Unwrap() error { return e.Err }

// badRecords counts a task's bad records against its stage's
// skip_bad_records.
type badRecords struct {
	limit spec.BadRecordLimit
	list  []BadRecord
}

// parseBadLimit reads a payload's skip_bad ("10", "1%").
func parseBadLimit(s string) (spec.BadRecordLimit, error) {
	if s == "" {
		return spec.BadRecordLimit{}, nil
	}
	if pct, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(pct, 64)
		if err != nil || v < 0 || v > 100 {
			return spec.BadRecordLimit{}, fmt.Errorf("skip_bad %q: want a percentage from 0 to 100", s)
		}
		return spec.BadRecordLimit{Fraction: v / 100}, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return spec.BadRecordLimit{}, fmt.Errorf("skip_bad %q: want a count or a percentage", s)
	}
	return spec.BadRecordLimit{Count: v}, nil
}

// skip records a bad record and reports whether the task may go on
// without it: a count limit is checked at once, a percentage at the end
// (check), when the task's input count is known.
func (b *badRecords) skip(where string, err error, record string) bool {
	if b.limit.Zero() || len(b.list) >= maxBadRecords {
		return false
	}
	if b.limit.Fraction == 0 && len(b.list) >= b.limit.Count {
		return false
	}
	b.list = append(b.list, BadRecord{Where: where, Err: err.Error(), Record: cutBadText(record)})
	return true
}

// cutBadText cuts the text of a bad record to maxBadRecordText bytes, at
// a rune's start, marking the cut with "…". Cutting a cut text again
// leaves it as it is.
func cutBadText(s string) string {
	if len(s) <= maxBadRecordText {
		return s
	}
	cut := maxBadRecordText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// check fails a task whose bad records, out of in read, exceed a
// percentage limit.
func (b *badRecords) check(in int64) error {
	if b.limit.Allows(int64(len(b.list)), in) {
		return nil
	}
	first := b.list[0]
	return fmt.Errorf("%d of %d records failed, more than skip_bad_records %s allows; the first, %s: %s",
		len(b.list), in, b.limit, first.Where, first.Err)
}

// BadRecordsCounter is the counter a stage's skipped bad records are
// counted in, beside the functions' own counters.
const BadRecordsCounter = "bad_records"

// recordText is a record as a dead letter shows it.
func recordText(rec Record) string {
	type jsonRecord struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	}
	v, err := wireValue(rec.Value)
	if err != nil {
		v = fmt.Sprint(rec.Value)
	}
	data, err := json.Marshal(jsonRecord{Key: rec.Key, Value: v})
	if err != nil {
		return fmt.Sprintf("%q: %v", rec.Key, rec.Value)
	}
	return string(data)
}

// recordPos is where record i of a payload's records was read, as far
// as the payload says.
func (t *task) recordPos(i int) Position {
	pos := Position{File: t.File}
	switch {
	case t.File == "":
	case len(t.Lines) == len(t.Records):
		pos.Line = t.Lines[i]
	case t.FirstLine > 0:
		pos.Line = t.FirstLine + int64(i)
	}
	return pos
}

// where names an input record for messages: its position, or, for a
// task whose records came in its payload, the task's input and the
// record's number in it (1-based, after the in records before it).
func (t *task) where(pos Position, in int64) string {
	if s := pos.String(); s != "" {
		return s
	}
	if t.Input != "" {
		return fmt.Sprintf("%s: record %d", t.Input, in+1)
	}
	return fmt.Sprintf("record %d", in+1)
}

// lineFunc returns what a task does with input that does not read as
// its format: skip it as a bad record (counting it in *in) while the
// limit allows, else fail with a permanent error naming it, since
// reading it again gives the same.
func (b *badRecords) lineFunc(t *task, in *int64) badLineFunc {
	return func(pos Position, line []byte, err error) error {
		where := t.where(pos, *in)
		if b.skip(where, err, string(line)) {
			*in++
			return nil
		}
		return Permanent(&RecordError{Where: where, Err: err})
	}
}

// failLine is what a task without a badLineFunc does with input that
// does not read as its format: it fails, naming the line, with a
// permanent error, since reading it again gives the same.
func failLine(pos Position, _ []byte, err error) error {
	return Permanent(&RecordError{Where: pos.String(), Err: err})
}

// collectLines returns a badLineFunc that keeps the lines that do not
// read in *lines, each before the record whose index *next says, for a
// payload that carries them to its task (see taskHeader.BadLines).
//
// It keeps at most maxBadRecords+1 of them: a task fails at the bad
// record past maxBadRecords whatever its limit, so the lines after that
// one would never be looked at, and a chunk of short bad lines would
// otherwise make a payload many times the chunk's size (2 M lines of
// "x" made 142 MB from 4 MiB).
func collectLines(lines *[]badLine, next func() int) badLineFunc {
	return func(pos Position, line []byte, err error) error {
		if len(*lines) > maxBadRecords {
			return nil
		}
		*lines = append(*lines, badLine{Before: next(), Line: pos.Line, Offset: pos.Offset,
			Err: err.Error(), Text: cutBadText(string(line))})
		return nil
	}
}

// decodeBad reads a summary's "bad" records.
func decodeBad(d *msgp.Cursor) ([]BadRecord, error) {
	n, err := d.ArrayLen()
	if err != nil {
		return nil, err
	}
	bad := make([]BadRecord, 0, n)
	for i := 0; i < n; i++ {
		m, err := d.ArrayLen()
		if err == nil && m != 3 {
			err = fmt.Errorf("bad record %d: want [where, error, record], got %d elements", i, m)
		}
		if err != nil {
			return nil, err
		}
		var r BadRecord
		if r.Where, err = d.Str(); err == nil {
			if r.Err, err = d.Str(); err == nil {
				r.Record, err = d.Str()
			}
		}
		if err != nil {
			return nil, fmt.Errorf("bad record %d: %w", i, err)
		}
		bad = append(bad, r)
	}
	return bad, nil
}

// unreportedLines fails an attempt that completed without reporting
// among its bad records the unreadable lines its payload carried
// (bad_lines, read from file): its worker does not know them and went
// on without them, and they would be lost without a word.
func unreportedLines(lines []badLine, file string, reported []BadRecord) error {
	if len(lines) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(reported))
	for _, b := range reported {
		seen[b.Where] = true
	}
	for _, l := range lines {
		where := Position{File: file, Line: l.Line, Offset: l.Offset}.String()
		if !seen[where] {
			return fmt.Errorf("the task completed without reporting its input line %s, which does not read (%s), as a bad record: its worker does not know the payload's bad_lines (docs/TASKFORMAT.md) and would lose the line without a word",
				where, l.Err)
		}
	}
	return nil
}
