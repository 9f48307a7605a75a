package runtime_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/perltest"
	"github.com/gearflow/gearflow/runtime"
)

// Our runtime against Perl's Gearman::Client and Gearman::Worker (CPAN
// Gearman 2.004), through gearmand and through our server: a Perl client
// submitting to a Go Worker that serves the functions of the Perl
// worker script (internal/perltest/scripts/worker.pl) with the same
// behaviour, so the same client scripts and expected output apply; and a
// Go Client submitting to the Perl worker.

// perlFunctions are the handlers of worker.pl, in Go.
func perlFunctions() map[string]runtime.Handler {
	var mu sync.Mutex
	calls := make(map[string]int) // flaky: calls seen per key
	return map[string]runtime.Handler{
		"upper": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			return bytes.ToUpper(job.Payload), nil
		}),
		"sum": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			return fmt.Appendf(nil, "%d %x", len(job.Payload), md5.Sum(job.Payload)), nil
		}),
		"big": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			n, err := strconv.Atoi(string(job.Payload))
			if err != nil {
				return nil, err
			}
			return countingBytes(n), nil
		}),
		"die": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			return nil, runtime.Exception(fmt.Errorf("boom: %s\n", job.Payload))
		}),
		"fail": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			return nil, errors.New("fail")
		}),
		"flaky": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			key, times, _ := strings.Cut(string(job.Payload), ":")
			n, _ := strconv.Atoi(times)
			mu.Lock()
			calls[key]++
			call := calls[key]
			mu.Unlock()
			if call <= n {
				return nil, errors.New("flaky")
			}
			return fmt.Appendf(nil, "ok %s on call %d", key, call), nil
		}),
		"status": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			if err := job.SendStatus(1, 3); err != nil {
				return nil, err
			}
			if err := job.SendStatus(2, 3); err != nil {
				return nil, err
			}
			return []byte("status sent"), nil
		}),
		"partial": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			if err := job.SendData([]byte("part 1")); err != nil {
				return nil, err
			}
			if err := job.SendWarning([]byte("careful")); err != nil {
				return nil, err
			}
			if err := job.SendData([]byte("part 2")); err != nil {
				return nil, err
			}
			return []byte("whole"), nil
		}),
		"hold": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			if err := job.SendStatus(1, 2); err != nil {
				return nil, err
			}
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			for {
				if _, err := os.Stat(string(job.Payload)); err == nil {
					return []byte("released"), nil
				}
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(10 * time.Millisecond):
				}
			}
		}),
		"sleep": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			secs, err := strconv.ParseFloat(string(job.Payload), 64)
			if err != nil {
				return nil, err
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(secs * float64(time.Second))):
			}
			return []byte("slept " + string(job.Payload)), nil
		}),
	}
}

// countingBytes returns n bytes counting 0..255 over and over, as
// worker.pl's big does.
func countingBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// startGoWorkerForPerl runs a Go worker serving perlFunctions and waits
// until the server counts it for each of them.
func startGoWorkerForPerl(t *testing.T, addr string) {
	t.Helper()
	handlers := perlFunctions()
	startWorker(t, runtime.WorkerConfig{Servers: []string{addr}, Concurrency: 4}, handlers)
	perltest.WaitWorkers(t, addr, 1, slices.Collect(maps.Keys(handlers))...)
}

// TestPerlClientGoWorker: the Perl client scripts, run against the Perl
// worker in internal/perltest, give the same output with a Go worker.
func TestPerlClientGoWorker(t *testing.T) {
	t.Parallel()
	perltest.Perl(t)
	forEachServer(t, func(t *testing.T, srv testServer) {
		startGoWorkerForPerl(t, srv.Addr)
		dir := t.TempDir()
		tests := []struct {
			script string
			args   []string
			want   string
		}{
			{"do_task.pl", nil, perltest.DoTaskOutput},
			{"failure.pl", nil, perltest.FailureOutput},
			{"background.pl", []string{filepath.Join(dir, "release-bg")}, "handle: " + srv.Addr + `//HANDLE
while held: known=1 running=1 progress=1/2 percent=0.5
after: known=0 running=0
`},
			{"taskset.pl", []string{"200", filepath.Join(dir, "release-ts")}, `tasks: 200 of 200 right; failed: ; wrong: 
same uniq, same handle: yes
same uniq: 1:released 2:released
`},
		}
		for _, tt := range tests {
			got := perltest.Run(t, 60*time.Second, tt.script, append([]string{srv.Addr}, tt.args...)...)
			if got != tt.want {
				t.Errorf("perl %s printed:\n%s\nwant:\n%s", tt.script, got, tt.want)
			}
		}
	})
}

