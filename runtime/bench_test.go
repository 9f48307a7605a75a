package runtime_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/runtime"
	"github.com/gearflow/gearflow/server"
)

// BenchmarkRoundTrip measures foreground jobs through our client, a job
// server and our worker: submit, JOB_CREATED, grab, run, WORK_COMPLETE.
// inflight is how many jobs the client has outstanding at once (each
// iteration runs that many), payload the size of each job's payload.
func BenchmarkRoundTrip(b *testing.B) {
	servers := []struct {
		name  string
		start func(b *testing.B) string
	}{
		{"gearmand", func(b *testing.B) string { return gearmandtest.Start(b).Addr }},
		{"gearflow", func(b *testing.B) string { return servertest.Start(b, server.Config{}).Addr }},
	}
	for _, srv := range servers {
		b.Run(srv.name, func(b *testing.B) {
			for _, inflight := range []int{1, 32} {
				for _, size := range []int{64, 16 << 10} {
					b.Run(fmt.Sprintf("inflight=%d/payload=%d", inflight, size), func(b *testing.B) {
						benchRoundTrip(b, srv.start(b), inflight, size)
					})
				}
			}
		})
	}
}

func benchRoundTrip(b *testing.B, addr string, inflight, size int) {
	w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: []string{addr}, Concurrency: 16})
	if err != nil {
		b.Fatal(err)
	}
	w.Handle("echo", runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
		return job.Payload, nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	c, err := runtime.NewClient(runtime.ClientConfig{Servers: []string{addr}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	payload := bytes.Repeat([]byte("x"), size)
	job := runtime.Job{Function: "echo", Payload: payload}
	jobCtx, jobCancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer jobCancel()
	// One job first, so the worker is registered before timing starts.
	if _, err := c.Do(jobCtx, job); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(2 * size * inflight))
	jobs := 0
	var wg sync.WaitGroup
	errs := make(chan error, inflight)
	for b.Loop() {
		for range inflight {
			wg.Go(func() {
				out, err := c.Do(jobCtx, job)
				if err == nil && len(out) != size {
					err = fmt.Errorf("result of %d bytes, want %d", len(out), size)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		select {
		case err := <-errs:
			b.Fatal(err)
		default:
		}
		jobs += inflight
	}
	b.ReportMetric(float64(jobs)/b.Elapsed().Seconds(), "jobs/s")
}
