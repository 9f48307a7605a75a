package flow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gearflow/gearflow/flow/internal/msgp"
)

// FormatVersion is the version of the task wire format, sent as the "v"
// field of every task payload (docs/TASKFORMAT.md).
const FormatVersion = 1

// ErrMalformed is wrapped by every error about an undecodable payload,
// WORK_DATA batch or summary.
var ErrMalformed = errors.New("flow: malformed task data")

// Record is one unit of data: a key and a value. Values are any
// msgpack-encodable Go value; a value decoded from the wire is nil, bool,
// int64, uint64, float64, string, []any or map[string]any.
//
// A map or task function's input records also say where they come
// from: Source is the name of the stage's input they were read from
// (inputs: [{name: users, ...}]; "" for an unnamed input), and Pos their
// place in it. Records a function emits carry neither.
type Record struct {
	Key   string
	Value any
	// Source names the input the record was read from.
	Source string
	// Pos is where the record was read: a file and its line (or byte
	// offset), or a record file of an upstream stage. It is the zero
	// Position when that is not known (an upstream stage's records in a
	// run without storage).
	Pos Position
}

// rawRecord is a record whose value stays msgpack-encoded: the coordinator
// moves values between stages without decoding them.
type rawRecord struct {
	Key   string
	Value []byte // one msgpack value
}

// group is one reduce input: a key and the encoded values emitted for it.
type group struct {
	Key    string
	Values [][]byte
}

// TaskKind is what a task asks its worker to do.
type TaskKind int

const (
	// TaskMap runs a map function on every record.
	TaskMap TaskKind = iota + 1
	// TaskReduce runs a reduce function on every key group.
	TaskReduce
	// TaskChunk runs a task function once on the whole chunk.
	TaskChunk
	// TaskRaw is a raw-encoded task: no msgpack, the payload is the input
	// text. It never appears in a payload's "kind".
	TaskRaw
)

var taskKindNames = map[TaskKind]string{TaskMap: "map", TaskReduce: "reduce", TaskChunk: "task", TaskRaw: "raw"}

func (k TaskKind) String() string {
	if s, ok := taskKindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("TaskKind(%d)", int(k))
}

func parseTaskKind(s string) (TaskKind, bool) {
	for k, n := range taskKindNames {
		if n == s {
			return k, true
		}
	}
	return 0, false
}

// taskHeader is everything in a task payload except its data.
type taskHeader struct {
	Run     string
	Stage   string
	Task    int
	Attempt int
	Kind    TaskKind
	Combine string            // map tasks: combiner function, "" = none
	Input   string            // where the input came from, for error reports
	Params  map[string]string // the stage's params
	// Source is the name of the stage input the task reads ("source").
	Source string
	// SkipBad is the stage's skip_bad_records, as "10" or "1%"
	// ("skip_bad"); "" skips none.
	SkipBad string
	// File, FirstLine and Lines say where the payload's records were
	// read ("file", "first_line", "lines"): record i is on line Lines[i]
	// of File, or, without Lines, on line FirstLine+i.
	File      string
	FirstLine int64
	Lines     []int64
	// BadLines are the lines of the payload's input that did not read
	// as its format ("bad_lines"), in input order: the coordinator, which
	// read the input to put its records in the payload, leaves them to
	// the task to skip or fail on, as a task reading its own input would.
	BadLines []badLine
}

// badLine is an input line that did not read as its format, carried in
// a payload as [before, line, offset, error, text].
type badLine struct {
	// Before is the index of the record the line came before, in the
	// payload's records (their number for a line after all of them).
	Before int
	// Line and Offset are where the line starts in the payload's file,
	// as a Position has them (Line 0: not known).
	Line, Offset int64
	// Err is why the line did not read.
	Err string
	// Text is the line, cut to maxBadRecordText bytes; "" for a CSV
	// record that did not parse, as a worker reading it has none either.
	Text string
}

