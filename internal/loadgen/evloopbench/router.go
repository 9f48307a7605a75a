// Command evloopbench is a minimal Gearman job router, built twice over
// one protocol core (this file) to measure what the I/O design costs per
// job: a goroutine per connection on Go's netpoller, as gearflow's
// server is built (goroutine.go), and a single-threaded epoll loop
// (epoll_linux.go), and gnet v2 with one event loop (gnet.go). It handles what `gearflow bench --mode fg|bg` sends
// and nothing more: CAN_DO, ECHO_REQ, GRAB_JOB(_UNIQ), PRE_SLEEP,
// SUBMIT_JOB(_BG), WORK_COMPLETE, and the admin line "getpid". Unique
// ids are not coalesced and there are no priorities, timeouts or
// limits: it is a measuring instrument, see run.sh.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
)

// Packet types used here (PROTOCOL.md §3).
const (
	tCanDo        = 1
	tPreSleep     = 4
	tNoop         = 6
	tSubmitJob    = 7
	tJobCreated   = 8
	tGrabJob      = 9
	tNoJob        = 10
	tJobAssign    = 11
	tWorkComplete = 13
	tEchoReq      = 16
	tEchoRes      = 17
	tError        = 19
	tSubmitJobBg  = 18
	tGrabJobUniq  = 30
	tAssignUniq   = 31
)

const maxPacket = 64 << 20

var errProtocol = errors.New("protocol error")

// job is one submitted job, queued or assigned.
type job struct {
	handle string
	fn     *function
	data   []byte
	client *conn // nil for a background job, or once the client left
	worker *conn // set while assigned
}

// function is one function name: its queue and its workers.
type function struct {
	name    string
	queue   []*job // FIFO; head is queue[0]
	workers []*conn
}

// conn is the protocol state of one connection. out is what is queued
// for it; the I/O variant decides when it is written.
type conn struct {
	id       uint64
	out      []byte
	dirty    bool
	fns      []*function
	sleeping bool
	noopSent bool
	assigned map[*job]struct{}
	jobs     map[*job]struct{} // foreground jobs this client waits for
	gone     bool

	io any // the I/O variant's own state
}

// router is the protocol core: single-threaded, the goroutine variant
// calls it under a mutex.
type router struct {
	fns    map[string]*function
	jobs   map[string]*job
	next   uint64
	nextID uint64
	dirty  []*conn // conns with new output since takeDirty
	pid    []byte
}

func newRouter() *router {
	return &router{
		fns:  make(map[string]*function),
		jobs: make(map[string]*job),
		pid:  []byte("OK " + strconv.Itoa(os.Getpid()) + "\n"),
	}
}

func (r *router) newConn() *conn {
	r.nextID++
	return &conn{id: r.nextID}
}

func (r *router) fn(name []byte) *function {
	f := r.fns[string(name)]
	if f == nil {
		f = &function{name: string(name)}
		r.fns[f.name] = f
	}
	return f
}

// queue marks c as having output.
func (r *router) queued(c *conn) {
	if !c.dirty && !c.gone {
		c.dirty = true
		r.dirty = append(r.dirty, c)
	}
}

// takeDirty returns the connections with output, in the order they got
// it, and starts a new list.
func (r *router) takeDirty(into []*conn) []*conn {
	into = append(into[:0], r.dirty...)
	for _, c := range r.dirty {
		c.dirty = false
	}
	clear(r.dirty)
	r.dirty = r.dirty[:0]
	return into
}

// appendPacket appends a response packet with the given arguments.
func appendPacket(out []byte, typ uint32, args ...[]byte) []byte {
	size := 0
	for i, a := range args {
		if i > 0 {
			size++
		}
		size += len(a)
	}
	out = append(out, 0, 'R', 'E', 'S')
	out = binary.BigEndian.AppendUint32(out, typ)
	out = binary.BigEndian.AppendUint32(out, uint32(size))
	for i, a := range args {
		if i > 0 {
			out = append(out, 0)
		}
		out = append(out, a...)
	}
	return out
}

// feed dispatches every whole packet or admin line at the start of b
// and returns how many bytes it used.
func (r *router) feed(c *conn, b []byte) (int, error) {
	used := 0
	for {
		rest := b[used:]
		if len(rest) == 0 {
			return used, nil
		}
		if rest[0] != 0 { // an admin text line
			i := 0
			for i < len(rest) && rest[i] != '\n' {
				i++
			}
			if i == len(rest) {
				if len(rest) > 4096 {
					return used, errProtocol
				}
				return used, nil
			}
			line := rest[:i]
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			if string(line) == "getpid" {
				c.out = append(c.out, r.pid...)
			} else {
				c.out = append(c.out, "ERR UNKNOWN_COMMAND Unknown+server+command\n"...)
			}
			r.queued(c)
			used += i + 1
			continue
		}
		if len(rest) < 12 {
			return used, nil
		}
		if string(rest[:4]) != "\x00REQ" {
			return used, errProtocol
		}
		typ := binary.BigEndian.Uint32(rest[4:8])
		size := binary.BigEndian.Uint32(rest[8:12])
		if size > maxPacket {
			return used, errProtocol
		}
		if len(rest) < 12+int(size) {
			return used, nil
		}
		if err := r.dispatch(c, typ, rest[12:12+size]); err != nil {
			return used, err
		}
		used += 12 + int(size)
	}
}

