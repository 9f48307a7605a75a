package flow

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
	if out.Dir {
		return c.writeParts(ctx, sr)
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

// outputStage returns the stage whose records are the run's output.
func (c *coordinator) outputStage() string {
	if c.p.Output.From != "" {
		return c.p.Output.From
	}
	return c.p.Stages[len(c.p.Stages)-1].Name
}

// publishing reports whether st's tasks write the run's output part
// files themselves: with storage, when the output is a folder of part
// files, st is its stage and no stage reads st's records.
func (c *coordinator) publishing(st *spec.Stage) bool {
	if c.store == nil || !c.p.Output.Dir || st.Name != c.outputStage() {
		return false
	}
	for _, other := range c.p.Stages {
		if readsStage(other, st.Name) {
			return false
		}
	}
	return true
}

// partTemp is where an attempt of a publishing stage writes its part
// file, in the output's store.
func (c *coordinator) partTemp(task, attempt int) string {
	return fmt.Sprintf("_temporary/%s/task-%06d/attempt-%d/part.%s", c.run, task, attempt, c.p.Output.Format)
}

// partName is task's part file in the output folder.
func (c *coordinator) partName(task int) string {
	return fmt.Sprintf("part-%05d.%s", task, c.p.Output.Format)
}

// writeParts writes the output folder: a part file per task of the
// output stage, in task order, then an empty _SUCCESS. Part files the
// tasks wrote themselves are renamed into place in the output's store;
// otherwise the records are written from the run's data here.
func (c *coordinator) writeParts(ctx context.Context, sr *stageRun) (int64, error) {
	st, err := storage.Open(ctx, c.p.Output.To)
	if err != nil {
		return 0, fmt.Errorf("flow: output: %w", err)
	}
	var total int64
	for task := range sr.chunks {
		name := c.partName(task)
		if c.publishing(sr.st) {
			c.mu.Lock()
			files := sr.files[task]
			c.mu.Unlock()
			for _, f := range files {
				err := st.Rename(ctx, f.Key, name)
				if errors.Is(err, fs.ErrNotExist) {
					// Renamed already by a run that stopped before its end.
					_, err = st.Stat(ctx, name)
				}
				if err != nil {
					return total, fmt.Errorf("flow: output: %w", err)
				}
				total += f.Records
			}
			continue
		}
		each := func(fn func(rawRecord) error) error {
			conv := func(key, value []byte) error { return fn(rawRecord{Key: string(key), Value: value}) }
			if c.store != nil {
				c.mu.Lock()
				files := sr.files[task]
				c.mu.Unlock()
				for _, f := range files {
					if err := eachStoredRecord(ctx, c.store, f.Key, func(k string, v []byte) error { return fn(rawRecord{Key: k, Value: v}) }); err != nil {
						return err
					}
				}
				return nil
			}
			err := c.j.eachTaskRaw(sr.st.Name, task, conv)
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a failed task under continue: no output
			}
			return err
		}
		n, err := writeOutput(ctx, joinURI(st.URI(), name), c.p.Output.Format, each)
		if err != nil {
			return total, err
		}
		total += n
	}
	w, err := st.Create(ctx, "_SUCCESS")
	if err == nil {
		err = w.Commit()
	}
	if err != nil {
		return total, fmt.Errorf("flow: output: %w", err)
	}
	// As Hadoop's committer does at a job's end, the whole _temporary
	// folder goes: two runs writing one output folder at once would
	// clobber each other's part files anyway.
	if err := st.DeletePrefix(ctx, "_temporary"); err != nil {
		c.log.Warn("could not delete the output's temporary files", "err", err)
	}
	return total, nil
}
