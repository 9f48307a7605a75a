package server

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// TLS and access control.
//
// A listener given to ServeTLS yields *tls.Conn connections (so does any
// listener given to Serve that makes them, such as tls.NewListener's).
// Each one's handshake runs in its read loop's goroutine before the
// first read, bounded by HandshakeTimeout: a peer that connects and
// sends nothing, or plaintext, is closed then, and holds no more than
// a connection slot until it is. With Config.TLS asking for verified
// client certificates (tls.RequireAndVerifyClientCert), a peer without
// one, or with one another CA signed, fails the handshake: that is the
// access control of the job protocol. Config.AdminAllow further limits
// the admin commands that change state.

const defaultHandshakeTimeout = 10 * time.Second

// errNoTLSConfig is returned by ServeTLS for a server without Config.TLS.
var errNoTLSConfig = errors.New("server: ServeTLS needs Config.TLS")

// tlsConfig returns cfg for the server's listeners: at least TLS 1.2.
func tlsConfig(cfg *tls.Config) *tls.Config {
	if cfg == nil {
		return nil
	}
	cfg = cfg.Clone()
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	return cfg
}

// ServeTLS is Serve over TLS with Config.TLS: it accepts connections on
// l and serves each after a TLS handshake. A plaintext listener may be
// served beside it with Serve. It returns an error at once, closing l,
// when the server has no Config.TLS.
func (s *Server) ServeTLS(l net.Listener) error {
	if s.tls == nil {
		l.Close()
		return errNoTLSConfig
	}
	return s.serve(tls.NewListener(l, s.tls), true)
}

// tlsConn is the server's side of a TLS connection.
type tlsConn struct {
	*tls.Conn
	// names are the CN and DNS names of the peer's verified
	// certificate, for AdminAllow; set by the handshake, before the
	// read loop starts, and owned by it.
	names []string
}

// Close closes the socket without sending a close_notify alert: that is
// a write, which would wait up to five seconds for a peer that does not
// read (a slow consumer being cut off), and Gearman's packets carry
// their own lengths, so a peer cannot mistake a cut stream for a whole
// one.
func (c *tlsConn) Close() error { return c.NetConn().Close() }

// SyscallConn gives access to the socket's descriptor, for the number
// the admin "workers" command shows (connFD). Reads and writes go
// through the TLS connection only: rawConn, which reads and writes
// descriptors directly, takes plain sockets alone.
func (c *tlsConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.NetConn().(syscall.Conn)
	if !ok {
		return nil, errors.New("server: tls connection over a conn without a descriptor")
	}
	return sc.SyscallConn()
}

// handshake completes c's TLS handshake within HandshakeTimeout. It is
// called by the read loop's goroutine before the loop starts; on failure
// it closes the connection, and the loop ends at its first read.
func (c *conn) handshake(tc *tlsConn) {
	ctx, cancel := context.WithTimeout(context.Background(), c.srv.cfg.HandshakeTimeout)
	defer cancel()
	// The deadline also bounds the reads and writes of the handshake:
	// HandshakeContext alone checks ctx only between them on some paths.
	_ = tc.NetConn().SetDeadline(time.Now().Add(c.srv.cfg.HandshakeTimeout))
	err := tc.HandshakeContext(ctx)
	_ = tc.NetConn().SetDeadline(time.Time{})
	if err != nil {
		// Refused clients are worth a line: a wrong or expired
		// certificate is a common cause of an outage.
		c.log.Info("tls handshake failed", "err", err)
		c.close(err)
		return
	}
	st := tc.ConnectionState()
	if len(st.VerifiedChains) > 0 && len(st.VerifiedChains[0]) > 0 {
		leaf := st.VerifiedChains[0][0]
		if leaf.Subject.CommonName != "" {
			tc.names = append(tc.names, leaf.Subject.CommonName)
		}
		tc.names = append(tc.names, leaf.DNSNames...)
	}
	c.log.Debug("tls handshake done", "version", tls.VersionName(st.Version), "peer", tc.names)
}

// errAdminDenied refuses an admin command that changes state to a peer
// AdminAllow does not name.
var errAdminDenied = &clientError{Code: "PERMISSION_DENIED",
	Text: "admin+commands+that+change+state+need+an+allowed+client+certificate+or+a+loopback+connection"}

// changesState reports whether the admin command cmd changes the
// server's state, and is therefore subject to AdminAllow.
func (s *Server) changesState(cmd protocol.AdminCommand) bool {
	switch cmd.Kind {
	case protocol.AdminCancelJob, protocol.AdminCreateFunction, protocol.AdminDropFunction, protocol.AdminMaxQueue:
		return true
	case protocol.AdminShutdown:
		return s.cfg.AllowAdminShutdown // else unknown, as in gearmand
	}
	return false
}

// adminAllowed returns nil when c may run the admin command cmd, else
// the refusal: with AdminAllow set, a command that changes state needs
// a verified client certificate AdminAllow names, or, on a plaintext
// connection, a loopback or Unix socket peer.
func (s *Server) adminAllowed(c *conn, cmd protocol.AdminCommand) error {
	if s.cfg.AdminAllow == nil || !s.changesState(cmd) {
		return nil
	}
	tc, isTLS := c.nc.(*tlsConn)
	if !isTLS && localPeer(c.nc.RemoteAddr()) {
		return nil
	}
	var names []string
	if isTLS {
		names = tc.names
	}
	for _, n := range names {
		for _, a := range s.cfg.AdminAllow {
			// ASCII case only: with Unicode folding "opſ.example.com"
			// (U+017F) would pass for "ops.example.com".
			if protocol.EqualFoldASCII(n, a) {
				return nil
			}
		}
	}
	c.log.Warn("admin command refused", "cmd", cmd.Word, "tls", isTLS, "names", names)
	return errAdminDenied
}

// localPeer reports whether a is a loopback address or a Unix socket's.
func localPeer(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}