// task is a decoded task payload.
type task struct {
	taskHeader
	Records []rawRecord // map and task kinds
	Groups  []group     // reduce kind
	Refs    *taskRefs   // data through storage, instead of Records or Groups
}

// appendTaskHeader appends the payload's map header and its fixed fields;
// the caller appends exactly one more key/value: "records" or "groups".
func appendTaskHeader(b []byte, h *taskHeader) []byte {
	n := 8
	if h.Combine != "" {
		n++
	}
	if h.Input != "" {
		n++
	}
	if h.Source != "" {
		n++
	}
	if h.SkipBad != "" {
		n++
	}
	if h.File != "" {
		n++
	}
	if h.FirstLine > 0 {
		n++
	}
	if len(h.Lines) > 0 {
		n++
	}
	if len(h.BadLines) > 0 {
		n++
	}
	b = msgp.AppendMapLen(b, n)
	b = msgp.AppendString(b, "v")
	b = msgp.AppendInt(b, FormatVersion)
	b = msgp.AppendString(b, "run")
	b = msgp.AppendString(b, h.Run)
	b = msgp.AppendString(b, "stage")
	b = msgp.AppendString(b, h.Stage)
	b = msgp.AppendString(b, "task")
	b = msgp.AppendInt(b, int64(h.Task))
	b = msgp.AppendString(b, "attempt")
	b = msgp.AppendInt(b, int64(h.Attempt))
	b = msgp.AppendString(b, "kind")
	b = msgp.AppendString(b, h.Kind.String())
	if h.Combine != "" {
		b = msgp.AppendString(b, "combine")
		b = msgp.AppendString(b, h.Combine)
	}
	if h.Input != "" {
		b = msgp.AppendString(b, "input")
		b = msgp.AppendString(b, h.Input)
	}
	if h.Source != "" {
		b = msgp.AppendString(b, "source")
		b = msgp.AppendString(b, h.Source)
	}
	if h.SkipBad != "" {
		b = msgp.AppendString(b, "skip_bad")
		b = msgp.AppendString(b, h.SkipBad)
	}
	if h.File != "" {
		b = msgp.AppendString(b, "file")
		b = msgp.AppendString(b, h.File)
	}
	if h.FirstLine > 0 {
		b = msgp.AppendString(b, "first_line")
		b = msgp.AppendInt(b, h.FirstLine)
	}
	if len(h.Lines) > 0 {
		b = msgp.AppendString(b, "lines")
		b = msgp.AppendArrayLen(b, len(h.Lines))
		for _, l := range h.Lines {
			b = msgp.AppendInt(b, l)
		}
	}
	if len(h.BadLines) > 0 {
		b = msgp.AppendString(b, "bad_lines")
		b = msgp.AppendArrayLen(b, len(h.BadLines))
		for _, l := range h.BadLines {
			b = msgp.AppendArrayLen(b, 5)
			b = msgp.AppendInt(b, int64(l.Before))
			b = msgp.AppendInt(b, l.Line)
			b = msgp.AppendInt(b, l.Offset)
			b = msgp.AppendString(b, l.Err)
			b = msgp.AppendString(b, l.Text)
		}
	}
	b = msgp.AppendString(b, "params")
	keys := make([]string, 0, len(h.Params))
	for k := range h.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b = msgp.AppendMapLen(b, len(keys))
	for _, k := range keys {
		b = msgp.AppendString(b, k)
		b = msgp.AppendString(b, h.Params[k])
	}
	return b
}

// appendMapPayload encodes a map or task-kind payload.
func appendMapPayload(b []byte, h *taskHeader, recs []rawRecord) []byte {
	b = appendTaskHeader(b, h)
	b = msgp.AppendString(b, "records")
	return appendRecords(b, recs)
}

