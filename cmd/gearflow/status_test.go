package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/runtime"
)

func TestStatus(t *testing.T) {
	t.Parallel()
	for kind, addr := range submitServers(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: []string{addr}, ClientID: "status-test"})
			if err != nil {
				t.Fatal(err)
			}
			w.Handle("ping", runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
				return nil, nil
			}))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = w.Run(ctx); close(done) }()
			t.Cleanup(func() { cancel(); <-done })
			// A job through the worker proves it has registered.
			c, err := runtime.NewClient(runtime.ClientConfig{Servers: []string{addr}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Do(t.Context(), runtime.Job{Function: "ping"}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Submit(t.Context(), runtime.Job{Function: "queued", Background: true}); err != nil {
				t.Fatal(err)
			}

			var stdout, stderr bytes.Buffer
			if code := cmdStatus(t.Context(), []string{"--servers", addr, "--json"}, &stdout, &stderr); code != 0 {
				t.Fatalf("status --json = %d; stderr:\n%s", code, stderr.String())
			}
			var got []serverStatus
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatalf("decode %q: %v", stdout.String(), err)
			}
			if len(got) != 1 || got[0].Server != addr {
				t.Fatalf("status = %+v", got)
			}
			funcs := map[string]runtime.FunctionStatus{}
			for _, f := range got[0].Functions {
				funcs[f.Function] = f
			}
			if f := funcs["ping"]; f.Workers != 1 || f.Total != 0 {
				t.Errorf("ping = %+v, want 1 worker and no jobs", f)
			}
			if f := funcs["queued"]; f.Total != 1 || f.Workers != 0 {
				t.Errorf("queued = %+v, want 1 job and no workers", f)
			}
			var worker *runtime.WorkerInfo
			for i, wk := range got[0].Workers {
				if wk.ClientID == "status-test" {
					worker = &got[0].Workers[i]
				}
			}
			if worker == nil || strings.Join(worker.Functions, ",") != "ping" || worker.Addr != "127.0.0.1" {
				t.Errorf("workers = %+v, want one with client id status-test serving ping", got[0].Workers)
			}

			stdout.Reset()
			if code := cmdStatus(t.Context(), []string{"--servers", addr}, &stdout, &stderr); code != 0 {
				t.Fatalf("status = %d; stderr:\n%s", code, stderr.String())
			}
			out := stdout.String()
			for _, want := range []string{"server " + addr, "FUNCTION", "TOTAL", "RUNNING", "WORKERS", "CLIENT-ID", "status-test", "queued"} {
				if !strings.Contains(out, want) {
					t.Errorf("table lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestStatusUnreachable(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	addr := submitClosedAddr(t)
	if code := cmdStatus(t.Context(), []string{"--servers", addr}, &stdout, &stderr); code != 1 {
		t.Errorf("status of a closed port = %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), addr) {
		t.Errorf("stderr %q does not name the server", stderr.String())
	}
	if code := cmdStatus(t.Context(), []string{"extra"}, &stdout, &stderr); code != 2 {
		t.Errorf("status with an argument = %d, want 2", code)
	}
}
