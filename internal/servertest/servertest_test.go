package servertest

import (
	"net"
	"testing"
	"time"

	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failed []string
}

func (r *recorder) Errorf(format string, args ...any) { r.failed = append(r.failed, format) }

// TestStopChecksPooledReferences: Stop passes for a server whose jobs
// hold pooled buffers (they are released with the server), and it
// checks what is left.
func TestStopChecksPooledReferences(t *testing.T) {
	rec := &recorder{TB: t}
	s := Start(rec, server.Config{})
	s.AllowLeftoverJobs() // the queued job holds the pooled buffer
	nc, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	big := make([]byte, 64<<10) // read into a pooled buffer
	if _, err := nc.Write(protocol.New(protocol.Req, protocol.SubmitJobBg, []byte("f"), nil, big).Append(nil)); err != nil {
		t.Fatal(err)
	}
	if p, err := protocol.NewReader(nc, protocol.ReaderConfig{}).ReadPacket(); err != nil || p.Type != protocol.JobCreated {
		t.Fatalf("submit: %v %v", p.Type, err)
	}
	srv := s.Srv
	if st := srv.Stats(); st.PooledRefs != 1 || st.Goroutines != 2 {
		t.Fatalf("with one large queued job and one connection: %+v; want 1 pooled reference, 2 goroutines", st)
	}
	s.Stop()
	if len(rec.failed) != 0 {
		t.Errorf("Stop failed a clean server: %q", rec.failed)
	}
	if st := srv.Stats(); st.PooledRefs != 0 || st.Goroutines != 0 {
		t.Errorf("after Stop: %+v", st)
	}
}

// submit sends one submission of type typ on a new connection and waits
// for its JOB_CREATED; the connection is returned open.
func submit(t *testing.T, addr string, typ protocol.Type) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(protocol.New(protocol.Req, typ, []byte("f"), nil, []byte("x")).Append(nil)); err != nil {
		t.Fatal(err)
	}
	if p, err := protocol.NewReader(nc, protocol.ReaderConfig{}).ReadPacket(); err != nil || p.Type != protocol.JobCreated {
		t.Fatalf("submit: %v %v", p.Type, err)
	}
	return nc
}

// TestStopChecksLeftoverJobs: Stop fails a test that leaves a job in
// the server, unless it said so with AllowLeftoverJobs; a foreground
// job whose client is gone with the server is not left over.
func TestStopChecksLeftoverJobs(t *testing.T) {
	tests := []struct {
		name     string
		typ      protocol.Type
		allow    bool
		wantFail bool
	}{
		{"background job left", protocol.SubmitJobBg, false, true},
		{"background job left, allowed", protocol.SubmitJobBg, true, false},
		{"foreground job, dropped with its client", protocol.SubmitJob, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			s := Start(rec, server.Config{})
			if tt.allow {
				s.AllowLeftoverJobs()
			}
			submit(t, s.Addr, tt.typ)
			if st := s.Srv.Stats(); st.Jobs != 1 {
				t.Fatalf("after one submission the server holds %d jobs", st.Jobs)
			}
			s.Stop()
			if failed := len(rec.failed) != 0; failed != tt.wantFail {
				t.Errorf("Stop failed the test: %v (%q), want %v", failed, rec.failed, tt.wantFail)
			}
		})
	}
}
