package flow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gearflow/gearflow/flow/spec"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/runtime"
	"github.com/gearflow/gearflow/server"
)

// TestExecuteBadLines: the lines a payload carries as unreadable meet
// the task in their place among its records: under skip_bad they and
// the records the function fails on count against one limit in input
// order, and the summary lists them in that order; past the limit, or
// without it, the first one over fails the task, permanently, naming its
// line. A task-kind task, which skips nothing, fails on the first.
func TestExecuteBadLines(t *testing.T) {
	t.Parallel()
	reg := NewRegistry()
	var calls []string
	reg.Map("m", func(ctx context.Context, rec Record, emit Emit) error {
		calls = append(calls, rec.Pos.String())
		if rec.Value == "fail" {
			return errors.New("function failed")
		}
		return emit("", rec.Value)
	})
	reg.Task("tk", func(ctx context.Context, recs []Record, emit Emit) error {
		calls = append(calls, fmt.Sprintf("%d records", len(recs)))
		return nil
	})
	io := taskIO{data: func([]byte) error { return nil }, status: func(uint64, uint64) error { return nil }}
	// Lines 1-7 of f: 1 does not read, 2 is good, 3 fails the function,
	// 4 and 5 do not read, 6 is good, 7 does not read.
	recs := []rawRecord{{Value: mustValue(t, "ok")}, {Value: mustValue(t, "fail")}, {Value: mustValue(t, "ok")}}
	payload := func(kind TaskKind, skip string) []byte {
		h := taskHeader{Run: "r", Stage: "s", Kind: kind, SkipBad: skip, File: "f", Lines: []int64{2, 3, 6},
			BadLines: []badLine{{Before: 0, Line: 1, Err: "bad 1", Text: "one"}, {Before: 2, Line: 4, Offset: 20, Err: "bad 4", Text: "four"},
				{Before: 2, Line: 5, Offset: 30, Err: "bad 5", Text: ""}, {Before: 3, Line: 7, Offset: 50, Err: "bad 7", Text: "seven"}}}
		return appendMapPayload(nil, &h, recs)
	}

	calls = nil
	res, err := reg.execute(t.Context(), "m", payload(TaskMap, "5"), io)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := decodeSummary(res)
	if err != nil {
		t.Fatal(err)
	}
	want := []BadRecord{{"f:1", "bad 1", "one"}, {"f:3", "function failed", `{"key":"","value":"fail"}`},
		{"f:4", "bad 4", "four"}, {"f:5", "bad 5", ""}, {"f:7", "bad 7", "seven"}}
	if !reflect.DeepEqual(sum.Bad, want) || sum.RecordsIn != 7 || sum.RecordsOut != 2 {
		t.Errorf("summary %+v, want in 7, out 2 and bad records %+v", sum, want)
	}
	if strings.Join(calls, " ") != "f:2 f:3 f:6" {
		t.Errorf("the function saw %v, want the records of lines 2, 3 and 6", calls)
	}

	for _, tt := range []struct {
		name, fn   string
		kind       TaskKind
		skip, want string
		calls      string
	}{
		{"over a count", "m", TaskMap, "3", "f:5: bad 5", "f:2 f:3"},
		{"without skipping", "m", TaskMap, "", "f:1: bad 1", ""},
		{"over a percentage", "m", TaskMap, "50%", "5 of 7 records failed, more than skip_bad_records 50% allows; the first, f:1: bad 1", "f:2 f:3 f:6"},
		{"task kind", "tk", TaskChunk, "", "f:1: bad 1", ""},
	} {
		calls = nil
		_, err := reg.execute(t.Context(), tt.fn, payload(tt.kind, tt.skip), io)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want one naming %q", tt.name, err, tt.want)
		}
		if !strings.HasSuffix(tt.skip, "%") && !errors.Is(err, ErrPermanent) {
			t.Errorf("%s: err = %v, want a permanent error", tt.name, err)
		}
		if got := strings.Join(calls, " "); got != tt.calls {
			t.Errorf("%s: the function saw %q, want %q", tt.name, got, tt.calls)
		}
	}
}

