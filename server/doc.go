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
// never touch the network under the lock. Each connection has a read
// goroutine and a writer goroutine, and every packet goes through its
// outbox. When a read loop has handled every request it has buffered, it
// writes its own outbox with one non-blocking write, and the outboxes
// of its peers (NOOPs, forwarded WORK_* packets) the same way, as
// nats-server's flushClients does: a reply costs no goroutine wake-up.
// Only a client still waiting for more jobs is written once at the end
// of the scheduler's pass instead, by a flusher goroutine that yields
// to the read loops woken with it, so that the replies several read
// loops queued for it share one write. What a socket cannot take at
// once, large payloads (written
// with writev from the job, not copied) and packets queued by timers
// go to the writer goroutine, which writes the whole outbox in one call
// with a deadline, so replies batch under load. One goroutine writes a
// socket at a time.
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
