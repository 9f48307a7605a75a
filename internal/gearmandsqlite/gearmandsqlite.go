// Package gearmandsqlite reads the queue gearmand's libsqlite3 plugin
// keeps (gearmand -q libsqlite3 --libsqlite3-db FILE), so that
// `gearflow serve --import-gearmand-sqlite FILE` can move its jobs into
// a durable queue.
//
// The table, as gearmand 1.1.20 creates it (default name gearman_queue):
//
//	CREATE TABLE gearman_queue (unique_key TEXT, function_name TEXT,
//	  priority INTEGER, data BLOB, when_to_run INTEGER,
//	  PRIMARY KEY (unique_key, function_name))
//
// Tables from before when_to_run existed are read too (every job runs
// now). The reader is modernc.org/sqlite, sqlite compiled to Go, so the
// gearflow binary still needs no C library or cgo.
package gearmandsqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gearflow/gearflow/server"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DefaultTable is gearmand's --libsqlite3-table default.
const DefaultTable = "gearman_queue"

// Read returns the jobs of table in the sqlite file at path, in the
// order gearmand inserted them (rowid). The file is opened read-only,
// unless a gearmand that died in a transaction left a journal: sqlite
// then rolls that transaction back (as gearmand's next start would),
// which takes a writer. gearmand should be stopped first, or jobs it
// takes meanwhile are still imported.
func Read(ctx context.Context, path, table string) ([]server.ImportedJob, error) {
	if table == "" {
		table = DefaultTable
	}
	if strings.ContainsAny(table, "\"\x00") {
		return nil, fmt.Errorf("gearmandsqlite: bad table name %q", table)
	}
	// sqlite would create a missing file; say it is missing instead.
	if fi, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("gearmandsqlite: %w", err)
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("gearmandsqlite: %s is not a file", path)
	}
	jobs, err := read(ctx, path, table, "ro")
	var se interface{ Code() int }
	if errors.As(err, &se) && se.Code() == sqliteReadonlyRollback {
		// A journal left by a gearmand that died in a transaction: only
		// a writer may roll it back, as gearmand's next start would.
		jobs, err = read(ctx, path, table, "rw")
	}
	return jobs, err
}

// sqliteReadonlyRollback is SQLITE_READONLY_ROLLBACK: a read-only
// connection found a hot journal it may not roll back.
const sqliteReadonlyRollback = 776

func read(ctx context.Context, path, table, mode string) ([]server.ImportedJob, error) {
	// As a URI, escaped: a '?' or '#' in the name is not a parameter.
	uri := "file:" + (&url.URL{Path: path}).EscapedPath() + "?mode=" + mode + "&_pragma=busy_timeout(6000)"
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return nil, fmt.Errorf("gearmandsqlite: %s: %w", path, err)
	}
	defer db.Close()

	quoted := `"` + table + `"`
	cols, err := columns(ctx, db, quoted)
	if err != nil {
		return nil, fmt.Errorf("gearmandsqlite: %s: %w", path, err)
	}
	for _, c := range []string{"unique_key", "function_name", "priority", "data"} {
		if !cols[c] {
			return nil, fmt.Errorf("gearmandsqlite: %s: table %s has no column %s: not a gearmand queue", path, table, c)
		}
	}
	when := "0"
	if cols["when_to_run"] {
		when = "when_to_run"
	}
	rows, err := db.QueryContext(ctx, "SELECT rowid, unique_key, function_name, priority, data, "+when+" FROM "+quoted+" ORDER BY rowid")
	if err != nil {
		return nil, fmt.Errorf("gearmandsqlite: %s: %w", path, err)
	}
	defer rows.Close()
	var jobs []server.ImportedJob
	for rows.Next() {
		var (
			rowid    int64
			unique   sql.NullString
			function sql.NullString
			pri      sql.NullInt64
			data     []byte
			runAt    sql.NullInt64
		)
		if err := rows.Scan(&rowid, &unique, &function, &pri, &data, &runAt); err != nil {
			return nil, fmt.Errorf("gearmandsqlite: %s: row %d: %w", path, rowid, err)
		}
		if !function.Valid || function.String == "" {
			return nil, fmt.Errorf("gearmandsqlite: %s: row %d has no function_name", path, rowid)
		}
		if !pri.Valid {
			return nil, fmt.Errorf("gearmandsqlite: %s: row %d (function %q, unique %q) has no priority", path, rowid, function.String, unique.String)
		}
		if pri.Int64 < 0 || pri.Int64 > 2 {
			return nil, fmt.Errorf("gearmandsqlite: %s: row %d (function %q, unique %q) has priority %d, want 0 (high), 1 (normal) or 2 (low)",
				path, rowid, function.String, unique.String, pri.Int64)
		}
		j := server.ImportedJob{Function: function.String, Unique: unique.String, Priority: int(pri.Int64), Data: data}
		if runAt.Valid && runAt.Int64 > 0 {
			j.RunAt = time.Unix(runAt.Int64, 0)
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("gearmandsqlite: %s: %w", path, err)
	}
	return jobs, nil
}

// columns returns the column names of table, or an error when there is
// no such table.
func columns(ctx context.Context, db *sql.DB, quoted string) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, "PRAGMA table_info("+quoted+")")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := map[string]bool{}
	for rows.Next() {
		var (
			cid     int
			name    string
			typ     string
			notnull int
			def     sql.NullString
			pk      int
		)
		if err := rows.Scan(&cid, &name, &typ, &notnull, &def, &pk); err != nil {
			return nil, err
		}
		cols[strings.ToLower(name)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, errors.New("no table " + quoted + " (gearmand's --libsqlite3-table names it; default " + DefaultTable + ")")
	}
	return cols, nil
}
