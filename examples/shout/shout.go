// Package shout mixes a stage served by any Gearman worker with a Go
// stage. Its first stage has encoding: raw, so its tasks are plain text
// and any Gearman worker can serve it, for example libgearman's command
// line tool running tr:
//
//	gearman -w -h 127.0.0.1 -p 4730 -f shout.upper -- tr a-z A-Z
//
// The second stage, in Go, measures each shouted line. Register also
// provides a Go version of shout.upper, so the pipeline runs on its own
// with the embedded server.
package shout

import (
	"bytes"
	"context"

	"github.com/gearflow/gearflow/flow"
)

// Register adds "shout.upper" (raw) and "shout.measure" (map) to reg.
func Register(reg *flow.Registry) {
	reg.Raw("shout.upper", Upper)
	reg.Map("shout.measure", Measure)
}

// Upper upper-cases ASCII letters, as tr a-z A-Z does.
func Upper(ctx context.Context, in []byte) ([]byte, error) {
	out := bytes.Clone(in)
	for i, c := range out {
		if 'a' <= c && c <= 'z' {
			out[i] = c - 'a' + 'A'
		}
	}
	return out, nil
}

// Measure emits each line as the key with its length in bytes.
func Measure(ctx context.Context, rec flow.Record, emit flow.Emit) error {
	line, _ := rec.Value.(string)
	return emit(line, len(line))
}
