package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gearflow/gearflow/internal/cliflag"
	"github.com/gearflow/gearflow/internal/gearmandsqlite"
	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

// serveFlags are gearmand's user-facing flags where they make sense,
// plus gearflow's limits.
type serveFlags struct {
	port            string
	listen          string
	jobRetries      int
	workerWakeup    int
	handlePrefix    string
	exceptions      bool
	logLevel        string
	logFile         string
	pidFile         string
	shutdownTimeout time.Duration
	adminShutdown   bool
	pprof           string
	httpAddr        string
	httpPprof       bool
	checkArgs       bool
	threads         int
	tls             serveTLSFlags
	importSQLite    string
	importTable     string
	cfg             server.Config

	// gearmand's process and socket flags.
	daemon         bool
	user           string
	fileLimit      uint64
	showVersion    bool
	coredump       bool
	keepaliveIdle  int
	keepaliveIntvl int
	keepaliveCount int
}

func newServeFlagSet(stderr io.Writer) (*cliflag.Set, *serveFlags) {
	f := &serveFlags{}
	fs := cliflag.New("gearflow serve", "[flags]",
		"Runs a Gearman job server; gearmand's flags are accepted where they make sense\n(\"-p4730\", \"-L 127.0.0.1\", \"-t 0\").", stderr)
	fs.StringVarP(&f.port, "port", "p", "4730", "TCP port to listen on (env GEARMAND_PORT when left at the default)")
	fs.StringVarP(&f.listen, "listen", "L", "", "address to listen on for plaintext connections (default all addresses, or 127.0.0.1 with --tls-listen; none: no plaintext listener)")
	fs.IntVarP(&f.jobRetries, "job-retries", "j", -1, "times a job may be lost with its worker before it is dropped: -1 unlimited, 0 drop on the first loss, N after N losses (gearmand 2.0 meaning)")
	fs.IntVarP(&f.workerWakeup, "worker-wakeup", "w", 0, "sleeping workers woken per queued job (0 = one, then one more per job taken while work waits)")
	fs.StringVar(&f.handlePrefix, "job-handle-prefix", "", "job handle prefix (default H:<hostname>)")
	fs.BoolVar(&f.exceptions, "exceptions", false, "forward WORK_EXCEPTION to every client, as if each had sent OPTION_REQ exceptions")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error (gearmand's names also accepted)")
	fs.StringVar(&f.logLevel, "verbose", "info", "same as --log-level")
	fs.MarkHidden("verbose")
	fs.StringVarP(&f.logFile, "log-file", "l", "stderr", "log destination: a file path, stderr, or none")
	fs.StringVarP(&f.pidFile, "pid-file", "P", "", "write the process id to this file")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, `on SIGTERM/SIGINT or admin "shutdown graceful", how long running jobs may take to finish (a second signal exits at once)`)
	fs.BoolVar(&f.adminShutdown, "allow-admin-shutdown", false, `enable the admin "shutdown [graceful]" command`)
	fs.StringVar(&f.httpAddr, "http", "", "serve /metrics (Prometheus), /healthz, /api/status and a status page on this address, e.g. 127.0.0.1:9090 (no access control: keep it on loopback or behind a proxy; default off)")
	fs.BoolVar(&f.httpPprof, "http-pprof", false, "also serve net/http/pprof under /debug/pprof/ of --http")
	fs.StringVar(&f.pprof, "pprof", "", "same as --http ADDR --http-pprof (kept for old scripts)")
	fs.BoolVar(&f.checkArgs, "check-args", false, "check the flags and the files serve reads at start (TLS certificates, keys and CAs; the folders of the log and pid files), then exit; listeners and --data-dir are not tried")
	f.tls.register(fs.FlagSet, &f.cfg)
	fs.IntVar(&f.cfg.MaxPacketSize, "max-packet-size", 0, "largest packet body accepted, in bytes (0 = 64 MiB)")
	fs.IntVar(&f.cfg.MaxConnections, "max-connections", 0, "most open connections (0 = 10000)")
	fs.IntVar(&f.cfg.MaxOutboundBytes, "max-outbound-bytes", 0, "bytes queued for a peer that does not read before it is cut off; at least max-packet-size + 4 KiB (0 = 2 x max-packet-size + 1 MiB)")
	fs.IntVar(&f.cfg.MaxQueuedJobs, "max-queued-jobs", 0, "jobs per function, queued plus running (0 = 10,000,000)")
	fs.DurationVar(&f.cfg.WriteTimeout, "write-timeout", 0, "longest a write to a peer may block (0 = 30s)")
	fs.DurationVar(&f.cfg.ReadTimeout, "read-timeout", 0, "longest a peer may pause inside a packet it has begun to send before it is disconnected (0 = 60s, negative = never)")
	fs.DurationVar(&f.cfg.IdleTimeout, "idle-timeout", 0, "disconnect a peer that sends nothing for this long; must exceed the longest job and worker sleep (0 = never)")
	fs.StringVar(&f.cfg.DataDir, "data-dir", "", "keep background jobs in this directory: each is synced to disk before its JOB_CREATED and queued again after a restart or crash (default: in memory only, lost on a crash)")
	fs.StringVar(&f.importSQLite, "import-gearmand-sqlite", "", "before serving, add the jobs of this gearmand libsqlite3 queue file (--libsqlite3-db) to the --data-dir queue, once: the same jobs imported again add nothing")
	fs.StringVar(&f.importTable, "import-gearmand-table", gearmandsqlite.DefaultTable, "table of the --import-gearmand-sqlite file (gearmand's --libsqlite3-table)")
	fs.Int64Var(&f.cfg.MaxBufferBytes, "max-buffer-bytes", 0, "memory all connections may hold in packets being read and unsent replies; past it the biggest holders are disconnected (0 = 1 GiB or 4 x max-outbound-bytes)")
	fs.IntVarP(&f.threads, "threads", "t", -1, "threads running the server at once (GOMAXPROCS): 0 or 1 = one thread does all I/O, like gearmand --threads 0; -1 = one per core")
	// gearmand's process flags (Debian's unit passes --daemon).
	fs.BoolVarP(&f.daemon, "daemon", "d", false, "detach and run in the background, returning once the server listens (its pid in --pid-file); its standard streams are closed, so give --log-file")
	fs.StringVarP(&f.user, "user", "u", "", "switch to this user once the listeners, --log-file, --pid-file and --data-dir are open (root only; --data-dir must be writable by the user)")
	fs.Uint64VarP(&f.fileLimit, "file-descriptors", "f", 0, "set the most open files (RLIMIT_NOFILE) to this; above the hard limit takes root (default: the hard limit)")
	fs.BoolVarP(&f.showVersion, "version", "V", false, "print the version and exit")
	fs.BoolVar(&f.coredump, "coredump", false, "dump core on a crash (GOTRACEBACK=crash)")
	fs.IntVar(&f.keepaliveIdle, "keepalive-idle", -1, "seconds a connection is idle before TCP keepalive probes start (-1: the system's default)")
	fs.IntVar(&f.keepaliveIntvl, "keepalive-interval", -1, "seconds between TCP keepalive probes (-1: the system's default)")
	fs.IntVar(&f.keepaliveCount, "keepalive-count", -1, "unanswered TCP keepalive probes before a connection is dropped (-1: the system's default)")
	// Accepted for gearmand compatibility; they change nothing here.
	var ignoredInt int
	var ignoredStr string
	var ignoredBool bool
	fs.IntVarP(&ignoredInt, "backlog", "b", 0, "accepted for gearmand compatibility; ignored")
	fs.BoolVarP(&ignoredBool, "round-robin", "R", false, "accepted for gearmand compatibility; always on")
	fs.BoolVar(&ignoredBool, "keepalive", false, "accepted for gearmand compatibility; TCP keepalive is always on (with Go's defaults unless the --keepalive-* flags set them)")
	fs.IntVar(&ignoredInt, "hashtable-buckets", 0, "accepted for gearmand compatibility; ignored (the job table grows as needed)")
	fs.StringVarP(&ignoredStr, "queue-type", "q", "builtin", "job queue: only builtin is accepted; --data-dir makes it durable")
	return fs, f
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(s) {
	case "DEBUG":
		return slog.LevelDebug, nil
	case "INFO", "NOTICE":
		return slog.LevelInfo, nil
	case "WARN", "WARNING":
		return slog.LevelWarn, nil
	case "ERROR", "CRITICAL", "ALERT", "FATAL":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (use debug, info, warn or error)", s)
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, f := newServeFlagSet(stderr)
	pos, code, ok := fs.Parse(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return fs.Fail("unexpected argument %q", pos[0])
	}
	if f.showVersion {
		fmt.Fprintln(stdout, "gearflow serve", version)
		return 0
	}
	qt := fs.Lookup("queue-type").Value.String()
	if !strings.EqualFold(qt, "builtin") {
		fmt.Fprintf(stderr, "gearflow serve: queue type %q is not supported (only builtin)\n", qt)
		return 2
	}
	level, err := parseLevel(f.logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "gearflow serve:", err)
		return 2
	}
	if f.jobRetries < -1 || f.jobRetries > 255 {
		fmt.Fprintf(stderr, "gearflow serve: --job-retries %d out of range -1..255\n", f.jobRetries)
		return 2
	}
	if err := f.tls.check(f.listen, fs.Changed("listen")); err != nil {
		return fs.Fail("%v", err)
	}
	if env := os.Getenv("GEARMAND_PORT"); !fs.Changed("port") && env != "" {
		f.port = env
	}
	if _, err := strconv.ParseUint(f.port, 10, 16); err != nil {
		fmt.Fprintf(stderr, "gearflow serve: bad port %q\n", f.port)
		return 2
	}
	if f.threads < -1 {
		fmt.Fprintf(stderr, "gearflow serve: --threads %d out of range (-1 for one per core, 0 or more)\n", f.threads)
		return 2
	}
	pkt := f.cfg.MaxPacketSize
	if pkt <= 0 {
		pkt = protocol.DefaultMaxPacketSize
	}
	if out := f.cfg.MaxOutboundBytes; out > 0 && out < pkt+server.OutboundHeadroom {
		fmt.Fprintf(stderr, "gearflow serve: --max-outbound-bytes %d is below --max-packet-size %d plus %d: a job that large could never be handed to a worker (use at least %d, or lower --max-packet-size)\n",
			out, pkt, server.OutboundHeadroom, pkt+server.OutboundHeadroom)
		return 2
	}
	if f.pprof != "" {
		if f.httpAddr != "" && f.httpAddr != f.pprof {
			fmt.Fprintf(stderr, "gearflow serve: --pprof %s and --http %s: profiles are served on the --http address now; use --http %s --http-pprof\n", f.pprof, f.httpAddr, f.httpAddr)
			return 2
		}
		f.httpAddr, f.httpPprof = f.pprof, true
	}
	if f.httpPprof && f.httpAddr == "" {
		fmt.Fprintln(stderr, "gearflow serve: --http-pprof needs --http ADDR")
		return 2
	}
	if f.importSQLite != "" && f.cfg.DataDir == "" {
		fmt.Fprintln(stderr, "gearflow serve: --import-gearmand-sqlite needs --data-dir (the queue the jobs go to)")
		return 2
	}
	var switchUser *runAs
	if f.user != "" {
		if switchUser, err = lookupUser(f.user); err != nil {
			fmt.Fprintln(stderr, "gearflow serve:", err)
			return 1
		}
	}
	if f.daemon && (f.logFile == "stderr" || f.logFile == "") && os.Getenv(daemonEnv) == "" {
		fmt.Fprintln(stderr, "gearflow serve: warning: --daemon closes stderr once the server runs: its log goes nowhere without --log-file")
	}
	if f.checkArgs {
		return f.checkFiles(level, stderr)
	}
	// With --daemon this process starts the server as a child and
	// returns once it serves; the child, started with the same
	// arguments, reports to it until then.
	ready := func() {}
	if f.daemon {
		out, childReady, child := daemonChild()
		if !child {
			return daemonize(args, stderr)
		}
		stderr, ready = out, childReady
	}
	if f.coredump {
		debug.SetTraceback("crash")
	}
	if fs.Changed("file-descriptors") {
		if err := setFileLimit(f.fileLimit); err != nil {
			fmt.Fprintln(stderr, "gearflow serve:", err)
			return 1
		}
	}
	if f.threads >= 0 {
		// On a machine shared with its clients one thread wastes the
		// least on waking others; more threads serve more sockets.
		goruntime.GOMAXPROCS(max(f.threads, 1))
	}

	var logOut io.Writer = stderr
	switch f.logFile {
	case "stderr", "":
	case "none":
		logOut = io.Discard
	default:
		lf, err := os.OpenFile(f.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintln(stderr, "gearflow serve:", err)
			return 1
		}
		defer lf.Close()
		logOut = lf
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))

	cfg := f.cfg
	cfg.Logger = logger
	cfg.JobHandlePrefix = f.handlePrefix
	cfg.Exceptions = f.exceptions
	cfg.WorkerWakeup = f.workerWakeup
	cfg.AllowAdminShutdown = f.adminShutdown
	cfg.ShutdownTimeout = f.shutdownTimeout
	cfg.Version = "gearflow-" + version
	switch {
	case f.jobRetries < 0:
		cfg.JobRetries = 0
	case f.jobRetries == 0:
		cfg.JobRetries = 1
	default:
		cfg.JobRetries = f.jobRetries
	}
	if err := f.tls.config(&cfg, logger); err != nil {
		fmt.Fprintln(stderr, "gearflow serve:", err)
		return 1
	}
	if f.importSQLite != "" {
		if err := importGearmandSQLite(ctx, logger, cfg.DataDir, f.importSQLite, f.importTable); err != nil {
			fmt.Fprintln(stderr, "gearflow serve:", err)
			return 1
		}
	}
	srv, err := server.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "gearflow serve:", err)
		return 2
	}
	plainAddr := net.JoinHostPort(f.listen, f.port)
	switch {
	case f.listen == "none":
		plainAddr = ""
	case f.tls.listen != "" && !fs.Changed("listen"):
		// TLS is for the network: plaintext stays on this machine.
		plainAddr = net.JoinHostPort("127.0.0.1", f.port)
	}
	listeners, err := f.tls.openListeners(plainAddr, f.listenConfig(fs))
	if err != nil {
		srv.Close() // lets the data directory go
		fmt.Fprintln(stderr, "gearflow serve:", err)
		return 1
	}
	// fail ends a start that has opened the listeners and the server.
	fail := func(err error) int {
		for _, sl := range listeners {
			sl.l.Close()
		}
		srv.Close()
		fmt.Fprintln(stderr, "gearflow serve:", err)
		return 1
	}
	if f.pidFile != "" {
		if err := os.WriteFile(f.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return fail(err)
		}
		defer func() {
			// After --user, its folder must be the user's (as
			// /run/gearman is gearmand's user's under systemd).
			if err := os.Remove(f.pidFile); err != nil {
				logger.Warn("pid file not removed", "err", err)
			}
		}()
	}
	if f.httpAddr != "" {
		stopHTTP, err := serveMonitor(f.httpAddr, f.httpPprof, srv, logger)
		if err != nil {
			return fail(fmt.Errorf("--http: %w", err))
		}
		defer stopHTTP()
	}
	if switchUser != nil {
		if err := switchUser.switchTo(); err != nil {
			return fail(err)
		}
	}

	// The first SIGTERM/SIGINT drains; a second one exits at once. main's
	// context reports the first; this channel counts them all (a test
	// cancels the context without any signal).
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	signals := 0

	logger.Info("starting", "threads", goruntime.GOMAXPROCS(0))
	ready()
	served := make(chan error, len(listeners))
	for _, sl := range listeners {
		go func() { served <- sl.serve(srv) }()
	}
	select {
	case err := <-served:
		// Serve returns after an admin "shutdown [graceful]" has finished.
		return servedCode(logger, err)
	case <-ctx.Done():
	case <-sigs:
		signals++
	}
	logger.Info("signal received; draining running jobs", "timeout", f.shutdownTimeout)
	go func() {
		sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(sctx) // logs how it ended
	}()
	for {
		select {
		case err := <-served:
			return servedCode(logger, err)
		case <-sigs:
			// The context's signal may reach this channel after the
			// drain began: the drain's own signal is not a second one.
			if signals++; signals < 2 {
				continue
			}
			logger.Warn("second signal received; exiting without waiting for running jobs")
			return 1
		}
	}
}

