package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/tlstest"
	"github.com/gearflow/gearflow/runtime"
)

func TestServeTLSFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	cert, key := tlstest.Write(t, ca.Issue(t, "server", "127.0.0.1"), dir, "server")
	caFile := ca.WriteCA(t, dir, "ca")
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"tls listen without cert", []string{"--check-args", "--tls-listen", "127.0.0.1:4731"}, 2, "--tls-listen needs --tls-cert and --tls-key"},
		{"cert without tls listen", []string{"--check-args", "--tls-cert", cert, "--tls-key", key}, 2, "need --tls-listen"},
		{"client CA without tls listen", []string{"--check-args", "--tls-client-ca", caFile}, 2, "need --tls-listen"},
		{"no listener at all", []string{"--check-args", "--listen", "none"}, 2, "--listen none leaves nothing to listen on"},
		{"bad tls address", []string{"--check-args", "--tls-listen", "4731", "--tls-cert", cert, "--tls-key", key}, 2, "--tls-listen \"4731\""},
		{"tls only", []string{"--check-args", "--listen", "none", "--tls-listen", "127.0.0.1:4731", "--tls-cert", cert, "--tls-key", key,
			"--tls-client-ca", caFile, "--admin-allow", "ops,ops2"}, 0, ""},
		{"key is not a key", []string{"-p", "0", "--tls-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", caFile}, 1, "--tls-cert/--tls-key"},
		{"client CA is not PEM", []string{"-p", "0", "--tls-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
			"--tls-client-ca", filepath.Join(dir, "server-key.pem")}, 1, "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := cmdServe(t.Context(), tt.args, &out, &errb)
			if code != tt.code || !strings.Contains(errb.String(), tt.msg) {
				t.Errorf("serve %v = %d, stderr %q; want %d containing %q", tt.args, code, errb.String(), tt.code, tt.msg)
			}
		})
	}
}

// TestServeCheckArgsFiles checks that --check-args reads the files serve
// reads at start, and fails as the start would on one it cannot use,
// without opening a listener or the data directory or creating a file.
func TestServeCheckArgsFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "ca")
	cert, key := tlstest.Write(t, ca.Issue(t, "server", "127.0.0.1"), dir, "server")
	caFile := ca.WriteCA(t, dir, "ca")
	missing := filepath.Join(dir, "missing.pem")
	noFolder := filepath.Join(dir, "no-such-folder", "serve.log")
	tlsArgs := func(cert, key string, more ...string) []string {
		return append([]string{"--tls-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key}, more...)
	}
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"missing certificate", tlsArgs(missing, key), "gearflow serve: --tls-cert/--tls-key: open " + missing + ": no such file or directory\n"},
		{"missing key", tlsArgs(cert, missing), "gearflow serve: --tls-cert/--tls-key: open " + missing + ": no such file or directory\n"},
		{"key is a certificate", tlsArgs(cert, caFile), "gearflow serve: --tls-cert/--tls-key: tls: found a certificate rather than a key in the PEM for the private key\n"},
		{"key of another certificate", tlsArgs(caFile, key), "gearflow serve: --tls-cert/--tls-key: tls: private key does not match public key\n"},
		{"missing client CA", tlsArgs(cert, key, "--tls-client-ca", missing), "gearflow serve: --tls-client-ca: open " + missing + ": no such file or directory\n"},
		{"client CA is a key", tlsArgs(cert, key, "--tls-client-ca", key), "gearflow serve: --tls-client-ca: no PEM certificate in " + key + "\n"},
		{"log file in a missing folder", []string{"-l", noFolder}, "gearflow serve: open " + noFolder + ": no such file or directory\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			args := append([]string{"--check-args", "-L", "127.0.0.1", "-p", "0"}, tt.args...)
			code := cmdServe(t.Context(), args, &out, &errb)
			if code != 1 || errb.String() != tt.msg {
				t.Errorf("serve %v = %d, stderr %q; want 1, %q", args, code, errb.String(), tt.msg)
			}
			// The start fails the same way, before it listens: should
			// it serve, the context ends it, with another exit code.
			out.Reset()
			errb.Reset()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			code = cmdServe(ctx, args[1:], &out, &errb)
			if code != 1 || errb.String() != tt.msg {
				t.Errorf("serve %v = %d, stderr %q; want 1, %q", args[1:], code, errb.String(), tt.msg)
			}
		})
	}

	// A pid file is written once serve listens: only the check is run.
	t.Run("pid file in a missing folder", func(t *testing.T) {
		t.Parallel()
		var out, errb bytes.Buffer
		code := cmdServe(t.Context(), []string{"--check-args", "-P", noFolder}, &out, &errb)
		if want := "gearflow serve: open " + noFolder + ": no such file or directory\n"; code != 1 || errb.String() != want {
			t.Errorf("serve --check-args -P %s = %d, stderr %q; want 1, %q", noFolder, code, errb.String(), want)
		}
	})

	// Good files pass, and the check leaves the data directory, the log
	// and pid files uncreated and a port in use alone.
	t.Run("good files", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		_, port, _ := net.SplitHostPort(l.Addr().String())
		sub := t.TempDir()
		dataDir, logFile, pidFile := filepath.Join(sub, "data"), filepath.Join(sub, "serve.log"), filepath.Join(sub, "serve.pid")
		args := []string{"--check-args", "-L", "127.0.0.1", "-p", port, "--data-dir", dataDir, "-l", logFile, "-P", pidFile,
			"--tls-listen", l.Addr().String(), "--tls-cert", cert, "--tls-key", key}
		var out, errb bytes.Buffer
		if code := cmdServe(t.Context(), args, &out, &errb); code != 0 {
			t.Fatalf("serve %v = %d, stderr %q; want 0", args, code, errb.String())
		}
		if !strings.Contains(errb.String(), "level=WARN msg=\"TLS without --tls-client-ca") {
			t.Errorf("serve %v: stderr %q; want the warning of a TLS listener without --tls-client-ca", args, errb.String())
		}
		for _, p := range []string{dataDir, logFile, pidFile} {
			if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("serve --check-args made %s (%v)", p, err)
			}
		}
		errb.Reset()
		args = append(args, "--tls-client-ca", caFile, "--log-level", "warn")
		if code := cmdServe(t.Context(), args, &out, &errb); code != 0 || errb.Len() != 0 {
			t.Errorf("serve %v = %d, stderr %q; want 0 and nothing", args, code, errb.String())
		}
	})
}

