package flow

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gearflow/gearflow/flow/internal/msgp"
)

func TestJournalPackedOutputs(t *testing.T) {
	t.Parallel()
	recs := []rawRecord{{Key: "a", Value: mustValue(t, 1)}, {Key: "b", Value: mustValue(t, "two")}}
	var data []byte
	for _, r := range recs {
		data = appendRecord(data, r.Key, r.Value)
	}
	read := func(t *testing.T, j *journal, task int) ([]rawRecord, error) {
		t.Helper()
		var got []rawRecord
		err := j.eachTaskRecord("s", task, func(r rawRecord) error { got = append(got, r); return nil })
		return got, err
	}
	tests := []struct {
		name     string
		damage   func(t *testing.T, pack string)
		wantDone map[int]bool
	}{
		{"intact", func(*testing.T, string) {}, map[int]bool{0: true, 1: true, 2: true}},
		{"flipped byte", func(t *testing.T, pack string) {
			b, err := os.ReadFile(pack)
			if err != nil {
				t.Fatal(err)
			}
			b[len(data)+1] ^= 0xff // inside task 2's bytes
			if err := os.WriteFile(pack, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, map[int]bool{0: true, 1: true}},
		{"torn", func(t *testing.T, pack string) {
			if err := os.Truncate(pack, int64(len(data))+3); err != nil {
				t.Fatal(err)
			}
		}, map[int]bool{0: true, 1: true}},
		{"lost", func(t *testing.T, pack string) {
			if err := os.Remove(pack); err != nil {
				t.Fatal(err)
			}
		}, map[int]bool{1: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			j, err := openJournal(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(j.stageDir("s"), 0o755); err != nil {
				t.Fatal(err)
			}
			for task, d := range map[int][]byte{0: data, 1: nil} {
				if err := j.commitPacked(journalEntry{Stage: "s", Task: task, Attempt: 1, RecordsOut: int64(len(recs))}, d); err != nil {
					t.Fatal(err)
				}
			}
			if err := j.commitPacked(journalEntry{Stage: "s", Task: 2, Attempt: 1}, data); err != nil {
				t.Fatal(err)
			}
			got, err := read(t, j, 0)
			if err != nil || !reflect.DeepEqual(got, recs) {
				t.Fatalf("task 0 before reopening: %+v, %v", got, err)
			}
			if err := j.sync("s"); err != nil {
				t.Fatal(err)
			}
			j.close()

			tt.damage(t, filepath.Join(dir, "stages", "s", "pack.rec"))
			j, err = openJournal(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer j.close()
			done, err := j.doneTasks("s")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(done, tt.wantDone) {
				t.Errorf("done tasks %v, want %v", done, tt.wantDone)
			}
			if done[0] {
				if got, err := read(t, j, 0); err != nil || !reflect.DeepEqual(got, recs) {
					t.Errorf("task 0 after reopening: %+v, %v", got, err)
				}
			} else if _, err := read(t, j, 0); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("task 0 lost: err %v, want fs.ErrNotExist", err)
			}
			if got, err := read(t, j, 1); err != nil || len(got) != 0 {
				t.Errorf("task 1 (no output): %+v, %v", got, err)
			}
		})
	}
}

func TestAttemptOutputSpillsPastMaxPacked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.rec")
	w := &attemptOutput{path: func() string { return path }}
	rec := appendRecord(nil, "k", msgp.AppendString(nil, string(make([]byte, 1000))))
	var want []byte
	for len(want) <= maxPacked {
		if err := w.writeRecords(rec); err != nil {
			t.Fatal(err)
		}
		want = append(want, rec...)
	}
	if w.f == nil || w.mem != nil {
		t.Fatalf("output of %d bytes still in memory", len(want))
	}
	if err := w.finish(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("file holds %d bytes (%v), want the %d written", len(got), err, len(want))
	}
	w.discard()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("discard left the file: %v", err)
	}
}

// TestJournalWritesLinesWithinDelay: a journal line reaches the file
// within journalDelay without a sync, and at once on sync.
func TestJournalWritesLinesWithinDelay(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		j, err := openJournal(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer j.close()
		if err := j.record(journalEntry{Stage: "s", Task: 1, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
		if es, _ := readJournal(dir); len(es) != 0 {
			t.Fatalf("journal holds %d lines before the delay, want them grouped", len(es))
		}
		time.Sleep(journalDelay)
		synctest.Wait()
		if es, err := readJournal(dir); err != nil || len(es) != 1 || es[0].Task != 1 {
			t.Fatalf("after %v: %+v, %v; want the line", journalDelay, es, err)
		}
		if err := j.record(journalEntry{Stage: "s", Task: 2, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
		if err := j.sync("s"); err != nil {
			t.Fatal(err)
		}
		if es, err := readJournal(dir); err != nil || len(es) != 2 {
			t.Fatalf("after sync: %+v, %v; want both lines", es, err)
		}
	})
}

// TestJournalWriteErrorSticks: once a group of lines fails to reach the
// file, every later journal call reports it, including sync, with one
// "flow: journal" prefix.
func TestJournalWriteErrorSticks(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		j, err := openJournal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer j.close()
		if err := j.record(journalEntry{Stage: "s", Task: 1, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
		j.mu.Lock()
		j.f.Close() // the timer's write of task 1's line fails
		j.mu.Unlock()
		time.Sleep(journalDelay)
		synctest.Wait()
		if err := j.record(journalEntry{Stage: "s", Task: 2, Attempt: 1}); err == nil {
			t.Fatal("record after a lost line: no error")
		}
		err = j.sync("s")
		if err == nil {
			t.Fatal("sync after a lost line: no error")
		}
		if strings.Count(err.Error(), "flow: journal") != 1 {
			t.Errorf("sync error %q", err)
		}
	})
}

func TestAppendEntryIsJSON(t *testing.T) {
	t.Parallel()
	for _, e := range []journalEntry{
		{Stage: "count", Task: 7, Attempt: 2, RecordsIn: 50000, RecordsOut: 37000},
		{Stage: "s-1.x_y", Task: 0, Attempt: 1, Packed: true, Offset: 1 << 40, Length: 12, CRC: 0xffffffff},
		{Stage: "s", Packed: true},
		{Stage: "odd \"<stage>\" é\n", Task: -1, RecordsIn: -5, Millis: 3},
		{Stage: "c", Packed: true, Length: 3, Counters: map[string]int64{"bad_dates": 3, "a": -1}},
		{Stage: "c", Counters: map[string]int64{"odd \"name\"": 1}},
		{Stage: "c", Stored: true, Files: []outFile{{Key: "k", Records: 1}}, Counters: map[string]int64{"n": 1}},
	} {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendEntry([]byte("x"), e); string(got) != "x"+string(want) {
			t.Errorf("appendEntry(%+v) = %s, want x%s", e, got, want)
		}
	}
}
