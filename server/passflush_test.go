package server_test

import (
	goruntime "runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

// socketWrites reads gearflow_server_socket_writes_total from the
// server's collector.
func socketWrites(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "gearflow_server_socket_writes_total" {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no gearflow_server_socket_writes_total")
	return 0
}

// TestRepliesOfSeveralReadLoopsShareAWrite checks that the WORK_COMPLETEs
// two workers send at once to a client waiting for both go out in one
// write: the two workers' read loops run in one pass of the scheduler,
// and the client's outbox is written once at its end. Before, each
// read loop wrote it at its own batch end: two writes.
//
// Not parallel: with one processor the two read loops, woken together
// by the poller, run one after the other, as they do in a busy server.
// Whether the poller sees both packets at once is up to timing, so the
// step is tried up to 20 times and must share a write once.
func TestRepliesOfSeveralReadLoopsShareAWrite(t *testing.T) {
	defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(1))
	srv := servertest.Start(t, server.Config{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(srv.Srv.Collector())

	client := wiretest.Dial(t, srv.Addr)
	w1, w2 := wiretest.Dial(t, srv.Addr), wiretest.Dial(t, srv.Addr)
	for _, w := range []*wiretest.Conn{w1, w2} {
		w.CanDo("f")
		w.Sync(t)
	}
	var got []float64
	for range 20 {
		client.Submit(t, protocol.SubmitJob, "f", "", "a")
		client.Submit(t, protocol.SubmitJob, "f", "", "b")
		w1.Req(protocol.GrabJobUniq)
		h1 := string(w1.Next(t).Args[0])
		w2.Req(protocol.GrabJobUniq)
		h2 := string(w2.Next(t).Args[0])

		before := socketWrites(t, reg)
		w1.Req(protocol.WorkComplete, h1, "1")
		w2.Req(protocol.WorkComplete, h2, "2")
		done := map[string]bool{}
		for range 2 {
			p := client.Next(t)
			if p.Type != protocol.WorkComplete {
				t.Fatalf("client got %s, want WORK_COMPLETE", wiretest.Format(p))
			}
			done[string(p.Args[0])] = true
		}
		if !done[h1] || !done[h2] {
			t.Fatalf("completed %v, want %s and %s", done, h1, h2)
		}
		n := socketWrites(t, reg) - before
		if n == 1 {
			return
		}
		got = append(got, n)
	}
	t.Fatalf("two WORK_COMPLETEs for one client, sent at once by two workers, took %v writes in 20 tries, never 1", got)
}
