package flow

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gearflow/gearflow/flow/spec"
	"github.com/gearflow/gearflow/flow/storage"
)

// recordWriter writes records in one output format. It is the seam
// between the engine and the file formats: TSV, CSV and JSON lines.
type recordWriter interface {
	write(key string, value any) error
	flush() error
}

func newRecordWriter(w io.Writer, f spec.Format) (recordWriter, error) {
	switch f {
	case spec.FormatTSV:
		return &tsvWriter{w: bufio.NewWriter(w)}, nil
	case spec.FormatCSV:
		return &csvWriter{w: csv.NewWriter(w)}, nil
	case spec.FormatJSONL:
		bw := bufio.NewWriter(w)
		return &jsonlWriter{w: bw, enc: json.NewEncoder(bw)}, nil
	}
	return nil, fmt.Errorf("flow: output format %s not supported", f)
}

// FormatValue renders a value as text the way TSV and CSV outputs do:
// strings as they are, numbers in decimal, anything else as JSON.
func FormatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	}
	if n, ok := Int64(v); ok {
		if u, isU := v.(uint64); isU {
			return strconv.FormatUint(u, 10)
		}
		return strconv.FormatInt(n, 10)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// tsvWriter writes "key<TAB>value" lines, or the value alone when the
// key is empty. Tabs, newlines and backslashes in fields are escaped as
// \t, \n and \\.
type tsvWriter struct{ w *bufio.Writer }

var tsvEscaper = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`)

func (t *tsvWriter) write(key string, value any) error {
	if key != "" {
		tsvEscaper.WriteString(t.w, key)
		t.w.WriteByte('\t')
	}
	tsvEscaper.WriteString(t.w, FormatValue(value))
	return t.w.WriteByte('\n')
}

func (t *tsvWriter) flush() error { return t.w.Flush() }

// csvWriter writes "key,value" rows (RFC 4180 quoting), or the value
// alone when the key is empty.
type csvWriter struct{ w *csv.Writer }

func (c *csvWriter) write(key string, value any) error {
	if key == "" {
		return c.w.Write([]string{FormatValue(value)})
	}
	return c.w.Write([]string{key, FormatValue(value)})
}

func (c *csvWriter) flush() error {
	c.w.Flush()
	return c.w.Error()
}

// jsonlWriter writes one {"key":...,"value":...} object per line.
type jsonlWriter struct {
	w   *bufio.Writer
	enc *json.Encoder
}

type jsonRecord struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

func (j *jsonlWriter) write(key string, value any) error {
	return j.enc.Encode(jsonRecord{Key: key, Value: value})
}

func (j *jsonlWriter) flush() error { return j.w.Flush() }

// writeOutput writes the records each calls back with to the file or
// s3:// object at to in format f, atomically (visible only once whole),
// and returns how many it wrote.
func writeOutput(ctx context.Context, to string, f spec.Format, each func(func(rawRecord) error) error) (int64, error) {
	root, key := storage.Split(to)
	st, err := storage.Open(ctx, root)
	if err != nil {
		return 0, fmt.Errorf("flow: output: %w", err)
	}
	w, err := st.Create(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("flow: output: %w", err)
	}
	defer w.Abort()
	rw, err := newRecordWriter(w, f)
	if err != nil {
		return 0, err
	}
	var n int64
	err = each(func(r rawRecord) error {
		v, err := DecodeValue(r.Value)
		if err != nil {
			return err
		}
		n++
		return rw.write(r.Key, v)
	})
	if err == nil {
		err = rw.flush()
	}
	if err == nil {
		err = w.Commit()
	}
	if err != nil {
		return 0, fmt.Errorf("flow: output %s: %w", to, err)
	}
	return n, nil
}

// writeResult writes the output stage's records to the output file:
// sorted by key for a reduce stage (ties in task order), in task order
// otherwise.
func (c *coordinator) writeResult(ctx context.Context) (int64, error) {
	out := c.p.Output
	from := out.From
	if from == "" {
		from = c.p.Stages[len(c.p.Stages)-1].Name
	}
	sr := c.stages[from]
	if sr == nil {
		return 0, fmt.Errorf("flow: output stage %q does not exist", from)
	}
	eachRaw := func(fn func(key, value []byte) error) error { return c.eachOutputRaw(sr, fn) }
	if c.store != nil {
		eachRaw = func(fn func(key, value []byte) error) error {
			return c.eachStoredOutput(ctx, sr, func(key string, value []byte) error { return fn(unsafeBytes(key), value) })
		}
	}
	if sr.st.Kind != spec.KindReduce {
		return writeOutput(ctx, out.To, out.Format, func(fn func(rawRecord) error) error {
			return eachRaw(func(key, value []byte) error { return fn(rawRecord{Key: string(key), Value: value}) })
		})
	}
	sh := newShuffler(filepath.Join(c.j.tmpDir(from), "sort"), 1, c.opts.MemoryBudget)
	defer sh.cleanup()
	if err := eachRaw(sh.addRaw); err != nil {
		return 0, err
	}
	return writeOutput(ctx, out.To, out.Format, func(fn func(rawRecord) error) error {
		return sh.groups(0, func(g group) error {
			for _, v := range g.Values {
				if err := fn(rawRecord{Key: g.Key, Value: v}); err != nil {
					return err
				}
			}
			return nil
		})
	})
}
