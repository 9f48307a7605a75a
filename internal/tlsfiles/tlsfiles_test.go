package tlsfiles_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/tlsfiles"
	"github.com/gearflow/gearflow/internal/tlstest"
)

func TestCertPool(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b, other := tlstest.NewCA(t, "a"), tlstest.NewCA(t, "b"), tlstest.NewCA(t, "other")
	both := filepath.Join(dir, "both.pem")
	if err := os.WriteFile(both, append(append([]byte{}, a.PEM...), b.PEM...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, key := tlstest.Write(t, a.Issue(t, "leaf"), dir, "leaf")
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name string
		file string
		err  string
	}{
		{"missing", missing, "--tls-ca: open " + missing + ": no such file or directory"},
		{"a key, no certificate", key, "--tls-ca: no PEM certificate in " + key},
		{"empty", filepath.Join(dir, "empty.pem"), "--tls-ca: no PEM certificate in " + filepath.Join(dir, "empty.pem")},
	}
	if err := os.WriteFile(tests[2].file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		pool, err := tlsfiles.CertPool("--tls-ca", tt.file)
		if pool != nil || err == nil || err.Error() != tt.err {
			t.Errorf("%s: CertPool = %v, %v; want %q", tt.name, pool, err, tt.err)
		}
	}

	pool, err := tlsfiles.CertPool("--tls-client-ca", both)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(ca *tlstest.CA) error {
		leaf := ca.Issue(t, "client").Leaf
		_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		return err
	}
	if err := verify(a); err != nil {
		t.Errorf("a certificate of the first CA of the file: %v", err)
	}
	if err := verify(b); err != nil {
		t.Errorf("a certificate of the second CA of the file: %v", err)
	}
	if err := verify(other); err == nil {
		t.Error("a certificate of a CA not in the file verified")
	}
}

// syncBuffer is a bytes.Buffer for a logger and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// replace writes data to file as a renewal does: into a new file
// renamed over it.
func replace(t *testing.T, file string, data []byte) {
	t.Helper()
	tmp := file + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// tlsServer serves cfg on loopback: each client it accepts gets one
// byte, and its connection is closed.
func tlsServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(10 * time.Second))
				nc.Write([]byte{1}) // fails with the handshake
			})
		}
	})
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return l.Addr().String()
}

// connect makes a TLS connection to addr with cfg and returns nil once
// the server has sent its byte, else the error.
func connect(addr string, cfg *tls.Config) error {
	_, err := connectState(addr, cfg)
	return err
}

// connectState is connect returning the connection's state too.
func connectState(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	tc, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	// TLS 1.3 lets the client finish before the server has checked its
	// certificate: a refusal comes with the first read.
	_, err = io.ReadFull(tc, make([]byte, 1))
	return tc.ConnectionState(), err
}

// TestFollowClientCAs: a server's client CA file is followed, over real
// handshakes on loopback. A certificate of the CA in the file is taken,
// one of a CA taken out of it is refused from the next handshake on
// (even one that would resume a session), and a broken file keeps the
// CAs before, with one warning.
func TestFollowClientCAs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	serverCA, a, b := tlstest.NewCA(t, "server CA"), tlstest.NewCA(t, "client CA A"), tlstest.NewCA(t, "client CA B")
	caFile := a.WriteCA(t, dir, "clients")
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cas, err := tlsfiles.LoadPool("--tls-client-ca", caFile, log)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{serverCA.Issue(t, "server", "127.0.0.1")}, ClientAuth: tls.RequireAndVerifyClientCert}
	tlsfiles.FollowClientCAs(cfg, cas)
	addr := tlsServer(t, cfg)

	clientA := tlstest.ClientConfig(serverCA, a.Issue(t, "a"))
	clientA.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	clientB := tlstest.ClientConfig(serverCA, b.Issue(t, "b"))
	if err := connect(addr, clientA); err != nil {
		t.Fatalf("client of CA A with A in the file: %v", err)
	}
	if err := connect(addr, clientB); err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Fatalf("client of CA B with A in the file: %v; want unknown certificate authority", err)
	}
	if st, err := connectState(addr, clientA); err != nil || !st.DidResume {
		t.Fatalf("client of CA A again: resumed %v, %v; want its session resumed", st.DidResume, err)
	}

	replace(t, caFile, b.PEM)
	if err := connect(addr, clientB); err != nil {
		t.Errorf("client of CA B after B replaced A: %v", err)
	}
	if err := connect(addr, clientA); err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Errorf("client of CA A after B replaced A (with a session to resume): %v; want unknown certificate authority", err)
	}
	clientA.ClientSessionCache = nil
	if err := connect(addr, clientA); err == nil {
		t.Error("client of CA A after B replaced A: taken")
	}
	if n := strings.Count(logs.String(), "tls CA file reloaded"); n != 1 {
		t.Errorf("%d reloads logged, want 1:\n%s", n, logs.String())
	}

	// A broken file, then none: B is still taken, with one warning each.
	replace(t, caFile, []byte("-----BEGIN CERTIFICATE-----\nMII"))
	for range 3 {
		if err := connect(addr, clientB); err != nil {
			t.Errorf("client of CA B with a broken file: %v", err)
		}
	}
	if err := os.Remove(caFile); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := connect(addr, clientB); err != nil {
			t.Errorf("client of CA B with no file: %v", err)
		}
	}
	if n := strings.Count(logs.String(), "level=WARN msg=\"tls CA file not reloaded; keeping the previous one\""); n != 2 {
		t.Errorf("%d warnings logged, want 2 (one for the broken file, one for none):\n%s", n, logs.String())
	}
	// Both CAs: both taken.
	replace(t, caFile, append(append([]byte{}, a.PEM...), b.PEM...))
	for _, c := range []*tls.Config{clientA, clientB} {
		if err := connect(addr, c); err != nil {
			t.Errorf("client with A and B in the file: %v", err)
		}
	}
}