// TestWorkerDroppingBadLinesFails: a worker that does not know a
// payload's bad_lines (an older one, or one in another language) and
// completes the task without reporting them fails its attempt instead of
// losing the lines without a word; the same worker is fine with a
// payload that carries none.
func TestWorkerDroppingBadLinesFails(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, content string
		fail          bool
	}{
		{"with a bad line", "{\"n\": 1}\n{\"n\": x}\n{\"n\": 3}\n", true},
		{"without", "{\"n\": 1}\n{\"n\": 2}\n{\"n\": 3}\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := servertest.Start(t, server.Config{}).Addr
			w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: []string{addr}, Concurrency: 2})
			if err != nil {
				t.Fatal(err)
			}
			var attempts atomic.Int64
			// Version 1 of the format as it was before bad_lines: every
			// record through, and a summary without "bad".
			w.Handle("old.map", runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				attempts.Add(1)
				tk, err := decodeTask(job.Payload)
				if err != nil {
					return nil, err
				}
				if err := job.SendData(appendRecords(nil, tk.Records)); err != nil {
					return nil, err
				}
				n := int64(len(tk.Records))
				return appendSummary(nil, Summary{RecordsIn: n, RecordsOut: n, Batches: 1}), nil
			}))
			wctx, stop := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() { w.Run(wctx); close(done) }()
			defer func() { stop(); <-done }()

			dir := t.TempDir()
			input := filepath.Join(dir, "in.jsonl")
			if err := os.WriteFile(input, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			pfile := filepath.Join(dir, "p.yaml")
			if err := os.WriteFile(pfile, []byte(`
version: 1
name: old
stages:
  - name: parse
    kind: map
    function: old.map
    input: { from: file:in.jsonl, format: jsonl }
    skip_bad_records: 5
    retry: { max_attempts: 2, initial: 10ms }
output: { to: out.jsonl }
`), 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := spec.Load(pfile, nil)
			if err != nil {
				t.Fatal(err)
			}
			opts := Options{StateDir: t.TempDir(), Servers: []string{addr}, Workers: -1, Storage: StorageNone,
				Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))}
			res, err := Run(t.Context(), p, NewRegistry(), opts)
			if !tt.fail {
				if err != nil || res.Stages[0].RecordsOut != 3 {
					t.Fatalf("run: %v, %+v; want the 3 records through", err, res)
				}
				return
			}
			if err == nil {
				t.Fatal("the run succeeded though its worker dropped a line that does not read")
			}
			if want := input + ":2, which does not read"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "bad_lines") {
				t.Errorf("error %q does not name the line (%q) and bad_lines", err, want)
			}
			if n := attempts.Load(); n != 2 {
				t.Errorf("%d attempts, want 2: the error is not permanent, another worker may know bad_lines", n)
			}
		})
	}
}

// TestBadLinesBounded: a chunk of short lines that do not read carries
// at most maxBadRecords+1 of them to its task, which fails at that one
// whatever its limit; before, 2 M lines of "x" made a payload of 142 MB
// from 4 MiB, past the largest packet a server takes.
func TestBadLinesBounded(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "in.jsonl")
	data := strings.Repeat("x\n", 2<<20) // 4 MiB
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	ch := chunk{File: p, Length: int64(len(data)), FirstLine: 1, Lines: 2 << 20, JSON: true}
	recs, lines, bad, err := fileChunkRecordsAt(ch, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != maxBadRecords+1 || bad[maxBadRecords].Line != maxBadRecords+1 {
		t.Fatalf("%d bad lines kept, the last on line %d; want %d, the last on line %d",
			len(bad), bad[len(bad)-1].Line, maxBadRecords+1, maxBadRecords+1)
	}
	h := taskHeader{File: p, Lines: lines, BadLines: bad}
	if n := len(appendMapPayload(nil, &h, recs)); n > len(data) {
		t.Errorf("payload of %d bytes for a %d-byte chunk", n, len(data))
	}
}
