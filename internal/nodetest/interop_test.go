package nodetest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/internal/nodetest"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/runtime"
	"github.com/gearflow/gearflow/server"
)

const (
	workerScript = "testdata/worker.js"
	clientScript = "testdata/client.js"
	// nodeLife bounds a long-running node process.
	nodeLife = 2 * time.Minute
)

// nodeFunctions are the functions testdata/worker.js registers, without
// their prefix.
var nodeFunctions = []string{"upper", "stream", "reverse", "fail", "hold", "timed"}

// forEachServer runs f as a parallel subtest against a real gearmand and
// against gearflow's server, each started fresh. The assertions are the
// same for both.
func forEachServer(t *testing.T, f func(t *testing.T, addr string)) {
	t.Helper()
	nodetest.Env(t) // skip before starting servers
	kinds := []struct {
		name  string
		start func(t *testing.T) string
	}{
		{"gearmand", func(t *testing.T) string { return gearmandtest.Start(t).Addr }},
		{"gearflow", func(t *testing.T) string { return servertest.Start(t, server.Config{}).Addr }},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			f(t, k.start(t))
		})
	}
}

// jobSpec is one job of client.js's "jobs" scenario.
type jobSpec struct {
	Func    string         `json:"func"`
	Payload string         `json:"payload"`
	Options map[string]any `json:"options,omitempty"`
	BigSize int            `json:"bigSize,omitempty"`
}

// jobOutcome is what client.js saw of one job.
type jobOutcome struct {
	JobID    string    `json:"jobid"`
	Result   string    `json:"result"`
	Statuses []float64 `json:"statuses"`
	Warnings []string  `json:"warnings"`
	Chunks   int       `json:"chunks"`
	Length   int       `json:"length"`
	SHA256   string    `json:"sha256"`
	Error    *struct {
		Name    string `json:"name"`
		Message string `json:"message"`
	} `json:"error"`
}

// runJobs submits specs at once with an abraxas client and returns what
// it saw of each, in order.
func runJobs(t *testing.T, addr string, specs []jobSpec) []jobOutcome {
	t.Helper()
	arg, err := json.Marshal(specs)
	if err != nil {
		t.Fatal(err)
	}
	out := nodetest.Run(t, clientScript, addr, "jobs", string(arg))
	var res []jobOutcome
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("client.js output %q: %v", out, err)
	}
	if len(res) != len(specs) {
		t.Fatalf("client.js reported %d jobs, want %d", len(res), len(specs))
	}
	return res
}

// runScenario runs another client.js scenario and decodes its JSON
// outcome into v.
func runScenario(t *testing.T, addr string, v any, args ...string) {
	t.Helper()
	out := nodetest.Run(t, clientScript, append([]string{addr}, args...)...)
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("client.js %v output %q: %v", args, out, err)
	}
}

// wantResult checks that a job completed with want.
func wantResult(t *testing.T, what string, got jobOutcome, want string) {
	t.Helper()
	if got.Error != nil {
		t.Errorf("%s: failed with %s: %s, want result %q", what, got.Error.Name, got.Error.Message, want)
		return
	}
	if got.Result != want {
		t.Errorf("%s: result %q, want %q", what, got.Result, want)
	}
	if got.JobID == "" {
		t.Errorf("%s: no job handle (JOB_CREATED not seen)", what)
	}
}

