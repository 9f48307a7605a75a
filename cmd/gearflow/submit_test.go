package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/cliflag"
	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/runtime"
	"github.com/gearflow/gearflow/server"
)

// submitServers starts one job server of each kind. The tests that use
// them leave jobs queued on purpose: a background job for status to
// list, a job due in an hour.
func submitServers(t *testing.T) map[string]string {
	ours := servertest.Start(t, server.Config{})
	ours.AllowLeftoverJobs()
	return map[string]string{
		"gearmand": gearmandtest.Start(t).Addr,
		"gearflow": ours.Addr,
	}
}

// submitTestWorker serves the functions the submit tests call, until the
// test ends.
func submitTestWorker(t *testing.T, addr string) {
	t.Helper()
	w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: []string{addr}, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	w.Handle("shout", runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
		for _, part := range bytes.Fields(job.Payload) {
			if err := job.SendData(append(bytes.ToUpper(part), ' ')); err != nil {
				return nil, err
			}
		}
		if err := job.SendWarning([]byte("loud")); err != nil {
			return nil, err
		}
		return []byte("done\n"), nil
	}))
	w.Handle("fail", runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
		return nil, errors.New("no")
	}))
	w.Handle("throw", runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
		return nil, runtime.Exception(errors.New("bad payload " + string(job.Payload)))
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestSubmit(t *testing.T) {
	t.Parallel()
	for kind, addr := range submitServers(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			submitTestWorker(t, addr)
			future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
			tests := []struct {
				name      string
				args      []string
				stdin     string
				code      int
				stdout    string // exact, unless handle is set
				handle    bool   // stdout is a job handle
				stderrHas string
			}{
				{"arg payload", []string{"-f", "shout", "hello big world"}, "", 0, "HELLO BIG WORLD done\n", false, "warning: loud"},
				{"stdin payload", []string{"-f", "shout"}, "from stdin", 0, "FROM STDIN done\n", false, ""},
				{"high priority", []string{"-f", "shout", "--priority", "high", "x"}, "", 0, "X done\n", false, ""},
				{"low priority with unique", []string{"-f", "shout", "--priority", "low", "-u", "cli-1", "y"}, "", 0, "Y done\n", false, ""},
				{"fail", []string{"-f", "fail", "x"}, "", 1, "", false, "failed"},
				{"exception", []string{"-f", "throw", "zz"}, "", 1, "", false, "bad payload zz"},
				{"background", []string{"-f", "shout", "--background", "bg"}, "", 0, "", true, ""},
				{"at a time", []string{"-f", "nobody", "--at", future, "later"}, "", 0, "", true, ""},
				{"no function", []string{"x"}, "", 2, "", false, "usage"},
				{"bad priority", []string{"-f", "shout", "--priority", "urgent", "x"}, "", 2, "", false, "usage"},
				{"bad time", []string{"-f", "shout", "--at", "tomorrow", "x"}, "", 2, "", false, "--at"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					var stdout, stderr bytes.Buffer
					args := append([]string{"--servers", addr, "--timeout", "20s"}, tt.args...)
					code := submitMain(t.Context(), args, strings.NewReader(tt.stdin), &stdout, &stderr)
					if code != tt.code {
						t.Fatalf("gearflow submit %q = %d, want %d; stderr:\n%s", args, code, tt.code, stderr.String())
					}
					if tt.handle {
						if h := strings.TrimSpace(stdout.String()); !strings.HasPrefix(h, "H:") {
							t.Errorf("stdout %q, want a job handle", stdout.String())
						}
					} else if stdout.String() != tt.stdout {
						t.Errorf("stdout %q, want %q", stdout.String(), tt.stdout)
					}
					if !strings.Contains(stderr.String(), tt.stderrHas) {
						t.Errorf("stderr %q, want it to contain %q", stderr.String(), tt.stderrHas)
					}
				})
			}
		})
	}
}

func TestSubmitNoServer(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := submitMain(t.Context(), []string{"--servers", submitClosedAddr(t), "-f", "x", "y"}, strings.NewReader(""), &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "no job server available") {
		t.Errorf("submit to a closed port = %d, stderr %q", code, stderr.String())
	}
}

// submitClosedAddr returns a loopback address nothing listens on.
func submitClosedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestSubmitServersFromEnv cannot run in parallel: it sets GEARMAN_SERVERS.
func TestSubmitServersFromEnv(t *testing.T) {
	addr := servertest.Start(t, server.Config{}).Addr
	submitTestWorker(t, addr)
	t.Setenv("GEARMAN_SERVERS", addr)
	var stdout, stderr bytes.Buffer
	if code := submitMain(t.Context(), []string{"-f", "shout", "env"}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("submit = %d; stderr:\n%s", code, stderr.String())
	}
	if got, want := stdout.String(), "ENV done\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
}

func TestSplitServerList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
	}{
		{"127.0.0.1:4730", []string{"127.0.0.1:4730"}},
		{"a:1, b:2,,", []string{"a:1", "b:2"}},
		{"gearman-host", []string{"gearman-host:4730"}},
		{"[::1]", []string{"[::1]:4730"}},
		{"[::1]:99", []string{"[::1]:99"}},
	}
	for _, tt := range tests {
		got := cliflag.SplitServers(tt.in)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("cliflag.SplitServers(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
