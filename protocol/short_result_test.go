package protocol_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/gearflow/gearflow/protocol"
)

// A worker result with only its handle (no NUL, no data) reads as the
// handle with empty data; other types short of a NUL stay malformed.
func TestHandleOnlyResult(t *testing.T) {
	tests := []struct {
		name      string
		typ       protocol.Type
		body      string
		want      []string
		malformed bool
	}{
		{"WORK_COMPLETE", protocol.WorkComplete, "H:x:1", []string{"H:x:1", ""}, false},
		{"WORK_DATA", protocol.WorkData, "H:x:1", []string{"H:x:1", ""}, false},
		{"WORK_WARNING", protocol.WorkWarning, "H:x:1", []string{"H:x:1", ""}, false},
		{"WORK_EXCEPTION", protocol.WorkException, "H:x:1", []string{"H:x:1", ""}, false},
		{"WORK_COMPLETE empty", protocol.WorkComplete, "", []string{"", ""}, false},
		{"WORK_COMPLETE with NUL", protocol.WorkComplete, "H:x:1\x00", []string{"H:x:1", ""}, false},
		{"WORK_STATUS short", protocol.WorkStatus, "H:x:1\x001", nil, true},
		{"SUBMIT_JOB short", protocol.SubmitJob, "f\x00u", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stream []byte
			stream = append(stream, "\x00REQ"...)
			stream = binary.BigEndian.AppendUint32(stream, uint32(tt.typ))
			stream = binary.BigEndian.AppendUint32(stream, uint32(len(tt.body)))
			stream = append(stream, tt.body...)
			stream = protocol.AppendPacket(stream, protocol.Req, protocol.EchoReq, []byte("next"))
			r := protocol.NewReader(bytes.NewReader(stream), protocol.ReaderConfig{})
			p, err := r.ReadPacket()
			if tt.malformed {
				if err == nil {
					t.Fatalf("ReadPacket = %q, want a malformed packet", p.Args)
				}
			} else {
				if err != nil {
					t.Fatalf("ReadPacket: %v", err)
				}
				if len(p.Args) != len(tt.want) {
					t.Fatalf("args %q, want %q", p.Args, tt.want)
				}
				for i, a := range p.Args {
					if string(a) != tt.want[i] {
						t.Errorf("arg %d = %q, want %q", i, a, tt.want[i])
					}
				}
			}
			if p, err := r.ReadPacket(); err != nil || p.Type != protocol.EchoReq {
				t.Fatalf("next packet: %v %v, want ECHO_REQ", p.Type, err)
			}
		})
	}
}
