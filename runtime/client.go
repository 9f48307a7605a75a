package runtime

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// ClientConfig configures a Client. The zero value of every field except
// Servers is usable.
type ClientConfig struct {
	// Servers are the job servers, "host:port". Required. Every client
	// that should coalesce jobs by unique with another must list the
	// same addresses, spelled the same way: they place uniques on a hash
	// ring of these strings.
	Servers []string
	// DialTimeout bounds connecting to a server. Zero means 5s.
	DialTimeout time.Duration
	// WriteTimeout bounds one write to a server; a server that does not
	// read for that long is treated as lost. Zero means 10s.
	WriteTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the backoff after a failed dial:
	// requests skip a server until its backoff has passed, doubling from
	// ReconnectMin up to ReconnectMax (with jitter). Zero means 50ms and
	// 5s.
	ReconnectMin, ReconnectMax time.Duration
	// MaxPacketSize caps a packet received from a server. Zero means
	// protocol.DefaultMaxPacketSize (64 MiB).
	MaxPacketSize int
	// TLS, when set, makes every connection TLS with this configuration:
	// the server's certificate is verified against RootCAs (and against
	// the address's host unless ServerName is set), and Certificates
	// holds the client certificate of a server that asks for one. Nil
	// means plaintext. The handshake counts against DialTimeout.
	TLS *tls.Config
	// Dial, when set, makes the connections in place of TCP: it is
	// given an address of Servers and returns a connection to it within
	// ctx. An in-process server uses it (see flow's embedded runs). Nil
	// means TCP.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Logger receives connection events. Nil discards them.
	Logger *slog.Logger
}

func (cfg ClientConfig) withDefaults() ClientConfig {
	cfg.Logger = connDefaults(&cfg.DialTimeout, &cfg.WriteTimeout, &cfg.ReconnectMin, &cfg.ReconnectMax, cfg.Logger)
	cfg.Servers = slices.Clone(cfg.Servers)
	return cfg
}

func (cfg ClientConfig) connOpts() connOpts {
	return connOpts{timeout: cfg.DialTimeout, writeTimeout: cfg.WriteTimeout, maxPacket: cfg.MaxPacketSize, tls: cfg.TLS, dial: cfg.Dial}
}

func (cfg WorkerConfig) connOpts() connOpts {
	return connOpts{timeout: cfg.DialTimeout, writeTimeout: cfg.WriteTimeout, maxPacket: cfg.MaxPacketSize, tls: cfg.TLS, dial: cfg.Dial}
}

// connDefaults fills the connection settings that ClientConfig and
// WorkerConfig share, and returns the logger to use.
func connDefaults(dial, write, reconnectMin, reconnectMax *time.Duration, log *slog.Logger) *slog.Logger {
	if *dial <= 0 {
		*dial = defaultDialTimeout
	}
	if *write <= 0 {
		*write = defaultWriteTimeout
	}
	if *reconnectMin <= 0 {
		*reconnectMin = defaultBackoffMin
	}
	if *reconnectMax <= 0 {
		*reconnectMax = defaultBackoffMax
	}
	if *reconnectMax < *reconnectMin {
		*reconnectMax = *reconnectMin
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return log
}

// Client submits jobs to a set of job servers. It is safe for concurrent
// use by many goroutines: requests to one server are pipelined on one
// connection. Connections are made lazily, on first use, and remade after
// a loss, with backoff.
type Client struct {
	cfg     ClientConfig // immutable after NewClient
	log     *slog.Logger
	backoff backoff
	slots   []*slot // one per server, in cfg.Servers order
	pick    picker

	mu     sync.Mutex // guards closed and conns
	closed bool
	conns  map[*clientConn]struct{} // every live connection, for Close
}

// NewClient returns a client for cfg.Servers. It does not connect.
func NewClient(cfg ClientConfig) (*Client, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Servers) == 0 {
		return nil, errors.New("runtime: ClientConfig.Servers is empty")
	}
	for _, s := range cfg.Servers {
		if s == "" {
			return nil, errors.New("runtime: empty server address")
		}
	}
	c := &Client{
		cfg:     cfg,
		log:     cfg.Logger,
		backoff: backoff{min: cfg.ReconnectMin, max: cfg.ReconnectMax},
		conns:   make(map[*clientConn]struct{}),
	}
	c.pick.ring = newRing(cfg.Servers)
	for _, addr := range cfg.Servers {
		c.slots = append(c.slots, &slot{addr: addr, c: c})
	}
	return c, nil
}

