package server_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/internal/wiretest"
)

// The tools tests drive libgearman's own command-line tools, the
// gearman client/worker and gearadmin, against our server, and the same
// against gearmand to show the outputs match.

// toolTimeout bounds every tool run.
const toolTimeout = 15 * time.Second

// tools runs libgearman's tools against one server.
type tools struct {
	gearman, gearadmin string
	host, port         string
	peer               *peer
}

func TestTools(t *testing.T) {
	t.Parallel()
	gearman := gearmandtest.Tool(t, "gearman")
	gearadmin := gearmandtest.Tool(t, "gearadmin")
	tests := []struct {
		name       string
		run        func(t *testing.T, tl *tools)
		leavesJobs bool // ends with background jobs queued, to list them
	}{
		{"client-worker", testToolsClientWorker, false},
		{"background", testToolsBackground, false},
		{"unique", testToolsUnique, true},
		{"priorities", testToolsPriorities, false},
		{"one-job-per-line", testToolsPerLine, false},
		{"worker-data-per-line", testToolsWorkerPerLine, false},
		{"worker-fails", testToolsWorkerFails, false},
		{"gearadmin-status", testGearadminStatus, false},
		{"gearadmin-workers", testGearadminWorkers, false},
		{"gearadmin-jobs", testGearadminJobs, true},
		{"gearadmin-cancel", testGearadminCancel, false},
		{"gearadmin-functions", testGearadminFunctions, false},
		{"gearadmin-server", testGearadminServer, false},
	}
	for _, srv := range servers() {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					p := srv.start(t, options{leavesJobs: tt.leavesJobs})
					host, port, err := net.SplitHostPort(p.Addr)
					if err != nil {
						t.Fatal(err)
					}
					tt.run(t, &tools{gearman: gearman, gearadmin: gearadmin, host: host, port: port, peer: p})
				})
			}
		})
	}
}

// run runs a tool to completion with stdin and returns its stdout,
// failing t when it fails or takes longer than toolTimeout.
func (tl *tools) run(t *testing.T, stdin string, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), toolTimeout)
	defer cancel()
	args = append([]string{"-h", tl.host, "-p", tl.port}, args...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout: %q\nstderr: %q", filepath.Base(bin), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	if stderr.Len() > 0 {
		// gearadmin reports ERR replies on stderr and still exits 0.
		return stdout.String() + "stderr: " + stderr.String()
	}
	return stdout.String()
}

// runFailing runs a tool that must fail and returns its exit code and
// its stdout and stderr together.
func (tl *tools) runFailing(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), toolTimeout)
	defer cancel()
	args = append([]string{"-h", tl.host, "-p", tl.port}, args...)
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || ctx.Err() != nil {
		t.Fatalf("%s %s: %v, want a failure exit\noutput: %q", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return exit.ExitCode(), string(out)
}

// client runs "gearman ARGS" as a client.
func (tl *tools) client(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	return tl.run(t, stdin, tl.gearman, args...)
}

// admin runs "gearadmin ARGS".
func (tl *tools) admin(t *testing.T, args ...string) string {
	t.Helper()
	return tl.run(t, "", tl.gearadmin, args...)
}

// worker starts "gearman -w ARGS" in the background, waits until the
// server lists fn with a worker (unless ARGS has -c: such a worker may
// be done before it can be seen), and kills the process (by its pid)
// when the test ends. The returned channel is closed when it exits.
func (tl *tools) worker(t *testing.T, fn string, args ...string) <-chan struct{} {
	t.Helper()
	args = append([]string{"-w", "-h", tl.host, "-p", tl.port, "-f", fn}, args...)
	cmd := exec.Command(tl.gearman, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = gearmandtest.DieWithParent()
	if err := cmd.Start(); err != nil {
		t.Fatalf("gearman -w: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("gearman -w (pid %d) did not exit", cmd.Process.Pid)
		}
	})
	if slices.Contains(args, "-c") {
		return done
	}
	a := wiretest.Dial(t, tl.peer.Addr)
	eventually(t, "gearman -w registered "+fn, func() bool {
		select {
		case <-done:
			t.Fatalf("gearman -w exited early: %s", stderr.String())
		default:
		}
		for _, line := range strings.Split(a.Admin(t, "status"), "\n") {
			f := strings.Split(line, "\t")
			if len(f) == 4 && f[0] == fn && f[3] != "0" {
				return true
			}
		}
		return false
	})
	return done
}

// waitExit waits (bounded) for a worker started with -c to finish.
func waitExit(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(toolTimeout):
		t.Fatal("gearman -w -c did not exit")
	}
}

