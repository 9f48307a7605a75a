package runtime_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/tlstest"
	"github.com/gearflow/gearflow/runtime"
	"github.com/gearflow/gearflow/server"
)

// tlsPKI is a server CA and certificate for 127.0.0.1, and a client CA.
type tlsPKI struct {
	serverCA, clientCA *tlstest.CA
	serverCert         tls.Certificate
}

func newTLSPKI(t *testing.T) tlsPKI {
	serverCA := tlstest.NewCA(t, "test server CA")
	return tlsPKI{serverCA: serverCA, clientCA: tlstest.NewCA(t, "test client CA"),
		serverCert: serverCA.Issue(t, "gearflow server", "127.0.0.1")}
}

// startTLSServer serves a gearflow server over TLS only, requiring
// client certificates of p.clientCA, on addr ("127.0.0.1:0" for a fresh
// port). It returns the address and a stop function (also run at the
// end of the test).
func startTLSServer(t *testing.T, p tlsPKI, addr string) (string, func()) {
	t.Helper()
	srv, err := server.New(server.Config{TLS: tlstest.ServerConfig(p.serverCert, p.clientCA), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var l net.Listener
	for attempt := 0; attempt < 50; attempt++ { // a restart's port may linger briefly
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(l) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Close()
			if err := <-done; !errors.Is(err, server.ErrServerClosed) {
				t.Errorf("ServeTLS returned %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return l.Addr().String(), stop
}

// TestTLSJobEndToEnd runs jobs from a client to a worker, both with
// client certificates, through a server that requires them; then
// restarts the server and runs another: both reconnect over TLS.
func TestTLSJobEndToEnd(t *testing.T) {
	t.Parallel()
	p := newTLSPKI(t)
	addr, stop := startTLSServer(t, p, "127.0.0.1:0")
	ctx := testContext(t, 30*time.Second)

	w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: []string{addr}, Logger: testLogger(t),
		TLS:          tlstest.ClientConfig(p.serverCA, p.clientCA.Issue(t, "worker")),
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w.Handle("upper", runtime.HandlerFunc(func(ctx context.Context, j *runtime.Job) ([]byte, error) {
		return bytes.ToUpper(j.Payload), nil
	}))
	wctx, cancelWorker := context.WithCancel(ctx)
	workerDone := make(chan struct{})
	go func() { defer close(workerDone); w.Run(wctx) }()
	defer func() { cancelWorker(); <-workerDone }()

	c, err := runtime.NewClient(runtime.ClientConfig{Servers: []string{addr}, Logger: testLogger(t),
		TLS:          tlstest.ClientConfig(p.serverCA, p.clientCA.Issue(t, "client")),
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := c.Do(ctx, runtime.Job{Function: "upper", Payload: []byte("over tls")}); err != nil || string(got) != "OVER TLS" {
		t.Fatalf("Do = %q, %v; want OVER TLS", got, err)
	}

	st, err := runtime.Admin{TLS: tlstest.ClientConfig(p.serverCA, p.clientCA.Issue(t, "ops"))}.Status(ctx, addr)
	if err != nil || len(st) != 1 || st[0].Function != "upper" || st[0].Workers != 1 {
		t.Errorf("Admin.Status over TLS = %+v, %v; want upper with one worker", st, err)
	}

	stop()
	startTLSServer(t, p, addr)
	// The client fails fast while the server is away; retry, bounded.
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := c.Do(ctx, runtime.Job{Function: "upper", Payload: []byte("again")})
		if err == nil {
			if string(got) != "AGAIN" {
				t.Fatalf("Do after restart = %q", got)
			}
			break
		}
		if !errors.Is(err, runtime.ErrConnectionLost) || time.Now().After(deadline) {
			t.Fatalf("Do after restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTLSRefused checks the runtime's errors when the server refuses the
// client's certificate, or the client the server's.
func TestTLSRefused(t *testing.T) {
	t.Parallel()
	p := newTLSPKI(t)
	addr, _ := startTLSServer(t, p, "127.0.0.1:0")
	otherCA := tlstest.NewCA(t, "other CA")
	tests := []struct {
		name string
		cfg  *tls.Config
		want string
	}{
		{"no client certificate", tlstest.ClientConfig(p.serverCA), "certificate required"},
		{"client certificate of another CA", tlstest.ClientConfig(p.serverCA, otherCA.Issue(t, "client")), "unknown certificate authority"},
		{"server certificate of an untrusted CA", tlstest.ClientConfig(otherCA, p.clientCA.Issue(t, "client")), "certificate signed by unknown authority"},
		{"server name not in the certificate", &tls.Config{RootCAs: p.serverCA.Pool, ServerName: "elsewhere.example.com",
			Certificates: []tls.Certificate{p.clientCA.Issue(t, "client")}}, "elsewhere.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := runtime.NewClient(runtime.ClientConfig{Servers: []string{addr}, TLS: tt.cfg, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Submit(testContext(t, 10*time.Second), runtime.Job{Function: "f", Payload: []byte("x"), Background: true})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Submit = %v; want an error saying %q", err, tt.want)
			}
		})
	}
	t.Run("plaintext client", func(t *testing.T) {
		t.Parallel()
		_, err := runtime.AdminStatus(testContext(t, 10*time.Second), addr)
		if err == nil {
			t.Fatal("plaintext admin status on the TLS port succeeded")
		}
	})
}
