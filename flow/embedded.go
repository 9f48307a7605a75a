package flow

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gearflow/gearflow/runtime"
	"github.com/gearflow/gearflow/server"
)

// The embedded mode: a job server and workers in the run's own process.
// This is flow's one use of package server.

func (c *coordinator) startServer() (string, func(), error) {
	srv, err := server.New(server.Config{Logger: c.log})
	if err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("flow: embedded server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
	}
	return l.Addr().String(), stop, nil
}

// maxWorkerConns bounds the connections of the in-process worker to
// each server.
const maxWorkerConns = 4

// startWorkers starts the in-process worker: Options.Workers slots, over
// up to maxWorkerConns runtime workers (a connection each per server).
// One connection asks for its jobs one round trip at a time, which caps
// short tasks at one per round trip; several share that wait.
func (c *coordinator) startWorkers(ctx context.Context, servers []string) (func(), error) {
	conns := min(c.opts.Workers, maxWorkerConns)
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		slots := c.opts.Workers / conns
		if i < c.opts.Workers%conns {
			slots++
		}
		w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: servers, Concurrency: slots,
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