func testToolsClientWorker(t *testing.T, tl *tools) {
	tl.worker(t, "up", "--", "tr", "a-z", "A-Z")
	if got := tl.client(t, "", "-f", "up", "hello"); got != "HELLO" {
		t.Fatalf("gearman -f up hello = %q, want %q", got, "HELLO")
	}
	if got := tl.client(t, "from\nstdin\n", "-f", "up"); got != "FROM\nSTDIN\n" {
		t.Fatalf("gearman -f up < stdin = %q, want %q", got, "FROM\nSTDIN\n")
	}
}

func testToolsBackground(t *testing.T, tl *tools) {
	if got := tl.client(t, "", "-b", "-f", "bg", "payload"); got != "" {
		t.Fatalf("gearman -b printed %q", got)
	}
	if got := tl.admin(t, "--status"); got != "bg\t1\t0\t0\n.\n" {
		t.Fatalf("gearadmin --status = %q", got)
	}
	out := filepath.Join(t.TempDir(), "out")
	done := tl.worker(t, "bg", "-c", "1", "--", "sh", "-c", "cat > "+out)
	waitExit(t, done)
	if b, err := os.ReadFile(out); err != nil || string(b) != "payload" {
		t.Fatalf("worker got %q (%v), want %q", b, err, "payload")
	}
}

func testToolsUnique(t *testing.T, tl *tools) {
	tl.client(t, "", "-b", "-u", "only-once", "-f", "u", "a")
	tl.client(t, "", "-b", "-u", "only-once", "-f", "u", "b")
	if got := tl.admin(t, "--show-unique-jobs"); got != "only-once\n.\n" {
		t.Fatalf("gearadmin --show-unique-jobs = %q", got)
	}
	if got := tl.admin(t, "--status"); got != "u\t1\t0\t0\n.\n" {
		t.Fatalf("gearadmin --status = %q", got)
	}
}

func testToolsPriorities(t *testing.T, tl *tools) {
	tl.client(t, "", "-b", "-L", "-f", "p", "low")
	tl.client(t, "", "-b", "-f", "p", "normal")
	tl.client(t, "", "-b", "-I", "-f", "p", "high")
	if got := tl.admin(t, "--priority-status"); got != "p\t1\t1\t1\t0\n.\n" {
		t.Fatalf("gearadmin --priority-status = %q", got)
	}
	out := filepath.Join(t.TempDir(), "order")
	done := tl.worker(t, "p", "-c", "3", "--", "sh", "-c", "cat >> "+out+"; echo >> "+out)
	waitExit(t, done)
	if b, _ := os.ReadFile(out); string(b) != "high\nnormal\nlow\n" {
		t.Fatalf("jobs ran in order %q, want high, normal, low", b)
	}
}

func testToolsPerLine(t *testing.T, tl *tools) {
	tl.worker(t, "up", "--", "tr", "a-z", "A-Z")
	got := strings.Split(strings.TrimSuffix(tl.client(t, "one\ntwo\nthree\n", "-n", "-f", "up"), "\n"), "\n")
	slices.Sort(got) // libgearman 1.1 sends a batch in LIFO order
	if want := []string{"ONE", "THREE", "TWO"}; !slices.Equal(got, want) {
		t.Fatalf("gearman -n lines = %q, want %q", got, want)
	}
}

func testToolsWorkerPerLine(t *testing.T, tl *tools) {
	tl.worker(t, "lines", "-n", "--", "printf", "a\\nb\\n")
	// WORK_DATA "a\n" and "b\n"; the client prints each WORK_DATA and
	// then the WORK_COMPLETE payload, which libgearman's worker fills
	// with the first chunk again: the same bytes with gearmand.
	if got := tl.client(t, "", "-f", "lines", "x"); got != "a\na\nb\n" {
		t.Fatalf("gearman -f lines (worker -n) = %q, want %q", got, "a\na\nb\n")
	}
}

func testGearadminStatus(t *testing.T, tl *tools) {
	if got := tl.admin(t, "--status"); got != ".\n" {
		t.Fatalf("gearadmin --status on an empty server = %q", got)
	}
	tl.worker(t, "f", "--", "cat")
	if got := tl.admin(t, "--status"); got != "f\t0\t0\t1\n.\n" {
		t.Fatalf("gearadmin --status = %q", got)
	}
	if got := tl.admin(t, "--priority-status"); got != "f\t0\t0\t0\t1\n.\n" {
		t.Fatalf("gearadmin --priority-status = %q", got)
	}
}

