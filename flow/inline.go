package flow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"

	"github.com/gearflow/gearflow/flow/internal/msgp"
	"github.com/gearflow/gearflow/flow/spec"
)

// The data path through the job server, for runs without storage and
// for encoding: raw stages: the coordinator reads each task's input and
// sends it in the payload, collects the output from WORK_DATA into the
// run's journal and pack files, and shuffles it for the reduce stages
// itself. Runs with storage take stored.go's path instead.

// maxPayloadSplit bounds a bytes split whose chunk travels in the task's
// payload (a run without storage).
const maxPayloadSplit = 4 << 20

// maxReduceTaskBytes bounds the encoded key groups of one reduce task: a
// partition larger than this is cut into several tasks by key range.
const maxReduceTaskBytes = 8 << 20

func (c *coordinator) planStage(sr *stageRun) ([]chunk, error) {
	st := sr.st
	if st.Kind == spec.KindReduce {
		if st.CoGroup() {
			return nil, errCoGroupNeedsStorage(st)
		}
		return c.prepareReduce(sr)
	}
	ins := st.InputList()
	if len(ins) == 0 {
		return []chunk{{}}, nil // a task stage with no input runs once
	}
	var chunks []chunk
	for _, in := range ins {
		cs, err := c.planInputInline(in)
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

// errCoGroupNeedsStorage is the error of a run without storage with a
// reduce stage reading several stages: their partitions meet only in
// storage.
func errCoGroupNeedsStorage(st *spec.Stage) error {
	return fmt.Errorf("flow: stage %s reads several stages together, which needs storage: run embedded, or give --storage", st.Name)
}

// planInputInline cuts one input of a stage into chunks that travel in
// their tasks' payloads.
func (c *coordinator) planInputInline(in spec.Input) ([]chunk, error) {
	from := in.From
	switch {
	case from.Kind == spec.SourceFile || from.Kind == spec.SourceGlob:
		if in.Split.By == spec.SplitBytes && in.Split.N > maxPayloadSplit {
			// The chunk travels in the job's payload: keep it well
			// inside a packet.
			in.Split.N = maxPayloadSplit
		}
		return planFileInput(in, c.excluded)
	case from.Kind == spec.SourceStage:
		up := c.stages[from.Value]
		total, err := c.upstreamCounts(up)
		if err != nil {
			return nil, err
		}
		n := int64(in.Split.N)
		if n <= 0 {
			n = spec.DefaultSplitRecords
		}
		var chunks []chunk
		for start := int64(0); start < total; start += n {
			chunks = append(chunks, chunk{Stage: from.Value, Start: start, Count: min(n, total-start)})
		}
		if len(chunks) == 0 {
			chunks = []chunk{{Stage: from.Value}}
		}
		return chunks, nil
	}
	return []chunk{{}}, nil // a task stage with no input runs once
}

// upstreamCounts fills up.outCounts (counting records of task files whose
// count the journal lacks) and returns the total.
func (c *coordinator) upstreamCounts(up *stageRun) (int64, error) {
	var total int64
	for i := range up.outCounts {
		if up.outCounts[i] < 0 {
			var n int64
			err := c.j.eachTaskRecord(up.st.Name, i, func(rawRecord) error { n++; return nil })
			if errors.Is(err, fs.ErrNotExist) {
				err = nil // a failed task under continue: no output
			}
			if err != nil {
				return 0, err
			}
			up.outCounts[i] = n
		}
		total += up.outCounts[i]
	}
	return total, nil
}

// eachOutput calls fn with every record of stage sr's output, in task
// order (failed tasks have none).
func (c *coordinator) eachOutput(sr *stageRun, fn func(rawRecord) error) error {
	return c.eachOutputRaw(sr, func(key, value []byte) error {
		return fn(rawRecord{Key: string(key), Value: value})
	})
}

// eachOutputRaw is eachOutput with keys as bytes valid only during the
// call (see journal.eachTaskRaw).
func (c *coordinator) eachOutputRaw(sr *stageRun, fn func(key, value []byte) error) error {
	for i := range sr.chunks {
		err := c.j.eachTaskRaw(sr.st.Name, i, fn)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var errStop = errors.New("stop")

// stageChunkRecords reads a stage chunk's records from the upstream
// stage's task outputs.
func (c *coordinator) stageChunkRecords(ch chunk) ([]rawRecord, error) {
	up := c.stages[ch.Stage]
	recs := make([]rawRecord, 0, ch.Count)
	var base int64
	for i := range up.chunks {
		n := up.outCounts[i]
		if base+n <= ch.Start {
			base += n
			continue
		}
		idx := base
		err := c.j.eachTaskRecord(up.st.Name, i, func(r rawRecord) error {
			if idx >= ch.Start && idx < ch.Start+ch.Count {
				recs = append(recs, r)
			}
			idx++
			if idx >= ch.Start+ch.Count {
				return errStop
			}
			return nil
		})
		if err != nil && err != errStop && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		base += n
		if int64(len(recs)) >= ch.Count {
			break
		}
	}
	return recs, nil
}

// prepareReduce shuffles the needed stage's output into its partitions
// (spilling beyond the memory budget) and writes each partition's key
// groups as reduce task inputs, cutting a partition into several tasks
// by key range when its groups exceed maxReduceTaskBytes.
func (c *coordinator) prepareReduce(sr *stageRun) ([]chunk, error) {
	up := c.stages[sr.st.Input.From.Value]
	parts := max(up.st.Partition.Count, 1)
	tmp := c.j.tmpDir(sr.st.Name)
	// The partitions are shared among up to GOMAXPROCS shufflers that
	// run at once, each reading the whole output and keeping the records
	// of its own partitions, and each with its share of the budget.
	n := min(parts, goruntime.GOMAXPROCS(0))
	shs := make([]*shuffler, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range shs {
		sh := newShuffler(filepath.Join(tmp, fmt.Sprintf("shuffle-%d", i)), parts, max(c.opts.MemoryBudget/int64(n), 1))
		sh.copyValues = n > 1 // each keeps a share of what it reads
		defer sh.cleanup()
		shs[i] = sh
		wg.Go(func() {
			errs[i] = c.eachOutputRaw(up, func(key, value []byte) error {
				if i == 0 {
					sr.shuffled.Add(1) // for the shuffle's progress
				}
				if p := partitionOfBytes(key, parts); p%n == i {
					return sh.addToPart(p, key, value)
				}
				return nil
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("flow: shuffle: %w", err)
	}
	inDir := filepath.Join(c.j.stageDir(sr.st.Name), "input")
	if err := os.MkdirAll(inDir, 0o755); err != nil {
		return nil, err
	}
	var chunks []chunk
	var body []byte
	var cur chunk
	flush := func() error {
		if cur.Count == 0 {
			return nil
		}
		cur.Groups = filepath.Join(inDir, fmt.Sprintf("groups-%06d.bin", len(chunks)))
		data := msgp.AppendArrayLen(make([]byte, 0, len(body)+5), int(cur.Count))
		if err := writeFileAtomic(cur.Groups, append(data, body...)); err != nil {
			return err
		}
		chunks = append(chunks, cur)
		body = body[:0]
		return nil
	}
	source := inputName(sr.st.Input)
	for p := 0; p < parts; p++ {
		cur = chunk{Partition: p, Source: source}
		err := shs[p%n].groups(p, func(g group) error {
			if cur.Count > 0 && len(body) >= maxReduceTaskBytes {
				if err := flush(); err != nil {
					return err
				}
				cur = chunk{Partition: p, Source: source}
			}
			if cur.Count == 0 {
				cur.FirstKey = g.Key
			}
			cur.LastKey = g.Key
			cur.Count++
			body = msgp.AppendArrayLen(body, 2)
			body = msgp.AppendString(body, g.Key)
			body = msgp.AppendArrayLen(body, len(g.Values))
			for _, v := range g.Values {
				body = append(body, v...)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("flow: shuffle: %w", err)
		}
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return chunks, nil
}

// payload encodes attempt's task payload, and returns the input lines
// it carries as unreadable (taskHeader.BadLines).
func (c *coordinator) payload(sr *stageRun, task, attempt int) ([]byte, []badLine, error) {
	st := sr.st
	ch := sr.chunks[task]
	var recs []rawRecord
	var err error
	switch {
	case ch.Groups != "":
		h := c.header(sr, task, attempt)
		groups, err := os.ReadFile(ch.Groups)
		if err != nil {
			return nil, nil, err
		}
		b := appendTaskHeader(nil, &h)
		b = msgp.AppendString(b, "groups")
		return append(b, groups...), nil, nil
	case st.Encoding == spec.EncodingRaw && ch.File != "":
		data, err := c.inputs.readChunk(ch)
		return data, nil, err
	case ch.File != "" && !ch.JSON && !ch.CSV:
		// Text lines go from the file into the payload with no record
		// in between.
		data, err := c.inputs.readChunk(ch)
		if err != nil {
			return nil, nil, err
		}
		h := c.header(sr, task, attempt)
		h.File, h.FirstLine = ch.File, ch.FirstLine // a record a line
		b := appendTaskHeader(make([]byte, 0, 512+len(data)+4*int(ch.Lines)), &h)
		b = msgp.AppendString(b, "records")
		return appendTextRecords(b, data), nil, nil
	case ch.File != "":
		// Lines that do not read go to the task with the records, which
		// skips them under skip_bad_records or fails naming them, as a
		// task reading its input from storage does.
		var lines []int64
		var bad []badLine
		if recs, lines, bad, err = fileChunkRecordsAt(ch, true); err != nil {
			return nil, nil, err
		}
		h := c.header(sr, task, attempt)
		h.File, h.Lines, h.BadLines = ch.File, lines, bad
		return appendMapPayload(nil, &h, recs), bad, nil
	case len(ch.Files) > 0:
		recs, err = fileChunkRecords(ch)
	case ch.Stage != "":
		recs, err = c.stageChunkRecords(ch)
	}
	if err != nil {
		return nil, nil, err
	}
	if st.Encoding == spec.EncodingRaw {
		return rawText(recs), nil, nil
	}
	h := c.header(sr, task, attempt)
	return appendMapPayload(nil, &h, recs), nil, nil
}

// rawText renders records as the text lines a raw-encoded task gets:
// the value, or key<TAB>value when the key is not empty.
func rawText(recs []rawRecord) []byte {
	var b bytes.Buffer
	for _, r := range recs {
		v, _ := DecodeValue(r.Value)
		if r.Key != "" {
			b.WriteString(r.Key)
			b.WriteByte('\t')
		}
		b.WriteString(FormatValue(v))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// attempt runs one attempt of a task as a Gearman job, streaming its
// WORK_DATA into a file of its own that becomes the task's output only
// if the attempt completes and wins.
func (c *coordinator) attempt(ctx context.Context, sr *stageRun, task, attempt int) attemptOutcome {
	st := sr.st
	payload, badLines, err := c.payload(sr, task, attempt)
	if err != nil {
		return attemptOutcome{err: fmt.Errorf("flow: task input: %w", err)}
	}
	w := &attemptOutput{path: func() string {
		return filepath.Join(c.j.tmpDir(st.Name), fmt.Sprintf("task-%06d.a%d.rec", task, attempt))
	}}
	discard := w.discard
	fail := func(err error) attemptOutcome { return c.failedAttempt(sr, task, jobError(err), discard) }

	t, err := c.submit(ctx, sr, task, attempt, payload)
	if err != nil {
		return fail(err)
	}
	var (
		got, batches int64
		raw          bytes.Buffer
		summary      Summary
	)
	jobErr := c.followJob(ctx, sr, task, t, func(data []byte) error {
		if st.Encoding == spec.EncodingRaw {
			raw.Write(data)
			return nil
		}
		n, err := writeBatch(w, data)
		if err != nil {
			return err
		}
		got += n
		batches++
		return nil
	}, func(data []byte) error {
		if st.Encoding == spec.EncodingRaw {
			raw.Write(data)
			recs := rawLines(raw.Bytes())
			for _, r := range recs {
				if err := w.write(r); err != nil {
					return err
				}
			}
			summary = Summary{RecordsIn: int64(sr.chunks[task].Lines), RecordsOut: int64(len(recs))}
			got, batches = summary.RecordsOut, summary.Batches
			return nil
		}
		s, err := decodeSummary(data)
		summary = s
		return err
	})
	if jobErr != nil {
		return fail(jobErr)
	}
	if err := unreportedLines(badLines, sr.chunks[task].File, summary.Bad); err != nil {
		return fail(err)
	}
	if got != summary.RecordsOut || batches != summary.Batches {
		// The stream does not add up: the job was restarted by the
		// server after its worker was lost, or this coordinator attached
		// to a job that had already streamed data.
		return fail(streamMismatch(got, batches, summary))
	}
	// A file's data is made durable here, in parallel with other
	// attempts; committing is then a rename and a journal line. Output
	// held in memory is appended to the stage's pack file at commit.
	if err := w.finish(); err != nil {
		w.discard()
		return attemptOutcome{err: err}
	}
	entry := journalEntry{Stage: st.Name, Task: task, Attempt: attempt,
		RecordsIn: summary.RecordsIn, RecordsOut: summary.RecordsOut, Counters: summary.Counters}
	return attemptOutcome{
		discard: w.discard,
		worker:  summary.Worker,
		commit: func() error {
			// Bad records before the journal line: a crash between the
			// two reruns the task, so they are written again, never lost.
			if err := c.badLetters(st, task, attempt, summary.Bad); err != nil {
				return err
			}
			if w.f == nil {
				if err := c.j.commitPacked(entry, w.mem); err != nil {
					return err
				}
			} else {
				if err := os.Rename(w.name, c.j.taskPath(st.Name, task)); err != nil {
					return err
				}
				if err := c.j.record(entry); err != nil {
					return err
				}
			}
			c.tallyCommitted(sr, task, &summary)
			return nil
		},
	}
}

// attemptOutput collects an attempt's records: in memory up to
// maxPacked bytes, then in a temporary file of the attempt's own.
type attemptOutput struct {
	path func() string // where the temporary file goes, should there be one
	mem  []byte        // records, while they fit
	f    *recWriter    // the file, past maxPacked
	name string        // its path
}

// writeRecords appends encoded records.
func (o *attemptOutput) writeRecords(b []byte) error {
	if o.f == nil && len(o.mem)+len(b) <= maxPacked {
		o.mem = append(o.mem, b...)
		return nil
	}
	if o.f == nil {
		o.name = o.path()
		w, err := createRecFile(o.name)
		if err != nil {
			return err
		}
		o.f = w
		if _, err := w.w.Write(o.mem); err != nil {
			return err
		}
		o.mem = nil
	}
	_, err := o.f.w.Write(b)
	return err
}

func (o *attemptOutput) write(r rawRecord) error {
	return o.writeRecords(appendRecord(nil, r.Key, r.Value))
}

// finish flushes and fsyncs the file, if there is one.
func (o *attemptOutput) finish() error {
	if o.f == nil {
		return nil
	}
	return o.f.close(true)
}

// discard drops the attempt's records.
func (o *attemptOutput) discard() {
	o.mem = nil
	if o.f != nil {
		o.f.close(false)
		os.Remove(o.name)
	}
}

// writeBatch checks one WORK_DATA batch and appends its records to w.
// A batch's body is already a record file's content, so once every
// record checks out it is written as it came.
func writeBatch(w *attemptOutput, data []byte) (int64, error) {
	c := msgp.NewCursor(data)
	n, err := c.ArrayLen()
	if err != nil {
		return 0, malformed("data batch", err)
	}
	body := c.Pos()
	for i := 0; i < n; i++ {
		if err := c.CheckRecord(); err != nil {
			return 0, malformed("data batch", fmt.Errorf("record %d: %w", i, err))
		}
	}
	if c.Rest() != 0 {
		return 0, malformed("data batch", fmt.Errorf("%d bytes after the records", c.Rest()))
	}
	if err := w.writeRecords(data[body:]); err != nil {
		return 0, err
	}
	return int64(n), nil
}

// rawLines turns a raw task's output into records: one per line, with an
// empty key and the line as a string value.
func rawLines(out []byte) []rawRecord {
	var recs []rawRecord
	for len(out) > 0 {
		i := bytes.IndexByte(out, '\n')
		var l []byte
		if i < 0 {
			l, out = out, nil
		} else {
			l, out = out[:i], out[i+1:]
		}
		recs = append(recs, rawRecord{Value: msgp.AppendString(nil, string(bytes.TrimSuffix(l, []byte{'\r'})))})
	}
	return recs
}
