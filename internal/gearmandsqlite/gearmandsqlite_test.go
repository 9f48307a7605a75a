package gearmandsqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/gearmandsqlite"
	_ "modernc.org/sqlite"
)

// gearmandSchema is the table gearmand 1.1.20's libsqlite3 plugin creates.
const gearmandSchema = `CREATE TABLE %s ( unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, when_to_run INTEGER, PRIMARY KEY (unique_key, function_name))`

func makeDB(t *testing.T, stmts ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "q?#.db") // URI characters in the name
	db, err := sql.Open("sqlite", "file:"+strings.NewReplacer("?", "%3f", "#", "%23").Replace(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRead: rows come back in insertion order with their fields; an old
// table without when_to_run reads as runnable now; a file that is not a
// gearmand queue, or a row gearmand could not have written, is an error
// naming the problem.
func TestRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := makeDB(t,
		strings.Replace(gearmandSchema, "%s", "gearman_queue", 1),
		`INSERT INTO gearman_queue VALUES ('u2', 'f', 2, X'6C00FF', 0)`,
		`INSERT INTO gearman_queue VALUES ('', 'f', 0, 'text data', 1700000000)`,
		`INSERT INTO gearman_queue VALUES ('-', 'g', 1, NULL, NULL)`,
	)
	jobs, err := gearmandsqlite.Read(ctx, path, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 3 {
		t.Fatalf("%d jobs, want 3", len(jobs))
	}
	if j := jobs[0]; j.Function != "f" || j.Unique != "u2" || j.Priority != 2 || string(j.Data) != "l\x00\xff" || !j.RunAt.IsZero() {
		t.Errorf("row 1: %+v", j)
	}
	if j := jobs[1]; j.Unique != "" || j.Priority != 0 || string(j.Data) != "text data" || !j.RunAt.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("row 2: %+v", j)
	}
	if j := jobs[2]; j.Function != "g" || j.Unique != "-" || len(j.Data) != 0 || !j.RunAt.IsZero() {
		t.Errorf("row 3: %+v", j)
	}

	old := makeDB(t, `CREATE TABLE queue (unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB, PRIMARY KEY (unique_key, function_name))`,
		`INSERT INTO queue VALUES ('a', 'f', 1, 'x')`)
	if jobs, err := gearmandsqlite.Read(ctx, old, "queue"); err != nil || len(jobs) != 1 || !jobs[0].RunAt.IsZero() {
		t.Errorf("table without when_to_run: %+v, %v", jobs, err)
	}

	tests := []struct {
		name, path, table, want string
	}{
		{"missing file", filepath.Join(t.TempDir(), "none.db"), "", "no such file"},
		{"no table", path, "other", "no table"},
		{"not a queue", makeDB(t, `CREATE TABLE gearman_queue (a TEXT)`), "", "no column unique_key"},
		{"bad priority", makeDB(t, strings.Replace(gearmandSchema, "%s", "gearman_queue", 1),
			`INSERT INTO gearman_queue VALUES ('u', 'f', 7, 'x', 0)`), "", "priority 7"},
		{"no function", makeDB(t, strings.Replace(gearmandSchema, "%s", "gearman_queue", 1),
			`INSERT INTO gearman_queue VALUES ('u', NULL, 1, 'x', 0)`), "", "no function_name"},
		{"not sqlite", func() string {
			p := filepath.Join(t.TempDir(), "junk")
			os.WriteFile(p, []byte(strings.Repeat("junk", 100)), 0o644)
			return p
		}(), "", "not a database"},
		{"bad table name", path, `x"y`, "bad table name"},
	}
	for _, tt := range tests {
		_, err := gearmandsqlite.Read(ctx, tt.path, tt.table)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want one saying %q", tt.name, err, tt.want)
		}
	}
}

// TestReadHotJournal: a queue file whose gearmand died in the middle of
// a transaction (a hot journal beside it) is read as gearmand's next
// start would: the transaction rolled back, the jobs before it kept.
func TestReadHotJournal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	live := filepath.Join(dir, "live.db")
	db, err := sql.Open("sqlite", "file:"+live)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, s := range []string{
		strings.Replace(gearmandSchema, "%s", "gearman_queue", 1),
		`INSERT INTO gearman_queue VALUES ('kept', 'f', 1, 'x', 0)`,
		`PRAGMA cache_size = 10`, // the transaction spills into the file
		`BEGIN`,
	} {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	for i := range 5000 {
		if _, err := conn.ExecContext(ctx, `INSERT INTO gearman_queue VALUES (?, 'f', 1, ?, 0)`, i, strings.Repeat("y", 200)); err != nil {
			t.Fatal(err)
		}
	}
	// The files as a crash in the transaction leaves them.
	crashed := filepath.Join(dir, "crashed.db")
	for _, suffix := range []string{"", "-journal"} {
		b, err := os.ReadFile(live + suffix)
		if err != nil {
			t.Fatalf("no %s%s mid-transaction: %v", live, suffix, err)
		}
		if err := os.WriteFile(crashed+suffix, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	jobs, err := gearmandsqlite.Read(ctx, crashed, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].Unique != "kept" {
		t.Fatalf("read %d jobs, want only the one committed before the crash", len(jobs))
	}
}
