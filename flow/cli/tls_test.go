package cli

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/tlstest"
	"github.com/spf13/pflag"
)

// tlsFlagsConfig parses args as the TLS flags and returns their Config.
func tlsFlagsConfig(t *testing.T, args ...string) (*tls.Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	var f TLSFlags
	f.Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f.Config()
}

func TestTLSFlagsErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	caFile := ca.WriteCA(t, dir, "ca")
	cert, key := tlstest.Write(t, ca.Issue(t, "client"), dir, "client")
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name string
		args []string
		err  string
	}{
		{"missing CA", []string{"--tls-ca", missing}, "--tls-ca: open " + missing + ": no such file or directory"},
		{"CA is a key", []string{"--tls-ca", key}, "--tls-ca: no PEM certificate in " + key},
		{"certificate without key", []string{"--tls-cert", cert}, "--tls-cert and --tls-key go together"},
		{"missing key", []string{"--tls-cert", cert, "--tls-key", missing}, "--tls-cert/--tls-key: open " + missing + ": no such file or directory"},
		{"key is a certificate", []string{"--tls-cert", cert, "--tls-key", caFile},
			"--tls-cert/--tls-key: tls: found a certificate rather than a key in the PEM for the private key"},
	}
	for _, tt := range tests {
		cfg, err := tlsFlagsConfig(t, tt.args...)
		if cfg != nil || err == nil || err.Error() != tt.err {
			t.Errorf("%s: Config() = %v, %v; want %q", tt.name, cfg, err, tt.err)
		}
	}
	if cfg, err := tlsFlagsConfig(t); cfg != nil || err != nil {
		t.Errorf("no flags: Config() = %v, %v; want plaintext (nil, nil)", cfg, err)
	}
}

// tlsPeer is a TLS server on loopback that requires client certificates
// of ca; each handshake sends the common name the client presented.
type tlsPeer struct {
	addr  string
	names chan string
}

func startTLSPeer(t *testing.T, ca *tlstest.CA) *tlsPeer {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", tlstest.ServerConfig(ca.Issue(t, "server", "127.0.0.1"), ca))
	if err != nil {
		t.Fatal(err)
	}
	p := &tlsPeer{addr: l.Addr().String(), names: make(chan string, 8)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			tc := nc.(*tls.Conn)
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			if err := tc.Handshake(); err != nil {
				p.names <- "handshake failed: " + err.Error()
			} else {
				p.names <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
				tc.Write([]byte{1}) // a TLS 1.3 client learns it was accepted on reading
			}
			tc.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return p
}

// handshake connects to p with cfg and returns the name p saw.
func (p *tlsPeer) handshake(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	tc, err := tls.DialWithDialer(d, "tcp", p.addr, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", p.addr, err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := tc.Read(make([]byte, 1)); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Errorf("read from %s: %v", p.addr, err)
	}
	select {
	case name := <-p.names:
		return name
	case <-time.After(10 * time.Second):
		t.Fatal("the server saw no handshake")
		return ""
	}
}

// TestTLSFlagsHandshake: the configuration of the flags verifies the
// server against --tls-ca and presents --tls-cert, over loopback.
func TestTLSFlagsHandshake(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	peer := startTLSPeer(t, ca)
	cert, key := tlstest.Write(t, ca.Issue(t, "worker"), dir, "worker")
	cfg, err := tlsFlagsConfig(t, "--tls-ca", ca.WriteCA(t, dir, "ca"), "--tls-cert", cert, "--tls-key", key)
	if err != nil {
		t.Fatal(err)
	}
	if got := peer.handshake(t, cfg); got != "worker" {
		t.Errorf("the server saw %q, want worker", got)
	}
}

// TestTLSFlagsCertificateRenewal: a configuration of the flags, made
// once as a long-running worker makes it, presents the renewed
// --tls-cert from the next handshake after its files changed, and the
// one before while a renewal is half-written.
func TestTLSFlagsCertificateRenewal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	peer := startTLSPeer(t, ca)
	cert, key := tlstest.Write(t, ca.Issue(t, "worker 1"), dir, "worker")
	var logs bytes.Buffer
	f := TLSFlags{Log: slog.New(slog.NewTextHandler(&logs, nil)), ca: ca.WriteCA(t, dir, "ca"), cert: cert, key: key}
	cfg, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	if got := peer.handshake(t, cfg); got != "worker 1" {
		t.Fatalf("the server saw %q, want worker 1", got)
	}
	// The renewal: new files renamed over the old ones.
	newCert, newKey := tlstest.Write(t, ca.Issue(t, "worker 2"), t.TempDir(), "worker")
	if err := os.Rename(newCert, cert); err != nil {
		t.Fatal(err)
	}
	if got := peer.handshake(t, cfg); got != "worker 1" {
		t.Errorf("with the certificate renewed and not yet its key: the server saw %q, want worker 1", got)
	}
	if err := os.Rename(newKey, key); err != nil {
		t.Fatal(err)
	}
	if got := peer.handshake(t, cfg); got != "worker 2" {
		t.Errorf("after the renewal: the server saw %q, want worker 2", got)
	}
	if !strings.Contains(logs.String(), "level=WARN msg=\"tls certificate not reloaded") || !strings.Contains(logs.String(), "tls certificate reloaded") {
		t.Errorf("log %q; want a warning for the half renewal and a line for the reload", logs.String())
	}
}