// TestPerlClientGoWorkerException: a Go handler's Exception. A Perl
// client with exceptions on gets its text; a plain one must see a failed
// task. gearmand 1.1.20 downgrades the exception to WORK_FAIL with a
// trailing NUL after the handle, which Gearman::Taskset takes for an
// unknown handle and croaks on: the gearmand subtest checks that. Ours
// sends the WORK_FAIL without the NUL.
func TestPerlClientGoWorkerException(t *testing.T) {
	t.Parallel()
	perltest.Perl(t)
	for _, k := range serverKinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			gearmand := k.name == "gearmand"
			srv := k.start(t)
			startGoWorkerForPerl(t, srv.Addr)
			got := perltest.Run(t, 60*time.Second, "die.pl", srv.Addr, "5")
			want := `die on_fail: jshandle fail
die: undef
exceptions on_exception: boom: job 2
exceptions: undef
after: AFTER
`
			if gearmand {
				want = `die error: Job server failure: Got work_fail for unknown handle: HANDLE\0
exceptions on_exception: boom: job 2
exceptions: undef
after: AFTER
`
			}
			if got != want {
				t.Errorf("perl die.pl printed:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestGoClientPerlWorker: a Go client's jobs served by the Perl worker:
// results, uniques, 1 MiB each way, WORK_STATUS events, a failure, a
// background job followed with Status, and 200 jobs in flight at once
// on one connection.
func TestGoClientPerlWorker(t *testing.T) {
	t.Parallel()
	perltest.Perl(t)
	forEachServer(t, func(t *testing.T, srv testServer) {
		perltest.StartWorker(t, []string{srv.Addr}, srv.Addr)
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 60*time.Second)

		do := func(job runtime.Job) []byte {
			t.Helper()
			out, err := c.Do(ctx, job)
			if err != nil {
				t.Fatalf("Do(%s): %v", job.Function, err)
			}
			return out
		}
		if got := do(runtime.Job{Function: "upper", Payload: []byte("hello perl")}); string(got) != "HELLO PERL" {
			t.Errorf("upper = %q, want %q", got, "HELLO PERL")
		}
		if got := do(runtime.Job{Function: "upper", Payload: []byte("uniq"), Unique: "go-perl-1", Priority: runtime.PriorityHigh}); string(got) != "UNIQ" {
			t.Errorf("upper with a unique = %q, want %q", got, "UNIQ")
		}
		if got := do(runtime.Job{Function: "big", Payload: []byte("1048576")}); !bytes.Equal(got, countingBytes(1<<20)) {
			t.Errorf("big: %d bytes, not the 1 MiB the worker makes", len(got))
		}
		payload := countingBytes(1 << 20)
		if got, want := string(do(runtime.Job{Function: "sum", Payload: payload})), fmt.Sprintf("%d %x", len(payload), md5.Sum(payload)); got != want {
			t.Errorf("sum = %q, want %q", got, want)
		}

		events := func(function string) string {
			t.Helper()
			task, err := c.Submit(ctx, runtime.Job{Function: function})
			if err != nil {
				t.Fatal(err)
			}
			var events []string
			for ev := range task.Events() {
				switch ev.Kind {
				case runtime.EventStatus:
					events = append(events, fmt.Sprintf("status %d/%d", ev.Numerator, ev.Denominator))
				case runtime.EventData, runtime.EventWarning, runtime.EventComplete:
					events = append(events, fmt.Sprintf("%v %s", ev.Kind, ev.Data))
				default:
					events = append(events, fmt.Sprintf("%v %q %v", ev.Kind, ev.Data, ev.Err))
				}
			}
			return strings.Join(events, ", ")
		}
		if got, want := events("status"), "status 1/3, status 2/3, "+runtime.EventComplete.String()+" status sent"; got != want {
			t.Errorf("status events: %s, want %s", got, want)
		}
		if got, want := events("partial"), fmt.Sprintf("%v part 1, %v careful, %v part 2, %v whole",
			runtime.EventData, runtime.EventWarning, runtime.EventData, runtime.EventComplete); got != want {
			t.Errorf("partial events: %s, want %s", got, want)
		}

		_, err := c.Do(ctx, runtime.Job{Function: "fail", Payload: []byte("x")})
		var jobErr *runtime.JobError
		if !errors.As(err, &jobErr) || jobErr.Kind != runtime.EventFail {
			t.Errorf("fail: %v, want a *JobError of kind %v", err, runtime.EventFail)
		}

		release := filepath.Join(t.TempDir(), "release")
		bg, err := c.Submit(ctx, runtime.Job{Function: "hold", Payload: []byte(release), Background: true})
		if err != nil {
			t.Fatal(err)
		}
		waitStatus := func(what string, ok func(runtime.Status) bool) runtime.Status {
			t.Helper()
			for {
				st, err := c.Status(ctx, bg.Server, bg.Handle)
				if err != nil {
					t.Fatalf("Status: %v", err)
				}
				if ok(st) {
					return st
				}
				if ctx.Err() != nil {
					t.Fatalf("background job never %s: last status %+v", what, st)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		st := waitStatus("reported 1/2", func(st runtime.Status) bool { return st.Numerator == 1 })
		if !st.Known || !st.Running || st.Denominator != 2 {
			t.Errorf("held background job: %+v, want known, running, 1/2", st)
		}
		if err := os.WriteFile(release, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		waitStatus("finished", func(st runtime.Status) bool { return !st.Known })

		// 200 jobs at once, pipelined on the client's one connection.
		tasks := make([]*runtime.Task, 200)
		for i := range tasks {
			if tasks[i], err = c.Submit(ctx, runtime.Job{Function: "upper", Payload: fmt.Appendf(nil, "job %d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		for i, task := range tasks {
			out, err := task.Wait(ctx)
			if want := fmt.Sprintf("JOB %d", i); err != nil || string(out) != want {
				t.Errorf("job %d = %q, %v; want %q", i, out, err, want)
			}
		}
	})
}

// TestGoClientPerlWorkerDies: a Perl handler that dies. A Go client
// (which always turns exceptions on) gets the exception, carrying the
// error as Gearman::Worker froze it with Storable, and the worker must go
// on serving. Gearman::Worker follows its WORK_EXCEPTION with a
// WORK_FAIL; gearmand 1.1.20 has already ended the job and answers
// ERROR JOB_NOT_FOUND, on which the worker dies: the gearmand subtest
// checks that. Ours takes that WORK_FAIL silently.
func TestGoClientPerlWorkerDies(t *testing.T) {
	t.Parallel()
	perltest.Perl(t)
	for _, k := range serverKinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			gearmand := k.name == "gearmand"
			srv := k.start(t)
			worker := perltest.StartWorker(t, []string{srv.Addr}, srv.Addr)
			c := newTestClient(t, srv.Addr)
			ctx := testContext(t, 30*time.Second)
			_, err := c.Do(ctx, runtime.Job{Function: "die", Payload: []byte("from go")})
			var jobErr *runtime.JobError
			if !errors.As(err, &jobErr) || jobErr.Kind != runtime.EventException || !bytes.Contains(jobErr.Data, []byte("boom: from go")) {
				t.Fatalf("die: %v, want a *JobError of kind %v carrying %q", err, runtime.EventException, "boom: from go")
			}
			if gearmand {
				deadline := time.Now().Add(10 * time.Second)
				for !worker.Exited() && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if want := "unexpected packet type: error [JOB_NOT_FOUND"; !worker.Exited() || !strings.Contains(worker.Stderr(), want) {
					t.Errorf("gearmand: the worker did not die of %q (exited %v): %s", want, worker.Exited(), worker.Stderr())
				}
				return
			}
			short, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if got, err := c.Do(short, runtime.Job{Function: "upper", Payload: []byte("after")}); err != nil || string(got) != "AFTER" {
				t.Errorf("after a job died: %q, %v; want %q (worker exited: %v, stderr: %s)", got, err, "AFTER", worker.Exited(), worker.Stderr())
			}
		})
	}
}