// waitFunctions waits, at most 10 s, until every function has a worker
// on the server at addr, as its admin "status" reports.
func waitFunctions(t *testing.T, addr string, functions ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := runtime.AdminStatus(ctx, addr)
		cancel()
		missing := slices.Clone(functions)
		if err == nil {
			for _, fs := range st {
				if fs.Workers > 0 {
					missing = slices.DeleteFunc(missing, func(f string) bool { return f == fs.Function })
				}
			}
			if len(missing) == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("functions %v have no worker after 10s (status %+v, err %v)", missing, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitQueued waits, at most 10 s, until the server at addr holds n jobs
// of function.
func waitQueued(t *testing.T, addr, function string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := runtime.AdminStatus(ctx, addr)
		cancel()
		if err == nil {
			for _, fs := range st {
				if fs.Function == function && fs.Total == n {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs of %s not queued after 10s (status %+v, err %v)", n, function, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startNodeWorker starts testdata/worker.js on addr and waits until the
// server lists all its functions. At the end of the test it checks that
// the worker never lost its connection.
func startNodeWorker(t *testing.T, addr string) *nodetest.Proc {
	t.Helper()
	w := nodetest.Start(t, nodeLife, workerScript, addr, "node.")
	var names []string
	for _, f := range nodeFunctions {
		names = append(names, "node."+f)
	}
	waitFunctions(t, addr, names...)
	t.Cleanup(func() {
		if strings.Contains(w.Stderr(), "disconnected") {
			t.Errorf("the abraxas worker lost its connection to the server; its stderr:\n%s", w.Stderr())
		}
	})
	return w
}

// bigPayload is client.js's generated payload: byte i is i*7 mod 251.
func bigPayload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7 % 251)
	}
	return b
}

func reversed(b []byte) []byte {
	r := slices.Clone(b)
	slices.Reverse(r)
	return r
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// almost compares abraxas's floating-point progress values.
func almost(got, want []float64) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-9 {
			return false
		}
	}
	return true
}

// TestAbraxasWorkerAndClient: what a Node.js user does with abraxas
// alone (a worker and a client, both abraxas) through the job server.
func TestAbraxasWorkerAndClient(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, addr string) {
		worker := startNodeWorker(t, addr)

		t.Run("foreground", func(t *testing.T) {
			specs := []jobSpec{
				{Func: "node.upper", Payload: "plain"},
				{Func: "node.upper", Payload: "unique", Options: map[string]any{"uniqueid": "u-1"}},
				{Func: "node.upper", Payload: "high", Options: map[string]any{"priority": "high"}},
				{Func: "node.upper", Payload: "low", Options: map[string]any{"priority": "low"}},
				{Func: "node.upper", Payload: "high unique", Options: map[string]any{"priority": "high", "uniqueid": "u-2"}},
				{Func: "node.upper", Payload: "low unique", Options: map[string]any{"priority": "low", "uniqueid": "u-3"}},
			}
			res := runJobs(t, addr, specs)
			handles := map[string]bool{}
			for i, s := range specs {
				wantResult(t, s.Payload, res[i], strings.ToUpper(s.Payload))
				if handles[res[i].JobID] {
					t.Errorf("%s: handle %q given to two jobs", s.Payload, res[i].JobID)
				}
				handles[res[i].JobID] = true
			}
		})

		t.Run("stream", func(t *testing.T) {
			// WORK_DATA chunks, each followed by a WORK_STATUS of
			// 25, 50, 75, 100 over 100, a WORK_WARNING, then
			// WORK_COMPLETE "done": abraxas concatenates data and
			// result, in order.
			res := runJobs(t, addr, []jobSpec{{Func: "node.stream", Payload: "4"}})[0]
			wantResult(t, "stream", res, "chunk-0;chunk-1;chunk-2;chunk-3;done")
			if want := []float64{0.25, 0.5, 0.75, 1}; !almost(res.Statuses, want) {
				t.Errorf("status events %v, want %v", res.Statuses, want)
			}
			if want := []string{"careful"}; !slices.Equal(res.Warnings, want) {
				t.Errorf("warnings %q, want %q", res.Warnings, want)
			}
			if res.Chunks != 5 {
				t.Errorf("%d data events, want 5 (4 WORK_DATA and the WORK_COMPLETE)", res.Chunks)
			}
		})

		t.Run("large", func(t *testing.T) {
			const size = 1 << 20
			res := runJobs(t, addr, []jobSpec{{Func: "node.reverse", BigSize: size}})[0]
			if res.Error != nil {
				t.Fatalf("failed: %s: %s", res.Error.Name, res.Error.Message)
			}
			if want := sha(reversed(bigPayload(size))); res.Length != size || res.SHA256 != want {
				t.Errorf("result of %d bytes, sha256 %s; want %d bytes, sha256 %s", res.Length, res.SHA256, size, want)
			}
		})

		t.Run("fail", func(t *testing.T) {
			// abraxas's worker sends WORK_EXCEPTION then WORK_FAIL
			// for the same job; its client asked for exceptions
			// (OPTION_REQ), so it gets WORK_EXCEPTION with the text.
			// The WORK_FAIL then names a finished job: gearmand
			// answers ERROR JOB_NOT_FOUND, which abraxas reports as a
			// connection error; we take that one WORK_FAIL silently.
			// Either way the connection stays (startNodeWorker checks
			// it) and the next job runs.
			res := runJobs(t, addr, []jobSpec{
				{Func: "node.fail", Payload: "x"},
				{Func: "node.upper", Payload: "after"},
			})
			if res[0].Error == nil || res[0].Error.Name != "JobException" || res[0].Error.Message != "Error: boom: x" {
				t.Errorf("failing job: %+v, want a JobException \"Error: boom: x\"", res[0])
			}
			wantResult(t, "job after the failure", res[1], "AFTER")
			// abraxas reports the ERROR as a connection-error event
			// with its text, which the worker logs.
			const want = "connection-error: Job given in work result not found"
			if !strings.Contains(t.Name(), "/gearmand/") {
				// The ERROR would have come before the next job's
				// JOB_ASSIGN; give the worker's log a moment.
				time.Sleep(200 * time.Millisecond)
				if strings.Contains(worker.Stderr(), want) {
					t.Errorf("the worker's WORK_FAIL after its WORK_EXCEPTION was refused; worker stderr:\n%s", worker.Stderr())
				}
				return
			}
			for deadline := time.Now().Add(5 * time.Second); !strings.Contains(worker.Stderr(), want); {
				if time.Now().After(deadline) {
					t.Errorf("the worker's WORK_FAIL after WORK_EXCEPTION got no ERROR JOB_NOT_FOUND; worker stderr:\n%s", worker.Stderr())
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		})

		t.Run("many", func(t *testing.T) {
			const n = 200
			specs := make([]jobSpec, n)
			for i := range specs {
				specs[i] = jobSpec{Func: "node.upper", Payload: fmt.Sprintf("job-%d", i)}
				if i%3 == 0 {
					specs[i].Options = map[string]any{"uniqueid": fmt.Sprintf("many-%d", i)}
				}
			}
			res := runJobs(t, addr, specs)
			for i, s := range specs {
				wantResult(t, s.Payload, res[i], strings.ToUpper(s.Payload))
			}
		})

		t.Run("background", func(t *testing.T) {
			// A background job reports 0.25 and waits for a file;
			// the client's getStatus sees it known, running and 25%
			// done, then, released, gone (gearmand forgets finished
			// jobs: known 0).
			var res struct {
				Error   string `json:"error"`
				JobID   string `json:"jobid"`
				Running struct {
					Known, Running int
					Complete       float64
				} `json:"running"`
				Gone struct {
					Known, Running int
				} `json:"gone"`
			}
			runScenario(t, addr, &res, "bg", filepath.Join(t.TempDir(), "release"))
			if res.Error != "" {
				t.Fatalf("bg scenario: %s (%+v)", res.Error, res)
			}
			if res.JobID == "" || res.Running.Known != 1 || res.Running.Running != 1 || res.Running.Complete != 0.25 {
				t.Errorf("running job %q: status %+v, want known 1, running 1, complete 0.25", res.JobID, res.Running)
			}
			if res.Gone.Known != 0 || res.Gone.Running != 0 {
				t.Errorf("finished job: status %+v, want known 0, running 0", res.Gone)
			}
		})

		t.Run("echo", func(t *testing.T) {
			var res struct{ Echo, Error string }
			runScenario(t, addr, &res, "echo", "ping from node")
			if res.Echo != "ping from node" || res.Error != "" {
				t.Errorf("echo: %+v, want \"ping from node\"", res)
			}
		})

		t.Run("admin", func(t *testing.T) {
			var res struct {
				Error  string
				Status map[string]struct {
					Function                  string
					Inqueue, Running, Workers int
				}
				Workers []struct {
					FD, IP    string
					ClientID  *string
					Functions []string
				}
			}
			runScenario(t, addr, &res, "admin")
			if res.Error != "" {
				t.Fatalf("admin: %s", res.Error)
			}
			for _, f := range nodeFunctions {
				st, ok := res.Status["node."+f]
				if !ok || st.Function != "node."+f || st.Workers != 1 || st.Inqueue != 0 || st.Running != 0 {
					t.Errorf("status of node.%s: %+v (listed %v), want 1 worker, nothing queued or running", f, st, ok)
				}
			}
			// The worker's connection lists every function; the
			// admin client's own connection is listed too, with none.
			var found bool
			for _, w := range res.Workers {
				if _, err := strconv.Atoi(w.FD); err != nil || w.IP != "127.0.0.1" {
					t.Errorf("workers line %+v: want a numeric fd and ip 127.0.0.1", w)
				}
				if len(w.Functions) == len(nodeFunctions) {
					found = true
					if w.ClientID == nil || *w.ClientID != "node-worker" {
						t.Errorf("worker %+v: want client id node-worker (SET_CLIENT_ID)", w)
					}
					for _, f := range nodeFunctions {
						if !slices.Contains(w.Functions, "node."+f) {
							t.Errorf("worker %+v does not list node.%s", w, f)
						}
					}
				}
			}
			if !found || len(res.Workers) < 2 {
				t.Errorf("workers %+v: want the node worker with its %d functions and the admin client", res.Workers, len(nodeFunctions))
			}
		})
	})
}

// goHandlers are the functions of the Go worker abraxas clients call.
func goHandlers() map[string]runtime.Handler {
	return map[string]runtime.Handler{
		"go.upper": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			return bytes.ToUpper(job.Payload), nil
		}),
		"go.reverse": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			return reversed(job.Payload), nil
		}),
		"go.stream": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			for i := range 4 {
				if err := job.SendData([]byte(fmt.Sprintf("part-%d;", i))); err != nil {
					return nil, err
				}
				if err := job.SendStatus(uint64(i+1), 4); err != nil {
					return nil, err
				}
			}
			if err := job.SendWarning([]byte("heads up")); err != nil {
				return nil, err
			}
			return []byte("end"), nil
		}),
		"go.exception": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			return nil, runtime.Exception(errors.New("bad input " + string(job.Payload)))
		}),
		"go.fail": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			return nil, errors.New("plain failure")
		}),
	}
}

