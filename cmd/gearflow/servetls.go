package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/gearflow/gearflow/internal/tlsfiles"
	"github.com/gearflow/gearflow/server"
	"github.com/spf13/pflag"
)

// serveTLSFlags are serve's TLS and access-control flags.
type serveTLSFlags struct {
	listen     string // --tls-listen
	cert, key  string
	clientCA   string
	adminAllow string
	adminSet   bool // --admin-allow was given (an empty list restricts too)
}

func (f *serveTLSFlags) register(fs *pflag.FlagSet, cfg *server.Config) {
	fs.StringVar(&f.listen, "tls-listen", "", "also listen for TLS connections on this `host:port` (with --tls-cert and --tls-key); the plaintext listener then defaults to 127.0.0.1 (set --listen to change it, --listen none to close it)")
	fs.StringVar(&f.cert, "tls-cert", "", "server certificate PEM `file` for --tls-listen (read again when it changes)")
	fs.StringVar(&f.key, "tls-key", "", "private key PEM `file` of --tls-cert (read again when it changes)")
	fs.StringVar(&f.clientCA, "tls-client-ca", "", "require TLS clients to present a certificate signed by a CA in this PEM `file`; others are refused at the handshake (read again when it changes)")
	fs.DurationVar(&cfg.HandshakeTimeout, "tls-handshake-timeout", 0, "disconnect a TLS peer that has not completed its handshake within this long (0 = 10s)")
	fs.Func("admin-allow", "limit admin commands that change state (cancel job, create/drop function, maxqueue, shutdown) to TLS clients whose certificate's common name or DNS name is in this comma-separated `list`, and to plaintext peers on loopback; others get ERR PERMISSION_DENIED (default: any peer, as gearmand)", func(s string) error {
		f.adminAllow, f.adminSet = s, true
		return nil
	})
}

// check validates the flags against the plaintext listen address (after
// "none" and the default have been applied) and returns a usage error.
func (f *serveTLSFlags) check(plainListen string, listenSet bool) error {
	switch {
	case f.listen == "" && (f.cert != "" || f.key != "" || f.clientCA != ""):
		return errors.New("--tls-cert, --tls-key and --tls-client-ca need --tls-listen")
	case f.listen != "" && (f.cert == "" || f.key == ""):
		return errors.New("--tls-listen needs --tls-cert and --tls-key")
	case f.listen == "" && listenSet && plainListen == "none":
		return errors.New("--listen none leaves nothing to listen on without --tls-listen")
	}
	if f.listen != "" {
		if _, _, err := net.SplitHostPort(f.listen); err != nil {
			return fmt.Errorf("--tls-listen %q: %v", f.listen, err)
		}
	}
	return nil
}

// config fills cfg's TLS and AdminAllow from the flags, loading the
// files.
func (f *serveTLSFlags) config(cfg *server.Config, logger *slog.Logger) error {
	if f.adminSet {
		cfg.AdminAllow = []string{}
		for _, n := range strings.Split(f.adminAllow, ",") {
			if n = strings.TrimSpace(n); n != "" {
				cfg.AdminAllow = append(cfg.AdminAllow, n)
			}
		}
	}
	if f.listen == "" {
		return nil
	}
	// Read again when the files change, so a renewed certificate is
	// served without a restart.
	kp, err := tlsfiles.LoadKeyPair(f.cert, f.key, logger)
	if err != nil {
		return err
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.GetCertificate}
	if f.clientCA != "" {
		// Read again when the file changes, as the certificate is: a
		// rotated client CA is used from the next handshake on.
		cas, err := tlsfiles.LoadPool("--tls-client-ca", f.clientCA, logger)
		if err != nil {
			return err
		}
		tc.ClientAuth = tls.RequireAndVerifyClientCert
		tlsfiles.FollowClientCAs(tc, cas)
	} else {
		logger.Warn("TLS without --tls-client-ca: any peer may connect to the TLS listener; its connections are encrypted, not authenticated")
	}
	if cfg.AdminAllow != nil && f.clientCA == "" {
		logger.Warn("--admin-allow without --tls-client-ca: no TLS client has a verified certificate, so only plaintext peers on loopback may change state")
	}
	cfg.TLS = tc
	return nil
}

// servedListener is a listener of serve and how the server serves it.
type servedListener struct {
	l   net.Listener
	tls bool
}

func (sl servedListener) serve(srv *server.Server) error {
	if sl.tls {
		return srv.ServeTLS(sl.l)
	}
	return srv.Serve(sl.l)
}

// openListeners opens the plaintext listener (unless plainAddr is "")
// and the TLS one (if any), closing what it opened on failure.
func (f *serveTLSFlags) openListeners(plainAddr string, lc net.ListenConfig) ([]servedListener, error) {
	var ls []servedListener
	if plainAddr != "" {
		l, err := lc.Listen(context.Background(), "tcp", plainAddr)
		if err != nil {
			return nil, err
		}
		ls = append(ls, servedListener{l: l})
	}
	if f.listen != "" {
		l, err := lc.Listen(context.Background(), "tcp", f.listen)
		if err != nil {
			for _, sl := range ls {
				sl.l.Close()
			}
			return nil, err
		}
		ls = append(ls, servedListener{l: l, tls: true})
	}
	return ls, nil
}
