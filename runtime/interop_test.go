package runtime_test

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/runtime"
)

func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("bad address %q", addr)
	}
	return addr[:i], addr[i+1:]
}

// TestInteropLibgearmanClient: our worker serves jobs that libgearman's
// gearman command submits.
func TestInteropLibgearmanClient(t *testing.T) {
	t.Parallel()
	gearman := gearmandtest.Tool(t, "gearman")
	forEachServer(t, func(t *testing.T, srv testServer) {
		startWorker(t, runtime.WorkerConfig{Servers: []string{srv.Addr}, ClientID: "interop"}, map[string]runtime.Handler{
			"upper": runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				if err := job.SendStatus(1, 2); err != nil {
					return nil, err
				}
				return bytes.ToUpper(job.Payload), nil
			}),
		})
		host, port := hostPort(t, srv.Addr)
		tests := []struct {
			name string
			args []string
			want string
		}{
			{"foreground", []string{"-f", "upper", "hello gearman"}, "HELLO GEARMAN"},
			{"high", []string{"-I", "-f", "upper", "high"}, "HIGH"},
			{"low", []string{"-L", "-f", "upper", "low"}, "LOW"},
			{"unique", []string{"-u", "u-1", "-f", "upper", "uniq"}, "UNIQ"},
		}
		for _, tt := range tests {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			args := append([]string{"-h", host, "-p", port}, tt.args...)
			cmd := exec.CommandContext(ctx, gearman, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			cancel()
			if err != nil {
				t.Fatalf("%s: gearman %v: %v\n%s", tt.name, args, err, stderr.Bytes())
			}
			// gearman prints the result, and the worker's WORK_STATUS as
			// "50% Complete" (after the result: it buffers the status line).
			got := string(out)
			if result, _, _ := strings.Cut(got, "50% Complete"); result != tt.want || !strings.Contains(got, "50% Complete") {
				t.Errorf("%s: gearman printed %q, want %q and the 1/2 status", tt.name, got, tt.want)
			}
		}
	})
}

// TestInteropLibgearmanWorker: our client drives a worker process run by
// libgearman's gearman command.
func TestInteropLibgearmanWorker(t *testing.T) {
	t.Parallel()
	gearman := gearmandtest.Tool(t, "gearman")
	forEachServer(t, func(t *testing.T, srv testServer) {
		host, port := hostPort(t, srv.Addr)
		cmd := exec.Command(gearman, "-w", "-h", host, "-p", port, "-f", "tr", "--", "tr", "a-z", "A-Z")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		t.Cleanup(func() {
			_ = cmd.Process.Kill() // only the worker this test started, by its pid
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("gearman -w (pid %d) stderr: %s", pid, stderr.String())
			}
		})
		c := newTestClient(t, srv.Addr)
		ctx := testContext(t, 20*time.Second)
		for i := range 5 {
			payload := "job " + strconv.Itoa(i) + " for a c worker"
			out, err := c.Do(ctx, runtime.Job{Function: "tr", Payload: []byte(payload)})
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if want := strings.ToUpper(payload); string(out) != want {
				t.Errorf("Do = %q, want %q", out, want)
			}
		}
		// Background jobs are taken too; the job leaves the server.
		task, err := c.Submit(ctx, runtime.Job{Function: "tr", Payload: []byte("bg"), Background: true, Unique: "interop-bg"})
		if err != nil {
			t.Fatal(err)
		}
		for {
			st, err := c.Status(ctx, task.Server, task.Handle)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Known {
				break
			}
			if ctx.Err() != nil {
				t.Fatal("background job never finished")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
