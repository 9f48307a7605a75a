package flow

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gearflow/gearflow/runtime"
	"github.com/gearflow/gearflow/server"
)

// The embedded mode: a job server and workers in the run's own process.
// This is flow's one use of package server (and Options.OnEmbeddedServer
// hands the server to the caller for monitoring, nothing more).
//
// The embedded server listens on nothing another process can reach: no
// TCP port, no socket file. The run's client and workers reach it
// through connected socket pairs the process makes for itself (see
// inprocListener), so no other program, however privileged its user on
// a shared machine, can join the run as a worker and take, or forge the
// results of, its tasks.

// embeddedAddr is the server address the run's client and workers are
// given for the embedded server (in logs and "workers" lists); their
// Dial hook ignores it.
const embeddedAddr = "embedded"

// serverConns is how a run reaches its job servers.
type serverConns struct {
	servers []string
	tls     *tls.Config                                              // nil: plaintext
	dial    func(ctx context.Context, addr string) (net.Conn, error) // nil: TCP
}

func (s serverConns) clientConfig(log *slog.Logger) runtime.ClientConfig {
	return runtime.ClientConfig{Servers: s.servers, TLS: s.tls, Dial: s.dial, Logger: log}
}

func (s serverConns) admin() runtime.Admin { return runtime.Admin{TLS: s.tls, Dial: s.dial} }

// startServer starts the embedded server and returns how to reach it
// and how to stop it.
func (c *coordinator) startServer() (serverConns, func(), error) {
	srv, err := server.New(server.Config{Logger: c.log})
	if err != nil {
		return serverConns{}, nil, err
	}
	l := newInprocListener()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	if c.opts.OnEmbeddedServer != nil {
		c.opts.OnEmbeddedServer(srv)
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
	}
	return serverConns{servers: []string{embeddedAddr}, dial: l.dial}, stop, nil
}

// maxWorkerConns bounds the connections of the in-process worker to
// each server.
const maxWorkerConns = 4

// startWorkers starts the in-process worker: Options.Workers slots, over
// up to maxWorkerConns runtime workers (a connection each per server).
// One connection asks for its jobs one round trip at a time, which caps
// short tasks at one per round trip; several share that wait.
func (c *coordinator) startWorkers(ctx context.Context, sc serverConns) (func(), error) {
	conns := min(c.opts.Workers, maxWorkerConns)
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		slots := c.opts.Workers / conns
		if i < c.opts.Workers%conns {
			slots++
		}
		w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: sc.servers, TLS: sc.tls, Dial: sc.dial, Concurrency: slots,
			ClientID: WorkerClientID(fmt.Sprintf("gearflow-run-%s-%d", c.run, i), slots), Logger: c.log, ShutdownTimeout: time.Second})
		if err != nil {
			cancel()
			wg.Wait()
			return nil, err
		}
		c.reg.Register(w)
		wg.Go(func() { w.Run(wctx) })
	}
	return func() { cancel(); wg.Wait() }, nil
}

// inprocListener is a net.Listener with no address: its dial makes a
// connected pair of sockets (connPair) and hands one end to Accept, the
// other to the caller. Only this process holds either end.
type inprocListener struct {
	conns     chan net.Conn // unbuffered: a dial waits for Accept
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

func newInprocListener() *inprocListener {
	return &inprocListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept waits for a dial and returns the server's end.
func (l *inprocListener) Accept() (net.Conn, error) {
	select {
	case nc := <-l.conns:
		return nc, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and later dials. Connections made stay open.
func (l *inprocListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

// Addr is the listener's name; nothing can connect to it.
func (l *inprocListener) Addr() net.Addr { return inprocAddr{} }

// dial returns a new connection to the listener, within ctx. It has
// runtime's Dial signature; addr is ignored.
func (l *inprocListener) dial(ctx context.Context, addr string) (net.Conn, error) {
	client, srv, err := connPair()
	if err != nil {
		return nil, fmt.Errorf("flow: embedded server: %w", err)
	}
	select {
	case l.conns <- srv:
		return client, nil
	case <-l.done:
		err = net.ErrClosed
	case <-ctx.Done():
		err = ctx.Err()
	}
	client.Close()
	srv.Close()
	return nil, err
}

// inprocAddr is inprocListener's address.
type inprocAddr struct{}

func (inprocAddr) Network() string { return "inproc" }
func (inprocAddr) String() string  { return embeddedAddr }
