package tlsfiles_test

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

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
