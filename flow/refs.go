package flow

import (
	"github.com/gearflow/gearflow/flow/spec"

	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
)

// taskRefs is the data of a task that moves through storage: it names
// what the worker reads and where it writes, never the bytes. It is the
// payload's "refs" field, in place of "records" or "groups"
// (docs/TASKFORMAT.md).
type taskRefs struct {
	// Store is the URI of the run's storage: Files, Runs and Out are
	// keys in it.
	Store string `msgpack:"store"`
	// Split is a byte range of an input object (map and task kinds).
	Split *splitRef `msgpack:"split,omitempty"`
	// Whole lists input objects read whole, each one record keyed by its
	// base name (split: files).
	Whole []objectRef `msgpack:"whole,omitempty"`
	// Files are record files whose records are the input, in order (a
	// stage's output read by the next stage).
	Files []string `msgpack:"files,omitempty"`
	// Runs are record files sorted by key, merged into key groups (reduce).
	Runs []string `msgpack:"runs,omitempty"`
	// Sources, for a reduce stage reading several stages (a cogroup),
	// names the input each of Runs is of.
	Sources []string `msgpack:"sources,omitempty"`
	// Out is the prefix the attempt writes its output files under.
	Out string `msgpack:"out"`
	// Parts, when positive, has the output partitioned by key hash into
	// this many sorted files; zero writes one file in emission order.
	Parts int `msgpack:"parts,omitempty"`
	// TimeoutMillis is the attempt's time limit; the worker cancels the
	// function's context when it passes. Zero means none.
	TimeoutMillis int64 `msgpack:"timeout_ms,omitempty"`
	// Publish, for the output stage of a run whose output is a folder of
	// part files, has the worker write its output formatted, as that
	// part file, instead of a record file.
	Publish *publishRef `msgpack:"publish,omitempty"`
}

// publishRef is where an attempt writes its part file: a key of the
// output's store, under _temporary/, that the run renames into place
// once the attempt has won and the run has ended.
type publishRef struct {
	objectRef `msgpack:",inline"`
	Format    string `msgpack:"format"` // tsv, csv or jsonl
}

// objectRef names an object by its store's URI and its key there.
type objectRef struct {
	Store string `msgpack:"store" json:"store"`
	Key   string `msgpack:"key" json:"key"`
}

// URI returns the object's URI, for messages: a plain path for a file
// store's object.
func (o objectRef) URI() string { return displayURI(joinURI(o.Store, o.Key)) }

// displayURI shows a file:// URI as its path.
func displayURI(uri string) string {
	if p, ok := strings.CutPrefix(uri, "file://"); ok {
		return p
	}
	return uri
}

// splitRef is a byte range of an input object. Its records are the lines
// that start in [Off, Off+Len): the worker skips a partial first line
// and reads through the line that crosses the end. Len < 0 reads the
// whole object (a compressed one is decompressed).
type splitRef struct {
	objectRef `msgpack:",inline"`
	Off       int64 `msgpack:"off" json:"off"`
	Len       int64 `msgpack:"len" json:"len"`
	Size      int64 `msgpack:"size" json:"size"`
	// Format is how lines become records: "text", "json" or "csv".
	Format string `msgpack:"format" json:"format"`
	// FirstLine, when known (lines and records splits), is the 1-based
	// number of the split's first line, for messages.
	FirstLine int64 `msgpack:"first_line,omitempty" json:"first_line,omitempty"`
	// Data, when set, is the split's bytes, whole lines: a small split
	// travels with its task (see maxInlineSplit).
	Data []byte `msgpack:"data,omitempty" json:"data,omitempty"`
	// Header, for csv with a header, are the field names, read from the
	// object's first record by the coordinator: a record becomes a map
	// of them, and the split at offset 0 skips that first record.
	Header []string `msgpack:"header,omitempty" json:"header,omitempty"`
}

func (s *splitRef) String() string {
	if s.Len < 0 {
		return s.URI()
	}
	return s.URI() + "@" + strconv.FormatInt(s.Off, 10) + "+" + strconv.FormatInt(s.Len, 10)
}

// outFile is one file an attempt wrote: reported in its summary, then
// journaled when the attempt is committed.
type outFile struct {
	// Store, when set, is the store of a published part file; else the
	// file is in the run's storage.
	Store   string `msgpack:"store,omitempty" json:"store,omitempty"`
	Key     string `msgpack:"key" json:"key"`
	Part    int    `msgpack:"part" json:"part"` // partition, or 0
	Records int64  `msgpack:"records" json:"records"`
	Bytes   int64  `msgpack:"bytes" json:"bytes"`
}

// Output keys: <run>/<stage>/task-NNNNNN/attempt-N/ then part-NNNNN.rec
// per partition or out.rec.
func taskPrefix(run, stage string, task int) string {
	return fmt.Sprintf("%s/%s/task-%06d", run, stage, task)
}

func attemptPrefix(run, stage string, task, attempt int) string {
	return taskPrefix(run, stage, task) + "/attempt-" + strconv.Itoa(attempt)
}

func partKey(prefix string, part int) string { return fmt.Sprintf("%s/part-%05d.rec", prefix, part) }

func outKey(prefix string) string { return prefix + "/out.rec" }

// joinURI joins a store URI and a key.
func joinURI(store, key string) string {
	if key == "" {
		return store
	}
	if store == "" {
		return key
	}
	if store[len(store)-1] == '/' {
		return store + key
	}
	return store + "/" + path.Clean(key)
}

func appendRefs(b []byte, r *taskRefs) ([]byte, error) {
	data, err := msgpack.Marshal(r)
	if err != nil {
		return nil, err
	}
	return append(b, data...), nil
}

func decodeRefs(raw []byte) (*taskRefs, error) {
	var r taskRefs
	if err := msgpack.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	if r.Out == "" {
		return nil, fmt.Errorf("refs: no output prefix")
	}
	if r.Split != nil && r.Split.Format == "" {
		r.Split.Format = "text"
	}
	if r.Publish != nil {
		if _, err := spec.ParseFormat(r.Publish.Format); err != nil {
			return nil, fmt.Errorf("refs: publish: %w", err)
		}
	}
	return &r, nil
}
