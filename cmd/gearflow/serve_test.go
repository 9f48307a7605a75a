package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearflow/gearflow/protocol"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// ownServer dials addr until a server answers the admin "getpid"
// command, for up to 5 seconds, and reports whether that server is
// process pid. A port that was free when the test picked it can be taken
// by another test's server before ours binds it; ours then exits with an
// error, and the test must not go on against the other one.
func ownServer(t *testing.T, addr string, pid int) bool {
	t.Helper()
	c := waitDial(t, addr)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("getpid\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.TrimSpace(line) == "OK "+strconv.Itoa(pid)
}

// waitDial dials addr until the server answers, for up to 5 seconds.
func waitDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("server on %s not up: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServeFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"check-args", []string{"--check-args", "-p", "4731", "--job-retries=3", "-t", "0", "-L", "127.0.0.1"}, 0, ""},
		{"bad retries", []string{"--check-args", "--job-retries=300"}, 2, "out of range"},
		{"bad level", []string{"--check-args", "--log-level=loud"}, 2, "unknown log level"},
		{"bad threads", []string{"--check-args", "--threads=-2"}, 2, "--threads -2 out of range"},
		{"bad queue", []string{"--check-args", "-q", "mysql"}, 2, "not supported"},
		{"bad port", []string{"--check-args", "-p", "http"}, 2, "bad port"},
		{"outbound below packet", []string{"--check-args", "--max-outbound-bytes", "1048576"}, 2, "--max-outbound-bytes 1048576 is below --max-packet-size 67108864"},
		{"outbound below set packet", []string{"--check-args", "--max-packet-size", "4194304", "--max-outbound-bytes", "4194304"}, 2, "use at least 4198400"},
		{"outbound fits packet", []string{"--check-args", "--max-packet-size", "1048576", "--max-outbound-bytes", "1052672"}, 0, ""},
		{"positional", []string{"--check-args", "extra"}, 2, "unexpected argument"},
		{"unknown flag", []string{"--frobnicate"}, 2, "unknown flag: --frobnicate"},
		{"gearmand's other flags", []string{"--check-args", "-b", "64", "-R", "--keepalive", "--keepalive-idle", "30", "--hashtable-buckets", "991", "--coredump", "-q", "builtin", "--verbose", "WARNING"}, 0, ""},
		{"gearmand's ssl", []string{"--check-args", "--ssl"}, 2, "unknown flag: --ssl"},
		{"no descriptors", []string{"-L", "127.0.0.1", "-p", "0", "-f", "0"}, 1, "--file-descriptors 0: a server needs descriptors"},
		{"daemon without a log file", []string{"--check-args", "-d"}, 0, "--daemon closes stderr once the server runs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := cmdServe(context.Background(), tt.args, &out, &errb)
			if code != tt.code || !strings.Contains(errb.String(), tt.msg) {
				t.Errorf("serve %v = %d, stderr %q; want %d containing %q", tt.args, code, errb.String(), tt.code, tt.msg)
			}
		})
	}
}

