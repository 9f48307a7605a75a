package server_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/tlstest"
	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

// tlsServer is a server with a TLS listener and a plaintext one, both on
// loopback ports the kernel picks, closed when the test ends.
type tlsServer struct {
	srv       *server.Server
	tlsAddr   string
	plainAddr string
}

func startTLSServer(t *testing.T, cfg server.Config) *tlsServer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() { done <- srv.ServeTLS(tl) }()
	go func() { done <- srv.Serve(pl) }()
	t.Cleanup(func() {
		srv.Close()
		for range 2 {
			if err := <-done; !errors.Is(err, server.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		}
		if st := srv.Stats(); st.Connections != 0 || st.Goroutines != 0 {
			t.Errorf("after Close: %d connections, %d goroutines", st.Connections, st.Goroutines)
		}
	})
	return &tlsServer{srv: srv, tlsAddr: tl.Addr().String(), plainAddr: pl.Addr().String()}
}

// pki is a server CA and certificate, and a client CA.
type pki struct {
	serverCA, clientCA *tlstest.CA
	serverCert         tls.Certificate
}

func newPKI(t *testing.T) pki {
	serverCA := tlstest.NewCA(t, "test server CA")
	return pki{serverCA: serverCA, clientCA: tlstest.NewCA(t, "test client CA"),
		serverCert: serverCA.Issue(t, "gearflow server", "127.0.0.1")}
}

// tlsEcho sends ECHO_REQ on nc and returns the ECHO_RES data or an error.
func tlsEcho(nc net.Conn, data string) (string, error) {
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(protocol.New(protocol.Req, protocol.EchoReq, []byte(data)).Append(nil)); err != nil {
		return "", err
	}
	p, err := protocol.NewReader(nc, protocol.ReaderConfig{}).ReadPacket()
	if err != nil {
		return "", err
	}
	if p.Type != protocol.EchoRes || len(p.Args) != 1 {
		return "", errors.New("unexpected reply " + p.Type.String())
	}
	return string(p.Args[0]), nil
}

// TestTLSClientCertificates checks that a server requiring client
// certificates serves a peer with a good one and refuses, at the
// handshake, one without, one from another CA, and plaintext.
func TestTLSClientCertificates(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	ts := startTLSServer(t, server.Config{TLS: tlstest.ServerConfig(p.serverCert, p.clientCA)})
	otherCA := tlstest.NewCA(t, "other CA")
	tests := []struct {
		name  string
		certs []tls.Certificate
		want  string // the handshake's alert; "" for success
	}{
		{"good certificate", []tls.Certificate{p.clientCA.Issue(t, "app")}, ""},
		{"no certificate", nil, "certificate required"},
		{"certificate from another CA", []tls.Certificate{otherCA.Issue(t, "app")}, "unknown certificate authority"},
		{"server's own CA, not the client CA", []tls.Certificate{p.serverCA.Issue(t, "app")}, "unknown certificate authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := tls.Dialer{Config: tlstest.ClientConfig(p.serverCA, tt.certs...)}
			nc, err := d.DialContext(t.Context(), "tcp", ts.tlsAddr)
			if err != nil {
				t.Fatalf("dial: %v", err) // TLS 1.3: the client's handshake ends before the server checks
			}
			defer nc.Close()
			got, err := tlsEcho(nc, "ping")
			if tt.want == "" {
				if err != nil || got != "ping" {
					t.Fatalf("echo = %q, %v; want ping", got, err)
				}
				if v := nc.(*tls.Conn).ConnectionState().Version; v < tls.VersionTLS12 {
					t.Errorf("TLS version %x, want at least 1.2", v)
				}
				return
			}
			if err == nil {
				t.Fatalf("echo = %q; want the connection refused", got)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("echo error %q does not say %q", err, tt.want)
			}
		})
	}
	t.Run("plaintext to the TLS port", func(t *testing.T) {
		t.Parallel()
		nc, err := net.Dial("tcp", ts.tlsAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		got, err := tlsEcho(nc, "ping")
		if err == nil {
			t.Fatalf("plaintext echo on the TLS port = %q; want refused", got)
		}
	})
}

// TestTLSMinVersion checks that a server configured without a minimum
// refuses TLS 1.1.
func TestTLSMinVersion(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	cfg := &tls.Config{Certificates: []tls.Certificate{p.serverCert}, MinVersion: tls.VersionTLS10}
	ts := startTLSServer(t, server.Config{TLS: cfg})
	d := tls.Dialer{Config: &tls.Config{RootCAs: p.serverCA.Pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}}
	nc, err := d.DialContext(t.Context(), "tcp", ts.tlsAddr)
	if err == nil {
		nc.Close()
		t.Fatal("TLS 1.1 handshake succeeded; want it refused")
	}
	d.Config.MaxVersion = tls.VersionTLS12
	nc, err = d.DialContext(t.Context(), "tcp", ts.tlsAddr)
	if err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	defer nc.Close()
	if got, err := tlsEcho(nc, "x"); err != nil || got != "x" {
		t.Fatalf("echo over TLS 1.2 = %q, %v", got, err)
	}
}

