package flow

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadJournalLines: a torn last line is no entry and no error; any
// other line that is not an entry is an error naming file and line.
func TestReadJournalLines(t *testing.T) {
	t.Parallel()
	e0 := journalEntry{Stage: "s", Task: 0, Attempt: 1, RecordsOut: 3}
	e1 := journalEntry{Stage: "s", Task: 1, Attempt: 2, Packed: true, Offset: 10, Length: 5, CRC: 7}
	e2 := journalEntry{Stage: "t\u00e9", Task: 2, Attempt: 1}                    // through encoding/json
	e3 := journalEntry{Stage: strings.Repeat("x", 100<<10), Task: 3, Attempt: 1} // longer than the reader's buffer
	line := func(e journalEntry) string { return string(appendEntry(nil, e)) + "\n" }
	whole := line(e0) + line(e1) + line(e2)
	long := strings.Repeat(" ", maxJournalLine+1)
	tests := []struct {
		name     string
		content  string // "" means no file
		want     []journalEntry
		wantTorn int64
		wantLine string // a corrupt line: "journal.jsonl:N"
	}{
		{name: "no file"},
		{name: "well formed", content: whole, want: []journalEntry{e0, e1, e2}},
		{name: "torn last line", content: whole + line(e0)[:9], want: []journalEntry{e0, e1, e2}, wantTorn: 9},
		{name: "last line without its newline", content: whole + strings.TrimSuffix(line(e0), "\n"),
			want: []journalEntry{e0, e1, e2}, wantTorn: int64(len(line(e0)) - 1)},
		{name: "only a torn line", content: `{"stage":"s","ta`, wantTorn: 16},
		{name: "long line", content: line(e0) + line(e3) + line(e1), want: []journalEntry{e0, e3, e1}},
		{name: "long torn line", content: line(e0) + line(e3)[:80<<10], want: []journalEntry{e0}, wantTorn: 80 << 10},
		{name: "blank line", content: line(e0) + "\n" + line(e1), want: []journalEntry{e0, e1}},
		{name: "corrupt middle line", content: line(e0) + `{"stage":"s","ta{"stage":"s","task":1}` + "\n" + line(e2),
			wantLine: "journal.jsonl:2:"},
		{name: "corrupt last whole line", content: line(e0) + line(e1) + "garbage\n", wantLine: "journal.jsonl:3:"},
		{name: "overlong line", content: line(e0) + long + "\n" + line(e1), wantLine: "journal.jsonl:2:"},
		{name: "overlong torn line", content: whole + long, want: []journalEntry{e0, e1, e2}, wantTorn: int64(len(long))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "journal.jsonl")
			if tt.content != "" {
				if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			scan, err := scanJournal(path)
			if tt.wantLine != "" {
				if !errors.Is(err, ErrCorruptJournal) || !strings.Contains(err.Error(), path+":"+strings.TrimPrefix(tt.wantLine, "journal.jsonl:")) {
					t.Fatalf("scanJournal error %v, want ErrCorruptJournal naming %s", err, tt.wantLine)
				}
				if _, err := readJournal(dir); !errors.Is(err, ErrCorruptJournal) {
					t.Errorf("readJournal error %v, want ErrCorruptJournal", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(scan.entries, tt.want) {
				t.Errorf("entries %+v, want %+v", scan.entries, tt.want)
			}
			if scan.torn != tt.wantTorn || scan.end+scan.torn != int64(len(tt.content)) {
				t.Errorf("end %d, torn %d; want torn %d of %d bytes", scan.end, scan.torn, tt.wantTorn, len(tt.content))
			}
			got, err := readJournal(dir)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("readJournal = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// commitTasks commits packed outputs of stage s's tasks, one record
// each, and syncs the stage.
func commitTasks(t *testing.T, j *journal, tasks ...int) {
	t.Helper()
	if err := os.MkdirAll(j.stageDir("s"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		data := appendRecord(nil, "k", mustValue(t, task))
		if err := j.commitPacked(journalEntry{Stage: "s", Task: task, Attempt: 1, RecordsIn: 1, RecordsOut: 1}, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.sync("s"); err != nil {
		t.Fatal(err)
	}
}

// TestJournalTornTailIsCutOnOpen: reopening a journal whose last line is
// torn cuts it off, so the lines appended next read back intact; the
// torn line's task is not done. A well-formed journal is left as it is.
func TestJournalTornTailIsCutOnOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "journal.jsonl")
	j, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	commitTasks(t, j, 0, 1, 2)
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	intact, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// Reopening a well-formed journal changes no byte of it.
	if j, err = openJournal(dir); err != nil {
		t.Fatal(err)
	}
	if j.torn != 0 {
		t.Errorf("well-formed journal: %d torn bytes", j.torn)
	}
	j.close()
	if b, _ := os.ReadFile(path); !bytes.Equal(b, intact) {
		t.Fatalf("reopening changed the journal:\n%s\nwant:\n%s", b, intact)
	}

	// Task 3's output reached the pack file; the process died half-way
	// through writing its journal line.
	if j, err = openJournal(dir); err != nil {
		t.Fatal(err)
	}
	commitTasks(t, j, 3)
	j.close()
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	torn := len(full) - len(intact) - 7
	if err := os.Truncate(path, int64(len(intact)+torn)); err != nil {
		t.Fatal(err)
	}

	if j, err = openJournal(dir); err != nil {
		t.Fatal(err)
	}
	if j.torn != int64(torn) {
		t.Errorf("torn bytes %d, want %d", j.torn, torn)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, intact) {
		t.Errorf("journal after open:\n%s\nwant the lines before the torn one:\n%s", b, intact)
	}
	done, err := j.doneTasks("s")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[int]bool{0: true, 1: true, 2: true}; !reflect.DeepEqual(done, want) {
		t.Errorf("done tasks %v, want %v (task 3's line was torn)", done, want)
	}
	commitTasks(t, j, 3, 4)
	j.close()

	entries, err := readJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	var tasks []int
	for _, e := range entries {
		tasks = append(tasks, e.Task)
	}
	if want := []int{0, 1, 2, 3, 4}; !reflect.DeepEqual(tasks, want) {
		t.Errorf("journaled tasks %v, want %v", tasks, want)
	}
	if j, err = openJournal(dir); err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if j.torn != 0 {
		t.Errorf("second reopening: %d torn bytes", j.torn)
	}
	for task := range 5 {
		var got []rawRecord
		if err := j.eachTaskRecord("s", task, func(r rawRecord) error { got = append(got, r); return nil }); err != nil {
			t.Fatalf("task %d: %v", task, err)
		}
		if want := []rawRecord{{Key: "k", Value: mustValue(t, task)}}; !reflect.DeepEqual(got, want) {
			t.Errorf("task %d: %+v, want %+v", task, got, want)
		}
	}
}

// TestJournalCorruptLineFailsOpen: a journal with a line in its middle
// that is not an entry is not opened (nor changed), and the error names
// the file and the line.
func TestJournalCorruptLineFailsOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "journal.jsonl")
	j, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	commitTasks(t, j, 0, 1, 2)
	j.close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	second := bytes.IndexByte(b, '\n') + 1
	b[second+3] = 0 // inside line 2
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the failed open let go of the run's lock
		_, err = openJournal(dir)
		if !errors.Is(err, ErrCorruptJournal) || !strings.Contains(err.Error(), path+":2:") {
			t.Fatalf("openJournal error %v, want ErrCorruptJournal naming %s:2", err, path)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
		t.Error("a failed open changed the journal")
	}
}

// TestJournalUnreadablePackFile: a pack file that exists but cannot be
// read fails the open with an error naming it, rather than taking its
// outputs for missing; a missing one still means its tasks run again,
// until they have been found done, when losing it is an error too.
func TestJournalUnreadablePackFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, err := openJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	commitTasks(t, j, 0, 1)
	j.close()
	pack := filepath.Join(dir, "stages", "s", "pack.rec")
	moved := pack + ".moved"
	if err := os.Rename(pack, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(pack, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = openJournal(dir)
	if err == nil || errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), pack) {
		t.Fatalf("openJournal with a directory for pack.rec: %v, want an error naming %s", err, pack)
	}

	if err := os.Remove(pack); err != nil {
		t.Fatal(err)
	}
	if j, err = openJournal(dir); err != nil {
		t.Fatalf("openJournal without pack.rec: %v", err)
	}
	if done, err := j.doneTasks("s"); err != nil || len(done) != 0 {
		t.Errorf("done tasks without pack.rec: %v, %v; want none", done, err)
	}
	j.close()

	if err := os.Rename(moved, pack); err != nil {
		t.Fatal(err)
	}
	if j, err = openJournal(dir); err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if done, err := j.doneTasks("s"); err != nil || !reflect.DeepEqual(done, map[int]bool{0: true, 1: true}) {
		t.Fatalf("done tasks: %v, %v; want 0 and 1", done, err)
	}
	if err := os.Remove(pack); err != nil {
		t.Fatal(err)
	}
	err = j.eachTaskRecord("s", 0, func(rawRecord) error { return nil })
	if err == nil || errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), pack) {
		t.Errorf("reading a done task whose pack.rec is gone: %v, want an error naming %s, not fs.ErrNotExist", err, pack)
	}
}

// FuzzParseJournal: any journal content either is corrupt or splits
// into whole lines and a torn rest; cutting the rest and appending a
// line (what a resumed run does) reads back the same entries and the new
// one; and reading one byte at a time changes nothing.
func FuzzParseJournal(f *testing.F) {
	e := journalEntry{Stage: "s", Task: 4, Attempt: 1, Packed: true, Offset: 7, Length: 3, CRC: 9}
	whole := string(appendEntry(nil, e)) + "\n"
	for _, seed := range []string{"", whole, whole + whole, whole + whole[:10], whole[:10] + whole, "\n\n", whole + "\x00\x00", "null\n", "{}\n[]\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		scan, err := parseJournal(bytes.NewReader(data), "j")
		slow, slowErr := parseJournal(iotest.OneByteReader(bytes.NewReader(data)), "j")
		if (err == nil) != (slowErr == nil) || !reflect.DeepEqual(scan, slow) {
			t.Fatalf("one byte at a time: %+v, %v; want %+v, %v", slow, slowErr, scan, err)
		}
		if err != nil {
			if !errors.Is(err, ErrCorruptJournal) || !strings.Contains(err.Error(), "j:") {
				t.Fatalf("error %v, want ErrCorruptJournal naming j:N", err)
			}
			return
		}
		if scan.end+scan.torn != int64(len(data)) || scan.torn < 0 || bytes.IndexByte(data[scan.end:], '\n') >= 0 ||
			(scan.end > 0 && data[scan.end-1] != '\n') {
			t.Fatalf("end %d, torn %d of %d bytes: not cut after the last newline", scan.end, scan.torn, len(data))
		}
		resumed := append(append([]byte(nil), data[:scan.end]...), whole...)
		again, err := parseJournal(bytes.NewReader(resumed), "j")
		if err != nil || again.torn != 0 || !reflect.DeepEqual(again.entries, append(scan.entries, e)) {
			t.Fatalf("after cutting and appending: %+v, %v; want %+v and the new entry", again, err, scan.entries)
		}
	})
}
