package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/gearflow/gearflow/server"
)

// serveMonitor serves srv's monitoring endpoint (server.HTTPHandler) on
// addr, with net/http/pprof under /debug/pprof/ when withPprof, until
// the returned stop is called. The address is bound here, so that a bad
// one fails the command at start.
func serveMonitor(addr string, withPprof bool, srv *server.Server, logger *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.Handle("/", srv.HTTPHandler())
	if withPprof {
		// Our own mux: the DefaultServeMux that net/http/pprof fills is
		// never served.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("http listening", "addr", l.Addr().String(), "pprof", withPprof)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("http stopped", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx) // a scrape still running after 2 s is cut
		hs.Close()
		<-done
	}, nil
}
