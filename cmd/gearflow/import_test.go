package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
)

// TestServeImportGearmandSQLite: a queue written by a real gearmand
// (-q libsqlite3) is imported by `serve --data-dir --import-gearmand-sqlite`:
// the jobs are handed out with their payloads (binary too), uniques,
// functions and priority order, an EPOCH job waits for its time, and
// starting again with the same flag adds nothing, not even the jobs
// that ran meanwhile.
func TestServeImportGearmandSQLite(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "queue.db")
	g := gearmandtest.Start(t, "-q", "libsqlite3", "--libsqlite3-db", db)
	c := wiretest.Dial(t, g.Addr)
	type job struct {
		typ              protocol.Type
		fn, unique, data string
	}
	// Submission order; gearmand hands them out by priority.
	subs := []job{
		{protocol.SubmitJobLowBg, "f", "ul1", "l1"},
		{protocol.SubmitJobBg, "f", "", "n1"}, // gearmand keeps one empty-unique job per function
		{protocol.SubmitJobHighBg, "f", "uh1", "h1"},
		{protocol.SubmitJobBg, "f", "un2", "n2\x00binary\xff"},
		{protocol.SubmitJobLowBg, "f", "ul2", "l2"},
		{protocol.SubmitJobHighBg, "f", "uh2", "h2"},
	}
	for _, s := range subs {
		c.Submit(t, s.typ, s.fn, s.unique, s.data)
	}
	epoch := time.Now().Add(4 * time.Second).Unix()
	c.SubmitEpoch(t, "e", "ue", strconv.FormatInt(epoch, 10), "edata")
	c.Close()
	// libgearman's client, which gives the job a UUID for its unique.
	gm := gearmandtest.Tool(t, "gearman")
	if out, err := exec.Command(gm, "-h", "127.0.0.1", "-p", strconv.Itoa(g.Port), "-b", "-I", "-f", "g", "clidata").CombinedOutput(); err != nil {
		t.Fatalf("gearman -b: %v\n%s", err, out)
	}
	g.Stop()

	bin := buildGearflow(t)
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--import-gearmand-sqlite", db}
	p, addr := startServeProcess(t, bin, args...)
	w := wiretest.Dial(t, addr)
	w.Timeout = 10 * time.Second
	if got, want := w.Admin(t, "status"), "e\t1\t0\t0\nf\t6\t0\t0\ng\t1\t0\t0\n.\n"; got != want {
		t.Fatalf("status after the import: %q, want %q", got, want)
	}
	grab := func(fn, unique, data string) {
		t.Helper()
		w.Req(protocol.GrabJobUniq)
		pk := w.Next(t)
		if pk.Type != protocol.JobAssignUniq || string(pk.Args[1]) != fn || (unique != "*" && string(pk.Args[2]) != unique) || string(pk.Args[3]) != data {
			t.Fatalf("got %s, want JOB_ASSIGN_UNIQ of %s unique %q data %q", wiretest.Format(pk), fn, unique, data)
		}
		w.Req(protocol.WorkComplete, string(pk.Args[0]), "")
	}
	w.CanDo("f")
	for _, s := range []job{subs[2], subs[5], subs[1], subs[3], subs[0], subs[4]} {
		grab(s.fn, s.unique, s.data)
	}
	w.CanDo("g")
	grab("g", "*", "clidata")
	w.CanDo("e")
	if time.Now().Unix() < epoch-1 {
		w.NoJob(t) // not its time yet
	}
	w.Sync(t)
	w.Close()
	// A graceful stop writes the deletes of the jobs that ran.
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := exitCode(t, p, 10*time.Second); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM", code)
	}

	// The same import again: the queue has only the EPOCH job left.
	logFile := filepath.Join(t.TempDir(), "serve.log")
	_, addr = startServeProcess(t, bin, append(args, "--log-file", logFile)...)
	w = wiretest.Dial(t, addr)
	w.Timeout = 10 * time.Second
	if got, want := w.Admin(t, "status"), "e\t1\t0\t0\n.\n"; got != want {
		t.Fatalf("status after importing the same file again: %q, want %q", got, want)
	}
	if log, err := os.ReadFile(logFile); err != nil || !strings.Contains(string(log), "already imported") {
		t.Errorf("serve's log does not say the queue was imported before (%v):\n%s", err, log)
	}
	w.CanDo("e")
	deadline := time.Now().Add(15 * time.Second)
	for {
		w.Req(protocol.GrabJobUniq)
		pk := w.Next(t)
		if pk.Type == protocol.JobAssignUniq {
			if string(pk.Args[2]) != "ue" || string(pk.Args[3]) != "edata" {
				t.Fatalf("got %s, want the EPOCH job", wiretest.Format(pk))
			}
			if now := time.Now().Unix(); now < epoch {
				t.Fatalf("EPOCH job handed out at %d, before its time %d", now, epoch)
			}
			break
		}
		if pk.Type != protocol.NoJob {
			t.Fatalf("got %s, want NO_JOB or the EPOCH job", wiretest.Format(pk))
		}
		if time.Now().After(deadline) {
			t.Fatalf("EPOCH job (time %d) not handed out by %v", epoch, time.Now())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
