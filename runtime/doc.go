// Package runtime is gearflow's Gearman client and worker library: a
// Client submits jobs and follows them, a Worker serves functions, each
// over any number of job servers (gearflow's own or gearmand).
//
// The package name clashes with the standard library's runtime. A file
// that needs both imports the standard one under another name:
//
//	import (
//		goruntime "runtime"
//
//		"github.com/gearflow/gearflow/runtime"
//	)
//
// # Submitting a job
//
//	c, err := runtime.NewClient(runtime.ClientConfig{Servers: []string{"127.0.0.1:4730"}})
//	if err != nil { ... }
//	defer c.Close()
//	out, err := c.Do(ctx, runtime.Job{Function: "upper", Payload: []byte("hello")})
//
// Do waits for the result. Submit returns a Task at once: its Events
// channel carries the job's WORK_DATA, WORK_WARNING and WORK_STATUS as they
// arrive, then one terminal event (complete, fail, exception, or an
// EventError when the server's connection is lost or ctx ends).
//
//	t, err := c.Submit(ctx, runtime.Job{Function: "wc.map", Payload: chunk, Unique: id})
//	for ev := range t.Events() {
//		switch ev.Kind {
//		case runtime.EventData: ...       // a partial result
//		case runtime.EventStatus: ...     // ev.Numerator / ev.Denominator
//		case runtime.EventComplete: ...   // ev.Data is the result
//		}
//	}
//
// Background jobs (Job.Background), priorities, jobs that run at a given
// time (Job.When) and reduce jobs (Job.Reducer) are fields of Job. Status
// and StatusUnique ask a server about a job; Echo checks a server.
//
// # Serving a function
//
//	w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: servers, Concurrency: 8})
//	if err != nil { ... }
//	w.Handle("upper", runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
//		job.SendStatus(1, 2)
//		return bytes.ToUpper(job.Payload), nil
//	}))
//	err = w.Run(ctx) // until ctx is done, then a graceful stop
//
// A handler's error becomes WORK_FAIL, or WORK_EXCEPTION with its text
// when wrapped with Exception; a panic becomes WORK_EXCEPTION and the
// worker goes on.
//
// # Several servers
//
// A client keeps one connection per server, made on first use and
// pipelining every request. A job with a unique always goes to the server
// that owns the unique on a consistent-hash ring of the configured
// addresses, so two clients coalesce the same unique on the same server;
// other jobs go round robin. When a server cannot be reached, or its
// connection breaks before it acknowledges a job, the job moves to the
// next server; a failed server is skipped for a backoff that grows with
// each failed dial. Foreground tasks running on a server whose connection
// breaks end with an EventError wrapping ErrConnectionLost.
//
// Submitting a unique that is still running from the same client joins
// that job: the new Task sees its events from then on, and no second
// submission is sent (gearmand would send every event once per
// submission on the connection).
//
// A worker connects to every server, registers every function on each,
// and reconnects with exponential backoff and jitter. It runs at most
// WorkerConfig.Concurrency jobs at once across all servers, asking a
// server for a job only while it has a free slot.
//
// # Caveats
//
//   - A job's unique is at most MaxUniqueSize (63) bytes.
//   - gearmand 1.1 runs epoch jobs (Job.When) only when some worker asks
//     for work after their time; it wakes no sleeping worker.
//   - A function's timeout (HandleTimeout) cancels the handler's context;
//     the servers are sent the timeout plus TimeoutGrace, because a server
//     whose own timer fires requeues the job instead of failing it, and
//     refuses the worker's late result.
//   - A Task's events are queued without bound until read: read Events
//     (or call Wait) for every foreground task.
package runtime