// Close closes every connection. Pending requests fail, and running
// foreground tasks end with an EventError wrapping ErrClosed; later calls
// return ErrClosed. Jobs already accepted by a server are not cancelled.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	conns := make([]*clientConn, 0, len(c.conns))
	for cc := range c.conns {
		conns = append(conns, cc)
	}
	c.mu.Unlock()
	for _, cc := range conns {
		cc.shutdown(ErrClosed)
	}
	return nil
}

// Servers returns the configured server addresses.
func (c *Client) Servers() []string { return slices.Clone(c.cfg.Servers) }

// connect dials addr, starts the connection's read loop and enables the
// exceptions option (waiting for its answer, which also proves the peer
// speaks Gearman).
func (c *Client) connect(addr string) (*clientConn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.DialTimeout)
	defer cancel()
	raw, err := dial(ctx, addr, c.cfg.connOpts())
	if err != nil {
		return nil, err
	}
	cc := &clientConn{
		conn: raw, log: c.log, done: make(chan struct{}),
		tasks:   make(map[string][]*Task),
		uniques: make(map[string]*sharedJob),
		live:    make(map[string]*sharedJob),
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		raw.close()
		return nil, ErrClosed
	}
	c.conns[cc] = struct{}{}
	c.mu.Unlock()
	go func() {
		cc.readLoop()
		c.mu.Lock()
		delete(c.conns, cc)
		c.mu.Unlock()
	}()
	_, err = cc.roundTrip(ctx, protocol.New(protocol.Req, protocol.OptionReq, []byte("exceptions")), protocol.OptionRes, nil, nil)
	var se *protocol.ServerError
	if errors.As(err, &se) {
		// A server without the option still works: exceptions arrive
		// as plain WORK_FAIL.
		c.log.Warn("gearman server refused the exceptions option", "server", addr, "err", err)
		err = nil
	}
	if err != nil {
		cc.shutdown(err)
		return nil, err
	}
	c.log.Debug("connected to gearman server", "server", addr)
	return cc, nil
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Submit sends a job. For a foreground job the returned Task streams its
// events until a terminal one; the task ends with an EventError when ctx
// is done first. For a background job the Task carries only Handle and
// Server.
//
// Submit tries the job's servers in order (the server owning its unique
// first, else the next in round robin), moving on while a server is
// unreachable or loses the connection before acknowledging the job. An
// ERROR reply from a server (*protocol.ServerError) is returned as is.
// When no server accepts the job the error wraps ErrNoServers.
func (c *Client) Submit(ctx context.Context, job Job) (*Task, error) {
	if err := job.validate(); err != nil {
		return nil, err
	}
	pkt := job.submitPacket()
	var errs []error
	for _, i := range c.pick.forJob(&job) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if c.isClosed() {
			return nil, ErrClosed
		}
		s := c.slots[i]
		cc, err := s.get(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			errs = append(errs, err)
			continue
		}
		var t *Task
		if !job.Background {
			t = newTask(c, job.Function, s.addr)
		}
		handle, err := cc.submit(ctx, pkt, t, sharedKey(&job))
		if err == nil {
			if len(errs) > 0 {
				// Handled here: the job went to another server.
				c.log.Warn("failed over", "server", s.addr, "func", job.Function, "err", errors.Join(errs...))
			}
			if t == nil {
				return newBackgroundTask(handle, s.addr), nil
			}
			t.watch(ctx)
			return t, nil
		}
		if errors.Is(err, ErrConnectionLost) && ctx.Err() == nil {
			errs = append(errs, err)
			continue
		}
		return nil, err
	}
	return nil, fmt.Errorf("%w: %w", ErrNoServers, errors.Join(errs...))
}

