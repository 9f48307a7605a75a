package flow

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/gearflow/gearflow/flow/internal/msgp"
	"github.com/gearflow/gearflow/flow/spec"
	"github.com/gearflow/gearflow/flow/storage"
)

// chunk is the input of one task. Exactly one of its forms is used:
// a byte range of a file (lines, bytes and records splits), a list of
// whole files (files split), a record range of an upstream stage's
// output, or a file of reduce groups.
type chunk struct {
	File      string `json:"file,omitempty"`
	Offset    int64  `json:"offset,omitempty"`
	Length    int64  `json:"length,omitempty"`
	FirstLine int64  `json:"first_line,omitempty"` // 1-based
	Lines     int64  `json:"lines,omitempty"`
	JSON      bool   `json:"json,omitempty"` // records split: lines are JSON values
	CSV       bool   `json:"csv,omitempty"`  // a .csv file: lines are rows of fields
	// Source is the name of the stage input the chunk is of.
	Source string `json:"source,omitempty"`
	// Header holds a CSV input's field names (header: true).
	Header []string `json:"header,omitempty"`

	Files []string `json:"files,omitempty"`

	Stage string `json:"stage,omitempty"` // upstream stage of a stage input
	Start int64  `json:"start,omitempty"` // first record index in its output
	Count int64  `json:"count,omitempty"` // records (or groups)

	// With storage: an input split, objects read whole (files split), or
	// record files of the run's storage (an upstream stage's output
	// files; a reduce partition's sorted runs).
	Split *splitRef   `json:"split,omitempty"`
	Whole []objectRef `json:"whole,omitempty"`
	Keys  []string    `json:"keys,omitempty"`
	Runs  bool        `json:"runs,omitempty"` // Keys are a reduce partition's sorted runs
	// KeySources, for a cogroup's partition, names the input each of
	// Keys is of.
	KeySources []string `json:"key_sources,omitempty"`

	Groups    string `json:"groups,omitempty"` // file of encoded groups (reduce)
	Partition int    `json:"partition,omitempty"`
	FirstKey  string `json:"first_key,omitempty"`
	LastKey   string `json:"last_key,omitempty"`
}

// String describes the chunk for reports: file and line range, files,
// upstream records, or partition and key range.
func (c chunk) String() string {
	switch {
	case c.Split != nil:
		if c.Split.FirstLine > 0 && c.Lines > 0 {
			return c.Split.URI() + ":" + strconv.FormatInt(c.Split.FirstLine, 10) + "-" + strconv.FormatInt(c.Split.FirstLine+c.Lines-1, 10)
		}
		return c.Split.String()
	case len(c.Whole) == 1:
		return c.Whole[0].URI()
	case len(c.Whole) > 1:
		return fmt.Sprintf("%s … %s (%d files)", c.Whole[0].URI(), c.Whole[len(c.Whole)-1].URI(), len(c.Whole))
	case c.Runs:
		return fmt.Sprintf("partition %d of stage %s (%d files, %d records)", c.Partition, c.Stage, len(c.Keys), c.Count)
	case len(c.Keys) > 0:
		return fmt.Sprintf("stage %s output %s … (%d files, %d records)", c.Stage, c.Keys[0], len(c.Keys), c.Count)
	case c.File != "":
		if c.Lines == 0 {
			return c.File + " (empty)"
		}
		return c.File + ":" + strconv.FormatInt(c.FirstLine, 10) + "-" + strconv.FormatInt(c.FirstLine+c.Lines-1, 10)
	case len(c.Files) == 1:
		return c.Files[0]
	case len(c.Files) > 1:
		return fmt.Sprintf("%s … %s (%d files)", c.Files[0], c.Files[len(c.Files)-1], len(c.Files))
	case c.Groups != "":
		return fmt.Sprintf("partition %d keys %q-%q (%d keys)", c.Partition, c.FirstKey, c.LastKey, c.Count)
	case c.Stage != "":
		return fmt.Sprintf("stage %s records %d-%d", c.Stage, c.Start, c.Start+c.Count-1)
	}
	return "no input"
}