// renew writes cert to the files of a key pair as a renewal does: each
// into a new file renamed over the old one, the certificate first.
func renew(t *testing.T, cert tls.Certificate, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	newCert, newKey := tlstest.Write(t, cert, dir, "renewed")
	for _, f := range [][2]string{{newCert, certFile}, {newKey, keyFile}} {
		if err := os.Rename(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKeyPairReload: a key pair is read again when its files change,
// over real handshakes on loopback, on both sides: the server presents
// its renewed certificate (GetCertificate) and the client its renewed
// one (GetClientCertificate) from the next handshake on. Files that
// cannot be used keep the certificate before, with one warning.
func TestKeyPairReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	serverCert, serverKey := tlstest.Write(t, ca.Issue(t, "server 1", "127.0.0.1"), dir, "server")
	clientCert, clientKey := tlstest.Write(t, ca.Issue(t, "client 1"), dir, "client")
	server, err := tlsfiles.LoadKeyPair(serverCert, serverKey, log)
	if err != nil {
		t.Fatal(err)
	}
	client, err := tlsfiles.LoadKeyPair(clientCert, clientKey, log)
	if err != nil {
		t.Fatal(err)
	}

	// The server sends the name of the client's certificate.
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: server.GetCertificate,
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			tc := nc.(*tls.Conn)
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			if tc.Handshake() == nil {
				tc.Write([]byte(tc.ConnectionState().PeerCertificates[0].Subject.CommonName + "\n"))
			}
			tc.Close()
		}
	})
	t.Cleanup(func() { l.Close(); wg.Wait() })
	clientCfg := &tls.Config{RootCAs: ca.Pool, GetClientCertificate: client.GetClientCertificate}
	// names returns the names of the server's and the client's
	// certificates in a new connection.
	names := func() (server, client string) {
		t.Helper()
		tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", l.Addr().String(), clientCfg)
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := io.ReadAll(tc)
		if err != nil {
			t.Fatal(err)
		}
		return tc.ConnectionState().PeerCertificates[0].Subject.CommonName, strings.TrimSpace(string(line))
	}
	if s, c := names(); s != "server 1" || c != "client 1" {
		t.Fatalf("certificates %q and %q, want server 1 and client 1", s, c)
	}

	renew(t, ca.Issue(t, "server 2", "127.0.0.1"), serverCert, serverKey)
	renew(t, ca.Issue(t, "client 2"), clientCert, clientKey)
	if s, c := names(); s != "server 2" || c != "client 2" {
		t.Errorf("after the renewals: certificates %q and %q, want server 2 and client 2", s, c)
	}
	if n := strings.Count(logs.String(), "tls certificate reloaded"); n != 2 {
		t.Errorf("%d reloads logged, want 2:\n%s", n, logs.String())
	}

	// Half a renewal: a certificate without its key, then a broken
	// key, then a missing one. Each keeps the certificate before, with
	// one warning, however many handshakes look.
	third := ca.Issue(t, "client 3")
	thirdCert, thirdKey := tlstest.Write(t, third, t.TempDir(), "third")
	steps := []struct {
		name string
		do   func() error
	}{
		{"new certificate, old key", func() error { return os.Rename(thirdCert, clientCert) }},
		{"broken key", func() error { return os.WriteFile(clientKey, []byte("-----BEGIN PRIVATE KEY-----\nMIG"), 0o600) }},
		{"no key", func() error { return os.Remove(clientKey) }},
	}
	for i, st := range steps {
		if err := st.do(); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, c := names(); c != "client 2" {
				t.Errorf("%s: client certificate %q, want client 2 kept", st.name, c)
			}
		}
		if n := strings.Count(logs.String(), "level=WARN msg=\"tls certificate not reloaded; keeping the previous one\""); n != i+1 {
			t.Errorf("%s: %d warnings logged, want %d:\n%s", st.name, n, i+1, logs.String())
		}
	}
	// The key arrives: the renewal is whole.
	if err := os.Rename(thirdKey, clientKey); err != nil {
		t.Fatal(err)
	}
	if _, c := names(); c != "client 3" {
		t.Errorf("after the key arrived: client certificate %q, want client 3", c)
	}
}

func TestLoadKeyPairErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	cert, key := tlstest.Write(t, ca.Issue(t, "leaf"), dir, "leaf")
	caFile := ca.WriteCA(t, dir, "ca")
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name      string
		cert, key string
		err       string
	}{
		{"missing certificate", missing, key, "--tls-cert/--tls-key: open " + missing + ": no such file or directory"},
		{"missing key", cert, missing, "--tls-cert/--tls-key: open " + missing + ": no such file or directory"},
		{"key of another certificate", caFile, key, "--tls-cert/--tls-key: tls: private key does not match public key"},
	}
	for _, tt := range tests {
		kp, err := tlsfiles.LoadKeyPair(tt.cert, tt.key, nil)
		if kp != nil || err == nil || err.Error() != tt.err {
			t.Errorf("%s: LoadKeyPair = %v, %v; want %q", tt.name, kp, err, tt.err)
		}
	}
	kp, err := tlsfiles.LoadKeyPair(cert, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := kp.Certificate(); c.Leaf == nil || c.Leaf.Subject.CommonName != "leaf" {
		t.Errorf("Certificate() = %v, want the leaf's, parsed", c.Leaf)
	}
}