// Do submits a foreground job and waits for its result: the complete
// data, or a *JobError for a fail or an exception, or an error wrapping
// ErrConnectionLost, ErrNoServers or ctx.Err().
func (c *Client) Do(ctx context.Context, job Job) ([]byte, error) {
	if job.Background {
		return nil, errorf(ErrInvalidJob, "Do needs a foreground job")
	}
	t, err := c.Submit(ctx, job)
	if err != nil {
		return nil, err
	}
	return t.Wait(ctx)
}

// Status asks server for the status of the job with handle. With server
// "" it asks every configured server in turn and returns the first that
// knows the handle (handles of different servers may collide).
func (c *Client) Status(ctx context.Context, server, handle string) (Status, error) {
	order := make([]int, 0, len(c.slots))
	for i, s := range c.slots {
		if server == "" || s.addr == server {
			order = append(order, i)
		}
	}
	if len(order) == 0 {
		return Status{}, fmt.Errorf("runtime: server %q is not configured", server)
	}
	pkt := protocol.New(protocol.Req, protocol.GetStatus, []byte(handle))
	var (
		errs []error
		st   Status
		any  bool
	)
	for _, i := range order {
		args, err := c.request(ctx, i, pkt, protocol.StatusRes)
		if err != nil {
			if ctx.Err() != nil || !errors.Is(err, ErrConnectionLost) {
				return Status{}, err
			}
			errs = append(errs, err)
			continue
		}
		st, any = parseStatus(args, false), true
		if st.Known {
			return st, nil
		}
	}
	if any {
		return st, nil
	}
	return Status{}, fmt.Errorf("%w: %w", ErrNoServers, errors.Join(errs...))
}

// StatusUnique asks for the status of the job with unique on the server
// that owns unique (the one Submit sends it to), failing over the same
// way Submit does.
func (c *Client) StatusUnique(ctx context.Context, unique string) (Status, error) {
	pkt := protocol.New(protocol.Req, protocol.GetStatusUnique, []byte(unique))
	var errs []error
	for _, i := range c.pick.ring.order([]byte(unique)) {
		args, err := c.request(ctx, i, pkt, protocol.StatusResUnique)
		if err == nil {
			return parseStatus(args, true), nil
		}
		if ctx.Err() != nil || !errors.Is(err, ErrConnectionLost) {
			return Status{}, err
		}
		errs = append(errs, err)
	}
	return Status{}, fmt.Errorf("%w: %w", ErrNoServers, errors.Join(errs...))
}

