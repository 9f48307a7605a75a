package server_test

import (
	"bufio"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/tlstest"
	"github.com/gearflow/gearflow/server"
)

// opensslAdmin sends line to addr through "openssl s_client" with args
// and returns the first line the server answers, or "" when the
// connection ends without one, and what s_client wrote to stderr.
func opensslAdmin(t *testing.T, addr, line string, args ...string) (reply, diag string) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed (apt-get install openssl)")
	}
	cmd := exec.Command(bin, append([]string{"s_client", "-connect", addr, "-quiet", "-verify_return_error"}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		got <- l
	}()
	_, _ = io.WriteString(stdin, line+"\n") // fails if s_client has quit
	select {
	case reply = <-got:
	case <-time.After(15 * time.Second):
		t.Errorf("openssl s_client %v: no reply or close in 15s", args)
	}
	cmd.Process.Kill() // by its pid; -quiet keeps it waiting on stdin
	cmd.Wait()
	return reply, stderr.String()
}

// TestTLSOpenSSLClient checks the TLS listener against OpenSSL's client:
// with a client certificate of the client CA it serves admin commands;
// without one, or with one from another CA, it refuses the connection.
func TestTLSOpenSSLClient(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	ts := startTLSServer(t, server.Config{TLS: tlstest.ServerConfig(p.serverCert, p.clientCA), Version: "gearflow-tls-test"})
	dir := t.TempDir()
	serverCA := p.serverCA.WriteCA(t, dir, "server-ca")
	goodCert, goodKey := tlstest.Write(t, p.clientCA.Issue(t, "ops"), dir, "good")
	otherCA := tlstest.NewCA(t, "other CA")
	badCert, badKey := tlstest.Write(t, otherCA.Issue(t, "ops"), dir, "bad")
	tests := []struct {
		name string
		args []string
		want string // the reply
		diag string // in s_client's stderr
	}{
		{"client certificate", []string{"-CAfile", serverCA, "-cert", goodCert, "-key", goodKey}, "OK gearflow-tls-test\n", "verify return:1"},
		{"TLS 1.2", []string{"-CAfile", serverCA, "-cert", goodCert, "-key", goodKey, "-tls1_2"}, "OK gearflow-tls-test\n", "verify return:1"},
		{"TLS 1.1", []string{"-CAfile", serverCA, "-cert", goodCert, "-key", goodKey, "-tls1_1"}, "", ""},
		{"no client certificate", []string{"-CAfile", serverCA}, "", "alert certificate required"},
		{"certificate of another CA", []string{"-CAfile", serverCA, "-cert", badCert, "-key", badKey}, "", "alert unknown ca"},
		{"untrusted server", []string{"-CAfile", filepath.Join(dir, "bad.pem"), "-cert", goodCert, "-key", goodKey}, "", "certificate verify failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, diag := opensslAdmin(t, ts.tlsAddr, "version", tt.args...)
			if got != tt.want || !strings.Contains(diag, tt.diag) {
				t.Errorf("version through openssl s_client = %q, want %q; stderr %q should say %q", got, tt.want, diag, tt.diag)
			}
		})
	}
}