// tlsFiles are the certificate files of a TLS test: a CA that signs
// the server's certificate (for 127.0.0.1) and the clients'.
type tlsFiles struct {
	ca                   *tlstest.CA
	caFile               string
	serverCert, serverKy string
	dir                  string
}

func newTLSFiles(t *testing.T) tlsFiles {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "gearflow test CA")
	f := tlsFiles{ca: ca, caFile: ca.WriteCA(t, dir, "ca"), dir: dir}
	f.serverCert, f.serverKy = tlstest.Write(t, ca.Issue(t, "server", "127.0.0.1"), dir, "server")
	return f
}

// client writes a client certificate named cn and returns the flags
// that use it.
func (f tlsFiles) client(t *testing.T, cn string) []string {
	cert, key := tlstest.Write(t, f.ca.Issue(t, cn), f.dir, cn)
	return []string{"--tls-ca", f.caFile, "--tls-cert", cert, "--tls-key", key}
}

// TestServeTLS runs "gearflow serve" with a TLS listener that requires
// client certificates and an admin allow-list, beside its plaintext
// listener (on loopback by default), and drives it with gearflow's own
// commands: a worker process and a run over TLS, submit and status with
// and without certificates, and admin commands from two certificates.
func TestServeTLS(t *testing.T) {
	t.Parallel()
	bin := buildGearflow(t)
	f := newTLSFiles(t)
	logFile := filepath.Join(t.TempDir(), "serve.log")
	var plainAddr, tlsAddr string
	for attempt := 0; ; attempt++ {
		plain, tlsPort := freePort(t), freePort(t)
		proc := startProcess(t, bin, nil, "serve", "-p", plain, "--tls-listen", "127.0.0.1:"+tlsPort,
			"--tls-cert", f.serverCert, "--tls-key", f.serverKy, "--tls-client-ca", f.caFile,
			"--admin-allow", "ops", "--log-level", "info", "-l", logFile)
		plainAddr, tlsAddr = "127.0.0.1:"+plain, "127.0.0.1:"+tlsPort
		if ownServer(t, plainAddr, proc.cmd.Process.Pid) {
			break
		}
		proc.kill()
		if attempt == 2 {
			t.Fatal("serve did not get ports of its own in 3 attempts")
		}
	}
	ctx := testCtx(t, 60*time.Second)
	// Both listeners are up once the log says so; the plaintext one is
	// on loopback only, as --tls-listen makes it by default.
	deadline := time.Now().Add(5 * time.Second)
	for {
		log, _ := os.ReadFile(logFile)
		if strings.Contains(string(log), "addr="+tlsAddr+" tls=true") {
			if !strings.Contains(string(log), "addr="+plainAddr+" tls=false") {
				t.Fatalf("plaintext listener not on %s:\n%s", plainAddr, log)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TLS listener not up:\n%s", log)
		}
		time.Sleep(10 * time.Millisecond)
	}

	t.Run("run and worker over TLS", func(t *testing.T) {
		input, want := bigInput(t, 2000)
		startProcess(t, bin, nil, append([]string{"worker", "--servers", tlsAddr, "--concurrency", "2"}, f.client(t, "worker")...)...)
		out := filepath.Join(t.TempDir(), "wc.tsv")
		args := append([]string{wordcountYAML, "--servers", tlsAddr, "-p", "input=" + input, "-p", "out=" + out,
			"-p", "lines=200", "--state-dir", t.TempDir()}, f.client(t, "coordinator")...)
		code, stdout, stderr := runCmd(t, ctx, cmdRun, args...)
		if code != 0 {
			t.Fatalf("run over TLS: exit %d\n%s\n%s", code, stdout, stderr)
		}
		if got, _ := os.ReadFile(out); string(got) != want {
			t.Errorf("run over TLS: output differs from the expected counts (%d bytes, want %d)", len(got), len(want))
		}
	})

	t.Run("submit", func(t *testing.T) {
		args := append([]string{"--servers", tlsAddr, "-f", "tls.queued", "--background"}, f.client(t, "submitter")...)
		var stdout, stderr bytes.Buffer
		if code := submitMain(ctx, append(args, "payload"), nil, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "H:") {
			t.Fatalf("submit over TLS = %d, %q, %q; want a handle", code, stdout.String(), stderr.String())
		}
		stdout.Reset()
		stderr.Reset()
		noCert := []string{"--servers", tlsAddr, "--tls-ca", f.caFile, "-f", "tls.queued", "--background", "x"}
		if code := submitMain(ctx, noCert, nil, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "certificate required") {
			t.Errorf("submit without a client certificate = %d, %q; want exit 1 saying a certificate is required", code, stderr.String())
		}
	})

	t.Run("status", func(t *testing.T) {
		code, stdout, stderr := runCmd(t, ctx, cmdStatus, append([]string{"--servers", tlsAddr}, f.client(t, "viewer")...)...)
		if code != 0 || !strings.Contains(stdout, "tls.queued") {
			t.Errorf("status over TLS = %d, %q, %q; want the queued function listed", code, stdout, stderr)
		}
		code, _, stderr = runCmd(t, ctx, cmdStatus, "--servers", tlsAddr)
		if code != 1 {
			t.Errorf("plaintext status on the TLS port = %d (%s); want 1", code, stderr)
		}
		code, stdout, _ = runCmd(t, ctx, cmdStatus, "--servers", plainAddr)
		if code != 0 || !strings.Contains(stdout, "tls.queued") {
			t.Errorf("plaintext status on the plaintext port = %d, %q", code, stdout)
		}
	})

	t.Run("admin allow-list", func(t *testing.T) {
		cfg := func(cn string) runtime.Admin {
			cert := f.ca.Issue(t, cn)
			c := tlstest.ClientConfig(f.ca, cert)
			return runtime.Admin{TLS: c}
		}
		if got, err := cfg("ops").Command(ctx, tlsAddr, "maxqueue tls.queued 100"); err != nil || len(got) != 1 || got[0] != "OK" {
			t.Errorf("maxqueue with the allowed certificate = %q, %v", got, err)
		}
		_, err := cfg("app").Command(ctx, tlsAddr, "maxqueue tls.queued 1")
		if !errors.Is(err, runtime.ErrAdmin) || !strings.Contains(err.Error(), "PERMISSION_DENIED") {
			t.Errorf("maxqueue with another certificate: %v; want PERMISSION_DENIED", err)
		}
		if got, err := cfg("app").Status(ctx, tlsAddr); err != nil || len(got) == 0 {
			t.Errorf("status with another certificate = %v, %v; want it served", got, err)
		}
		if got, err := runtime.AdminCommand(ctx, plainAddr, "maxqueue tls.queued 50"); err != nil || got[0] != "OK" {
			t.Errorf("maxqueue from loopback plaintext = %q, %v", got, err)
		}
	})

	t.Run("plaintext to the TLS port", func(t *testing.T) {
		nc, err := net.Dial("tcp", tlsAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(15 * time.Second))
		if _, err := nc.Write([]byte("status\n")); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 64)
		n, err := nc.Read(b)
		if err == nil && bytes.Contains(b[:n], []byte("\t")) {
			t.Fatalf("plaintext status on the TLS port answered %q", b[:n])
		}
	})
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestServeCertificateReload runs "gearflow serve" and renews its
// certificate files while it runs: the next connection gets the new
// certificate, without a restart.
func TestServeCertificateReload(t *testing.T) {
	t.Parallel()
	bin := buildGearflow(t)
	f := newTLSFiles(t)
	logFile := filepath.Join(t.TempDir(), "serve.log")
	_, _, tlsAddr := startTLSServe(t, bin, logFile, "--tls-cert", f.serverCert, "--tls-key", f.serverKy)
	serverName := func() string {
		t.Helper()
		tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", tlsAddr, tlstest.ClientConfig(f.ca))
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		return tc.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := serverName(); got != "server" {
		t.Fatalf("server certificate %q, want server", got)
	}
	renewed, renewedKey := tlstest.Write(t, f.ca.Issue(t, "server renewed", "127.0.0.1"), t.TempDir(), "server")
	for _, r := range [][2]string{{renewed, f.serverCert}, {renewedKey, f.serverKy}} {
		if err := os.Rename(r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	if got := serverName(); got != "server renewed" {
		t.Errorf("after the renewal: server certificate %q, want server renewed", got)
	}
}

// TestWorkerCertificateRenewal runs a "gearflow worker" process over
// TLS, then renews its certificate files with a certificate of a new
// client CA and restarts the server with that CA only: the worker,
// still running, reconnects with the renewed certificate.
func TestWorkerCertificateRenewal(t *testing.T) {
	t.Parallel()
	bin := buildGearflow(t)
	f := newTLSFiles(t)
	caA, caB := tlstest.NewCA(t, "client CA A"), tlstest.NewCA(t, "client CA B")
	caAFile, caBFile := caA.WriteCA(t, f.dir, "clients-a"), caB.WriteCA(t, f.dir, "clients-b")
	logFile := filepath.Join(t.TempDir(), "serve.log")
	serveArgs := func(clientCA string) []string {
		return []string{"--tls-cert", f.serverCert, "--tls-key", f.serverKy, "--tls-client-ca", clientCA}
	}
	proc, plainAddr, tlsAddr := startTLSServe(t, bin, logFile, serveArgs(caAFile)...)
	workerCert, workerKey := tlstest.Write(t, caA.Issue(t, "worker"), f.dir, "worker")
	startProcess(t, bin, nil, "worker", "--servers", tlsAddr, "--tls-ca", f.caFile, "--tls-cert", workerCert, "--tls-key", workerKey)
	// workers returns the workers the server lists, over plaintext.
	workers := func() int {
		st, err := adminStatusOf(plainAddr)
		if err != nil {
			return -1
		}
		n := 0
		for _, fs := range st {
			n = max(n, fs.Workers)
		}
		return n
	}
	waitWorker := func(what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for workers() < 1 {
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(logFile)
				t.Fatalf("%s: no worker registered in 20s; server log:\n%s", what, log)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitWorker("first start")

	// The renewal, then a server that takes CA B only: the certificate
	// the worker read at start is refused there.
	renewed, renewedKey := tlstest.Write(t, caB.Issue(t, "worker"), t.TempDir(), "worker")
	for _, r := range [][2]string{{renewed, workerCert}, {renewedKey, workerKey}} {
		if err := os.Rename(r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	proc.kill()
	_, plain, _ := net.SplitHostPort(plainAddr)
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	if proc, _, _ = restartTLSServe(t, bin, logFile, plain, tlsPort, serveArgs(caBFile)...); proc == nil {
		t.Fatal("the restarted server did not get its ports back")
	}
	waitWorker("after the renewal and a restart")
}

// startTLSServe runs "gearflow serve" with a TLS listener (and its
// plaintext one on loopback) on fresh ports, with args added, logging
// to logFile, and returns it with both addresses once both listen.
func startTLSServe(t *testing.T, bin, logFile string, args ...string) (proc *process, plainAddr, tlsAddr string) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		plain, tlsPort := freePort(t), freePort(t)
		proc, plainAddr, tlsAddr = restartTLSServe(t, bin, logFile, plain, tlsPort, args...)
		if proc != nil {
			return proc, plainAddr, tlsAddr
		}
		if attempt == 2 {
			t.Fatal("serve did not get ports of its own in 3 attempts")
		}
	}
}

// restartTLSServe is startTLSServe on given ports; it returns a nil
// process if they are not its own.
func restartTLSServe(t *testing.T, bin, logFile, plain, tlsPort string, args ...string) (*process, string, string) {
	t.Helper()
	if err := os.Remove(logFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	plainAddr, tlsAddr := "127.0.0.1:"+plain, "127.0.0.1:"+tlsPort
	proc := startProcess(t, bin, nil, append([]string{"serve", "-p", plain, "--tls-listen", tlsAddr,
		"--log-level", "info", "-l", logFile}, args...)...)
	if !ownServer(t, plainAddr, proc.cmd.Process.Pid) {
		proc.kill()
		return nil, "", ""
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		log, _ := os.ReadFile(logFile)
		if strings.Contains(string(log), "addr="+tlsAddr+" tls=true") {
			return proc, plainAddr, tlsAddr
		}
		if time.Now().After(deadline) {
			t.Fatalf("TLS listener not up:\n%s", log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServeClientCAReload runs "gearflow serve" with --tls-client-ca
// and replaces the CA file while it runs, as a CA rotation does: from
// then on clients of the new CA are served and those of the old one
// refused, without a restart.
func TestServeClientCAReload(t *testing.T) {
	t.Parallel()
	bin := buildGearflow(t)
	f := newTLSFiles(t)
	caA, caB := tlstest.NewCA(t, "client CA A"), tlstest.NewCA(t, "client CA B")
	clientCAFile := caA.WriteCA(t, f.dir, "clients")
	logFile := filepath.Join(t.TempDir(), "serve.log")
	_, _, tlsAddr := startTLSServe(t, bin, logFile, "--tls-cert", f.serverCert, "--tls-key", f.serverKy, "--tls-client-ca", clientCAFile)
	ctx := testCtx(t, 60*time.Second)
	status := func(ca *tlstest.CA) error {
		admin := runtime.Admin{TLS: tlstest.ClientConfig(f.ca, ca.Issue(t, "client"))}
		_, err := admin.Status(ctx, tlsAddr)
		return err
	}
	if err := status(caA); err != nil {
		t.Fatalf("client of CA A with A in --tls-client-ca: %v", err)
	}
	if err := status(caB); err == nil {
		t.Fatal("client of CA B with A in --tls-client-ca: served")
	}

	// The rotation: a new file renamed over the old one.
	tmp := clientCAFile + ".new"
	if err := os.WriteFile(tmp, caB.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, clientCAFile); err != nil {
		t.Fatal(err)
	}
	if err := status(caB); err != nil {
		t.Errorf("client of CA B after the file changed to B: %v", err)
	}
	if err := status(caA); err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Errorf("client of CA A after the file changed to B: %v; want unknown certificate authority", err)
	}
	if log, _ := os.ReadFile(logFile); !strings.Contains(string(log), "tls CA file reloaded") {
		t.Errorf("the log does not say the CA file was reloaded:\n%s", log)
	}
}
