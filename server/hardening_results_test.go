package server_test

import (
	"testing"

	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

// A worker library that sends WORK_COMPLETE with only the handle for an
// empty result, and its next GRAB_JOB in the same write: the job
// completes with an empty result and the grab gets the next job.
func TestHandleOnlyWorkResult(t *testing.T) {
	t.Parallel()
	for _, typ := range []protocol.Type{protocol.WorkComplete, protocol.WorkData, protocol.WorkWarning, protocol.WorkException} {
		t.Run(typ.String(), func(t *testing.T) {
			t.Parallel()
			srv := servertest.Start(t, server.Config{Exceptions: true})
			c := wiretest.Dial(t, srv.Addr)
			h1 := c.Submit(t, protocol.SubmitJob, "f", "", "1")
			h2 := c.Submit(t, protocol.SubmitJob, "f", "", "2")
			w := wiretest.Dial(t, srv.Addr)
			w.CanDo("f")
			w.Grab(t, h1, "f", "1")
			raw := wiretest.Raw("\x00REQ", uint32(typ), int64(len(h1)), []byte(h1))
			raw = append(raw, protocol.New(protocol.Req, protocol.GrabJob).Append(nil)...)
			w.SendRaw(raw)
			c.Expect(t, typ, h1, "")
			w.Expect(t, protocol.JobAssign, h2, "f", "2")
			if typ == protocol.WorkData || typ == protocol.WorkWarning {
				w.Req(protocol.WorkComplete, h1, "r") // h1 still runs
				c.Expect(t, protocol.WorkComplete, h1, "r")
			}
			w.Req(protocol.WorkComplete, h2, "r2")
			c.Expect(t, protocol.WorkComplete, h2, "r2")
			expectAdmin(t, c, "status", "f\t0\t0\t1\n.\n")
		})
	}
}