// planFiles cuts a file or glob source into chunks by split.
func planFiles(from spec.Source, split spec.Split) ([]chunk, error) {
	return planFileInput(spec.Input{From: from, Split: split}, nil)
}

// planFileInput cuts a file or glob input into chunks by its split,
// leaving out the files excluded says (the run's own state).
func planFileInput(in spec.Input, excluded func(path string) bool) ([]chunk, error) {
	from := in.From
	var files []string
	switch from.Kind {
	case spec.SourceFile:
		files = []string{from.Value}
	case spec.SourceGlob:
		// The glob syntax of storage (**, {a,b}, hidden names skipped),
		// as a run with storage has it.
		root, pattern := storage.Split(from.Value)
		st, err := storage.Open(context.Background(), root)
		if err != nil {
			return nil, fmt.Errorf("flow: input: %w", err)
		}
		infos, err := st.List(context.Background(), pattern)
		if err != nil {
			return nil, fmt.Errorf("flow: glob %q: %w", from.Value, err)
		}
		for _, in := range infos {
			if f := filepath.Join(root, filepath.FromSlash(in.Key)); excluded == nil || !excluded(f) {
				files = append(files, f)
			}
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("flow: input: glob %q matches no files", from.Value)
		}
	default:
		return nil, fmt.Errorf("flow: planFiles: source %s is not a file or glob", from)
	}
	split := in.Split
	n := split.N
	if split.By == spec.SplitFiles {
		if n <= 0 {
			n = spec.DefaultSplitFiles
		}
		var chunks []chunk
		for i := 0; i < len(files); i += n {
			chunks = append(chunks, chunk{Files: files[i:min(i+n, len(files))]})
		}
		for _, f := range files {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("flow: input: %w", err)
			}
		}
		return chunks, nil
	}
	var chunks []chunk
	for _, f := range files {
		c, err := splitFileInput(f, in)
		if err != nil {
			return nil, err
		}
		chunks = append(chunks, c...)
	}
	return chunks, nil
}

// objectFormat says how the lines of the input object named key read:
// "text", "json" or "csv". An input without format: reads a .csv file
// (compressed or not) as CSV, any other as JSON lines under a records
// split and as text otherwise.
func objectFormat(in spec.Input, key string) string {
	switch in.Format {
	case spec.FormatText:
		return "text"
	case spec.FormatJSONLines:
		return "json"
	case spec.FormatCSVRows:
		return "csv"
	}
	if strings.EqualFold(path.Ext(strings.TrimSuffix(strings.TrimSuffix(key, ".gz"), ".zst")), ".csv") {
		return "csv"
	}
	if in.Split.By == spec.SplitRecords {
		return "json"
	}
	return "text"
}

// checkHeader fails an input with header: true whose file is not read
// as CSV: the header would otherwise be taken for data.
func checkHeader(in spec.Input, format, name string) error {
	if in.Header && format != "csv" {
		return fmt.Errorf("flow: input %s: header: true applies to CSV, and this file reads as %s (set format: csv)", name, format)
	}
	return nil
}

// readCSVHeader returns the fields of the first CSV record r reads.
func readCSVHeader(r io.Reader, name string) ([]string, error) {
	fields, err := csv.NewReader(r).Read()
	if err == io.EOF {
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("flow: input %s: header: %w", name, err)
	}
	return fields, nil
}

// splitFile scans one file and cuts it at line ends: every N lines
// (lines, records) or at the first line end at or after every N bytes.
func splitFile(path string, split spec.Split) ([]chunk, error) {
	return splitFileInput(path, spec.Input{Split: split})
}

// splitFileInput scans one file of in and cuts it: at line ends, or,
// for CSV, at the ends of records.
func splitFileInput(path string, in spec.Input) ([]chunk, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("flow: input: %w", err)
	}
	defer f.Close()
	format := objectFormat(in, path)
	if err := checkHeader(in, format, path); err != nil {
		return nil, err
	}
	chunks, err := scanSplits(f, in.Split, format == "csv")
	if err != nil {
		return nil, fmt.Errorf("flow: input: %w", err)
	}
	var header []string
	if format == "csv" && in.Header {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("flow: input: %w", err)
		}
		if header, err = readCSVHeader(bufio.NewReader(f), path); err != nil {
			return nil, err
		}
	}
	for i := range chunks {
		chunks[i].File, chunks[i].JSON, chunks[i].CSV, chunks[i].Header = path, format == "json", format == "csv", header
	}
	return chunks, nil
}