// checkFiles is the end of --check-args: it reads the files serve reads
// at start (the TLS certificates and keys), and looks for the folders
// of the log and pid files, without opening a listener or the data
// directory, or creating a file. It prints what the start would print
// about them, at the same level (the warnings of a TLS configuration
// too, here on stderr), and returns the start's exit code.
func (f *serveFlags) checkFiles(level slog.Level, stderr io.Writer) int {
	files := []string{f.pidFile}
	if f.logFile != "stderr" && f.logFile != "none" {
		files = append(files, f.logFile)
	}
	for _, name := range files {
		if err := checkWritable(name); err != nil {
			fmt.Fprintln(stderr, "gearflow serve:", err)
			return 1
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg := f.cfg
	if err := f.tls.config(&cfg, logger); err != nil {
		fmt.Fprintln(stderr, "gearflow serve:", err)
		return 1
	}
	return 0
}

// checkWritable returns the error opening name for writing (creating it
// if need be) would return, as far as it can tell without creating it
// or opening anything but an existing regular file: a missing folder,
// or a file that cannot be written.
func checkWritable(name string) error {
	if name == "" {
		return nil
	}
	if fi, err := os.Stat(name); err == nil && !fi.Mode().IsRegular() {
		return nil // a device or a FIFO: opening it may block or act
	}
	wf, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		return wf.Close()
	}
	if errors.Is(err, fs.ErrNotExist) {
		if di, derr := os.Stat(filepath.Dir(name)); derr == nil && di.IsDir() {
			return nil // created at start
		}
	}
	return err
}

// importGearmandSQLite adds the jobs of gearmand's sqlite queue file to
// the durable queue in dir, unless they were added before.
func importGearmandSQLite(ctx context.Context, logger *slog.Logger, dir, file, table string) error {
	if abs, err := filepath.Abs(file); err == nil {
		file = abs
	}
	jobs, err := gearmandsqlite.Read(ctx, file, table)
	if err != nil {
		return err
	}
	res, err := server.ImportJobs(dir, file, jobs)
	if err != nil {
		return err
	}
	if res.Already {
		logger.Warn("gearmand queue already imported; nothing added", "file", file, "jobs", len(jobs),
			"imported_from", res.Source, "imported_at", res.Time.UTC().Format(time.RFC3339), "digest", res.Digest)
		return nil
	}
	logger.Info("gearmand queue imported", "file", file, "table", table, "jobs", res.Jobs, "digest", res.Digest)
	return nil
}

// servedCode is the exit code for Serve's error.
func servedCode(logger *slog.Logger, err error) int {
	if !errors.Is(err, server.ErrServerClosed) {
		logger.Error("server stopped", "err", err)
		return 1
	}
	return 0
}

// listenConfig is how the listeners are opened: TCP keepalive on every
// connection, with the --keepalive-* settings when one is given, else
// Go's (15 s idle, 15 s between probes, 9 probes).
func (f *serveFlags) listenConfig(fs *cliflag.Set) net.ListenConfig {
	if !fs.Changed("keepalive-idle") && !fs.Changed("keepalive-interval") && !fs.Changed("keepalive-count") {
		return net.ListenConfig{}
	}
	return net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{Enable: true,
		Idle: keepaliveSeconds(f.keepaliveIdle), Interval: keepaliveSeconds(f.keepaliveIntvl), Count: f.keepaliveCount}}
}

// keepaliveSeconds is a --keepalive-* duration: -1 (gearmand's "the
// system's default") is a negative duration, which leaves the system's.
func keepaliveSeconds(n int) time.Duration {
	if n < 0 {
		return -1
	}
	return time.Duration(n) * time.Second
}
