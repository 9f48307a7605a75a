package loadgen

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

// worker is one worker connection echoing payloads back. Its fields are
// owned by the goroutine running loop.
type worker struct {
	r    *run
	conn net.Conn
	rd   *protocol.Reader
	out  []byte
}

// newWorker connects a worker and registers its function. It sends
// ECHO_REQ after CAN_DO and waits for the ECHO_RES, so once it returns the
// server has processed the registration.
func (r *run) newWorker(ctx context.Context) (*worker, error) {
	c, err := r.dial(ctx)
	if err != nil {
		return nil, err
	}
	w := &worker{r: r, conn: c, rd: protocol.NewReader(c, protocol.ReaderConfig{})}
	w.out = protocol.AppendPacket(w.out, protocol.Req, protocol.CanDo, []byte(r.cfg.Function))
	w.out = protocol.AppendPacket(w.out, protocol.Req, protocol.EchoReq, []byte("ready"))
	deadline := time.Now().Add(r.cfg.DialTimeout)
	_ = c.SetDeadline(deadline)
	if err := w.flush(); err != nil {
		return nil, w.broken(err)
	}
	for {
		p, err := w.rd.ReadPacket()
		if err != nil {
			return nil, w.broken(fmt.Errorf("registering: %w", err))
		}
		if p.Type == protocol.EchoRes {
			break
		}
		if p.Type == protocol.Error {
			return nil, w.broken(protocol.ParseError(p))
		}
		// Anything else (a NOOP) is harmless; the deadline bounds the wait.
	}
	_ = c.SetDeadline(time.Time{})
	return w, nil
}

func (w *worker) flush() error {
	_, err := w.conn.Write(w.out)
	w.out = w.out[:0]
	return err
}

// loop grabs and echoes jobs until the connection is closed.
func (w *worker) loop() error {
	w.out = append(w.out, w.r.grabPkt...)
	if err := w.flush(); err != nil {
		return w.broken(err)
	}
	for {
		p, err := w.rd.ReadPacket()
		if err != nil {
			return w.broken(err)
		}
		switch p.Type {
		case protocol.JobAssignUniq, protocol.JobAssign:
			// JOB_ASSIGN_UNIQ: handle, function, unique, data;
			// JOB_ASSIGN: handle, function, data.
			data := p.Args[len(p.Args)-1]
			w.out = protocol.AppendPacket(w.out, protocol.Req, protocol.WorkComplete, p.Arg(0), data)
			w.out = append(w.out, w.r.grabPkt...)
			w.r.completeDrained()
		case protocol.NoJob:
			w.out = append(w.out, w.r.preSleepPkt...)
		case protocol.Noop:
			w.out = append(w.out, w.r.grabPkt...)
		case protocol.Error:
			return w.broken(protocol.ParseError(p))
		default:
			return w.broken(fmt.Errorf("unexpected %s packet", p.Type))
		}
		if w.rd.Buffered() == 0 {
			if err := w.flush(); err != nil {
				return w.broken(err)
			}
		}
	}
}

func (w *worker) broken(err error) error {
	if w.r.isClosing() {
		return nil
	}
	return fmt.Errorf("loadgen: worker connection to %s: %w", w.r.cfg.Addr, err)
}
