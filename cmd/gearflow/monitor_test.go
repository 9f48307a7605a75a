package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServeHTTPFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"http", []string{"--check-args", "--http", "127.0.0.1:0", "--http-pprof"}, 0, ""},
		{"pprof alone", []string{"--check-args", "--pprof", "127.0.0.1:0"}, 0, ""},
		{"pprof same as http", []string{"--check-args", "--pprof", "127.0.0.1:9", "--http", "127.0.0.1:9"}, 0, ""},
		{"pprof elsewhere", []string{"--check-args", "--pprof", "127.0.0.1:8", "--http", "127.0.0.1:9"}, 2, "use --http 127.0.0.1:9 --http-pprof"},
		{"http-pprof without http", []string{"--check-args", "--http-pprof"}, 2, "--http-pprof needs --http ADDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := cmdServe(context.Background(), tt.args, &out, &errb)
			if code != tt.code || !strings.Contains(errb.String(), tt.msg) {
				t.Errorf("serve %v = %d, stderr %q; want %d containing %q", tt.args, code, errb.String(), tt.code, tt.msg)
			}
		})
	}
}

// TestServeHTTP runs `serve --http ADDR` with and without
// --http-pprof and checks what the endpoint serves; an address in use
// fails the command at start.
func TestServeHTTP(t *testing.T) {
	t.Parallel()
	for _, pprof := range []bool{false, true} {
		hl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		haddr := hl.Addr().String()
		hl.Close()
		args := []string{"-L", "127.0.0.1", "-p", freePort(t), "--http", haddr, "--log-level", "warn"}
		if pprof {
			args = append(args, "--http-pprof")
		}
		ctx, cancel := context.WithCancel(t.Context())
		exited := make(chan int, 1)
		var errb bytes.Buffer
		go func() { exited <- cmdServe(ctx, args, io.Discard, &errb) }()

		get := func(path string) (int, string) {
			resp, err := http.Get("http://" + haddr + path)
			if err != nil {
				return 0, err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		deadline := time.Now().Add(5 * time.Second)
		for code, _ := get("/healthz"); code != 200; code, _ = get("/healthz") {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("serve %v: /healthz not up: %s", args, errb.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `gearflow_server_info{version="gearflow-`+version+`"} 1`) {
			t.Errorf("serve %v: /metrics = %d, lacks the server's info line:\n%.300s", args, code, body)
		}
		if code, body := get("/"); code != 200 || !strings.Contains(body, "<title>gearflow server</title>") {
			t.Errorf("serve %v: / = %d %.100q", args, code, body)
		}
		want := http.StatusNotFound
		if pprof {
			want = http.StatusOK
		}
		if code, _ := get("/debug/pprof/cmdline"); code != want {
			t.Errorf("serve %v: /debug/pprof/cmdline = %d, want %d", args, code, want)
		}
		if !pprof {
			// The address is taken: a second server must not start.
			var errb2 bytes.Buffer
			code := cmdServe(t.Context(), []string{"-L", "127.0.0.1", "-p", freePort(t), "--http", haddr}, io.Discard, &errb2)
			if code != 1 || !strings.Contains(errb2.String(), "--http:") {
				t.Errorf("second serve on http %s = %d, %q; want 1 naming --http", haddr, code, errb2.String())
			}
		}
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("serve %v exited %d: %s", args, code, errb.String())
		}
	}
}