// appendReducePayload encodes a reduce payload.
func appendReducePayload(b []byte, h *taskHeader, groups []group) []byte {
	b = appendTaskHeader(b, h)
	b = msgp.AppendString(b, "groups")
	b = msgp.AppendArrayLen(b, len(groups))
	for _, g := range groups {
		b = msgp.AppendArrayLen(b, 2)
		b = msgp.AppendString(b, g.Key)
		b = msgp.AppendArrayLen(b, len(g.Values))
		for _, v := range g.Values {
			b = append(b, v...)
		}
	}
	return b
}

// appendRecords encodes records as a msgpack array of [key, value] pairs:
// the body of a WORK_DATA batch and of a payload's "records".
func appendRecords(b []byte, recs []rawRecord) []byte {
	b = msgp.AppendArrayLen(b, len(recs))
	for _, r := range recs {
		b = appendRecord(b, r.Key, r.Value)
	}
	return b
}

func appendRecord(b []byte, key string, value []byte) []byte {
	b = msgp.AppendArrayLen(b, 2)
	b = msgp.AppendString(b, key)
	if len(value) == 0 {
		return append(b, 0xc0)
	}
	return append(b, value...)
}

// decodeTask decodes a task payload. Record values and group values
// alias data.
func decodeTask(data []byte) (*task, error) {
	d := msgp.NewCursor(data)
	n, err := d.MapLen()
	if err != nil {
		return nil, malformed("payload", err)
	}
	t := &task{}
	var version int64
	var dataFields []string // in order
	for i := 0; i < n; i++ {
		field, err := d.Str()
		if err != nil {
			return nil, malformed("payload field name", err)
		}
		switch field {
		case "v":
			version, err = d.Int64()
		case "run":
			t.Run, err = d.Str()
		case "stage":
			t.Stage, err = d.Str()
		case "task":
			var v int64
			v, err = d.Int64()
			t.Task = int(v)
		case "attempt":
			var v int64
			v, err = d.Int64()
			t.Attempt = int(v)
		case "kind":
			var s string
			if s, err = d.Str(); err == nil {
				var ok bool
				if t.Kind, ok = parseTaskKind(s); !ok || t.Kind == TaskRaw {
					err = fmt.Errorf("unknown kind %q", s)
				}
			}
		case "combine":
			t.Combine, err = d.Str()
		case "input":
			t.Input, err = d.Str()
		case "source":
			t.Source, err = d.Str()
		case "skip_bad":
			t.SkipBad, err = d.Str()
		case "file":
			t.File, err = d.Str()
		case "first_line":
			t.FirstLine, err = d.Int64()
		case "lines":
			t.Lines, err = decodeInts(d)
		case "bad_lines":
			t.BadLines, err = decodeBadLines(d)
		case "params":
			t.Params, err = decodeStringMap(d)
		case "records":
			t.Records, err = decodeRecordsInto(nil, d)
			dataFields = append(dataFields, field)
		case "groups":
			t.Groups, err = decodeGroups(d)
			dataFields = append(dataFields, field)
		case "refs":
			var raw []byte
			if raw, err = d.Raw(); err == nil {
				t.Refs, err = decodeRefs(raw)
			}
			dataFields = append(dataFields, field)
		default:
			err = d.Skip() // fields from newer versions
		}
		if err != nil {
			return nil, malformed("payload field "+field, err)
		}
	}
	if version != FormatVersion {
		return nil, fmt.Errorf("%w: format version %d, want %d", ErrMalformed, version, FormatVersion)
	}
	if t.Kind == 0 {
		return nil, fmt.Errorf("%w: payload has no kind", ErrMalformed)
	}
	// The executor reads one data field, the one the kind calls for:
	// any other would be dropped without a word, and its records lost.
	switch {
	case len(dataFields) == 0 && t.Kind != TaskChunk:
		return nil, fmt.Errorf("%w: payload has no records, groups or refs", ErrMalformed)
	case len(dataFields) > 1:
		return nil, fmt.Errorf("%w: payload has more than one of records, groups and refs: %s", ErrMalformed, strings.Join(dataFields, ", "))
	case len(dataFields) == 1 && dataFields[0] == "records" && t.Kind == TaskReduce:
		return nil, fmt.Errorf("%w: a reduce payload has groups or refs, not records", ErrMalformed)
	case len(dataFields) == 1 && dataFields[0] == "groups" && t.Kind != TaskReduce:
		return nil, fmt.Errorf("%w: a %s payload has records or refs, not groups", ErrMalformed, t.Kind)
	}
	if len(t.BadLines) > 0 {
		// Bad lines sit between the payload's records: without them
		// there is nothing to place them by.
		if len(dataFields) != 1 || dataFields[0] != "records" {
			return nil, fmt.Errorf("%w: a payload with bad_lines has records, not groups or refs", ErrMalformed)
		}
		prev := 0
		for i, l := range t.BadLines {
			if l.Before < prev || l.Before > len(t.Records) {
				return nil, fmt.Errorf("%w: bad line %d comes before record %d, out of order or past the %d records", ErrMalformed, i, l.Before, len(t.Records))
			}
			prev = l.Before
		}
	}
	return t, nil
}