// runGoWorker runs a runtime.Worker with handlers on addr until the test
// ends.
func runGoWorker(t *testing.T, cfg runtime.WorkerConfig, handlers map[string]runtime.Handler) {
	t.Helper()
	w, err := runtime.NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for name, h := range handlers {
		w.Handle(name, h)
		names = append(names, name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("worker: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("worker did not stop within 15s")
		}
	})
	waitFunctions(t, cfg.Servers[0], names...)
}

// TestAbraxasClientGoWorker: abraxas clients call functions served by
// gearflow's Go runtime.Worker.
func TestAbraxasClientGoWorker(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, addr string) {
		runGoWorker(t, runtime.WorkerConfig{Servers: []string{addr}, Concurrency: 8}, goHandlers())

		t.Run("jobs", func(t *testing.T) {
			res := runJobs(t, addr, []jobSpec{
				{Func: "go.upper", Payload: "from node"},
				{Func: "go.upper", Payload: "with unique", Options: map[string]any{"uniqueid": "node-u"}},
				{Func: "go.upper", Payload: "high", Options: map[string]any{"priority": "high"}},
				{Func: "go.upper", Payload: "low", Options: map[string]any{"priority": "low"}},
				{Func: "go.stream"},
				{Func: "go.exception", Payload: "42"},
				{Func: "go.fail"},
				{Func: "go.reverse", BigSize: 1 << 20},
			})
			wantResult(t, "go.upper", res[0], "FROM NODE")
			wantResult(t, "go.upper with unique", res[1], "WITH UNIQUE")
			wantResult(t, "go.upper high", res[2], "HIGH")
			wantResult(t, "go.upper low", res[3], "LOW")

			wantResult(t, "go.stream", res[4], "part-0;part-1;part-2;part-3;end")
			if want := []float64{0.25, 0.5, 0.75, 1}; !almost(res[4].Statuses, want) {
				t.Errorf("go.stream status events %v, want %v", res[4].Statuses, want)
			}
			if want := []string{"heads up"}; !slices.Equal(res[4].Warnings, want) {
				t.Errorf("go.stream warnings %q, want %q", res[4].Warnings, want)
			}

			if e := res[5].Error; e == nil || e.Name != "JobException" || e.Message != "bad input 42" {
				t.Errorf("go.exception: %+v, want a JobException \"bad input 42\"", res[5])
			}
			// WORK_FAIL carries no text: abraxas reports a JobFail
			// naming the handle.
			if e := res[6].Error; e == nil || e.Name != "JobFail" || e.Message != "Job "+res[6].JobID+" failed" {
				t.Errorf("go.fail: %+v, want a JobFail \"Job %s failed\"", res[6], res[6].JobID)
			}

			const size = 1 << 20
			if want := sha(reversed(bigPayload(size))); res[7].Error != nil || res[7].Length != size || res[7].SHA256 != want {
				t.Errorf("go.reverse of 1 MiB: %+v; want %d bytes, sha256 %s", res[7], size, want)
			}
		})

		t.Run("many", func(t *testing.T) {
			const n = 200
			specs := make([]jobSpec, n)
			for i := range specs {
				specs[i] = jobSpec{Func: "go.upper", Payload: fmt.Sprintf("go-job-%d", i)}
			}
			res := runJobs(t, addr, specs)
			for i, s := range specs {
				wantResult(t, s.Payload, res[i], strings.ToUpper(s.Payload))
			}
		})
	})
}