func testGearadminWorkers(t *testing.T, tl *tools) {
	tl.worker(t, "f", "--", "cat")
	got := tl.admin(t, "--workers")
	var lines []string
	for _, l := range strings.SplitAfter(got, "\n") {
		if _, rest, ok := strings.Cut(l, " "); ok {
			l = "FD " + rest
		}
		lines = append(lines, l)
	}
	got = sortedLines(strings.Join(lines, ""))
	// The worker, the connection that watched it register, and
	// gearadmin's own.
	if want := "FD 127.0.0.1 - :\nFD 127.0.0.1 - :\nFD 127.0.0.1 - : f\n.\n"; got != want {
		t.Fatalf("gearadmin --workers (FD column blanked) = %q, want %q", got, want)
	}
}

func testGearadminJobs(t *testing.T, tl *tools) {
	tl.client(t, "", "-b", "-u", "u1", "-f", "f", "x")
	tl.client(t, "", "-b", "-u", "u2", "-f", "f", "y")
	if got := sortedLines(tl.admin(t, "--show-jobs")); got != "H:test:1\t0\t0\t1\nH:test:2\t0\t0\t1\n.\n" {
		t.Fatalf("gearadmin --show-jobs = %q", got)
	}
	if got := sortedLines(tl.admin(t, "--show-unique-jobs")); got != "u1\nu2\n.\n" {
		t.Fatalf("gearadmin --show-unique-jobs = %q", got)
	}
}

func testGearadminCancel(t *testing.T, tl *tools) {
	tl.client(t, "", "-b", "-f", "f", "x")
	if got := tl.admin(t, "--cancel-job", "H:test:1"); got != "OK\n" {
		t.Fatalf("gearadmin --cancel-job = %q", got)
	}
	// A cancelled background job stays in gearmand's table, marked
	// ignored, until a worker reaches it; ours removes it at once.
	want := "stderr: Error: UNKNOWN_JOB\r\n"
	if tl.peer.gearmand {
		want = "OK\n"
	}
	if got := tl.admin(t, "--cancel-job", "H:test:1"); got != want {
		t.Fatalf("gearadmin --cancel-job (again) = %q, want %q", got, want)
	}
	if got := tl.admin(t, "--cancel-job", "H:test:99"); got != "stderr: Error: UNKNOWN_JOB\r\n" {
		t.Fatalf("gearadmin --cancel-job (unknown) = %q", got)
	}
}

func testGearadminFunctions(t *testing.T, tl *tools) {
	if got := tl.admin(t, "--create-function", "made"); got != "OK\n" {
		t.Fatalf("gearadmin --create-function = %q", got)
	}
	if got := tl.admin(t, "--status"); got != "made\t0\t0\t0\n.\n" {
		t.Fatalf("gearadmin --status after create = %q", got)
	}
	if got := tl.admin(t, "--drop-function", "made"); got != "OK\n" {
		t.Fatalf("gearadmin --drop-function = %q", got)
	}
	if got := tl.admin(t, "--drop-function", "made"); got != "stderr: Error: function not found\r\n" {
		t.Fatalf("gearadmin --drop-function (again) = %q", got)
	}
	if got := tl.admin(t, "--status"); got != ".\n" {
		t.Fatalf("gearadmin --status after drop = %q", got)
	}
}

func testGearadminServer(t *testing.T, tl *tools) {
	if got, want := tl.admin(t, "--getpid"), strconv.Itoa(tl.peer.pid)+"\n"; got != want {
		t.Fatalf("gearadmin --getpid = %q, want %q", got, want)
	}
	got := tl.admin(t, "--server-version")
	if tl.peer.gearmand && got != "1.1.20+ds\n" {
		t.Fatalf("gearadmin --server-version (gearmand) = %q", got)
	}
	if strings.TrimSpace(got) == "" || strings.Count(got, "\n") != 1 {
		t.Fatalf("gearadmin --server-version = %q, want one line", got)
	}
	if got := tl.admin(t, "--server-verbose"); strings.TrimSpace(got) == "" {
		t.Fatalf("gearadmin --server-verbose = %q", got)
	}
}

func testToolsWorkerFails(t *testing.T, tl *tools) {
	// A command that exits non-zero makes gearman -w fail the job; the
	// client reports it and exits 1.
	tl.worker(t, "fail", "--", "false")
	code, out := tl.runFailing(t, tl.gearman, "-f", "fail", "x")
	if code != 1 || !strings.Contains(out, "Job failed") {
		t.Fatalf("gearman -f fail: exit %d, output %q; want exit 1 and \"Job failed\"", code, out)
	}
}