// decodeBadLines reads a payload's "bad_lines".
func decodeBadLines(d *msgp.Cursor) ([]badLine, error) {
	n, err := d.ArrayLen()
	if err != nil {
		return nil, err
	}
	// Each takes at least 6 encoded bytes (an array of 5) and about 56
	// in memory: room only for what the rest of the payload can hold.
	lines := make([]badLine, 0, min(n, d.Rest()/6))
	for i := 0; i < n; i++ {
		m, err := d.ArrayLen()
		if err == nil && m != 5 {
			err = fmt.Errorf("want [before, line, offset, error, text], got %d elements", m)
		}
		var l badLine
		var before int64
		if err == nil {
			before, err = d.Int64()
		}
		if err == nil {
			l.Line, err = d.Int64()
		}
		if err == nil {
			l.Offset, err = d.Int64()
		}
		if err == nil {
			l.Err, err = d.Str()
		}
		if err == nil {
			l.Text, err = d.Str()
		}
		switch {
		case err != nil:
		case before < 0 || before > math.MaxInt32 || l.Line < 0 || l.Offset < 0:
			err = fmt.Errorf("before %d, line %d, offset %d: out of range", before, l.Line, l.Offset)
		case l.Err == "":
			err = errors.New("no error")
		}
		if err != nil {
			return nil, fmt.Errorf("bad line %d: %w", i, err)
		}
		l.Before = int(before)
		lines = append(lines, l)
	}
	return lines, nil
}

// decodeBatch decodes one WORK_DATA batch, appending its records to dst.
// Values alias data.
func decodeBatch(dst []rawRecord, data []byte) ([]rawRecord, error) {
	d := msgp.NewCursor(data)
	recs, err := decodeRecordsInto(dst, d)
	if err == nil && d.Rest() != 0 {
		err = fmt.Errorf("%d bytes after the records", d.Rest())
	}
	if err != nil {
		return dst, malformed("data batch", err)
	}
	return recs, nil
}

func decodeRecordsInto(dst []rawRecord, d *msgp.Cursor) ([]rawRecord, error) {
	n, err := d.ArrayLen()
	if err != nil {
		return dst, err
	}
	if dst == nil {
		dst = make([]rawRecord, 0, n)
	}
	for i := 0; i < n; i++ {
		r, err := cursorRecord(d)
		if err != nil {
			return dst, fmt.Errorf("record %d: %w", i, err)
		}
		dst = append(dst, r)
	}
	return dst, nil
}