// split cuts body into n arguments; the last takes the rest.
func split(body []byte, n int, into *[4][]byte) bool {
	for i := 0; i < n-1; i++ {
		j := 0
		for j < len(body) && body[j] != 0 {
			j++
		}
		if j == len(body) {
			return false
		}
		into[i] = body[:j]
		body = body[j+1:]
	}
	into[n-1] = body
	return true
}

func (r *router) dispatch(c *conn, typ uint32, body []byte) error {
	var a [4][]byte
	switch typ {
	case tCanDo:
		f := r.fn(body)
		for _, g := range c.fns {
			if g == f {
				return nil
			}
		}
		c.fns = append(c.fns, f)
		f.workers = append(f.workers, c)
	case tEchoReq:
		c.out = appendPacket(c.out, tEchoRes, body)
		r.queued(c)
	case tPreSleep:
		c.sleeping = true
		c.noopSent = false
		for _, f := range c.fns {
			if len(f.queue) > 0 {
				c.noopSent = true
				c.out = appendPacket(c.out, tNoop)
				r.queued(c)
				break
			}
		}
	case tGrabJob, tGrabJobUniq:
		c.sleeping = false
		for _, f := range c.fns {
			if len(f.queue) == 0 {
				continue
			}
			j := f.queue[0]
			f.queue[0] = nil
			f.queue = f.queue[1:]
			j.worker = c
			if c.assigned == nil {
				c.assigned = make(map[*job]struct{})
			}
			c.assigned[j] = struct{}{}
			if typ == tGrabJobUniq {
				c.out = appendPacket(c.out, tAssignUniq, []byte(j.handle), []byte(f.name), nil, j.data)
			} else {
				c.out = appendPacket(c.out, tJobAssign, []byte(j.handle), []byte(f.name), j.data)
			}
			r.queued(c)
			return nil
		}
		c.out = appendPacket(c.out, tNoJob)
		r.queued(c)
	case tSubmitJob, tSubmitJobBg:
		if !split(body, 3, &a) {
			return errProtocol
		}
		f := r.fn(a[0])
		r.next++
		j := &job{handle: "H:evl:" + strconv.FormatUint(r.next, 10), fn: f, data: append([]byte(nil), a[2]...)}
		if typ == tSubmitJob {
			j.client = c
			if c.jobs == nil {
				c.jobs = make(map[*job]struct{})
			}
			c.jobs[j] = struct{}{}
		}
		r.jobs[j.handle] = j
		f.queue = append(f.queue, j)
		c.out = appendPacket(c.out, tJobCreated, []byte(j.handle))
		r.queued(c)
		for _, w := range f.workers {
			if w.sleeping && !w.noopSent {
				w.noopSent = true
				w.out = appendPacket(w.out, tNoop)
				r.queued(w)
			}
		}
	case tWorkComplete:
		if !split(body, 2, &a) {
			return errProtocol
		}
		j := r.jobs[string(a[0])]
		if j == nil || j.worker != c {
			c.out = appendPacket(c.out, tError, []byte("JOB_NOT_FOUND"), []byte("Job given in work result not found"))
			r.queued(c)
			return nil
		}
		delete(r.jobs, j.handle)
		delete(c.assigned, j)
		if cl := j.client; cl != nil {
			delete(cl.jobs, j)
			cl.out = appendPacket(cl.out, tWorkComplete, a[0], a[1])
			r.queued(cl)
		}
	default:
		return fmt.Errorf("%w: packet type %d not handled", errProtocol, typ)
	}
	return nil
}

// gone cleans up after a connection: its foreground jobs lose their
// client, the jobs it held as a worker go back to the head of their
// queues.
func (r *router) gone(c *conn) {
	c.gone = true
	for j := range c.jobs {
		j.client = nil
	}
	for j := range c.assigned {
		j.worker = nil
		j.fn.queue = append([]*job{j}, j.fn.queue...)
		for _, w := range j.fn.workers {
			if w.sleeping && !w.noopSent && w != c {
				w.noopSent = true
				w.out = appendPacket(w.out, tNoop)
				r.queued(w)
			}
		}
	}
	for _, f := range c.fns {
		for i, w := range f.workers {
			if w == c {
				f.workers = append(f.workers[:i], f.workers[i+1:]...)
				break
			}
		}
	}
}

func main() {
	mode := flag.String("mode", "goroutine", "I/O design: goroutine (one per connection, Go's netpoller) epoll (one thread, one loop) or gnet (gnet v2, one loop)")
	addr := flag.String("addr", "127.0.0.1:4730", "address to listen on")
	flag.Parse()
	var err error
	switch *mode {
	case "goroutine":
		err = serveGoroutines(*addr)
	case "epoll":
		err = serveEpoll(*addr)
	case "gnet":
		err = serveGnet(*addr)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	fmt.Fprintln(os.Stderr, "evloopbench:", err)
	os.Exit(1)
}