// TestAbraxasPriorityOrder: abraxas's low, normal and high submissions
// (SUBMIT_JOB_LOW, SUBMIT_JOB, SUBMIT_JOB_HIGH), queued before any worker
// exists, run high first, low last, on a Go worker taking one job at a
// time.
func TestAbraxasPriorityOrder(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, addr string) {
		var mu sync.Mutex
		var order []string
		specs := []jobSpec{
			{Func: "go.order", Payload: "low", Options: map[string]any{"priority": "low"}},
			{Func: "go.order", Payload: "normal"},
			{Func: "go.order", Payload: "high", Options: map[string]any{"priority": "high"}},
		}
		done := runJobsAsync(t, addr, specs)
		waitQueued(t, addr, "go.order", len(specs))
		runGoWorker(t, runtime.WorkerConfig{Servers: []string{addr}, Concurrency: 1}, map[string]runtime.Handler{
			"go.order": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				mu.Lock()
				order = append(order, string(job.Payload))
				mu.Unlock()
				return job.Payload, nil
			}),
		})
		res := awaitJobs(t, done, len(specs))
		for i, s := range specs {
			wantResult(t, s.Payload, res[i], s.Payload)
		}
		mu.Lock()
		defer mu.Unlock()
		if want := []string{"high", "normal", "low"}; !slices.Equal(order, want) {
			t.Errorf("the worker ran %v, want %v", order, want)
		}
	})
}

