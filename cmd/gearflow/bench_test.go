package main

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/internal/loadgen"
)

func TestBenchJSON(t *testing.T) {
	t.Parallel()
	s := gearmandtest.Start(t, "--threads=0")
	tests := []struct {
		name   string
		args   []string
		phases []string
		jobs   int64
	}{
		{"fg", []string{"--clients", "2", "--inflight", "4", "--workers", "2", "--payload", "1KiB", "--jobs", "300"}, []string{"fg"}, 300},
		{"bg", []string{"--mode", "bg", "--clients", "2", "--inflight", "8", "--workers", "2", "--jobs", "400"}, []string{"submit", "drain"}, 400},
		{"bg-queued", []string{"--mode", "bg", "--workers", "0", "--jobs", "100"}, []string{"submit"}, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			args := append([]string{"--server", s.Addr, "--json", "--timeout", "30s"}, tt.args...)
			if code := cmdBench(t.Context(), args, &stdout, &stderr); code != 0 {
				t.Fatalf("cmdBench(%q) = %d, stderr:\n%s", args, code, stderr.String())
			}
			var res loadgen.Result
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				t.Fatalf("decode %q: %v", stdout.String(), err)
			}
			if len(res.Phases) != len(tt.phases) {
				t.Fatalf("phases %+v, want %v", res.Phases, tt.phases)
			}
			for i, p := range res.Phases {
				if p.Name != tt.phases[i] || p.Jobs != tt.jobs || p.Errors != 0 {
					t.Errorf("phase %+v, want %s with %d jobs and no errors", p, tt.phases[i], tt.jobs)
				}
			}
			if res.Server != s.Addr {
				t.Errorf("server %q, want %q", res.Server, s.Addr)
			}
		})
	}
}

func TestBenchTable(t *testing.T) {
	t.Parallel()
	s := gearmandtest.Start(t, "--threads=0")
	var stdout, stderr bytes.Buffer
	args := []string{"--server", s.Addr, "--jobs", "50", "--clients", "1", "--inflight", "1", "--workers", "1"}
	if code := cmdBench(t.Context(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("cmdBench = %d, stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"jobs/s", "p99", "errors", " fg ", " 50 "} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestBenchUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"bad-mode", []string{"--mode", "sideways"}, 2},
		{"bad-payload", []string{"--payload", "lots"}, 2},
		{"unknown-flag", []string{"--nope"}, 2},
		{"extra-arg", []string{"extra"}, 2},
		{"bad-timeout", []string{"--timeout", "0s"}, 2},
		{"bad-clients", []string{"--clients", "-3"}, 2},
		{"help", []string{"-h"}, 0},
		{"no-server", []string{"--server", closedAddr(t), "--jobs", "1", "--timeout", "5s"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			if code := cmdBench(t.Context(), tt.args, &stdout, &stderr); code != tt.code {
				t.Errorf("cmdBench(%q) = %d, want %d; stderr:\n%s", tt.args, code, tt.code, stderr.String())
			}
		})
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
