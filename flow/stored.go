package flow

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gearflow/gearflow/flow/internal/msgp"
	"github.com/gearflow/gearflow/flow/spec"
	"github.com/gearflow/gearflow/flow/storage"
)

// The coordinator's side of the data plane. With storage, the
// coordinator lists and stats the input and plans byte splits; a task
// carries references (object, offset, length; record files; sorted
// runs) and the prefix its attempt writes under; the attempt's summary
// names the files it wrote, and committing the attempt is a journal line
// naming them. No input or shuffle byte passes through the coordinator
// or the job server.

// storedPlan plans a stage's tasks from storage: those of each of its
// inputs in turn, each chunk naming its input.
func (c *coordinator) storedPlan(ctx context.Context, sr *stageRun) ([]chunk, error) {
	st := sr.st
	if st.Kind == spec.KindReduce {
		return c.planReduceRefs(sr)
	}
	ins := st.InputList()
	if len(ins) == 0 {
		return []chunk{{}}, nil // a task stage with no input runs once
	}
	var chunks []chunk
	for _, in := range ins {
		var cs []chunk
		var err error
		switch in.From.Kind {
		case spec.SourceFile, spec.SourceGlob:
			cs, err = planInput(ctx, in, c.excluded)
		case spec.SourceStage:
			cs, err = c.planStageRefs(c.stages[in.From.Value], in.Split)
		}
		if err != nil {
			return nil, err
		}
		for i := range cs {
			cs[i].Source = inputName(in)
		}
		chunks = append(chunks, cs...)
	}
	return chunks, nil
}

