package server

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestImportJobsOnce: imported jobs follow the queue's own, keep their
// fields, and the same jobs (in any order) are imported once, across
// restarts and compaction; other jobs are a new import; bad jobs are
// refused whole.
func TestImportJobsOnce(t *testing.T) {
	defer func(m int64) { compactMin = m }(compactMin)
	compactMin = 1 << 40
	dir := t.TempDir()
	st, _, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.wait(st.put(storedJob{id: 7, pri: priLow, fn: "own", data: []byte("own")})); err != nil {
		t.Fatal(err)
	}
	st.close()

	at := time.Unix(time.Now().Unix()+3600, 0)
	jobs := []ImportedJob{
		{Function: "f", Unique: "", Priority: 1, Data: []byte("n\x00bin")},
		{Function: "f", Unique: "u", Priority: 0, Data: []byte("h")},
		{Function: "e", Unique: "-", Priority: 2, Data: nil, RunAt: at},
	}
	res, err := ImportJobs(dir, "q.db", jobs)
	if err != nil || res.Jobs != 3 || res.Already {
		t.Fatalf("first import: %+v, %v", res, err)
	}
	// A leftover temporary file (a crash mid-import) is not a segment.
	if err := os.WriteFile(filepath.Join(dir, importTemp), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	reversed := []ImportedJob{jobs[2], jobs[1], jobs[0]}
	res, err = ImportJobs(dir, "other-name.db", reversed)
	if err != nil || res.Jobs != 0 || !res.Already || res.Source != "q.db" {
		t.Fatalf("same jobs again: %+v, %v; want nothing added, imported before from q.db", res, err)
	}

	st, got, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The imported jobs take ids after those the first store reserved
	// (its first block), which a server on it may have issued.
	want := []storedJob{
		{id: 7, pri: priLow, fn: "own", data: []byte("own")},
		{id: idBlock + 1, pri: priNormal, fn: "f", data: []byte("n\x00bin")},
		{id: idBlock + 2, pri: priHigh, fn: "f", unique: "u", data: []byte("h")},
		{id: idBlock + 3, pri: priLow, fn: "e", unique: "-", when: at.UnixNano()},
	}
	if len(got) != len(want) {
		t.Fatalf("replayed %d jobs, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.id != w.id || g.pri != w.pri || g.fn != w.fn || g.unique != w.unique || g.when != w.when || !bytes.Equal(g.data, w.data) {
			t.Errorf("job %d replayed as %+v, want %+v", i, g, w)
		}
	}
	// Compaction keeps the record of the import.
	var ticket uint64
	for id := uint64(100); id < 300; id++ {
		ticket = st.put(storedJob{id: id, fn: "x", data: bytes.Repeat([]byte("x"), 1000)})
	}
	if err := st.wait(ticket); err != nil {
		t.Fatal(err)
	}
	for id := uint64(100); id < 300; id++ {
		st.del(id)
	}
	if err := st.wait(st.put(storedJob{id: 300, fn: "x"})); err != nil {
		t.Fatal(err)
	}
	compactMin = 1 << 10
	if err := st.wait(st.put(storedJob{id: 301, fn: "x"})); err != nil {
		t.Fatal(err)
	}
	if segs, _ := listSegments(dir); len(segs) != 1 {
		t.Fatalf("segments %v: no compaction happened", segs)
	}
	st.close()
	if res, err := ImportJobs(dir, "q.db", jobs); err != nil || !res.Already {
		t.Fatalf("after compaction: %+v, %v; want the import remembered", res, err)
	}

	// Other jobs are another queue.
	res, err = ImportJobs(dir, "q.db", jobs[:2])
	if err != nil || res.Jobs != 2 {
		t.Fatalf("a different queue: %+v, %v; want 2 jobs added", res, err)
	}

	bad := []struct {
		name string
		job  ImportedJob
		want string
	}{
		{"no function", ImportedJob{Priority: 1}, "no function"},
		{"priority", ImportedJob{Function: "f", Priority: 3}, "priority 3"},
	}
	for _, tt := range bad {
		_, err := ImportJobs(dir, "bad.db", []ImportedJob{jobs[0], tt.job})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want one saying %q", tt.name, err, tt.want)
		}
	}
	// A running server holds the directory.
	st, got, err = openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if len(got) != 8 {
		t.Fatalf("%d jobs after the imports, want 8", len(got))
	}
	if _, err := ImportJobs(dir, "q2.db", []ImportedJob{{Function: "z", Priority: 1}}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("import into a directory in use: %v, want it refused", err)
	}
}