// TestGoClientAbraxasWorker: gearflow's runtime.Client calls functions
// served by an abraxas worker.
func TestGoClientAbraxasWorker(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, addr string) {
		startNodeWorker(t, addr)
		c, err := runtime.NewClient(runtime.ClientConfig{Servers: []string{addr}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)

		t.Run("stream", func(t *testing.T) {
			// Each WORK_DATA arrives as its own event, in order,
			// interleaved with the WORK_STATUS that follows it.
			task, err := c.Submit(ctx, runtime.Job{Function: "node.stream", Payload: []byte("4")})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for ev := range task.Events() {
				switch ev.Kind {
				case runtime.EventStatus:
					got = append(got, fmt.Sprintf("status %d/%d", ev.Numerator, ev.Denominator))
				case runtime.EventError:
					got = append(got, fmt.Sprintf("%v %v", ev.Kind, ev.Err))
				default:
					got = append(got, fmt.Sprintf("%v %s", ev.Kind, ev.Data))
				}
			}
			want := []string{}
			for i := range 4 {
				want = append(want, fmt.Sprintf("%v chunk-%d;", runtime.EventData, i), fmt.Sprintf("status %d/100", (i+1)*25))
			}
			want = append(want, fmt.Sprintf("%v careful", runtime.EventWarning), fmt.Sprintf("%v done", runtime.EventComplete))
			if !slices.Equal(got, want) {
				t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})

		t.Run("jobs", func(t *testing.T) {
			for _, job := range []runtime.Job{
				{Function: "node.upper", Payload: []byte("go client")},
				{Function: "node.upper", Payload: []byte("go unique"), Unique: "go-u"},
				{Function: "node.upper", Payload: []byte("go high"), Priority: runtime.PriorityHigh},
				{Function: "node.upper", Payload: []byte("go low"), Priority: runtime.PriorityLow},
			} {
				out, err := c.Do(ctx, job)
				if want := bytes.ToUpper(job.Payload); err != nil || !bytes.Equal(out, want) {
					t.Errorf("Do(%s %q): %q, %v; want %q", job.Function, job.Payload, out, err, want)
				}
			}
		})

		t.Run("large", func(t *testing.T) {
			in := bigPayload(1 << 20)
			out, err := c.Do(ctx, runtime.Job{Function: "node.reverse", Payload: in})
			if err != nil || !bytes.Equal(out, reversed(in)) {
				t.Errorf("Do(node.reverse, 1 MiB): %d bytes, %v; want the payload reversed", len(out), err)
			}
		})

		t.Run("fail", func(t *testing.T) {
			_, err := c.Do(ctx, runtime.Job{Function: "node.fail", Payload: []byte("go")})
			var je *runtime.JobError
			if !errors.As(err, &je) || je.Kind != runtime.EventException || string(je.Data) != "Error: boom: go" {
				t.Errorf("Do(node.fail): %v, want a WORK_EXCEPTION \"Error: boom: go\"", err)
			}
		})

		t.Run("background", func(t *testing.T) {
			// abraxas reports progress p as WORK_STATUS p*100 over
			// 100, with JavaScript's decimals: 1/3 is
			// "33.33333333333333". gearmand stores atoi of each, so
			// GET_STATUS answers 33/100.
			for _, tc := range []struct {
				progress string
				num      uint64
			}{
				{"0.25", 25},
				{strconv.FormatFloat(1.0/3, 'g', -1, 64), 33},
			} {
				release := filepath.Join(t.TempDir(), "release")
				task, err := c.Submit(ctx, runtime.Job{Function: "node.hold", Payload: []byte(tc.progress + " " + release), Background: true})
				if err != nil {
					t.Fatal(err)
				}
				st := waitStatus(t, c, task, func(st runtime.Status) bool { return st.Running && st.Denominator > 0 })
				if !st.Known || st.Numerator != tc.num || st.Denominator != 100 {
					t.Errorf("job at progress %s: %+v, want known, running, %d/100", tc.progress, st, tc.num)
				}
				if err := os.WriteFile(release, []byte("go"), 0o600); err != nil {
					t.Fatal(err)
				}
				waitStatus(t, c, task, func(st runtime.Status) bool { return !st.Known })
			}
		})

		t.Run("timeout", func(t *testing.T) {
			// node.timed registers with CAN_DO_TIMEOUT "2" (abraxas
			// means seconds) and takes 100 ms: gearmand 1.1.20 reads
			// 2 ms and applies its 1000 ms floor, so the job is
			// assigned once and completes; a server without the
			// floor would requeue it from under the worker.
			out, err := c.Do(ctx, runtime.Job{Function: "node.timed", Payload: []byte("t")})
			if err != nil || string(out) != "assigned 1" {
				t.Errorf("Do(node.timed): %q, %v; want \"assigned 1\"", out, err)
			}
		})

		t.Run("fractional status", func(t *testing.T) {
			// node.stream 3 sends WORK_STATUS "33.33333333333333"
			// over "100", then "66.66666666666666", then "100". A
			// Task's status events should read them as gearmand's
			// GET_STATUS does (the integer part), not as 0.
			task, err := c.Submit(ctx, runtime.Job{Function: "node.stream", Payload: []byte("3")})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for ev := range task.Events() {
				if ev.Kind == runtime.EventStatus {
					got = append(got, fmt.Sprintf("%d/%d", ev.Numerator, ev.Denominator))
				}
			}
			if want := []string{"33/100", "66/100", "100/100"}; !slices.Equal(got, want) {
				t.Errorf("status events %v, want %v", got, want)
			}
		})
	})
}