// inputFiles keeps a few input files of a run open, so that a small
// chunk costs neither an open nor a read of its own: small chunks are cut
// from a window read ahead. At most maxOpenInputs files are kept, the
// least recently used going first, and a window is no larger than what
// is left of its file, so a run over thousands of small files holds
// neither thousands of descriptors nor a megabyte per file. Chunks
// larger than smallChunk are read with a handle of their own. Safe for
// concurrent use.
type inputFiles struct {
	mu    sync.Mutex
	files map[string]*inputFile
	clock uint64 // for least-recently-used eviction
}

type inputFile struct {
	f      *os.File
	size   int64
	used   uint64
	winOff int64  // file offset of win
	win    []byte // bytes read ahead
}

// Chunks up to smallChunk bytes are served from a window of up to
// readAhead bytes; maxOpenInputs files keep their window and descriptor.
const (
	smallChunk    = 64 << 10
	readAhead     = 1 << 20
	maxOpenInputs = 8
)

// readChunk returns the raw bytes of a file-range chunk.
func (in *inputFiles) readChunk(c chunk) ([]byte, error) {
	if c.Length > smallChunk {
		osf, err := os.Open(c.File)
		if err != nil {
			return nil, fmt.Errorf("flow: input: %w", err)
		}
		defer osf.Close()
		return readChunkFrom(osf, c)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	f, err := in.fileLocked(c.File)
	if err != nil {
		return nil, err
	}
	if c.Offset < f.winOff || c.Offset+c.Length > f.winOff+int64(len(f.win)) {
		want := max(min(readAhead, f.size-c.Offset), c.Length)
		if int64(cap(f.win)) < want {
			f.win = make([]byte, want)
		}
		n, err := f.f.ReadAt(f.win[:want], c.Offset)
		if err != nil && err != io.EOF {
			f.win = f.win[:0]
			return nil, fmt.Errorf("flow: input %s: %w", c, err)
		}
		f.winOff, f.win = c.Offset, f.win[:n]
		if c.Length > int64(n) {
			return nil, fmt.Errorf("flow: input %s: %w", c, io.ErrUnexpectedEOF)
		}
	}
	i := c.Offset - f.winOff
	return bytes.Clone(f.win[i : i+c.Length]), nil
}

// fileLocked returns the open file at path, opening it (and closing the
// least recently used one past maxOpenInputs) when needed.
func (in *inputFiles) fileLocked(path string) (*inputFile, error) {
	in.clock++
	if f, ok := in.files[path]; ok {
		f.used = in.clock
		return f, nil
	}
	osf, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("flow: input: %w", err)
	}
	st, err := osf.Stat()
	if err != nil {
		osf.Close()
		return nil, fmt.Errorf("flow: input: %w", err)
	}
	if in.files == nil {
		in.files = map[string]*inputFile{}
	}
	if len(in.files) >= maxOpenInputs {
		var oldest string
		for p, f := range in.files {
			if oldest == "" || f.used < in.files[oldest].used {
				oldest = p
			}
		}
		in.files[oldest].f.Close()
		delete(in.files, oldest)
	}
	f := &inputFile{f: osf, size: st.Size(), used: in.clock}
	in.files[path] = f
	return f, nil
}

func (in *inputFiles) close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, f := range in.files {
		f.f.Close()
	}
	in.files = nil
}

// readFileChunk returns the raw bytes of a file-range chunk.
func readFileChunk(c chunk) ([]byte, error) {
	f, err := os.Open(c.File)
	if err != nil {
		return nil, fmt.Errorf("flow: input: %w", err)
	}
	defer f.Close()
	return readChunkFrom(f, c)
}

func readChunkFrom(f *os.File, c chunk) ([]byte, error) {
	buf := make([]byte, c.Length)
	if _, err := f.ReadAt(buf, c.Offset); err != nil && !(err == io.EOF && c.Length == 0) {
		return nil, fmt.Errorf("flow: input %s: %w", c, err)
	}
	return buf, nil
}