func decodeGroups(d *msgp.Cursor) ([]group, error) {
	n, err := d.ArrayLen()
	if err != nil {
		return nil, err
	}
	groups := make([]group, 0, n)
	for i := 0; i < n; i++ {
		m, err := d.ArrayLen()
		if err != nil {
			return nil, err
		}
		if m != 2 {
			return nil, fmt.Errorf("group %d: a group is [key, [values]], got %d elements", i, m)
		}
		k, err := d.Str()
		if err != nil {
			return nil, err
		}
		nv, err := d.ArrayLen()
		if err != nil {
			return nil, err
		}
		g := group{Key: k, Values: make([][]byte, 0, nv)}
		for j := 0; j < nv; j++ {
			v, err := d.Raw()
			if err != nil {
				return nil, err
			}
			g.Values = append(g.Values, v)
		}
		groups = append(groups, g)
	}
	return groups, nil
}

func decodeInts(d *msgp.Cursor) ([]int64, error) {
	n, err := d.ArrayLen()
	if err != nil {
		return nil, err
	}
	// An int64 may take one encoded byte: grow as they are read, so a
	// forged length costs no more than the payload that carries it.
	out := make([]int64, 0, min(n, 4096))
	for range n {
		v, err := d.Int64()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func decodeStringMap(d *msgp.Cursor) (map[string]string, error) {
	n, err := d.MapLen()
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, n)
	for i := 0; i < n; i++ {
		k, err := d.Str()
		if err != nil {
			return nil, err
		}
		v, err := d.Str()
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, nil
}

// Summary is the WORK_COMPLETE data of a msgpack-encoded task: the counts
// the coordinator checks against the data it received.
type Summary struct {
	RecordsIn  int64 // "in": input records (or groups) processed
	RecordsOut int64 // "out": records sent in WORK_DATA batches, or written to Files
	Batches    int64 // "batches": WORK_DATA packets sent
	// Bad are the input records the task skipped under its stage's
	// skip_bad_records ("bad"), each [where, error, record].
	Bad []BadRecord
	// Files are the files a task with refs wrote ("files"), each
	// [key, part, records, bytes].
	Files []outFile
	// Counters are the task's counters ("counters", a map of name to
	// int; absent when none), added to the stage's totals if the attempt
	// wins.
	Counters map[string]int64
	// Worker names who ran the task ("worker", optional): its client
	// id, or host and process.
	Worker string
}

func appendSummary(b []byte, s Summary) []byte {
	n := 3
	if len(s.Bad) > 0 {
		n++
	}
	if len(s.Files) > 0 {
		n++
	}
	if len(s.Counters) > 0 {
		n++
	}
	if s.Worker != "" {
		n++
	}
	b = msgp.AppendMapLen(b, n)
	b = msgp.AppendString(b, "in")
	b = msgp.AppendInt(b, s.RecordsIn)
	b = msgp.AppendString(b, "out")
	b = msgp.AppendInt(b, s.RecordsOut)
	b = msgp.AppendString(b, "batches")
	b = msgp.AppendInt(b, s.Batches)
	if len(s.Bad) > 0 {
		b = msgp.AppendString(b, "bad")
		b = msgp.AppendArrayLen(b, len(s.Bad))
		for _, r := range s.Bad {
			b = msgp.AppendArrayLen(b, 3)
			b = msgp.AppendString(b, r.Where)
			b = msgp.AppendString(b, r.Err)
			b = msgp.AppendString(b, r.Record)
		}
	}
	if len(s.Files) > 0 {
		b = msgp.AppendString(b, "files")
		b = msgp.AppendArrayLen(b, len(s.Files))
		for _, f := range s.Files {
			if f.Store == "" {
				b = msgp.AppendArrayLen(b, 4)
			} else {
				b = msgp.AppendArrayLen(b, 5)
			}
			b = msgp.AppendString(b, f.Key)
			b = msgp.AppendInt(b, int64(f.Part))
			b = msgp.AppendInt(b, f.Records)
			b = msgp.AppendInt(b, f.Bytes)
			if f.Store != "" {
				b = msgp.AppendString(b, f.Store)
			}
		}
	}
	if len(s.Counters) > 0 {
		b = msgp.AppendString(b, "counters")
		b = msgp.AppendMapLen(b, len(s.Counters))
		for _, k := range sortedNames(s.Counters) {
			b = msgp.AppendString(b, k)
			b = msgp.AppendInt(b, s.Counters[k])
		}
	}
	if s.Worker != "" {
		b = msgp.AppendString(b, "worker")
		b = msgp.AppendString(b, s.Worker)
	}
	return b
}

// decodeCounters reads a summary's "counters" map.
func decodeCounters(d *msgp.Cursor) (map[string]int64, error) {
	n, err := d.MapLen()
	if err != nil || n == 0 {
		return nil, err
	}
	m := make(map[string]int64, n)
	for i := 0; i < n; i++ {
		k, err := d.Str()
		if err != nil {
			return nil, err
		}
		v, err := d.Int64()
		if err != nil {
			return nil, fmt.Errorf("counter %q: %w", k, err)
		}
		m[k] += v
	}
	return m, nil
}

func decodeFiles(d *msgp.Cursor) ([]outFile, error) {
	n, err := d.ArrayLen()
	if err != nil {
		return nil, err
	}
	files := make([]outFile, 0, n)
	for i := 0; i < n; i++ {
		m, err := d.ArrayLen()
		if err == nil && m != 4 && m != 5 {
			err = fmt.Errorf("file %d: want [key, part, records, bytes(, store)], got %d elements", i, m)
		}
		if err != nil {
			return nil, err
		}
		var f outFile
		var part int64
		if f.Key, err = d.Str(); err == nil {
			if part, err = d.Int64(); err == nil {
				if f.Records, err = d.Int64(); err == nil {
					f.Bytes, err = d.Int64()
				}
			}
		}
		if err == nil && m == 5 {
			f.Store, err = d.Str()
		}
		if err != nil {
			return nil, fmt.Errorf("file %d: %w", i, err)
		}
		f.Part = int(part)
		files = append(files, f)
	}
	return files, nil
}

func decodeSummary(data []byte) (Summary, error) {
	var s Summary
	d := msgp.NewCursor(data)
	n, err := d.MapLen()
	if err != nil {
		return s, malformed("summary", err)
	}
	for i := 0; i < n; i++ {
		field, err := d.Str()
		if err != nil {
			return s, malformed("summary", err)
		}
		switch field {
		case "in":
			s.RecordsIn, err = d.Int64()
		case "out":
			s.RecordsOut, err = d.Int64()
		case "batches":
			s.Batches, err = d.Int64()
		case "bad":
			s.Bad, err = decodeBad(d)
		case "files":
			s.Files, err = decodeFiles(d)
		case "counters":
			s.Counters, err = decodeCounters(d)
		case "worker":
			s.Worker, err = d.Str()
		default:
			err = d.Skip()
		}
		if err != nil {
			return s, malformed("summary field "+field, err)
		}
	}
	return s, nil
}

func malformed(what string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
}

func newDecoder(data []byte) *msgpack.Decoder {
	d := msgpack.NewDecoder(bytes.NewReader(data))
	d.UseLooseInterfaceDecoding(true)
	return d
}

// EncodeValue encodes v as one msgpack value, the form values take on
// the wire.
func EncodeValue(v any) ([]byte, error) {
	return appendValue(nil, v)
}

// DecodeValue decodes one msgpack value: nil, bool, int64, uint64,
// float64, string, []any or map[string]any.
func DecodeValue(data []byte) (any, error) {
	if len(data) == 0 {
		return nil, nil
	}
	c := data[0]
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c >= 0xa0 && c <= 0xbf && len(data) >= 1+int(c&0x1f):
		return string(data[1 : 1+int(c&0x1f)]), nil
	case c == 0xc0:
		return nil, nil
	case c >= 0xcc && c <= 0xd3 && c != 0xcf:
		return msgp.NewCursor(data).Int64()
	case c == 0xd9 || c == 0xda || c == 0xdb:
		return msgp.NewCursor(data).Str()
	}
	v, err := newDecoder(data).DecodeInterfaceLoose()
	if err != nil {
		return nil, malformed("value", err)
	}
	return v, nil
}

// wireValue returns v as it arrives after a trip over the wire: what
// DecodeValue(EncodeValue(v)) gives, without the trip for the common
// scalar types. The result never aliases memory the caller may change.
func wireValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string, float64:
		return v, nil
	case int64:
		return wireInt(x), nil
	case int:
		return wireInt(int64(x)), nil
	case int32:
		return int64(x), nil
	}
	raw, err := appendValue(nil, v)
	if err != nil {
		return nil, err
	}
	return DecodeValue(raw)
}

