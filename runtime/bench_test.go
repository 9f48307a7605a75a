package runtime_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
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

// BenchmarkConcurrentSubmit measures many goroutines submitting through
// one client at once (32 per CPU), as a flow fanning out tasks does:
// foreground echo jobs of 64 bytes through a worker (fg), or background
// jobs that only the server sees (bg). writes/job is the client's write
// calls per job: below 1 when concurrent submissions share writes.
func BenchmarkConcurrentSubmit(b *testing.B) {
	servers := []struct {
		name  string
		start func(b *testing.B) string
	}{
		{"gearmand", func(b *testing.B) string { return gearmandtest.Start(b).Addr }},
		{"gearflow", func(b *testing.B) string {
			s := servertest.Start(b, server.Config{})
			s.AllowLeftoverJobs() // the background jobs stay queued
			return s.Addr
		}},
	}
	for _, srv := range servers {
		for _, background := range []bool{false, true} {
			name := srv.name + "/fg"
			if background {
				name = srv.name + "/bg"
			}
			b.Run(name, func(b *testing.B) { benchConcurrentSubmit(b, srv.start(b), background) })
		}
	}
}

func benchConcurrentSubmit(b *testing.B, addr string, background bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if !background {
		w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: []string{addr}, Concurrency: 64})
		if err != nil {
			b.Fatal(err)
		}
		w.Handle("echo", runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
			return job.Payload, nil
		}))
		done := make(chan struct{})
		go func() { _ = w.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
	}
	var writes atomic.Int64
	c, err := runtime.NewClient(runtime.ClientConfig{Servers: []string{addr}, Dial: countingDial(&writes, 0)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	job := runtime.Job{Function: "echo", Payload: bytes.Repeat([]byte("x"), 64), Background: background}
	jobCtx, jobCancel := context.WithTimeout(ctx, 5*time.Minute)
	defer jobCancel()
	// Connected (and the worker registered) before timing starts.
	if background {
		_, err = c.Echo(jobCtx, nil)
	} else {
		_, err = c.Do(jobCtx, job)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(32)
	start := writes.Load()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var err error
			if background {
				_, err = c.Submit(jobCtx, job)
			} else {
				_, err = c.Do(jobCtx, job)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(writes.Load()-start)/float64(b.N), "writes/job")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}
