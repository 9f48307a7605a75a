// Package server is a Gearman job server, wire-compatible with gearmand
// 1.1.20: every Gearman client and worker library works against it
// unchanged.
//
// # Use
//
//	srv, err := server.New(server.Config{Logger: logger})
//	l, err := net.Listen("tcp", "127.0.0.1:4730")
//	go srv.Serve(l)
//	...
//	srv.Shutdown(ctx) // stop accepting, let running jobs finish, close
//
// # Model
//
// All job state sits behind one mutex: functions with three FIFO lists
// (high, normal, low), the job table by handle, the coalescing index by
// (function, unique), the heap of delayed (epoch and scheduled) jobs,
// and each connection's registrations and sleep flags. Handlers change
// that state and queue reply packets in the connections' outboxes; they
// never touch the network under the lock. Each connection has one read
// goroutine and one writer goroutine, which writes the whole outbox in
// one call, so pipelined replies and forwarded WORK_* packets batch
// under load.
//
// # Differences from gearmand
//
// Where gearmand loses jobs, desynchronises or goes silent, this server
// does better; docs/COMPATIBILITY.md lists each difference and why.
// Among them: malformed packets get an ERROR and the stream stays in
// sync; priority is global across a worker's functions; epoch jobs wake
// workers at their time; SUBMIT_JOB_SCHED works; CAN_DO_TIMEOUT timers
// are per job and stop when the job ends; a background job survives
// the foreground clients that joined it; wake-ups do not stampede.
package server