// wireInt is how an int64 decodes: integers above MaxUint32 are encoded
// as uint64 and come back as such.
func wireInt(n int64) any {
	if n > math.MaxUint32 {
		return uint64(n)
	}
	return n
}

// appendValue appends v as one msgpack value, with fast paths for the
// common scalar types.
func appendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, 0xc0), nil
	case string:
		return msgp.AppendString(b, x), nil
	case int:
		return msgp.AppendInt(b, int64(x)), nil
	case int64:
		return msgp.AppendInt(b, x), nil
	case int32:
		return msgp.AppendInt(b, int64(x)), nil
	case uint64:
		return msgp.AppendUint(b, x), nil
	case uint32:
		return msgp.AppendUint(b, uint64(x)), nil
	case uint:
		return msgp.AppendUint(b, uint64(x)), nil
	case float64:
		b = append(b, 0xcb)
		return binary.BigEndian.AppendUint64(b, math.Float64bits(x)), nil
	case bool:
		if x {
			return append(b, 0xc3), nil
		}
		return append(b, 0xc2), nil
	case []byte:
		return msgp.AppendBin(b, x), nil
	}
	raw, err := msgpack.Marshal(v)
	if err != nil {
		return b, fmt.Errorf("flow: encode value of type %T: %w", v, err)
	}
	return append(b, raw...), nil
}