// TestTLSHandshakeTimeout checks that a peer that connects to the TLS
// port and sends nothing is disconnected after HandshakeTimeout, and
// holds no connection or goroutine afterwards.
func TestTLSHandshakeTimeout(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	ts := startTLSServer(t, server.Config{TLS: tlstest.ServerConfig(p.serverCert, p.clientCA), HandshakeTimeout: 200 * time.Millisecond})
	base := ts.srv.Stats().Goroutines
	nc, err := net.Dial("tcp", ts.tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := nc.Read(make([]byte, 1))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent peer: read %d bytes, %v; want the server to close the connection", n, err)
	}
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Errorf("closed after %v, before the 200ms handshake timeout", el)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := ts.srv.Stats()
		if st.Connections == 0 && st.Goroutines == base {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5s after the timeout: %d connections, %d goroutines (%d before)", st.Connections, st.Goroutines, base)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// adminLine sends an admin line on nc and reads one reply line.
func adminLine(t *testing.T, r *bufio.Reader, nc net.Conn, line string) string {
	t.Helper()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, line+"\n"); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	reply, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return reply
}

// TestAdminAllow checks that with AdminAllow set, an allowed certificate
// and a loopback plaintext peer may change state, another certificate
// gets ERR PERMISSION_DENIED for every such command and keeps a usable
// connection on which read-only commands still work.
func TestAdminAllow(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	ts := startTLSServer(t, server.Config{TLS: tlstest.ServerConfig(p.serverCert, p.clientCA),
		AdminAllow: []string{"ops.example.com"}, AllowAdminShutdown: true})
	dialTLS := func(t *testing.T, cert tls.Certificate) (net.Conn, *bufio.Reader) {
		d := tls.Dialer{Config: tlstest.ClientConfig(p.serverCA, cert)}
		nc, err := d.DialContext(t.Context(), "tcp", ts.tlsAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc, bufio.NewReader(nc)
	}
	const denied = "ERR PERMISSION_DENIED admin+commands+that+change+state+need+an+allowed+client+certificate+or+a+loopback+connection\r\n"

	t.Run("allowed by DNS name", func(t *testing.T) {
		nc, r := dialTLS(t, p.clientCA.Issue(t, "operator", "ops.example.com"))
		if got := adminLine(t, r, nc, "maxqueue allowed 5"); got != "OK\r\n" {
			t.Fatalf("maxqueue = %q, want OK", got)
		}
	})
	t.Run("allowed by common name", func(t *testing.T) {
		nc, r := dialTLS(t, p.clientCA.Issue(t, "OPS.example.com"))
		if got := adminLine(t, r, nc, "create function allowedcn"); got != "OK\r\n" {
			t.Fatalf("create function = %q, want OK", got)
		}
	})
	t.Run("Unicode look-alike common name", func(t *testing.T) {
		// "ſ" (U+017F) folds to "s" in
		// Unicode case folding; names compare in ASCII only.
		for _, cn := range []string{"op\u017f.example.com", "OP\u017F.EXAMPLE.COM"} {
			nc, r := dialTLS(t, p.clientCA.Issue(t, cn))
			if got := adminLine(t, r, nc, "maxqueue lookalike 0"); got != denied {
				t.Errorf("CN %q: maxqueue = %q, want it refused", cn, got)
			}
		}
	})
	t.Run("other certificate", func(t *testing.T) {
		nc, r := dialTLS(t, p.clientCA.Issue(t, "app", "app.example.com"))
		for _, cmd := range []string{"maxqueue refused 5", "create function refused", "drop function allowedcn",
			"cancel job H:x:1", "shutdown"} {
			if got := adminLine(t, r, nc, cmd); got != denied {
				t.Errorf("%s = %q, want %q", cmd, got, denied)
			}
		}
		// The connection goes on: read-only commands, and the job
		// protocol, still work on it.
		if got := adminLine(t, r, nc, "version"); !strings.HasPrefix(got, "OK ") {
			t.Errorf("version after refusals = %q", got)
		}
		if got := adminLine(t, r, nc, "status"); !strings.HasPrefix(got, "allowed\t") && !strings.HasPrefix(got, "allowedcn\t") {
			t.Errorf("status after refusals = %q, want the functions created by allowed peers", got)
		}
	})
	t.Run("plaintext from loopback", func(t *testing.T) {
		nc, err := net.Dial("tcp", ts.plainAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if got := adminLine(t, bufio.NewReader(nc), nc, "maxqueue local 7"); got != "OK\r\n" {
			t.Fatalf("maxqueue from loopback = %q, want OK", got)
		}
	})
	nc, err := net.Dial("tcp", ts.plainAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	got := adminLine(t, r, nc, "show maxqueue")
	for got != ".\n" {
		if strings.HasPrefix(got, "refused") {
			t.Errorf("a refused maxqueue took effect: %q", got)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		got = line
	}
}

// TestTLSWorkersList checks that the admin "workers" command lists a
// TLS connection with its socket's descriptor and address, as it does a
// plaintext one.
func TestTLSWorkersList(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	ts := startTLSServer(t, server.Config{TLS: tlstest.ServerConfig(p.serverCert, p.clientCA)})
	d := tls.Dialer{Config: tlstest.ClientConfig(p.serverCA, p.clientCA.Issue(t, "app"))}
	nc, err := d.DialContext(t.Context(), "tcp", ts.tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	line := adminLine(t, r, nc, "workers")
	f := strings.Fields(line)
	if len(f) < 3 || f[1] != "127.0.0.1" {
		t.Fatalf("workers line %q, want FD 127.0.0.1 ...", line)
	}
	if fd, err := strconv.Atoi(f[0]); err != nil || fd < 0 {
		t.Errorf("workers line %q: descriptor %q, want the socket's", line, f[0])
	}
}