// TestServeDrainsOnSignal runs the server, starts a job, cancels the
// command's context (what SIGTERM does) and checks that the running
// job's result still reaches its client before the server exits.
func TestServeDrainsOnSignal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	var (
		addr   string
		cancel context.CancelFunc
		exited chan int
		errb   bytes.Buffer
	)
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		exited = make(chan int, 1)
		errb.Reset()
		go func() {
			exited <- cmdServe(ctx, []string{"-L", "127.0.0.1", "-p", port, "-P", pidFile,
				"--job-handle-prefix", "H:t", "--shutdown-timeout", "10s", "--log-level", "warn"}, &bytes.Buffer{}, &errb)
		}()
		addr = net.JoinHostPort("127.0.0.1", port)
		if ownServer(t, addr, os.Getpid()) {
			break
		}
		cancel()
		<-exited
		if attempt == 2 {
			t.Fatalf("serve did not get a port of its own in 3 attempts: %s", errb.String())
		}
	}
	worker := waitDial(t, addr)
	defer worker.Close()
	client := waitDial(t, addr)
	defer client.Close()
	if b, err := os.ReadFile(pidFile); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("pid file = %q, %v; want our pid", b, err)
	}

	send := func(c net.Conn, typ protocol.Type, args ...string) {
		b := make([][]byte, len(args))
		for i, a := range args {
			b[i] = []byte(a)
		}
		if _, err := c.Write(protocol.New(protocol.Req, typ, b...).Append(nil)); err != nil {
			t.Fatal(err)
		}
	}
	cr := protocol.NewReader(client, protocol.ReaderConfig{})
	wr := protocol.NewReader(worker, protocol.ReaderConfig{})
	client.SetDeadline(time.Now().Add(10 * time.Second))
	worker.SetDeadline(time.Now().Add(10 * time.Second))
	send(client, protocol.SubmitJob, "f", "", "x")
	if p, err := cr.ReadPacket(); err != nil || p.Type != protocol.JobCreated {
		t.Fatalf("submit: %v %v", p.Type, err)
	}
	send(worker, protocol.CanDo, "f")
	send(worker, protocol.GrabJob)
	if p, err := wr.ReadPacket(); err != nil || p.Type != protocol.JobAssign {
		t.Fatalf("grab: %v %v", p.Type, err)
	}

	cancel() // as SIGTERM
	// New connections are refused once the listener is closed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections 5s after the signal")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case code := <-exited:
		t.Fatalf("serve exited (%d) with a job still running", code)
	default:
	}
	send(worker, protocol.WorkComplete, "H:t:1", "done")
	p, err := cr.ReadPacket()
	if err != nil || p.Type != protocol.WorkComplete || string(p.Args[1]) != "done" {
		t.Fatalf("client got %v %q, %v; want WORK_COMPLETE done", p.Type, p.Args, err)
	}
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("serve exited %d, want 0; stderr %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not exit after its last job finished")
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
}

// TestServeThreads: --threads 0 runs the server on one thread (it says
// so at start-up) and it serves; it runs as a process of its own, since
// the setting is process-wide.
func TestServeThreads(t *testing.T) {
	t.Parallel()
	bin := buildGearflow(t)
	logFile := filepath.Join(t.TempDir(), "log")
	var addr string
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		p := startProcess(t, bin, nil, "serve", "-L", "127.0.0.1", "-p", port, "--threads", "0", "--log-level", "info", "-l", logFile)
		addr = net.JoinHostPort("127.0.0.1", port)
		if ownServer(t, addr, p.cmd.Process.Pid) {
			break
		}
		p.kill()
		if attempt == 2 {
			t.Fatal("serve did not get a port of its own in 3 attempts")
		}
	}
	c := waitDial(t, addr)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(protocol.New(protocol.Req, protocol.EchoReq, []byte("hi")).Append(nil)); err != nil {
		t.Fatal(err)
	}
	if pk, err := protocol.NewReader(c, protocol.ReaderConfig{}).ReadPacket(); err != nil || pk.Type != protocol.EchoRes || string(pk.Arg(0)) != "hi" {
		t.Fatalf("echo: %v %q %v", pk.Type, pk.Arg(0), err)
	}
	// Logged before the server accepts: the echo came after it.
	b, err := os.ReadFile(logFile)
	if err != nil || !strings.Contains(string(b), "msg=starting threads=1") {
		t.Fatalf("start-up log does not say one thread (%v):\n%s", err, b)
	}
}

// startServeProcess runs "gearflow serve" as a process of its own on a
// fresh loopback port, with args added, and returns it and its address.
func startServeProcess(t *testing.T, bin string, args ...string) (*process, string) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		p := startProcess(t, bin, nil, append([]string{"serve", "-L", "127.0.0.1", "-p", port,
			"--job-handle-prefix", "H:t", "--log-level", "info"}, args...)...)
		addr := net.JoinHostPort("127.0.0.1", port)
		if ownServer(t, addr, p.cmd.Process.Pid) {
			return p, addr
		}
		p.kill()
		if attempt == 2 {
			t.Fatal("serve did not get a port of its own in 3 attempts")
		}
	}
}

// wirePeer is a client or worker speaking packets by hand.
type wirePeer struct {
	t  *testing.T
	c  net.Conn
	rd *protocol.Reader
}

func dialPeer(t *testing.T, addr string) *wirePeer {
	c := waitDial(t, addr)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &wirePeer{t: t, c: c, rd: protocol.NewReader(c, protocol.ReaderConfig{})}
}