// Int64 converts a decoded numeric value (any Go integer or float type)
// to int64; other values give 0 and false.
func Int64(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case uint64:
		return int64(x), true
	case int:
		return int64(x), true
	case int32:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint:
		return int64(x), true
	case float64:
		return int64(x), true
	case float32:
		return int64(x), true
	}
	return 0, false
}

// Float64 converts a decoded numeric value to float64; other values give
// 0 and false.
func Float64(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	n, ok := Int64(v)
	return float64(n), ok
}

// MaxUnique is Gearman's limit on a job's unique id (gearmand's
// GEARMAN_MAX_UNIQUE_SIZE is 64 including the terminating NUL).
const MaxUnique = 63

// uniqueID returns the Gearman unique id of a task's attempt:
// "<run>:<stage>:<task>" for the first attempt, with "#<attempt>" after
// it for later ones. The first attempt's id is stable across a
// coordinator restart, so a resumed run re-attaches to a job still
// running; later attempts differ, so a retry after a timeout is not
// coalesced onto the job it gave up on. Ids longer than MaxUnique
// shorten the run id to its first 12 hex digits, then the stage name to
// a prefix and an FNV hash.
func uniqueID(run, stage string, task, attempt int) string {
	suffix := ":" + strconv.Itoa(task)
	if attempt > 1 {
		suffix += "#" + strconv.Itoa(attempt)
	}
	u := run + ":" + stage + suffix
	if len(u) <= MaxUnique {
		return u
	}
	r := strings.ReplaceAll(run, "-", "")
	if len(r) > 12 {
		r = r[:12]
	}
	u = r + ":" + stage + suffix
	if len(u) <= MaxUnique {
		return u
	}
	h := fnv.New32a()
	h.Write([]byte(stage))
	tag := fmt.Sprintf("~%08x", h.Sum32())
	keep := MaxUnique - len(r) - 1 - len(tag) - len(suffix)
	return r + ":" + stage[:max(keep, 0)] + tag + suffix
}
