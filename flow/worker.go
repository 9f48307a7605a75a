package flow

import (
	"context"
	"fmt"
	"os"

	"github.com/gearflow/gearflow/runtime"
)

// Handler returns the runtime handler that serves tasks for the function
// called name: it decodes the task payload, runs the function, streams
// emitted records as WORK_DATA batches and progress as WORK_STATUS, and
// returns the summary for WORK_COMPLETE. Errors become WORK_EXCEPTION
// carrying their text.
func (r *Registry) Handler(name string) runtime.Handler {
	if f, ok := r.lookup(name); ok && f.kind == TaskRaw {
		return runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			out, err := f.raw(ctx, job.Payload)
			if err != nil {
				return nil, runtime.Exception(exceptionError(&FunctionError{Function: name, Err: err}))
			}
			return out, nil
		})
	}
	return runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
		res, err := r.execute(ctx, name, job.Payload, taskIO{data: job.SendData, status: job.SendStatus, worker: r.WorkerID()})
		if err != nil {
			return nil, runtime.Exception(exceptionError(err))
		}
		return res, nil
	})
}

// Register registers every function of the registry with w, so that w
// serves them all.
func (r *Registry) Register(w *runtime.Worker) {
	for _, name := range r.Names() {
		w.Handle(name, r.Handler(name))
	}
}

// SetWorkerID sets the name the registry's tasks report as their worker
// (task_done events, the journal): a worker's client id, say. The
// default is the host name and process id.
func (r *Registry) SetWorkerID(id string) {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	r.workerID = id
}

// WorkerID returns the name the registry's tasks report as their worker.
func (r *Registry) WorkerID() string {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	if r.workerID == "" {
		host, _ := os.Hostname()
		r.workerID = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	return r.workerID
}
