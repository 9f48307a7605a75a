// Package tlsfiles reads the PEM files of the TLS flags of gearflow's
// commands: serve's --tls-client-ca, and the clients' and workers'
// --tls-ca.
package tlsfiles

import (
	"crypto/x509"
	"fmt"
	"os"
)

// CertPool returns a pool of the PEM certificates in file. Its errors
// begin with flag, the name of the flag that gave file: "--tls-ca: open
// ca.pem: no such file or directory", or "--tls-ca: no PEM certificate
// in ca.pem" for a file without one.
func CertPool(flag, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in %s", flag, file)
	}
	return pool, nil
}