// excluded reports whether path is the run's own: under its state
// folder, its run directory or its prefix in a storage folder, which an
// input glob such as ** would otherwise match. The rest of a storage
// folder is not excluded: inputs may well lie there.
func (c *coordinator) excluded(path string) bool {
	dirs := []string{c.opts.StateDir, c.j.dir}
	if dir, ok := strings.CutPrefix(c.storeURI, "file://"); ok {
		dirs = append(dirs, filepath.Join(dir, c.run))
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if abs, err := filepath.Abs(d); err == nil {
			d = abs
		}
		if rel, err := filepath.Rel(d, path); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// planInputRefs lists a file or glob input in its store and cuts each
// object into splits (see planInput).
func planInputRefs(ctx context.Context, from spec.Source, split spec.Split) ([]chunk, error) {
	return planInput(ctx, spec.Input{From: from, Split: split}, nil)
}

// planInput lists a file or glob input in its store, leaving out the
// files excluded says, and cuts each object into splits: by bytes from
// the objects' sizes alone, or, for lines and records splits (meant for
// small inputs) and for CSV, by reading the objects for their line (or
// record) ends. A compressed object is one split.
func planInput(ctx context.Context, in spec.Input, excluded func(path string) bool) ([]chunk, error) {
	from, split := in.From, in.Split
	root, pattern := storage.Split(from.Value)
	st, err := storage.Open(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("flow: input: %w", err)
	}
	var objs []storage.Info
	if from.Kind == spec.SourceFile {
		info, err := st.Stat(ctx, pattern)
		if err != nil {
			return nil, fmt.Errorf("flow: input: %w", err)
		}
		objs = []storage.Info{info}
	} else {
		if objs, err = st.List(ctx, pattern); err != nil {
			return nil, fmt.Errorf("flow: input: %w", err)
		}
		if dir, local := strings.CutPrefix(st.URI(), "file://"); local && excluded != nil {
			objs = slices.DeleteFunc(objs, func(o storage.Info) bool {
				return excluded(filepath.Join(dir, filepath.FromSlash(o.Key)))
			})
		}
		if len(objs) == 0 {
			return nil, fmt.Errorf("flow: input: %s matches no files", from.Value)
		}
	}
	n := int64(split.N)
	if split.By == spec.SplitFiles {
		if n <= 0 {
			n = spec.DefaultSplitFiles
		}
		var chunks []chunk
		for i := 0; i < len(objs); i += int(n) {
			var ch chunk
			for _, o := range objs[i:min(i+int(n), len(objs))] {
				ch.Whole = append(ch.Whole, objectRef{Store: st.URI(), Key: o.Key})
			}
			chunks = append(chunks, ch)
		}
		return chunks, nil
	}
	var chunks []chunk
	for _, o := range objs {
		format := objectFormat(in, o.Key)
		obj := objectRef{Store: st.URI(), Key: o.Key}
		if err := checkHeader(in, format, obj.URI()); err != nil {
			return nil, err
		}
		var header []string
		if format == "csv" && in.Header {
			rc, err := storage.OpenInput(ctx, st, o.Key)
			if err != nil {
				return nil, fmt.Errorf("flow: input: %w", err)
			}
			header, err = readCSVHeader(bufio.NewReader(rc), obj.URI())
			rc.Close()
			if err != nil {
				return nil, err
			}
		}
		switch {
		case compressed(o.Key):
			chunks = append(chunks, chunk{Split: &splitRef{objectRef: obj, Len: -1, Size: o.Size, Format: format, FirstLine: 1, Header: header}})
		case split.By == spec.SplitBytes && format != "csv":
			size := n
			if size <= 0 {
				size = spec.DefaultSplitBytes
			}
			if o.Size == 0 {
				chunks = append(chunks, chunk{Split: &splitRef{objectRef: obj, Size: 0, Format: format}})
			}
			for off := int64(0); off < o.Size; off += size {
				sp := &splitRef{objectRef: obj, Off: off, Len: min(size, o.Size-off), Size: o.Size, Format: format}
				if off == 0 {
					// The lines of the first split are numbered; the
					// others' first line is not known without reading.
					sp.FirstLine = 1
				}
				chunks = append(chunks, chunk{Split: sp})
			}
		default:
			rc, err := st.Open(ctx, o.Key, 0, -1)
			if err != nil {
				return nil, fmt.Errorf("flow: input: %w", err)
			}
			// The lines are read here anyway: a small object's are kept,
			// so that its tiny splits can travel with their tasks.
			var data []byte
			var r io.Reader = rc
			if o.Size <= maxInlineObject {
				if data, err = io.ReadAll(rc); err != nil {
					rc.Close()
					return nil, fmt.Errorf("flow: input %s: %w", obj.URI(), err)
				}
				r = bytes.NewReader(data)
			}
			lines, err := scanSplits(r, split, format == "csv")
			rc.Close()
			if err != nil {
				return nil, fmt.Errorf("flow: input %s: %w", obj.URI(), err)
			}
			for _, l := range lines {
				sp := &splitRef{objectRef: obj, Off: l.Offset, Len: l.Length, Size: o.Size, Format: format, FirstLine: l.FirstLine, Header: header}
				if data != nil && l.Length <= maxInlineSplit && l.Offset+l.Length <= int64(len(data)) {
					sp.Data = data[l.Offset : l.Offset+l.Length : l.Offset+l.Length]
				}
				chunks = append(chunks, chunk{Lines: l.Lines, Split: sp})
			}
		}
	}
	return chunks, nil
}

// A lines or records split of at most maxInlineSplit bytes, of an object
// of at most maxInlineObject bytes, travels inside its task: the
// coordinator has read those lines to find their ends, and a worker
// opening the object for a few lines would cost each such task more
// than its work.
const (
	maxInlineSplit  = 4 << 10
	maxInlineObject = 16 << 20
)

func compressed(key string) bool {
	return strings.HasSuffix(key, ".gz") || strings.HasSuffix(key, ".zst")
}

// scanLineSplits cuts what r reads into chunks of split.N lines (or the
// first line end past split.N bytes), at line ends.
func scanLineSplits(r io.Reader, split spec.Split) ([]chunk, error) {
	return scanSplits(r, split, false)
}

// scanSplits cuts what r reads into chunks of split.N lines (records
// for CSV), or at the first line end past split.N bytes. With csv it
// cuts only at a line end outside quotes, so that a quoted field that
// spans lines stays in one chunk: in RFC 4180 CSV a quote inside a field
// is doubled, so a line end is outside quotes when the quotes before it
// are even in number.
func scanSplits(r io.Reader, split spec.Split, csv bool) ([]chunk, error) {
	n := int64(split.N)
	if n <= 0 {
		switch split.By {
		case spec.SplitBytes:
			n = spec.DefaultSplitBytes
		case spec.SplitRecords:
			n = spec.DefaultSplitRecords
		default:
			n = spec.DefaultSplitLines
		}
	}
	var chunks []chunk
	cur := chunk{FirstLine: 1}
	var off, line, records int64
	quoted := false // inside a quoted CSV field
	br := bufio.NewReaderSize(r, 256<<10)
	for {
		b, err := br.ReadSlice('\n')
		if csv && bytes.Count(b, []byte{'"'})%2 == 1 {
			quoted = !quoted
		}
		if len(b) > 0 || err == bufio.ErrBufferFull {
			off += int64(len(b))
			cur.Length += int64(len(b))
			if err != bufio.ErrBufferFull {
				line++
				cur.Lines++
				if quoted && err == nil {
					continue // the record goes on past this line
				}
				records++
				full := records >= n
				if split.By == spec.SplitBytes {
					full = cur.Length >= n
				}
				if full {
					chunks = append(chunks, cur)
					cur = chunk{Offset: off, FirstLine: line + 1}
					records = 0
				}
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if cur.Lines > 0 || len(chunks) == 0 {
		chunks = append(chunks, cur)
	}
	return chunks, nil
}

// planStageRefs gives a map or task stage that reads another stage's
// output tasks of whole output files of that stage: as many files as
// keep a task within the split's records (at least one file).
func (c *coordinator) planStageRefs(up *stageRun, split spec.Split) ([]chunk, error) {
	n := int64(split.N)
	if n <= 0 {
		n = spec.DefaultSplitRecords
	}
	var chunks []chunk
	cur := chunk{Stage: up.st.Name}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, files := range up.files {
		for _, f := range files {
			if len(cur.Keys) > 0 && cur.Count+f.Records > n {
				chunks = append(chunks, cur)
				cur = chunk{Stage: up.st.Name}
			}
			cur.Keys = append(cur.Keys, f.Key)
			cur.Count += f.Records
		}
	}
	if len(cur.Keys) > 0 || len(chunks) == 0 {
		chunks = append(chunks, cur)
	}
	return chunks, nil
}

// planReduceRefs gives a reduce stage one task per partition of the
// stage it reads, naming that partition's sorted run from each of its
// tasks. A reduce stage reading several stages (a cogroup) names the
// partition's runs of each, and which input each run is of.
func (c *coordinator) planReduceRefs(sr *stageRun) ([]chunk, error) {
	ins := sr.st.InputList()
	if len(ins) == 0 {
		return nil, fmt.Errorf("flow: stage %s: a reduce stage with no input", sr.st.Name)
	}
	first := c.stages[ins[0].From.Value]
	parts := max(first.st.Partition.Count, 1)
	chunks := make([]chunk, parts)
	c.mu.Lock()
	defer c.mu.Unlock()
	cogroup := len(ins) > 1
	for p := range chunks {
		chunks[p] = chunk{Partition: p, Stage: first.st.Name, Runs: true}
		if !cogroup {
			chunks[p].Source = inputName(ins[0])
		}
	}
	for _, in := range ins {
		up := c.stages[in.From.Value]
		if n := max(up.st.Partition.Count, 1); n != parts {
			return nil, fmt.Errorf("flow: stage %s: reads %s (%d partitions) and %s (%d partitions)", sr.st.Name, first.st.Name, parts, up.st.Name, n)
		}
		for _, files := range up.files {
			for _, f := range files {
				if f.Part < 0 || f.Part >= parts {
					return nil, fmt.Errorf("flow: stage %s: file %s is of partition %d of %d", up.st.Name, f.Key, f.Part, parts)
				}
				ch := &chunks[f.Part]
				ch.Keys = append(ch.Keys, f.Key)
				if cogroup {
					ch.KeySources = append(ch.KeySources, inputName(in))
				}
				ch.Count += f.Records
			}
		}
	}
	return chunks, nil
}

// partitioned returns how many partitions a stage's output is cut into:
// its partition count when a reduce stage reads it, else 0 (one file per
// task, in emission order).
func (c *coordinator) partitioned(st *spec.Stage) int {
	for _, other := range c.p.Stages {
		if other.Kind == spec.KindReduce && readsStage(other, st.Name) {
			return max(st.Partition.Count, 1)
		}
	}
	return 0
}

// readsStage reports whether st reads the output of the stage called name.
func readsStage(st *spec.Stage, name string) bool {
	for _, in := range st.InputList() {
		if in.From.Kind == spec.SourceStage && in.From.Value == name {
			return true
		}
	}
	return false
}

// refs returns the references of an attempt's task.
func (c *coordinator) refs(sr *stageRun, task, attempt int) *taskRefs {
	ch := sr.chunks[task]
	r := &taskRefs{Store: c.store.URI(), Split: ch.Split, Whole: ch.Whole,
		Out: attemptPrefix(c.run, sr.st.Name, task, attempt), Parts: c.partitioned(sr.st)}
	if sr.st.Kind == spec.KindReduce {
		r.Runs, r.Sources = ch.Keys, ch.KeySources
	} else {
		r.Files = ch.Keys
	}
	if sr.st.Timeout > 0 {
		r.TimeoutMillis = sr.st.Timeout.Milliseconds()
	}
	if c.publishing(sr.st) {
		r.Publish = &publishRef{objectRef: objectRef{Store: c.outStore.URI(), Key: c.partTemp(task, attempt)},
			Format: c.p.Output.Format.String()}
	}
	return r
}

// storedAttempt runs one attempt of a task whose data moves through
// storage: the job's payload names its input and output prefix, its
// WORK_STATUS is progress and its WORK_COMPLETE names the files it
// wrote. Committing journals those files; discarding deletes the
// attempt's prefix.
func (c *coordinator) storedAttempt(ctx context.Context, sr *stageRun, task, attempt int) attemptOutcome {
	st := sr.st
	h := c.header(sr, task, attempt)
	refs := c.refs(sr, task, attempt)
	var payload []byte
	var inputs int64
	var err error
	if st.Encoding == spec.EncodingRaw {
		payload, inputs, err = c.rawInput(ctx, refs)
	} else {
		payload, err = appendRefs(msgp.AppendString(appendTaskHeader(nil, &h), "refs"), refs)
	}
	if err != nil {
		return attemptOutcome{err: fmt.Errorf("flow: task payload: %w", err)}
	}
	discard := func() {
		// The attempt's files go in the background: a slow store must
		// not hold up the stage.
		go func() {
			dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := c.store.DeletePrefix(dctx, refs.Out); err != nil {
				c.log.Warn("could not delete a discarded attempt's files; the run's end sweeps them", "prefix", refs.Out, "err", err)
			}
			if refs.Publish != nil {
				c.outStore.DeletePrefix(dctx, path.Dir(refs.Publish.Key))
			}
		}()
	}
	fail := func(err error) attemptOutcome { return c.failedAttempt(sr, task, jobError(err), discard) }
	t, err := c.submit(ctx, sr, task, attempt, payload)
	if err != nil {
		return fail(err)
	}
	var summary Summary
	var jobErr error
	if st.Encoding == spec.EncodingRaw {
		var out bytes.Buffer
		collect := func(data []byte) error { out.Write(data); return nil }
		if jobErr = c.followJob(ctx, sr, task, t, collect, collect); jobErr == nil {
			summary, jobErr = c.rawOutput(ctx, h, refs, out.Bytes())
			summary.RecordsIn = inputs
		}
	} else {
		jobErr = c.followJob(ctx, sr, task, t, func([]byte) error {
			return fmt.Errorf("flow: WORK_DATA from a task whose data goes through storage")
		}, func(data []byte) error {
			s, err := decodeSummary(data)
			summary = s
			return err
		})
	}
	if jobErr != nil {
		return fail(jobErr)
	}
	for _, f := range summary.Files {
		prefix := refs.Out
		if f.Store != "" && refs.Publish != nil {
			prefix = path.Dir(refs.Publish.Key)
		}
		if !strings.HasPrefix(f.Key, prefix+"/") {
			return fail(fmt.Errorf("flow: the worker reported file %s outside its attempt's prefix %s", f.Key, prefix))
		}
	}
	entry := journalEntry{Stage: st.Name, Task: task, Attempt: attempt, Stored: true,
		RecordsIn: summary.RecordsIn, RecordsOut: summary.RecordsOut, Files: summary.Files, Counters: summary.Counters}
	return attemptOutcome{
		discard: discard,
		worker:  summary.Worker,
		commit: func() error {
			// Bad records before the journal line: a crash between the
			// two reruns the task, so they are written again, never lost.
			if err := c.badLetters(st, task, attempt, summary.Bad); err != nil {
				return err
			}
			if err := c.j.record(entry); err != nil {
				return err
			}
			c.tallyCommitted(sr, task, &summary)
			return nil
		},
	}
}

// eachStoredOutput calls fn with every record a stage wrote, in task
// order.
func (c *coordinator) eachStoredOutput(ctx context.Context, sr *stageRun, fn func(key string, value []byte) error) error {
	c.mu.Lock()
	var keys []string
	for _, files := range sr.files {
		for _, f := range files {
			keys = append(keys, f.Key)
		}
	}
	c.mu.Unlock()
	for _, k := range keys {
		if err := eachStoredRecord(ctx, c.store, k, fn); err != nil {
			return err
		}
	}
	return nil
}

// sweep deletes the files of every attempt the run did not commit: those
// whose deletion failed, and those of attempts a worker finished after
// the coordinator had given up on them.
func (c *coordinator) sweep(ctx context.Context) {
	keep := make(map[string]bool) // committed attempts' prefixes
	c.mu.Lock()
	for _, sr := range c.stages {
		for _, files := range sr.files {
			for _, f := range files {
				keep[path.Dir(f.Key)] = true
			}
		}
	}
	c.mu.Unlock()
	infos, err := c.store.List(ctx, c.run+"/**")
	if err != nil {
		c.log.Warn("could not list the run's storage to sweep it", "err", err)
		return
	}
	gone := make(map[string]bool)
	for _, in := range infos {
		prefix := path.Dir(in.Key)
		if keep[prefix] || !strings.HasPrefix(path.Base(prefix), "attempt-") || gone[prefix] {
			continue
		}
		gone[prefix] = true
		if err := c.store.DeletePrefix(ctx, prefix); err != nil {
			c.log.Warn("could not delete an uncommitted attempt's files", "prefix", prefix, "err", err)
		}
	}
}

// defaultStorage is the storage of an embedded run that names none: a
// folder of its run directory.
func defaultStorage(runDir string) string {
	abs, err := filepath.Abs(filepath.Join(runDir, "data"))
	if err != nil {
		abs = filepath.Join(runDir, "data")
	}
	return "file://" + filepath.ToSlash(abs)
}

// An encoding: raw stage's worker speaks plain Gearman: the coordinator
// reads its task's input and sends it as text, and writes what the job
// returns to storage as the attempt's output, where the stages after it
// read it as they read any other.

// rawInput returns the text a raw task gets: its input records, one line
// each (see rawText), and how many there are.
func (c *coordinator) rawInput(ctx context.Context, refs *taskRefs) ([]byte, int64, error) {
	var recs []rawRecord
	err := c.reg.eachRefRecord(ctx, refs, func(_ Position, key string, value []byte) error {
		recs = append(recs, rawRecord{Key: key, Value: bytes.Clone(value)})
		return nil
	}, nil)
	return rawText(recs), int64(len(recs)), err
}

// rawOutput writes a raw task's result, a record per line, to storage
// under the attempt's prefix, partitioned when a reduce stage reads it.
func (c *coordinator) rawOutput(ctx context.Context, h taskHeader, refs *taskRefs, out []byte) (Summary, error) {
	sink, err := c.reg.newStorageSink(ctx, &task{taskHeader: h, Refs: refs})
	if err != nil {
		return Summary{}, err
	}
	defer sink.abort()
	for _, r := range rawLines(out) {
		v, err := DecodeValue(r.Value)
		if err != nil {
			return Summary{}, err
		}
		if err := sink.emit(r.Key, v); err != nil {
			return Summary{}, err
		}
	}
	return sink.finish()
}

// removeData deletes a finished run's task outputs: its prefix in its
// storage, or, without storage, the output files of its run directory.
func (c *coordinator) removeData(ctx context.Context) error {
	var errs []error
	if c.store != nil {
		errs = append(errs, c.store.DeletePrefix(ctx, c.run))
		// The embedded default's folder, now empty, goes too.
		if err := os.Remove(filepath.Join(c.j.dir, "data")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.log.Debug("the run's data folder stays", "err", err)
		}
	}
	for _, st := range c.p.Stages {
		outs, err := filepath.Glob(filepath.Join(c.j.stageDir(st.Name), "*.rec"))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range outs {
			if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