func (p *wirePeer) send(typ protocol.Type, args ...string) {
	p.t.Helper()
	b := make([][]byte, len(args))
	for i, a := range args {
		b[i] = []byte(a)
	}
	if _, err := p.c.Write(protocol.New(protocol.Req, typ, b...).Append(nil)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *wirePeer) expect(typ protocol.Type) protocol.Packet {
	p.t.Helper()
	pk, err := p.rd.ReadPacket()
	if err != nil || pk.Type != typ {
		p.t.Fatalf("read %v (%q), %v; want %v", pk.Type, pk.Args, err, typ)
	}
	return pk
}

// startRunningJob submits a job and has a worker take it; it returns the
// client and the worker, the job running.
func startRunningJob(t *testing.T, addr string) (client, worker *wirePeer) {
	t.Helper()
	client, worker = dialPeer(t, addr), dialPeer(t, addr)
	client.send(protocol.SubmitJob, "f", "", "x")
	client.expect(protocol.JobCreated)
	worker.send(protocol.CanDo, "f")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign)
	return client, worker
}

// waitRefused waits up to 10 seconds until addr refuses connections.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections 10s after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exitCode waits up to d for p to exit and returns its exit code, or -1
// (and fails the test) if it is still running.
func exitCode(t *testing.T, p *process, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Errorf("serve still running %v later", d)
		return -1
	}
}

// TestServeAdminShutdownGraceful: admin "shutdown graceful" drains as
// SIGTERM does. The process stays up while a job runs, the job's result
// reaches its client, and then the process exits 0.
func TestServeAdminShutdownGraceful(t *testing.T) {
	t.Parallel()
	bin := buildGearflow(t)
	p, addr := startServeProcess(t, bin, "--allow-admin-shutdown", "--shutdown-timeout", "30s")
	client, worker := startRunningJob(t, addr)

	admin := dialPeer(t, addr)
	if _, err := admin.c.Write([]byte("shutdown graceful\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(admin.c).ReadString('\n'); err != nil || line != "OK\r\n" {
		t.Fatalf("shutdown graceful: %q, %v", line, err)
	}
	waitRefused(t, addr)
	select {
	case <-p.done:
		t.Fatalf("serve exited (%d) with a job still running", p.cmd.ProcessState.ExitCode())
	case <-time.After(200 * time.Millisecond):
	}
	worker.send(protocol.WorkComplete, "H:t:1", "done")
	if pk := client.expect(protocol.WorkComplete); string(pk.Args[1]) != "done" {
		t.Errorf("client got %q, want done", pk.Args[1])
	}
	if code := exitCode(t, p, 10*time.Second); code != 0 {
		t.Errorf("serve exited %d, want 0", code)
	}
}

// TestServeAdminShutdownTimeout: the drain of "shutdown graceful" is
// bounded by --shutdown-timeout: a job that never ends holds the process
// up for that long and no longer.
func TestServeAdminShutdownTimeout(t *testing.T) {
	t.Parallel()
	bin := buildGearflow(t)
	p, addr := startServeProcess(t, bin, "--allow-admin-shutdown", "--shutdown-timeout", "2s")
	_, _ = startRunningJob(t, addr)
	admin := dialPeer(t, addr)
	start := time.Now()
	if _, err := admin.c.Write([]byte("shutdown graceful\n")); err != nil {
		t.Fatal(err)
	}
	code := exitCode(t, p, 20*time.Second)
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Errorf("serve exited %v after shutdown graceful with a job running; want it to wait up to --shutdown-timeout 2s", elapsed)
	}
	if code != 0 {
		t.Errorf("serve exited %d, want 0", code)
	}
}

// TestServeSecondSignal: a second SIGTERM during the drain exits at once
// instead of waiting out --shutdown-timeout.
func TestServeSecondSignal(t *testing.T) {
	t.Parallel()
	bin := buildGearflow(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			p, addr := startServeProcess(t, bin, "--shutdown-timeout", "5m")
			_, _ = startRunningJob(t, addr)
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			waitRefused(t, addr) // the drain has begun
			select {
			case <-p.done:
				t.Fatalf("serve exited (%d) on the first signal with a job running", p.cmd.ProcessState.ExitCode())
			case <-time.After(200 * time.Millisecond):
			}
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := exitCode(t, p, 10*time.Second); code != 1 {
				t.Errorf("serve exited %d after a second %v, want 1", code, sig)
			}
		})
	}
}
