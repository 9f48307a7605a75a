package runtime

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// FunctionStatus is one line of a server's admin "status" reply.
type FunctionStatus struct {
	Function string `json:"function"`
	// Total is queued plus running jobs.
	Total int `json:"total"`
	// Running is jobs assigned to a worker.
	Running int `json:"running"`
	// Workers is the number of registrations of the function.
	Workers int `json:"workers"`
}

// WorkerInfo is one line of a server's admin "workers" reply: one
// connection, worker or not.
type WorkerInfo struct {
	// FD is the server's socket descriptor (or connection id) for it.
	FD string `json:"fd"`
	// Addr is the peer's IP address.
	Addr string `json:"addr"`
	// ClientID is what the peer sent with SET_CLIENT_ID, "-" if nothing.
	ClientID string `json:"client_id"`
	// Functions are the functions it registered.
	Functions []string `json:"functions"`
}

// ErrAdmin is wrapped by the error of an admin command the server
// answered with an ERR line.
var ErrAdmin = errors.New("runtime: admin command refused")

// Admin runs admin commands on job servers, each on a connection of its
// own made as its fields say. The zero value connects with plaintext
// TCP, as the package's AdminCommand, AdminStatus and AdminWorkers do.
type Admin struct {
	// TLS, when set, makes the connections TLS, as ClientConfig.TLS
	// does. Nil means plaintext.
	TLS *tls.Config
	// Dial, when set, makes the connections in place of TCP, as
	// ClientConfig.Dial does. Nil means TCP.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// AdminCommand is Admin{}.Command: plaintext TCP.
func AdminCommand(ctx context.Context, addr, command string) ([]string, error) {
	return Admin{}.Command(ctx, addr, command)
}

// Command sends one admin text command (such as "status", "workers",
// "version") to the server at addr on a connection of its own and
// returns the reply's lines: the lines up to the terminating "." for
// list replies, the one line for the others. An "ERR" reply is returned
// as an error wrapping ErrAdmin. Without a deadline on ctx the exchange
// is bounded to 10 seconds.
func (a Admin) Command(ctx context.Context, addr, command string) ([]string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	nc, err := dialConn(ctx, addr, a.Dial, a.TLS)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
	defer stop()
	if _, err := nc.Write([]byte(command + "\n")); err != nil {
		return nil, err
	}
	list := isListCommand(command)
	r := bufio.NewReader(nc)
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("runtime: admin %q on %s: %w", command, addr, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if len(lines) == 0 && strings.HasPrefix(line, "ERR ") {
			return nil, fmt.Errorf("%w: %s: %s", ErrAdmin, addr, strings.ReplaceAll(line[4:], "+", " "))
		}
		if !list {
			return []string{line}, nil
		}
		if line == "." {
			return lines, nil
		}
		lines = append(lines, line)
	}
}

// isListCommand reports whether a command's reply is a list ended by ".".
func isListCommand(command string) bool {
	f := strings.Fields(strings.ToLower(command))
	if len(f) == 0 {
		return false
	}
	switch f[0] {
	case "status", "workers", "prioritystatus":
		return true
	case "show":
		return len(f) > 1
	}
	return false
}

// AdminStatus is Admin{}.Status: plaintext TCP.
func AdminStatus(ctx context.Context, addr string) ([]FunctionStatus, error) {
	return Admin{}.Status(ctx, addr)
}

// Status runs the admin "status" command on the server at addr.
func (a Admin) Status(ctx context.Context, addr string) ([]FunctionStatus, error) {
	lines, err := a.Command(ctx, addr, "status")
	if err != nil {
		return nil, err
	}
	out := make([]FunctionStatus, 0, len(lines))
	for _, line := range lines {
		f := strings.Split(line, "\t")
		if len(f) < 4 {
			return nil, fmt.Errorf("runtime: malformed status line %q from %s", line, addr)
		}
		// The counts are the last three columns. A name may hold tabs
		// (Perl's clients join a prefix with one): gearmand prints them
		// as they are, ours as \t.
		name := strings.Join(f[:len(f)-3], "\t")
		f = append([]string{name}, f[len(f)-3:]...)
		fs := FunctionStatus{Function: name}
		for i, p := range []*int{&fs.Total, &fs.Running, &fs.Workers} {
			// gearmand 1.1 can report a running count of 4294967295
			// (an unsigned -1): keep the number as sent.
			n, err := strconv.ParseInt(f[i+1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("runtime: malformed status line %q from %s", line, addr)
			}
			*p = int(n)
		}
		out = append(out, fs)
	}
	return out, nil
}

// AdminWorkers is Admin{}.Workers: plaintext TCP.
func AdminWorkers(ctx context.Context, addr string) ([]WorkerInfo, error) {
	return Admin{}.Workers(ctx, addr)
}

// Workers runs the admin "workers" command on the server at addr.
func (a Admin) Workers(ctx context.Context, addr string) ([]WorkerInfo, error) {
	lines, err := a.Command(ctx, addr, "workers")
	if err != nil {
		return nil, err
	}
	out := make([]WorkerInfo, 0, len(lines))
	for _, line := range lines {
		// "FD IP CLIENT_ID : FUNC FUNC ..."
		head, funcs, ok := strings.Cut(line, " :")
		f := strings.Fields(head)
		if !ok || len(f) != 3 {
			return nil, fmt.Errorf("runtime: malformed workers line %q from %s", line, addr)
		}
		out = append(out, WorkerInfo{FD: f[0], Addr: f[1], ClientID: f[2], Functions: strings.Fields(funcs)})
	}
	return out, nil
}