// waitStatus polls the status of task, at most 15 s, until ok.
func waitStatus(t *testing.T, c *runtime.Client, task *runtime.Task, ok func(runtime.Status) bool) runtime.Status {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.Status(ctx, task.Server, task.Handle)
		cancel()
		if err == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("status of %s: %+v, %v after 15s", task.Handle, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAbraxasWorkerFindsQueuedJobs: an abraxas worker never asks for a
// job before it is told of one: on connecting it registers and sends
// PRE_SLEEP at once, so a server holding queued jobs must answer that
// PRE_SLEEP with a NOOP.
func TestAbraxasWorkerFindsQueuedJobs(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, addr string) {
		c, err := runtime.NewClient(runtime.ClientConfig{Servers: []string{addr}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var tasks []*runtime.Task
		for i := range 5 {
			task, err := c.Submit(ctx, runtime.Job{Function: "node.upper", Payload: []byte(fmt.Sprintf("queued-%d", i))})
			if err != nil {
				t.Fatal(err)
			}
			tasks = append(tasks, task)
		}
		waitQueued(t, addr, "node.upper", len(tasks))
		startNodeWorker(t, addr)
		for i, task := range tasks {
			out, err := task.Wait(ctx)
			if want := fmt.Sprintf("QUEUED-%d", i); err != nil || string(out) != want {
				t.Errorf("queued job %d: %q, %v; want %q", i, out, err, want)
			}
		}
	})
}

// TestAbraxasWorkerServerRestart: an abraxas worker reconnects to a
// restarted server on the same port, registers again and serves the
// next job.
func TestAbraxasWorkerServerRestart(t *testing.T) {
	t.Parallel()
	nodetest.Env(t)
	kinds := []struct {
		name  string
		start func(t *testing.T) (addr string, restart func())
	}{
		{"gearmand", func(t *testing.T) (string, func()) {
			s := gearmandtest.Start(t)
			return s.Addr, s.Restart
		}},
		{"gearflow", func(t *testing.T) (string, func()) {
			s := servertest.Start(t, server.Config{})
			return s.Addr, s.Restart
		}},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			addr, restart := k.start(t)
			w := nodetest.Start(t, nodeLife, workerScript, addr, "node.")
			var names []string
			for _, f := range nodeFunctions {
				names = append(names, "node."+f)
			}
			waitFunctions(t, addr, names...)
			// abraxas reconnects only after a clean close (FIN): a
			// connection reset, which the kernel sends when a
			// server closes a socket holding unread bytes, leaves
			// it disconnected for good ("read ECONNRESET" on its
			// stderr). Its PRE_SLEEP follows the CAN_DOs by a
			// tick and no reply shows it was read, so let it
			// arrive before the server stops.
			time.Sleep(300 * time.Millisecond)
			restart()
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("worker stderr:\n%s", w.Stderr())
				}
			})
			waitFunctions(t, addr, names...)
			c, err := runtime.NewClient(runtime.ClientConfig{Servers: []string{addr}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := c.Do(ctx, runtime.Job{Function: "node.upper", Payload: []byte("again")})
			if err != nil || string(out) != "AGAIN" {
				t.Errorf("job after the restart: %q, %v; want \"AGAIN\"\nworker stderr:\n%s", out, err, w.Stderr())
			}
		})
	}
}