// Echo sends data to a server (the next in round robin, failing over)
// and returns what it echoes.
func (c *Client) Echo(ctx context.Context, data []byte) ([]byte, error) {
	pkt := protocol.New(protocol.Req, protocol.EchoReq, data)
	var errs []error
	for _, i := range c.pick.roundRobin() {
		args, err := c.request(ctx, i, pkt, protocol.EchoRes)
		if err == nil {
			return args[0], nil
		}
		if ctx.Err() != nil || !errors.Is(err, ErrConnectionLost) {
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("%w: %w", ErrNoServers, errors.Join(errs...))
}

// request sends pkt to server i and waits for its reply of type expect.
func (c *Client) request(ctx context.Context, i int, pkt protocol.Packet, expect protocol.Type) ([][]byte, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	cc, err := c.slots[i].get(ctx)
	if err != nil {
		return nil, err
	}
	return cc.roundTrip(ctx, pkt, expect, nil, nil)
}

// parseStatus decodes STATUS_RES (handle first) or STATUS_RES_UNIQUE
// (unique first, client count last).
func parseStatus(args [][]byte, unique bool) Status {
	st := Status{Clients: -1}
	if unique {
		st.Unique = string(args[0])
	} else {
		st.Handle = string(args[0])
	}
	st.Known = string(args[1]) == "1"
	st.Running = string(args[2]) == "1"
	st.Numerator = protocol.ParseCount(args[3])
	st.Denominator = protocol.ParseCount(args[4])
	if unique && len(args) > 5 {
		if n, err := strconv.Atoi(string(args[5])); err == nil {
			st.Clients = n
		}
	}
	return st
}

// clientConn is a client's connection to one server: requests are
// pipelined, and their replies (which carry no correlation id) are
// matched to them by order through the pending FIFO. WORK_* packets are
// routed to tasks by job handle.
type clientConn struct {
	*conn
	log *slog.Logger

	mu      sync.Mutex            // guards pending, tasks, uniques, live, err
	pending []*request            // requests awaiting a reply, oldest first
	tasks   map[string][]*Task    // foreground tasks by job handle
	uniques map[string]*sharedJob // foreground jobs with a unique, by sharedKey
	live    map[string]*sharedJob // the same, by handle once created
	err     error                 // why the connection ended; nil while live
	done    chan struct{}         // closed when the read loop has ended
}

// sharedJob is a foreground job with a unique submitted on a connection.
// A second submission of the same unique on the same connection is not
// sent: its task joins the first one's events. gearmand sends every
// WORK_* packet once per submission, so two submissions on one connection
// would give each task every event twice; gearflow's server sends one
// copy per connection.
type sharedJob struct {
	key     string
	created chan struct{} // closed when JOB_CREATED or a failure arrived
	closed  bool          // created is closed; guarded by clientConn.mu
	handle  string        // set before created is closed
	err     error         // set before created is closed, on failure
}

// sharedKey returns the key under which a foreground job is shared on a
// connection, or "" for jobs that are not shared.
func sharedKey(j *Job) string {
	if j.Background || j.Unique == "" || j.Unique == "-" {
		return ""
	}
	return j.Function + "\x00" + j.Unique
}

// submit sends a submission and returns the job handle; for a foreground
// task it registers t under the handle before any WORK_* for it is read.
func (cc *clientConn) submit(ctx context.Context, pkt protocol.Packet, t *Task, key string) (string, error) {
	if t == nil || key == "" {
		args, err := cc.roundTrip(ctx, pkt, protocol.JobCreated, t, nil)
		if err != nil {
			return "", err
		}
		return string(args[0]), nil
	}
	for {
		cc.mu.Lock()
		if cc.err != nil {
			err := cc.err
			cc.mu.Unlock()
			return "", err
		}
		sh := cc.uniques[key]
		if sh == nil {
			sh = &sharedJob{key: key, created: make(chan struct{})}
			cc.uniques[key] = sh
			cc.mu.Unlock()
			args, err := cc.roundTrip(ctx, pkt, protocol.JobCreated, t, sh)
			if err != nil {
				return "", err
			}
			return string(args[0]), nil
		}
		cc.mu.Unlock()
		select {
		case <-sh.created:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if sh.err != nil {
			if errors.Is(sh.err, ErrConnectionLost) || errors.Is(sh.err, ErrClosed) {
				return "", sh.err
			}
			continue // the first submission was refused: try our own
		}
		cc.mu.Lock()
		if _, running := cc.tasks[sh.handle]; running && cc.uniques[key] == sh {
			t.Handle, t.conn = sh.handle, cc
			cc.tasks[sh.handle] = append(cc.tasks[sh.handle], t)
			cc.mu.Unlock()
			return sh.handle, nil
		}
		cc.mu.Unlock() // it ended meanwhile: submit anew
	}
}

// request is one request awaiting its in-order reply.
type request struct {
	expect protocol.Type
	task   *Task         // foreground submit: registered under its handle on JOB_CREATED
	shared *sharedJob    // foreground submit with a unique
	reply  chan response // buffered: the read loop never blocks on it
}

type response struct {
	args [][]byte // copied out of the reader's buffer
	err  error
}

func (cc *clientConn) isClosed() bool {
	select {
	case <-cc.done:
		return true
	default:
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err != nil
}

// roundTrip sends pkt and waits for its reply of type expect. When ctx
// ends first the request stays queued (replies are matched by order) and
// its reply is dropped; a foreground job it created is left to the server.
func (cc *clientConn) roundTrip(ctx context.Context, pkt protocol.Packet, expect protocol.Type, t *Task, sh *sharedJob) ([][]byte, error) {
	req := &request{expect: expect, task: t, shared: sh, reply: make(chan response, 1)}
	var closedErr error
	err := cc.write(func() {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if cc.err != nil {
			closedErr = cc.err
			return
		}
		cc.pending = append(cc.pending, req)
	}, pkt)
	if closedErr != nil {
		return nil, closedErr
	}
	if err != nil {
		// The read loop fails the queued request as the socket closes.
		r := <-req.reply
		return nil, r.err
	}
	select {
	case r := <-req.reply:
		return r.args, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// readLoop is the connection's only reader. It routes every packet and,
// when the connection ends, fails every pending request and task.
func (cc *clientConn) readLoop() {
	var err error
	for {
		var p protocol.Packet
		p, err = cc.readPacket()
		if err != nil {
			break
		}
		if err = cc.route(p); err != nil {
			break
		}
	}
	cc.shutdown(errorf(ErrConnectionLost, "%s: %v", cc.addr, err))
}

// shutdown ends the connection with reason (if it has not ended yet):
// closes the socket, then fails pending requests and running tasks. The
// reason is recorded before the socket closes, so the read loop's own
// failure, which the close causes, cannot replace it (Close's ErrClosed
// would otherwise race with a "use of closed connection" read error).
func (cc *clientConn) shutdown(reason error) {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		cc.conn.close()
		return
	}
	cc.err = reason
	pending, tasks := cc.pending, cc.tasks
	cc.pending, cc.tasks = nil, nil
	for _, sh := range cc.uniques {
		if !sh.closed {
			sh.closed, sh.err = true, reason
			close(sh.created)
		}
	}
	cc.uniques, cc.live = nil, nil
	cc.mu.Unlock()
	cc.conn.close()
	for _, r := range pending {
		r.reply <- response{err: reason}
	}
	for _, ts := range tasks {
		for _, t := range ts {
			t.finish(Event{Kind: EventError, Err: reason})
		}
	}
	// done is closed by whoever fails first only once; the read loop may
	// still be blocked reading, and returns as the socket closes.
	close(cc.done)
}

// route handles one packet from the server.
func (cc *clientConn) route(p protocol.Packet) error {
	switch p.Type {
	case protocol.JobCreated, protocol.StatusRes, protocol.StatusResUnique,
		protocol.EchoRes, protocol.OptionRes, protocol.Error:
		return cc.reply(p)
	case protocol.WorkData, protocol.WorkWarning, protocol.WorkStatus,
		protocol.WorkComplete, protocol.WorkFail, protocol.WorkException:
		cc.work(p)
		return nil
	case protocol.Noop:
		return nil
	}
	cc.log.Warn("unexpected packet from gearman server", "server", cc.addr, "type", p.Type)
	return nil
}

// reply gives an in-order reply to the oldest pending request.
func (cc *clientConn) reply(p protocol.Packet) error {
	cc.mu.Lock()
	if len(cc.pending) == 0 {
		cc.mu.Unlock()
		return fmt.Errorf("unsolicited %s", p.Type)
	}
	req := cc.pending[0]
	cc.pending[0] = nil
	cc.pending = cc.pending[1:]
	if p.Type == protocol.Error {
		err := protocol.ParseError(p)
		if sh := req.shared; sh != nil {
			delete(cc.uniques, sh.key)
			sh.closed, sh.err = true, err
			close(sh.created)
		}
		cc.mu.Unlock()
		req.reply <- response{err: err}
		return nil
	}
	if p.Type != req.expect {
		cc.mu.Unlock()
		req.reply <- response{err: errorf(ErrConnectionLost, "%s: got %s, want %s", cc.addr, p.Type, req.expect)}
		return fmt.Errorf("protocol out of step: got %s, want %s", p.Type, req.expect)
	}
	args := make([][]byte, len(p.Args))
	for i, a := range p.Args {
		args[i] = bytes.Clone(a)
	}
	if req.task != nil {
		// Registered before the next packet is read, so no WORK_* for
		// this handle can be missed.
		h := string(args[0])
		req.task.Handle = h
		cc.tasks[h] = append(cc.tasks[h], req.task)
		req.task.conn = cc
		if sh := req.shared; sh != nil {
			sh.handle, sh.closed = h, true
			cc.live[h] = sh
			close(sh.created)
		}
	}
	cc.mu.Unlock()
	req.reply <- response{args: args}
	return nil
}

// work routes a WORK_* packet to the tasks waiting on its handle.
func (cc *clientConn) work(p protocol.Packet) {
	h := p.Arg(0)
	if p.Type == protocol.WorkFail {
		// gearmand downgrades WORK_EXCEPTION to a WORK_FAIL whose body
		// ends in a NUL.
		h = bytes.TrimRight(h, "\x00")
	}
	ev := Event{}
	switch p.Type {
	case protocol.WorkData:
		ev = Event{Kind: EventData, Data: bytes.Clone(p.Arg(1))}
	case protocol.WorkWarning:
		ev = Event{Kind: EventWarning, Data: bytes.Clone(p.Arg(1))}
	case protocol.WorkStatus:
		ev.Kind = EventStatus
		// As gearmand reads them: "33.3" is 33, not 0.
		ev.Numerator = protocol.ParseCount(p.Arg(1))
		ev.Denominator = protocol.ParseCount(p.Arg(2))
	case protocol.WorkComplete:
		ev = Event{Kind: EventComplete, Data: bytes.Clone(p.Arg(1))}
	case protocol.WorkFail:
		ev.Kind = EventFail
	case protocol.WorkException:
		ev = Event{Kind: EventException, Data: bytes.Clone(p.Arg(1))}
	}
	cc.mu.Lock()
	ts := cc.tasks[string(h)]
	if ev.Kind.Terminal() {
		delete(cc.tasks, string(h))
		if sh := cc.live[string(h)]; sh != nil {
			delete(cc.live, string(h))
			if cc.uniques[sh.key] == sh {
				delete(cc.uniques, sh.key)
			}
		}
	}
	cc.mu.Unlock()
	if len(ts) == 0 {
		cc.log.Debug("work packet for an unknown job", "server", cc.addr, "type", p.Type, "handle", string(h))
		return
	}
	for i, t := range ts {
		e := ev
		if i > 0 && e.Data != nil {
			e.Data = bytes.Clone(e.Data)
		}
		t.push(e)
	}
}

// forget removes t from the connection's routing table.
func (cc *clientConn) forget(t *Task) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	ts := cc.tasks[t.Handle]
	if i := slices.Index(ts, t); i >= 0 {
		ts = slices.Delete(ts, i, i+1)
	}
	// A shared job keeps its (maybe empty) entry until its terminal
	// packet: the server still sends this connection its events, and a
	// later submission of its unique joins it.
	if _, shared := cc.live[t.Handle]; len(ts) == 0 && !shared {
		delete(cc.tasks, t.Handle)
	} else {
		cc.tasks[t.Handle] = ts
	}
}
