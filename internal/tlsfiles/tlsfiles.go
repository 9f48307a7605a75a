// Package tlsfiles reads the PEM files of the TLS flags of gearflow's
// commands (serve's --tls-cert, --tls-key and --tls-client-ca; the
// clients' and workers' --tls-ca, --tls-cert and --tls-key). Key pairs
// and serve's client CAs are read again when their files change, so
// that a renewed certificate or a rotated client CA takes effect at the
// next handshake, without a restart; --tls-ca is read once.
//
// A file is read again when its modification time, size or identity
// (a rename or a symbolic link moved over it) differs from when it was
// last read; each handshake looks, at the cost of a stat per file. A
// changed file that cannot be used (half-written by a renewal, a key
// that does not match its certificate yet) keeps what was read before,
// with a warning logged once per such state of the files.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
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

// KeyPairFlags names the flags of a key pair in its errors.
const KeyPairFlags = "--tls-cert/--tls-key"

// loadKeyPair is tls.LoadX509KeyPair with the flags' names in its error.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", KeyPairFlags, err)
	}
	return &cert, nil
}

// KeyPair is a certificate and its private key, read from their PEM
// files again when they change. Its methods are safe for concurrent use.
type KeyPair struct {
	files *watched[*tls.Certificate]
}

// LoadKeyPair reads a certificate chain and its key from certFile and
// keyFile, as tls.LoadX509KeyPair does; failed reloads are logged to
// log. Its error begins with KeyPairFlags.
func LoadKeyPair(certFile, keyFile string, log *slog.Logger) (*KeyPair, error) {
	w, err := watch([]string{certFile, keyFile}, "tls certificate", log, func() (*tls.Certificate, error) {
		return loadKeyPair(certFile, keyFile)
	})
	if err != nil {
		return nil, err
	}
	return &KeyPair{files: w}, nil
}

// Certificate returns the certificate, read again first if its files
// changed. Its Leaf is set.
func (k *KeyPair) Certificate() *tls.Certificate { return k.files.current() }

// GetCertificate is the server's tls.Config.GetCertificate: the current
// certificate, whatever the client asks for.
func (k *KeyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.Certificate(), nil
}

// GetClientCertificate is the client's tls.Config.GetClientCertificate:
// the current certificate. It is sent even when the server names other
// CAs as acceptable (crypto/tls's Certificates would send none then), so
// that a server that refuses it says why ("unknown certificate
// authority") rather than that none was sent.
func (k *KeyPair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.Certificate(), nil
}

// Pool is a pool of CA certificates read from a PEM file, read again
// when the file changes. Its methods are safe for concurrent use.
type Pool struct {
	files *watched[*x509.CertPool]
}

// LoadPool reads the CA certificates of file, as CertPool does (its
// errors begin with flag); failed reloads are logged to log.
func LoadPool(flag, file string, log *slog.Logger) (*Pool, error) {
	w, err := watch([]string{file}, "tls CA file", log, func() (*x509.CertPool, error) {
		return CertPool(flag, file)
	})
	if err != nil {
		return nil, err
	}
	return &Pool{files: w}, nil
}

// CertPool returns the pool, read again first if its file changed. The
// same pool is returned until then.
func (p *Pool) CertPool() *x509.CertPool { return p.files.current() }

// FollowClientCAs makes cfg, a server's configuration, verify client
// certificates against clientCAs as they are at each handshake: it sets
// cfg.ClientCAs to the current pool and cfg.GetConfigForClient to a
// function returning a copy of cfg, as it is when FollowClientCAs is
// called, with the pool of the moment; so it is called last, once cfg
// is complete (a change to cfg or its clones afterwards does not reach
// the handshakes). The copy is made again only when the pool changes.
// Connections already made stay as they are: a client whose CA was
// taken out is refused at its next handshake.
func FollowClientCAs(cfg *tls.Config, clientCAs *Pool) {
	cfg.ClientCAs = clientCAs.CertPool()
	base := cfg.Clone()
	f := &followCAs{base: base, cas: clientCAs, pool: cfg.ClientCAs, cfg: base}
	cfg.GetConfigForClient = f.configForClient
}

// followCAs is the GetConfigForClient of FollowClientCAs.
type followCAs struct {
	base *tls.Config // the server's configuration, without GetConfigForClient
	cas  *Pool

	mu   sync.Mutex     // guards the fields below
	pool *x509.CertPool // cfg's ClientCAs
	cfg  *tls.Config    // base with pool; never modified once made
}

func (f *followCAs) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	pool := f.cas.CertPool()
	f.mu.Lock()
	defer f.mu.Unlock()
	if pool != f.pool {
		cfg := f.base.Clone()
		cfg.ClientCAs = pool
		f.pool, f.cfg = pool, cfg
	}
	return f.cfg, nil
}

// watched is a value read from files, read again when they change.
type watched[T any] struct {
	files []string
	what  string // names the value in logs
	log   *slog.Logger
	read  func() (T, error)

	mu     sync.Mutex // guards the fields below; held while reading
	value  T
	state  []os.FileInfo // of the files when value was read; nil: unknown
	warned bool          // a failed reload was logged, for the files in state failed
	failed []os.FileInfo // nil: a file was missing
}

// watch reads the value of files with read, and returns it watched.
func watch[T any](files []string, what string, log *slog.Logger, read func() (T, error)) (*watched[T], error) {
	w := &watched[T]{files: files, what: what, log: log, read: read}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	// The state is taken before the read, so that a change during the
	// read is seen at the next look. A file missing now fails the read,
	// whose error names it and its flag.
	st, _ := w.stat()
	v, err := read()
	if err != nil {
		return nil, err
	}
	w.value, w.state = v, st
	return w, nil
}

// stat returns the state of the files, or nil and the error of a file
// that cannot be found.
func (w *watched[T]) stat() ([]os.FileInfo, error) {
	st := make([]os.FileInfo, len(w.files))
	for i, name := range w.files {
		fi, err := os.Stat(name)
		if err != nil {
			return nil, err
		}
		st[i] = fi
	}
	return st, nil
}

// current returns the value, read again first if the files changed.
// When they cannot be read, it returns the value before and logs a
// warning, once for each state of the files.
func (w *watched[T]) current() T {
	st, err := w.stat()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil && same(st, w.state) {
		w.warned = false
		return w.value
	}
	if w.warned && same(st, w.failed) {
		return w.value
	}
	if err == nil {
		v, rerr := w.read()
		if rerr == nil {
			w.value, w.state, w.warned = v, st, false
			w.log.Info(w.what+" reloaded", "file", w.files[0])
			return v
		}
		err = rerr
	}
	// A renewal may write the files one after the other, or remove one
	// before writing it again: the value before stays until they are
	// whole.
	w.warned, w.failed = true, st
	w.log.Warn(w.what+" not reloaded; keeping the previous one", "file", w.files[0], "err", err)
	return w.value
}

// same reports whether two states of the same files are the same.
func same(a, b []os.FileInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !os.SameFile(a[i], b[i]) || !a[i].ModTime().Equal(b[i].ModTime()) || a[i].Size() != b[i].Size() {
			return false
		}
	}
	return true
}
