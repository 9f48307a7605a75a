package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gearflow/gearflow/flow/cli"
	"github.com/gearflow/gearflow/internal/cliflag"
	"github.com/gearflow/gearflow/runtime"
)

// defaultGearmanServers is the server list used when --servers is not
// given: $GEARMAN_SERVERS (libgearman's variable), else 127.0.0.1:4730.
func defaultGearmanServers() string {
	if s := os.Getenv("GEARMAN_SERVERS"); s != "" {
		return s
	}
	return "127.0.0.1:4730"
}

func cmdSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return submitMain(ctx, args, os.Stdin, stdout, stderr)
}

// submitMain is gearflow submit with its input given, for tests.
func submitMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := cliflag.New("gearflow submit", "-f FUNC [flags] [payload]",
		"Submits one job. The payload is the argument, or standard input without one.\nPrints the job's data as it arrives, then its result; exits 1 if the job fails.", stderr)
	servers := fs.String("servers", defaultGearmanServers(), "job servers, comma-separated host:port (default from $GEARMAN_SERVERS)")
	function := fs.StringP("function", "f", "", "function `name` (required)")
	unique := fs.StringP("unique", "u", "", "unique id of the job (\"-\" coalesces by payload)")
	background := fs.Bool("background", false, "submit a background job and print its handle")
	priority := fs.String("priority", "normal", "priority: high, normal or low")
	at := fs.String("at", "", "run the job at this RFC 3339 `time` (a background job)")
	reducer := fs.String("reducer", "", "submit a map/reduce job with this reducer `function`")
	timeout := fs.Duration("timeout", 0, "give up after this long (0 = wait for the result)")
	var tlsFlags cli.TLSFlags
	tlsFlags.Register(fs.FlagSet)
	pos, code, ok := fs.Parse(args)
	if !ok {
		return code
	}
	prio, ok := runtime.ParsePriority(*priority)
	switch {
	case *function == "":
		return fs.Fail("-f FUNC is required")
	case !ok:
		return fs.Fail("--priority %q: want high, normal or low", *priority)
	case len(pos) > 1:
		return fs.Fail("want at most one payload argument, got %d", len(pos))
	}
	job := runtime.Job{Function: *function, Unique: *unique, Priority: prio, Background: *background, Reducer: *reducer}
	if *at != "" {
		when, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			fmt.Fprintf(stderr, "gearflow submit: --at: %v\n", err)
			return 2
		}
		job.When, job.Background = when, true
	}
	if fs.NArg() == 1 {
		job.Payload = []byte(fs.Arg(0))
	} else {
		payload, err := io.ReadAll(stdin)
		if err != nil {
			fmt.Fprintf(stderr, "gearflow submit: reading the payload: %v\n", err)
			return 1
		}
		job.Payload = payload
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	tlsCfg, err := tlsFlags.Config()
	if err != nil {
		fmt.Fprintf(stderr, "gearflow submit: %v\n", err)
		return 2
	}
	client, err := runtime.NewClient(runtime.ClientConfig{Servers: cliflag.SplitServers(*servers), TLS: tlsCfg})
	if err != nil {
		fmt.Fprintf(stderr, "gearflow submit: %v\n", err)
		return 2
	}
	defer client.Close()
	task, err := client.Submit(ctx, job)
	if err != nil {
		fmt.Fprintf(stderr, "gearflow submit: %v\n", err)
		return 1
	}
	if job.Background {
		fmt.Fprintln(stdout, task.Handle)
		return 0
	}
	for {
		select {
		case ev, ok := <-task.Events():
			if !ok {
				return 1 // unreachable: the stream ends with a terminal event
			}
			if code, done := submitEvent(ev, task, stdout, stderr); done {
				return code
			}
		case <-ctx.Done():
			fmt.Fprintf(stderr, "gearflow submit: job %s: %v\n", task.Handle, ctx.Err())
			return 1
		}
	}
}

// submitEvent prints one event and says whether it ended the job, with
// the exit code.
func submitEvent(ev runtime.Event, task *runtime.Task, stdout, stderr io.Writer) (int, bool) {
	switch ev.Kind {
	case runtime.EventData, runtime.EventComplete:
		if _, err := stdout.Write(ev.Data); err != nil {
			fmt.Fprintf(stderr, "gearflow submit: %v\n", err)
			return 1, true
		}
		return 0, ev.Kind == runtime.EventComplete
	case runtime.EventWarning:
		fmt.Fprintf(stderr, "gearflow submit: warning: %s\n", ev.Data)
	case runtime.EventStatus:
		fmt.Fprintf(stderr, "gearflow submit: %d/%d\n", ev.Numerator, ev.Denominator)
	case runtime.EventFail:
		fmt.Fprintf(stderr, "gearflow submit: job %s failed\n", task.Handle)
		return 1, true
	case runtime.EventException:
		fmt.Fprintf(stderr, "gearflow submit: job %s raised an exception: %s\n", task.Handle, ev.Data)
		return 1, true
	case runtime.EventError:
		fmt.Fprintf(stderr, "gearflow submit: job %s: %v\n", task.Handle, ev.Err)
		return 1, true
	}
	return 0, false
}
