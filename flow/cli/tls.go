package cli

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"os"

	"github.com/gearflow/gearflow/internal/tlsfiles"
	"github.com/spf13/pflag"
)

// TLSFlags are the TLS options of the commands that connect to job
// servers (run --servers, worker, plan, and gearflow's submit and
// status), spelled the same in each.
type TLSFlags struct {
	// Log receives a line when the --tls-cert files are read again, and
	// a warning when they changed but cannot be read (the certificate
	// before is presented then). Nil means stderr.
	Log *slog.Logger

	on         bool
	ca         string
	cert       string
	key        string
	serverName string
}

// Register defines the flags on fs.
func (f *TLSFlags) Register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.on, "tls", false, "connect to the job servers with TLS, verifying them against the system's CAs (implied by the other --tls flags)")
	fs.StringVar(&f.ca, "tls-ca", "", "verify the job servers' certificates against the CA certificates in this PEM `file` instead of the system's")
	fs.StringVar(&f.cert, "tls-cert", "", "client certificate PEM `file` to present to servers that require one (with --tls-key; read again when it changes)")
	fs.StringVar(&f.key, "tls-key", "", "private key PEM `file` of --tls-cert")
	fs.StringVar(&f.serverName, "tls-server-name", "", "`name` the servers' certificates must carry (default: the host of each --servers address)")
}

// Config returns the TLS configuration the flags ask for, or nil when
// they ask for none (plaintext). Its client certificate is read again
// from --tls-cert and --tls-key at a handshake after they changed, and
// presented whatever CAs the server names as acceptable, so that a
// server that refuses it says why.
func (f *TLSFlags) Config() (*tls.Config, error) {
	if !f.on && f.ca == "" && f.cert == "" && f.key == "" && f.serverName == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.serverName}
	if f.ca != "" {
		pool, err := tlsfiles.CertPool("--tls-ca", f.ca)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (f.cert == "") != (f.key == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if f.cert != "" {
		// Read again when the files change: a long-running worker
		// presents a renewed certificate from its next connection on.
		log := f.Log
		if log == nil {
			log = slog.New(slog.NewTextHandler(os.Stderr, nil))
		}
		kp, err := tlsfiles.LoadKeyPair(f.cert, f.key, log)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = kp.GetClientCertificate
	}
	return cfg, nil
}