// fileChunkRecords turns a file-range or files chunk into records: one
// per line (value: the line without its end), one per JSON line (value:
// the decoded JSON), one per CSV record (value: the fields, an array of
// strings, or a map by the header), or one per file (key: base name,
// value: contents). A line that does not read as its format is a
// permanent *RecordError naming it.
func fileChunkRecords(c chunk) ([]rawRecord, error) {
	recs, _, _, err := fileChunkRecordsAt(c, false)
	return recs, err
}

// fileChunkRecordsAt is fileChunkRecords that also returns the line each
// record of a file-range chunk starts on (nil for a files chunk), and,
// with keepBad, the lines that do not read as their format instead of
// failing on the first: each placed before the record it came before.
func fileChunkRecordsAt(c chunk, keepBad bool) (recs []rawRecord, lines []int64, bad []badLine, err error) {
	if len(c.Files) > 0 {
		recs = make([]rawRecord, 0, len(c.Files))
		for _, f := range c.Files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("flow: input: %w", err)
			}
			recs = append(recs, rawRecord{Key: filepath.Base(f), Value: msgp.AppendString(nil, string(data))})
		}
		return recs, nil, nil, nil
	}
	data, err := readFileChunk(c)
	if err != nil {
		return nil, nil, nil, err
	}
	format := "text"
	if c.JSON {
		format = "json"
	} else if c.CSV {
		format = "csv"
	}
	sp := &splitRef{Off: c.Offset, Format: format, FirstLine: c.FirstLine, Header: c.Header}
	recs = make([]rawRecord, 0, c.Lines)
	lines = make([]int64, 0, c.Lines)
	var badFn badLineFunc // nil: fail on the first
	if keepBad {
		badFn = collectLines(&bad, func() int { return len(recs) })
	}
	err = readRecords(bufio.NewReader(bytes.NewReader(data)), c.File, sp, c.Offset, func(pos Position, key string, value []byte) error {
		recs = append(recs, rawRecord{Key: key, Value: bytes.Clone(value)})
		lines = append(lines, pos.Line)
		return nil
	}, badFn)
	if err != nil {
		return nil, nil, nil, err
	}
	if c.FirstLine == 0 {
		lines = nil // not known
	}
	return recs, lines, bad, nil
}

// cutLine returns the first line of data, without its "\n" and one
// "\r" before it, and the rest after it.
func cutLine(data []byte) (line, rest []byte) {
	line, rest, _ = bytes.Cut(data, []byte{'\n'})
	return bytes.TrimSuffix(line, []byte{'\r'}), rest
}

// appendTextRecords appends the lines of data as records, as
// appendRecords(b, fileChunkRecords(...)) does for a text chunk: an
// empty key and the line, without its end, as a string value.
func appendTextRecords(b []byte, data []byte) []byte {
	n := bytes.Count(data, []byte{'\n'})
	if len(data) > 0 && data[len(data)-1] != '\n' {
		n++
	}
	b = msgp.AppendArrayLen(b, n)
	for len(data) > 0 {
		var l []byte
		l, data = cutLine(data)
		b = append(b, 0x92, 0xa0) // [key, value] with the empty key
		b = msgp.AppendStringBytes(b, l)
	}
	return b
}

// decodeJSON decodes one JSON value, keeping integers as int64.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return fromJSON(v), nil
}

func fromJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = fromJSON(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = fromJSON(x[k])
		}
	}
	return v
}

// appendLineValue appends the value a line of input (without its end)
// becomes in format: "text", the line as a string; "json", the decoded
// JSON value, a blank line giving none (ok false). CSV is read record by
// record instead (eachCSVRecord), since a quoted field may span lines.
func appendLineValue(b []byte, format string, line []byte) (value []byte, ok bool, err error) {
	if format == "json" {
		if len(bytes.TrimSpace(line)) == 0 {
			return b, false, nil
		}
		v, err := decodeJSON(line)
		if err != nil {
			return b, false, err
		}
		b, err = appendValue(b, v)
		return b, err == nil, err
	}
	return msgp.AppendStringBytes(b, line), true, nil
}
