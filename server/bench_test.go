package server_test

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

// BenchmarkRoundTrip measures foreground jobs through the server over
// loopback: clients pipelining submissions, raw workers echoing the
// payload back. It reports jobs/s.
func BenchmarkRoundTrip(b *testing.B) {
	for _, size := range []int{64, 64 << 10} {
		for _, inflight := range []int{1, 16} {
			b.Run(fmt.Sprintf("payload=%d/inflight=%d", size, inflight), func(b *testing.B) {
				benchRoundTrip(b, size, inflight)
			})
		}
	}
}

func benchRoundTrip(b *testing.B, size, inflight int) {
	srv := servertest.Start(b, server.Config{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); echoWorker(b, srv.Addr, stop) }()
	}
	defer func() { close(stop); wg.Wait() }()

	nc, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	r := protocol.NewReader(nc, protocol.ReaderConfig{})
	w := bufio.NewWriter(nc)
	payload := make([]byte, size)
	submit := protocol.New(protocol.Req, protocol.SubmitJob, []byte("echo"), nil, payload).Append(nil)

	b.SetBytes(int64(size))
	b.ReportAllocs()
	sent, done := 0, 0
	// Keep `inflight` jobs outstanding; every b.Loop iteration is one
	// completed job.
	for b.Loop() {
		for sent-done < inflight {
			w.Write(submit)
			sent++
		}
		w.Flush()
		for {
			p, err := r.ReadPacket()
			if err != nil {
				b.Fatal(err)
			}
			if p.Type == protocol.WorkComplete {
				done++
				break
			}
		}
	}
	b.ReportMetric(float64(done)/b.Elapsed().Seconds(), "jobs/s")
	// Drain what is still in flight so workers are idle at cleanup.
	for done < sent {
		p, err := r.ReadPacket()
		if err != nil {
			b.Fatal(err)
		}
		if p.Type == protocol.WorkComplete {
			done++
		}
	}
}

// echoWorker is a plain Gearman worker that returns each payload.
func echoWorker(b *testing.B, addr string, stop <-chan struct{}) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Error(err)
		return
	}
	go func() { <-stop; nc.Close() }()
	r := protocol.NewReader(nc, protocol.ReaderConfig{})
	w := bufio.NewWriter(nc)
	var out []byte
	out = protocol.New(protocol.Req, protocol.CanDo, []byte("echo")).Append(out)
	out = protocol.New(protocol.Req, protocol.GrabJobUniq).Append(out)
	w.Write(out)
	w.Flush()
	for {
		p, err := r.ReadPacket()
		if err != nil {
			return
		}
		out = out[:0]
		switch p.Type {
		case protocol.JobAssignUniq:
			out = protocol.AppendPacket(out, protocol.Req, protocol.WorkComplete, p.Args[0], p.Args[3])
			out = protocol.AppendPacket(out, protocol.Req, protocol.GrabJobUniq)
		case protocol.NoJob:
			out = protocol.AppendPacket(out, protocol.Req, protocol.PreSleep)
		case protocol.Noop:
			out = protocol.AppendPacket(out, protocol.Req, protocol.GrabJobUniq)
		}
		w.Write(out)
		w.Flush()
	}
}
