package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/runtime"
	"github.com/gearflow/gearflow/server"
)

// lossRecorder is a slog.Handler that keeps the messages saying a
// connection to a server was lost or unreachable.
type lossRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (h *lossRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *lossRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *lossRecorder) WithGroup(string) slog.Handler            { return h }
func (h *lossRecorder) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "lost") || strings.Contains(r.Message, "unreachable") || strings.Contains(r.Message, "not delivered") {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		h.mu.Lock()
		h.msgs = append(h.msgs, b.String())
		h.mu.Unlock()
	}
	return nil
}

// TestSoakExceptions runs 16 Workers whose handler streams WORK_STATUS,
// WORK_DATA and WORK_WARNING and then, for most jobs, returns an
// Exception (WORK_EXCEPTION); the rest fail (WORK_FAIL) or complete.
// Clients keep jobs in flight for the soak's duration (GEARFLOW_SOAK, a
// Go duration, runs it longer). No worker may lose its connection, and
// every task must see its events in order and the right outcome.
func TestSoakExceptions(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	t.Parallel()
	d := 5 * time.Second
	if s := os.Getenv("GEARFLOW_SOAK"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("GEARFLOW_SOAK=%q: %v", s, err)
		}
		d = v
	}
	forEachServer(t, func(t *testing.T, srv testServer) { soakExceptions(t, srv.Addr, d, false) })
	// A server whose write timeout is shorter than some jobs: the reply
	// to the grab that follows a long job's exception must still reach
	// the worker.
	t.Run("gearflow-short-write-timeout", func(t *testing.T) {
		t.Parallel()
		srv := servertest.Start(t, server.Config{WriteTimeout: 300 * time.Millisecond})
		soakExceptions(t, srv.Addr, d, true)
	})
}

// soakExceptions runs the soak against addr for d; with slow, every
// 25th job of a client runs for a second before it ends.
func soakExceptions(t *testing.T, addr string, d time.Duration, slow bool) {
	losses := &lossRecorder{}
	handler := runtime.HandlerFunc(func(ctx context.Context, job *runtime.Job) ([]byte, error) {
		seq, n, end, err := parseSoakPayload(job.Payload)
		if err != nil {
			return nil, err
		}
		if slow && seq%25 == 7 { // ends with an exception
			time.Sleep(time.Second)
		}
		for i := 0; i < n; i++ {
			var err error
			switch i % 3 {
			case 0:
				err = job.SendStatus(uint64(i+1), uint64(n))
			case 1:
				err = job.SendData(soakBody("d", i, job.Payload))
			case 2:
				err = job.SendWarning(soakBody("w", i, job.Payload))
			}
			if err != nil {
				return nil, err
			}
		}
		switch end {
		case 'E':
			return nil, runtime.Exception(fmt.Errorf("x-%s", job.Payload))
		case 'F':
			return nil, errors.New("plain failure")
		}
		return append([]byte("r-"), job.Payload...), nil
	})
	for i := 0; i < 16; i++ {
		startWorker(t, runtime.WorkerConfig{Servers: []string{addr}, Concurrency: 2, Logger: slog.New(losses)},
			map[string]runtime.Handler{"soak": handler})
	}
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	var jobs atomic.Int64
	for c := 0; c < 4; c++ {
		client := newTestClient(t, addr)
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := 0; time.Now().Before(deadline); seq++ {
					if err := soakTask(t, client, c*4+g, seq); err != nil {
						t.Errorf("client %d/%d job %d: %v", c, g, seq, err)
						return
					}
					jobs.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	losses.mu.Lock()
	defer losses.mu.Unlock()
	for _, m := range losses.msgs {
		t.Errorf("worker: %s", m)
	}
	t.Logf("%v: %d jobs, 16 workers, 16 clients", d, jobs.Load())
	if jobs.Load() < 16 {
		t.Errorf("only %d jobs", jobs.Load())
	}
}

func soakPayload(client, seq int) []byte {
	end := "E"
	switch seq % 10 {
	case 4:
		end = "C"
	case 8:
		end = "F"
	}
	return []byte(fmt.Sprintf("%d/%d/%d/%s", client, seq, (client*7+seq*5)%13, end))
}

func parseSoakPayload(p []byte) (seq, n int, end byte, err error) {
	f := strings.Split(string(p), "/")
	if len(f) != 4 || len(f[3]) != 1 {
		return 0, 0, 0, fmt.Errorf("bad payload %q", p)
	}
	seq, err1 := strconv.Atoi(f[1])
	n, err2 := strconv.Atoi(f[2])
	return seq, n, f[3][0], errors.Join(err1, err2)
}

// soakBody is the data of intermediate packet i; every third is large.
func soakBody(kind string, i int, payload []byte) []byte {
	b := []byte(fmt.Sprintf("%s%d-%s-", kind, i, payload))
	if i%3 == 2 {
		b = append(b, bytes.Repeat([]byte{'z'}, 6000+i)...)
	}
	return b
}

// soakTask submits one job and checks its events against its payload.
func soakTask(t *testing.T, c *runtime.Client, client, seq int) error {
	payload := soakPayload(client, seq)
	_, n, end, _ := parseSoakPayload(payload)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	task, err := c.Submit(ctx, runtime.Job{Function: "soak", Payload: payload})
	if err != nil {
		return err
	}
	i := 0
	for ev := range task.Events() {
		if !ev.Kind.Terminal() {
			if i >= n {
				return fmt.Errorf("event %d (%s) past the %d sent", i, ev.Kind, n)
			}
			switch i % 3 {
			case 0:
				if ev.Kind != runtime.EventStatus || ev.Numerator != uint64(i+1) || ev.Denominator != uint64(n) {
					return fmt.Errorf("event %d: %s %d/%d, want status %d/%d", i, ev.Kind, ev.Numerator, ev.Denominator, i+1, n)
				}
			case 1, 2:
				kind, want := runtime.EventData, "d"
				if i%3 == 2 {
					kind, want = runtime.EventWarning, "w"
				}
				if ev.Kind != kind || !bytes.Equal(ev.Data, soakBody(want, i, payload)) {
					return fmt.Errorf("event %d: %s %.40q, want %s", i, ev.Kind, ev.Data, kind)
				}
			}
			i++
			continue
		}
		if i != n {
			return fmt.Errorf("%s after %d events, want %d", ev.Kind, i, n)
		}
		switch {
		case end == 'E' && ev.Kind == runtime.EventException && string(ev.Data) == "x-"+string(payload):
		case end == 'F' && ev.Kind == runtime.EventFail:
		case end == 'C' && ev.Kind == runtime.EventComplete && string(ev.Data) == "r-"+string(payload):
		default:
			return fmt.Errorf("ended with %s %q %v, want %c", ev.Kind, ev.Data, ev.Err, end)
		}
		return nil
	}
	return errors.New("no terminal event")
}
