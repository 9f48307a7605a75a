// Package perltest runs Perl's Gearman::Client and Gearman::Worker (the
// CPAN Gearman distribution, Debian's libgearman-client-perl) for
// interop tests: an independent Gearman implementation, written against
// Perl's own Gearman::Server, that our server and runtime must serve
// unchanged.
//
// The Perl scripts the tests run are embedded here (scripts/) and
// written to the test's temporary folder. Every process is bounded by a
// timeout and ended by its pid when the test ends.
//
// Without perl or the Gearman modules, tests skip with an install hint;
// with GEARFLOW_REQUIRE_INTEROP=1 (set by CI) they fail instead.
package perltest

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/gearmandtest"
)

const installHint = "install perl and Debian's libgearman-client-perl: apt-get install libgearman-client-perl"

//go:embed scripts/*.pl scripts/GearflowTest.pm
var scripts embed.FS

// Missing skips t, or fails it when GEARFLOW_REQUIRE_INTEROP=1, saying
// what is missing and how to install it.
func Missing(t testing.TB, what string) {
	t.Helper()
	gearmandtest.Unavailable(t, what+" not found; "+installHint)
}

// Perl returns the path of the perl on PATH after checking that it loads
// Gearman::Client and Gearman::Worker; without them it skips t (fails
// it in CI).
func Perl(t testing.TB) string {
	t.Helper()
	perl, err := exec.LookPath("perl")
	if err != nil {
		Missing(t, "perl")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, perl, "-MGearman::Client", "-MGearman::Worker", "-e1").CombinedOutput()
	if err != nil {
		Missing(t, fmt.Sprintf("Gearman::Client for %s (%v: %s)", perl, err, bytes.TrimSpace(out)))
	}
	return perl
}

// Script writes the embedded script name (for example "worker.pl") to a
// temporary folder of t, with the module the scripts share
// (GearflowTest.pm), and returns its path.
func Script(t testing.TB, name string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{name, "GearflowTest.pm"} {
		body, err := scripts.ReadFile("scripts/" + f)
		if err != nil {
			t.Fatalf("perltest: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), body, 0o644); err != nil {
			t.Fatalf("perltest: %v", err)
		}
	}
	return filepath.Join(dir, name)
}

// command is perl running the embedded script name with args, with
// the script's folder in @INC for its shared module.
func command(ctx context.Context, t testing.TB, perl, name string, args []string) *exec.Cmd {
	t.Helper()
	path := Script(t, name)
	return exec.CommandContext(ctx, perl, append([]string{"-I", filepath.Dir(path), path}, args...)...)
}

// Run runs the embedded script name with args under perl, killed after
// timeout, and returns what it printed on stdout. It fails t if the
// script fails, times out or prints anything on stderr, quoting stderr.
func Run(t testing.TB, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, stderr, err := RunErr(t, timeout, name, args...)
	if err != nil || stderr != "" {
		t.Fatalf("perl %s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// RunErr is Run for a script that may fail: it returns stdout, stderr
// and the error of the run, whatever they are. Only a missing perl ends
// the test.
func RunErr(t testing.TB, timeout time.Duration, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	perl := Perl(t)
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := command(ctx, t, perl, name, args)
	cmd.SysProcAttr = gearmandtest.DieWithParent()
	cmd.WaitDelay = time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("killed after %v: %w", timeout, err)
	}
	return out.String(), errOut.String(), err
}

// Proc is a Perl script running in the background (a worker).
type Proc struct {
	// Pid is the process id.
	Pid int

	cmd    *exec.Cmd
	done   chan struct{}
	mu     sync.Mutex // guards stderr
	stderr bytes.Buffer
}

// Start runs the embedded script name with args in the background, for
// at most limit, and stops it (by its pid) when the test ends. If the
// test failed, the script's stderr goes to the test log.
func Start(t testing.TB, limit time.Duration, name string, args ...string) *Proc {
	t.Helper()
	perl := Perl(t)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	cmd := command(ctx, t, perl, name, args)
	cmd.SysProcAttr = gearmandtest.DieWithParent()
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = lockedWriter{p}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("perltest: start %s: %v", name, err)
	}
	p.Pid = cmd.Process.Pid
	go func() {
		_ = cmd.Wait()
		cancel()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("perl %s (pid %d) stderr:\n%s", name, p.Pid, p.Stderr())
		}
	})
	return p
}

