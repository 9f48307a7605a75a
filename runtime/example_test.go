package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"strings"

	"github.com/gearflow/gearflow/runtime"
	"github.com/gearflow/gearflow/server"
)

// startExampleServer runs an in-process job server on a free loopback
// port and returns its address and a function that stops it.
func startExampleServer() (string, func()) {
	srv, err := server.New(server.Config{})
	if err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	return l.Addr().String(), func() { srv.Close() }
}

// Serving a function: a worker registers a handler and runs until its
// context ends.
func ExampleWorker() {
	addr, stop := startExampleServer()
	defer stop()

	w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: []string{addr}, Concurrency: 4})
	if err != nil {
		log.Fatal(err)
	}
	w.Handle("reverse", runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
		b := bytes.Clone(job.Payload)
		for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
			b[i], b[j] = b[j], b[i]
		}
		return b, nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	c, err := runtime.NewClient(runtime.ClientConfig{Servers: []string{addr}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	out, err := c.Do(context.Background(), runtime.Job{Function: "reverse", Payload: []byte("gearflow")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", out)

	cancel() // graceful stop: Run returns once running jobs are done
	fmt.Println("worker stopped:", <-done)
	// Output:
	// wolfraeg
	// worker stopped: <nil>
}

// Submitting a job and following its events: partial results, progress,
// then the result.
func ExampleClient_Submit() {
	addr, stop := startExampleServer()
	defer stop()

	w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: []string{addr}})
	if err != nil {
		log.Fatal(err)
	}
	w.Handle("words", runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
		words := strings.Fields(string(job.Payload))
		for i, word := range words {
			if err := job.SendData([]byte(strings.ToUpper(word))); err != nil {
				return nil, err
			}
			if err := job.SendStatus(uint64(i+1), uint64(len(words))); err != nil {
				return nil, err
			}
		}
		return []byte(fmt.Sprint(len(words), " words")), nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	c, err := runtime.NewClient(runtime.ClientConfig{Servers: []string{addr}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	task, err := c.Submit(ctx, runtime.Job{Function: "words", Payload: []byte("map reduce")})
	if err != nil {
		log.Fatal(err)
	}
	for ev := range task.Events() {
		switch ev.Kind {
		case runtime.EventStatus:
			fmt.Printf("%v %d/%d\n", ev.Kind, ev.Numerator, ev.Denominator)
		case runtime.EventError:
			fmt.Println(ev.Kind, ev.Err)
		default:
			fmt.Printf("%v %s\n", ev.Kind, ev.Data)
		}
	}
	// Output:
	// data MAP
	// status 1/2
	// data REDUCE
	// status 2/2
	// complete 2 words
}

// A job's failure arrives as a *JobError; Exception makes a worker send
// the error's text with it.
func ExampleException() {
	addr, stop := startExampleServer()
	defer stop()

	w, err := runtime.NewWorker(runtime.WorkerConfig{Servers: []string{addr}})
	if err != nil {
		log.Fatal(err)
	}
	w.Handle("parse", runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
		return nil, runtime.Exception(fmt.Errorf("cannot parse %q", job.Payload))
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	c, err := runtime.NewClient(runtime.ClientConfig{Servers: []string{addr}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	_, err = c.Do(ctx, runtime.Job{Function: "parse", Payload: []byte("x=")})
	var je *runtime.JobError
	if errors.As(err, &je) {
		fmt.Printf("%v: %s\n", je.Kind, je.Data)
	}
	// Output:
	// exception: cannot parse "x="
}
