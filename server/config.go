package server

import (
	"crypto/tls"
	"log/slog"
	"os"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// Config configures a Server. The zero value is a working configuration:
// every field documents what its zero value means. Defaults are applied
// in one place, withDefaults.
type Config struct {
	// JobHandlePrefix starts every job handle ("PREFIX:N"). Zero means
	// "H:" followed by the host name, as gearmand does.
	JobHandlePrefix string

	// JobRetries is how many times a job may be lost with its worker
	// (worker disconnect, CANT_DO, CAN_DO_TIMEOUT expiry) before it is
	// dropped and its clients get WORK_FAIL. Zero means unlimited.
	// (gearmand 2.0's --job-retries=N maps to N, with -1 mapping to 0
	// and 0 to 1: "drop on the first loss".)
	JobRetries int

	// WorkerWakeup is how many sleeping workers get a NOOP when a job
	// becomes runnable. Zero means 1: one worker per job, and another
	// each time a woken worker takes a job while more are waiting, so
	// wake-ups never stampede every idle worker. gearmand's default of
	// waking all can be had with a large value.
	WorkerWakeup int

	// Exceptions makes every connection behave as if it had sent
	// OPTION_REQ "exceptions" (gearmand's --exceptions).
	Exceptions bool

	// MaxPacketSize caps the body of a packet read from a peer. A larger
	// packet gets ERROR ARGUMENT_TOO_LARGE and the connection is closed.
	// Zero means protocol.DefaultMaxPacketSize (64 MiB).
	MaxPacketSize int

	// MaxConnections caps open connections; further connections are
	// closed at once. Zero means 10,000.
	MaxConnections int

	// MaxOutboundBytes caps the bytes queued for one peer that it has not
	// read yet. A peer that exceeds it is cut off as a slow consumer; a
	// packet queued for a peer with nothing queued is always admitted.
	// It must be at least MaxPacketSize plus OutboundHeadroom, so that
	// the largest job can be assigned; New refuses less. Zero means
	// twice MaxPacketSize plus 1 MiB.
	MaxOutboundBytes int

	// MaxQueuedJobs caps the jobs (queued plus running) of one function;
	// a submission beyond it gets ERROR QUEUE_ERROR. Admin "maxqueue"
	// sets lower limits per function and priority. Zero means 10,000,000.
	MaxQueuedJobs int

	// WriteTimeout bounds one write to a peer; a peer that does not drain
	// its socket for this long is disconnected. Zero means 30 seconds.
	WriteTimeout time.Duration

	// ReadTimeout bounds the wait for the rest of a packet a peer has
	// begun to send: a peer that sends part of a header, body or admin
	// line and then nothing for this long is disconnected. (A long body
	// that keeps arriving is not cut off.) Zero means 60 seconds;
	// negative means no limit, as in gearmand.
	ReadTimeout time.Duration

	// IdleTimeout disconnects a peer that begins no packet for this
	// long. Zero or negative means never: a sleeping worker waits for
	// work without a word (PRE_SLEEP, then silence until NOOP), and a
	// client may wait as long for its job's result, so any value must be
	// longer than the longest job and the idlest worker.
	IdleTimeout time.Duration

	// MaxBufferBytes caps the memory all connections together hold in
	// packets being read (counted at twice their bytes received, what
	// their buffer may take) and in replies not yet written. Past it the
	// connections holding the most are closed, with a warning naming
	// them. Connections holding under 64 KiB are not counted. Zero means
	// 1 GiB, or 4 × MaxOutboundBytes when that is more.
	MaxBufferBytes int64

	// ShutdownTimeout bounds the drain of an admin "shutdown graceful":
	// running jobs have this long to finish before their connections
	// are closed. (A Shutdown called by the program is bounded by its
	// context instead.) Zero means 30 seconds.
	ShutdownTimeout time.Duration

	// AllowAdminShutdown enables the admin "shutdown [graceful]" command
	// (removed from gearmand in 1.1.15). Zero means disabled: the command
	// gets ERR UNKNOWN_COMMAND as in gearmand 1.1.20.
	AllowAdminShutdown bool

	// DataDir makes background jobs durable: each is written to a log
	// in this directory and synced before its JOB_CREATED goes out,
	// deleted when it ends, and queued again when a server starts with
	// the same directory (at-least-once: a job that ended just before a
	// crash may run again). Zero means jobs are kept in memory only and
	// a crash loses them. One server at a time may use a directory.
	DataDir string

	// TLS configures the listeners served with ServeTLS: certificates,
	// and, for access control, ClientAuth tls.RequireAndVerifyClientCert
	// with ClientCAs, which refuses at the handshake a peer without a
	// certificate those CAs signed. A MinVersion below TLS 1.2 is raised
	// to 1.2. Nil means ServeTLS refuses to serve; Serve is plaintext
	// either way.
	TLS *tls.Config

	// HandshakeTimeout bounds a TLS handshake: a peer that has not
	// completed one this long after connecting is disconnected. Zero
	// means 10 seconds.
	HandshakeTimeout time.Duration

	// AdminAllow, when not nil, limits the admin commands that change
	// state ("cancel job", "create function", "drop function",
	// "maxqueue", "shutdown") to peers with a verified TLS client
	// certificate whose subject common name or a DNS name is in the
	// list (compared without regard to case), and to plaintext
	// connections from a loopback address or a Unix socket. Others get
	// "ERR PERMISSION_DENIED ..." and the connection goes on; commands
	// that only read ("status", "workers", ...) stay open to all. An
	// empty, non-nil list allows them to local plaintext peers only.
	// Nil means every peer may run them, as in gearmand.
	AdminAllow []string

	// Version is reported by the admin "version" command. Zero means the
	// package's Version.
	Version string

	// Logger receives the server's logs. Nil means discard.
	Logger *slog.Logger
}

// OutboundHeadroom is what a packet the server sends may add to the
// largest body it accepts (the header and a job handle, in a JOB_ASSIGN
// of a submission of MaxPacketSize bytes): MaxOutboundBytes must be at
// least MaxPacketSize plus this.
const OutboundHeadroom = 4 << 10

// Version is the server version reported by the admin "version" command.
const Version = "gearflow-0.1.0"

const (
	defaultMaxConnections  = 10000
	defaultMaxQueuedJobs   = 10_000_000
	defaultWriteTimeout    = 30 * time.Second
	defaultShutdownTimeout = 30 * time.Second
	defaultReadTimeout     = 60 * time.Second
	defaultMaxBufferBytes  = 1 << 30
)

func (c Config) withDefaults() Config {
	if c.JobHandlePrefix == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		c.JobHandlePrefix = "H:" + host
	}
	if c.WorkerWakeup <= 0 {
		c.WorkerWakeup = 1
	}
	if c.MaxPacketSize <= 0 {
		c.MaxPacketSize = protocol.DefaultMaxPacketSize
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = defaultMaxConnections
	}
	if c.MaxOutboundBytes <= 0 {
		c.MaxOutboundBytes = 2*c.MaxPacketSize + 1<<20
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = defaultReadTimeout
	}
	if c.MaxBufferBytes <= 0 {
		c.MaxBufferBytes = max(defaultMaxBufferBytes, 4*int64(c.MaxOutboundBytes))
	}
	if c.MaxQueuedJobs <= 0 {
		c.MaxQueuedJobs = defaultMaxQueuedJobs
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = defaultWriteTimeout
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = defaultShutdownTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = defaultHandshakeTimeout
	}
	if c.Version == "" {
		c.Version = Version
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