// Stop kills the process by its pid and waits for it. It is safe to
// call more than once.
func (p *Proc) Stop() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stderr returns what the process has written on stderr so far.
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

type lockedWriter struct{ p *Proc }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stderr.Write(b)
}

// StartWorker runs scripts/worker.pl on the given job servers and
// waits until each server in ready counts a worker for every one of its
// functions (the admin "status" command), so that the test's jobs are
// never queued before the worker can take them.
func StartWorker(t testing.TB, servers []string, ready ...string) *Proc {
	t.Helper()
	p := Start(t, 2*time.Minute, "worker.pl", strings.Join(servers, ","))
	for _, addr := range ready {
		WaitWorkers(t, addr, 1, WorkerFunctions()...)
	}
	return p
}

// WorkerFunctions returns the functions scripts/worker.pl serves.
func WorkerFunctions() []string {
	return []string{"big", "die", "fail", "flaky", "hold", "partial", "sleep", "slow", "status", "sum", "upper"}
}

// WaitWorkers waits (up to 20 s) until the server at addr reports at
// least n available workers for each function in its admin "status".
func WaitWorkers(t testing.TB, addr string, n int, functions ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		counts, err := AdminStatus(addr)
		ok := err == nil
		for _, f := range functions {
			ok = ok && counts[f] >= n
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("perltest: %s: workers for %v not registered within 20s (status %v, err %v)", addr, functions, counts, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// AdminStatus asks the server at addr for its admin "status" and returns
// the number of available workers per function.
func AdminStatus(addr string) (map[string]int, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("status\n")); err != nil {
		return nil, err
	}
	counts := make(map[string]int)
	r := bufio.NewReader(c)
	for range 10000 {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "." {
			return counts, nil
		}
		// FUNCTION\tTOTAL\tRUNNING\tAVAILABLE, where a function's name
		// may itself hold tabs (Gearman::Worker's prefix).
		f := strings.Split(line, "\t")
		if len(f) < 4 {
			return nil, fmt.Errorf("status line %q", line)
		}
		n, err := strconv.Atoi(f[len(f)-1])
		if err != nil {
			return nil, fmt.Errorf("status line %q: %v", line, err)
		}
		counts[strings.Join(f[:len(f)-3], "\t")] = n
	}
	return nil, fmt.Errorf("status reply without its end")
}

// DeadAddr returns a loopback address where nothing listens: a port the
// kernel handed out and that was closed again, so connecting is refused.
func DeadAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// SkipKnownBug skips t when output (what a script printed, or a
// worker's stderr) shows sign, the mark of a known bug of ours that the
// Perl library runs into, describing the bug and quoting the output.
// Call it after the output differs from what the test wants: once the
// bug is fixed the test passes, and any other difference still fails.
func SkipKnownBug(t testing.TB, output, sign, bug string) {
	t.Helper()
	if strings.Contains(output, sign) {
		t.Skipf("known bug: %s\noutput:\n%s", bug, output)
	}
}

// DoTaskOutput is what scripts/do_task.pl prints when every job runs as
// scripts/worker.pl (or a Go worker doing the same) serves it.
const DoTaskOutput = `plain: HELLO
uniq: WITH UNIQ
dash: BY PAYLOAD
high: HIGH
low: LOW
status: status sent
on_status: 1/3 2/3
partial: whole
on_data, on_warning: data part 1, warning careful, data part 2
big: 1048576 bytes, as sent
sum: 1048576 c35cc7d8d91728a0cb052831bc4ef372
sum wanted: 1048576 c35cc7d8d91728a0cb052831bc4ef372
`

// FailureOutput is what scripts/failure.pl prints against the same
// workers.
const FailureOutput = `fail on_fail: jshandle fail
fail: undef
retried: ok on call 3; on_retry: 1 2
exhausted on_fail: jshandle fail
exhausted: undef
exhausted on_retry: 1
timeout on_fail: Task sleep elapsed timeout [0.5s]
timeout: undef
timeout returned within 1.5s: yes
after: AFTER
`