// runJobsAsync is runJobs in a goroutine of its own: the outcome arrives
// on the returned channel. A script still running when the test ends is
// killed, and waited for.
func runJobsAsync(t *testing.T, addr string, specs []jobSpec) <-chan asyncOutcome {
	t.Helper()
	nodetest.Env(t)
	arg, err := json.Marshal(specs)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan asyncOutcome, 1)
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	go func() {
		defer close(finished)
		var o asyncOutcome
		var out []byte
		if out, o.err = nodetest.Exec(ctx, clientScript, addr, "jobs", string(arg)); o.err == nil {
			o.err = json.Unmarshal(out, &o.res)
		}
		ch <- o
	}()
	return ch
}

type asyncOutcome struct {
	res []jobOutcome
	err error
}

func awaitJobs(t *testing.T, ch <-chan asyncOutcome, n int) []jobOutcome {
	t.Helper()
	select {
	case o := <-ch:
		if o.err != nil || len(o.res) != n {
			t.Fatalf("client.js: %+v, %v; want %d outcomes", o.res, o.err, n)
		}
		return o.res
	case <-time.After(nodetest.RunTimeout + 10*time.Second):
		t.Fatal("client.js did not finish")
		return nil
	}
}

// TestAbraxasCoalescing: two abraxas clients (two processes) submit the
// same unique while the first submission runs; the server runs it once
// and both get its result under the same handle.
func TestAbraxasCoalescing(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, addr string) {
		startNodeWorker(t, addr)
		c, err := runtime.NewClient(runtime.ClientConfig{Servers: []string{addr}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		release := filepath.Join(t.TempDir(), "release")
		spec := []jobSpec{{Func: "node.hold", Payload: "0.5 " + release, Options: map[string]any{"uniqueid": "co-1"}}}
		waitClients := func(n int) {
			t.Helper()
			deadline := time.Now().Add(15 * time.Second)
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				st, err := c.StatusUnique(ctx, "co-1")
				cancel()
				if err == nil && st.Running && st.Clients == n {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("job co-1: %+v, %v; want running with %d clients", st, err, n)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		first := runJobsAsync(t, addr, spec)
		waitClients(1)
		second := runJobsAsync(t, addr, spec)
		waitClients(2)
		if err := os.WriteFile(release, []byte("go"), 0o600); err != nil {
			t.Fatal(err)
		}
		a, b := awaitJobs(t, first, 1)[0], awaitJobs(t, second, 1)[0]
		wantResult(t, "first client", a, "released")
		wantResult(t, "second client", b, "released")
		if a.JobID != b.JobID {
			t.Errorf("handles %q and %q, want one job", a.JobID, b.JobID)
		}
	})
}

// TestAbraxasEpochJob: submitJobAt (SUBMIT_JOB_EPOCH) queues a
// background job that must not run before its time. gearflow then wakes
// the sleeping abraxas worker and runs it; gearmand 1.1 does not wake
// sleeping workers for a due epoch job (gearman/gearmand#101), so there
// it stays queued: the test checks both behaviours.
func TestAbraxasEpochJob(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, addr string) {
		gearmand := strings.HasSuffix(t.Name(), "/gearmand")
		startNodeWorker(t, addr)
		c, err := runtime.NewClient(runtime.ClientConfig{Servers: []string{addr}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		release := filepath.Join(t.TempDir(), "release")
		if err := os.WriteFile(release, []byte("go"), 0o600); err != nil {
			t.Fatal(err)
		}
		var res struct {
			Error string
			JobID string
			When  int64
		}
		runScenario(t, addr, &res, "at", "2", "0.5 "+release)
		if res.Error != "" || res.JobID == "" {
			t.Fatalf("submitJobAt: %+v", res)
		}
		when := time.Unix(res.When, 0)
		status := func() runtime.Status {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			st, err := c.Status(ctx, addr, res.JobID)
			if err != nil {
				t.Fatalf("status of %s: %v", res.JobID, err)
			}
			return st
		}
		// The job completes as soon as it runs (its release file
		// exists), so before its time it must still be known.
		for time.Until(when) > 300*time.Millisecond {
			if st := status(); !st.Known {
				t.Fatalf("epoch job %s ran before its time %v: %+v", res.JobID, when, st)
			}
			time.Sleep(100 * time.Millisecond)
		}
		deadline := when.Add(4 * time.Second)
		for {
			st := status()
			if !st.Known {
				if gearmand {
					t.Errorf("gearmand 1.1 ran the epoch job without a worker asking for work: the difference this test documents is gone")
				}
				return
			}
			if time.Now().After(deadline) {
				if !gearmand {
					t.Errorf("epoch job %s due at %v still queued 4s later (%+v): the sleeping worker was not woken", res.JobID, when, st)
				}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestAbraxasQueueFull: a submission beyond an admin "maxqueue" limit
// gets ERROR QUEUE_ERROR, which abraxas turns into a ServerError with that
// code on the submission it answers; the job accepted before it runs.
// The limit is set once the function exists: gearmand answers OK to a
// maxqueue for an unknown function but applies nothing.
func TestAbraxasQueueFull(t *testing.T) {
	t.Parallel()
	forEachServer(t, func(t *testing.T, addr string) {
		type submitted struct {
			JobID string `json:"jobid"`
			Error *struct {
				Name, Message, Code string
			} `json:"error"`
		}
		submit := func(payload string) submitted {
			t.Helper()
			arg, err := json.Marshal([]jobSpec{{Func: "node.full", Payload: payload}})
			if err != nil {
				t.Fatal(err)
			}
			var res []submitted
			runScenario(t, addr, &res, "bgjobs", string(arg))
			if len(res) != 1 {
				t.Fatalf("bgjobs: %+v", res)
			}
			return res[0]
		}
		if res := submit("first"); res.JobID == "" || res.Error != nil {
			t.Fatalf("first job: %+v, want accepted", res)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if lines, err := runtime.AdminCommand(ctx, addr, "maxqueue node.full 1"); err != nil || !slices.Equal(lines, []string{"OK"}) {
			t.Fatalf("maxqueue: %q, %v", lines, err)
		}
		if res := submit("second"); res.JobID != "" || res.Error == nil || res.Error.Name != "ServerError" || res.Error.Code != "QUEUE_ERROR" || res.Error.Message != "Job queue is full" {
			t.Errorf("second job: %+v, want a ServerError QUEUE_ERROR \"Job queue is full\"", res)
		}
		ran := make(chan string, 2)
		runGoWorker(t, runtime.WorkerConfig{Servers: []string{addr}}, map[string]runtime.Handler{
			"node.full": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				ran <- string(job.Payload)
				return nil, nil
			}),
		})
		select {
		case p := <-ran:
			if p != "first" {
				t.Errorf("the worker ran %q, want the first job", p)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the accepted job did not run")
		}
		waitQueued(t, addr, "node.full", 0)
		if len(ran) != 0 {
			t.Errorf("the refused job ran too: %q", <-ran)
		}
	})
}

// TestAbraxasWorkerTwoServers: one abraxas worker serves gearmand and
// gearflow at once (it registers on every server and sleeps on each);
// a Go client spreading jobs over both gets every result from each.
func TestAbraxasWorkerTwoServers(t *testing.T) {
	t.Parallel()
	nodetest.Env(t)
	servers := []string{gearmandtest.Start(t).Addr, servertest.Start(t, server.Config{}).Addr}
	nodetest.Start(t, nodeLife, workerScript, strings.Join(servers, ","), "node.")
	for _, addr := range servers {
		waitFunctions(t, addr, "node.upper")
	}
	c, err := runtime.NewClient(runtime.ClientConfig{Servers: servers})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	perServer := map[string]int{}
	var tasks []*runtime.Task
	for i := range 40 {
		task, err := c.Submit(ctx, runtime.Job{Function: "node.upper", Payload: []byte(fmt.Sprintf("two-%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		perServer[task.Server]++
		tasks = append(tasks, task)
	}
	for i, task := range tasks {
		out, err := task.Wait(ctx)
		if want := fmt.Sprintf("TWO-%d", i); err != nil || string(out) != want {
			t.Errorf("job %d on %s: %q, %v; want %q", i, task.Server, out, err, want)
		}
	}
	for _, addr := range servers {
		if perServer[addr] == 0 {
			t.Errorf("no job went to %s (%v)", addr, perServer)
		}
	}
}
