//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/gearmandtest"
)

// sessionOf returns the session id of process pid, from /proc.
func sessionOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid pgrp session ...; comm may hold spaces.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	sid, err := strconv.Atoi(fields[3])
	if err != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	return sid
}

// daemonPid reads the pid file of a daemon this test started, and has it
// ended when the test ends. It must be the binary's process: the pid
// is checked against /proc before it is signalled.
func daemonPid(t *testing.T, bin, pidFile string) int {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("pid file %q", b)
	}
	ours := func() bool {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		return err == nil && exe == bin
	}
	if !ours() {
		t.Fatalf("pid %d is not %s", pid, bin)
	}
	t.Cleanup(func() {
		if ours() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return pid
}

// TestServeDaemon: gearmand's --daemon, as Debian's unit for gearmand
// (Type=forking, PIDFile) passes it. The command returns 0 once the
// server serves, from a process of its own in a session of its own
// whose pid is in the pid file; a daemon that cannot start returns
// its error and status instead, and leaves no process behind.
func TestServeDaemon(t *testing.T) {
	t.Parallel()
	bin := buildGearflow(t)
	dir := t.TempDir()
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", port)
	pidFile, logFile := filepath.Join(dir, "gearmand.pid"), filepath.Join(dir, "gearmand.log")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	// Debian's PARAMS, with a port and paths of the test's.
	cmd := exec.CommandContext(ctx, bin, "serve", "--pid-file="+pidFile, "--listen=127.0.0.1", "--daemon",
		"--log-file="+logFile, "--port="+port)
	cmd.SysProcAttr = gearmandtest.DieWithParent()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("serve --daemon: %v: %s", err, stderr.Bytes())
	}
	if stderr.Len() > 0 {
		t.Errorf("serve --daemon printed %q", stderr.Bytes())
	}
	pid := daemonPid(t, bin, pidFile)
	if pid == cmd.Process.Pid {
		t.Fatalf("the pid file holds the pid of the command that returned")
	}
	if !ownServer(t, addr, pid) {
		t.Errorf("the server on %s is not the daemon %d", addr, pid)
	}
	if sid := sessionOf(t, pid); sid != pid {
		t.Errorf("session of %d = %d; want a session of its own", pid, sid)
	}

	// A second daemon on the same port fails as the server would, in
	// the foreground: its error, exit status 1, no process left.
	pidFile2 := filepath.Join(dir, "second.pid")
	second := exec.CommandContext(ctx, bin, "serve", "-d", "-L", "127.0.0.1", "-p", port, "-P", pidFile2, "-l", filepath.Join(dir, "second.log"))
	second.SysProcAttr = gearmandtest.DieWithParent()
	out, err := second.CombinedOutput()
	if code := second.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), "address already in use") {
		t.Errorf("second daemon on the same port: %v, exit %d, %q; want exit 1 naming the address in use", err, code, out)
	}
	if _, err := os.Stat(pidFile2); !os.IsNotExist(err) {
		t.Errorf("the failed daemon left its pid file (%v)", err)
	}

	// SIGTERM stops it as it stops the server in the foreground, and
	// its pid file goes.
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon %d did not stop on SIGTERM", pid)
		}
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file after the stop: %v, want it removed", err)
	}
	if log, _ := os.ReadFile(logFile); !bytes.Contains(log, []byte("shut down")) {
		t.Errorf("the log file has no shutdown line:\n%s", log)
	}
}

// TestServeUser: gearmand's --user: the server opens its sockets and
// files, then runs as the user. Only root can switch.
func TestServeUser(t *testing.T) {
	t.Parallel()
	bin := buildGearflow(t)
	// An unknown user stops the start before anything is opened, and
	// --check-args finds it.
	for _, args := range [][]string{{"-u", "no-such-user-here"}, {"--check-args", "-u", "no-such-user-here"}} {
		var errb bytes.Buffer
		if code := cmdServe(t.Context(), append([]string{"-L", "127.0.0.1", "-p", "0"}, args...), io.Discard, &errb); code != 1 ||
			errb.String() != "gearflow serve: --user: user: unknown user no-such-user-here\n" {
			t.Errorf("%v: exit %d, %q", args, code, errb.String())
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("switching users takes root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody here")
	}
	// The pid file's folder is the user's, as /run/gearman is under
	// Debian's unit, so that the server can remove it at exit.
	dir := filepath.Join(t.TempDir(), "run")
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(dir); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // the test's folders, for nobody to reach its own
	}
	pidFile := filepath.Join(dir, "gearmand.pid")
	port := freePort(t)
	p := startProcess(t, bin, nil, "serve", "-L", "127.0.0.1", "-p", port, "-u", "nobody", "-P", pidFile)
	pid := p.cmd.Process.Pid
	if !ownServer(t, net.JoinHostPort("127.0.0.1", port), pid) {
		t.Fatalf("serve -u nobody (pid %d) does not answer on its port", pid)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Uid:\t" + nobody.Uid + "\t" + nobody.Uid, "Gid:\t" + nobody.Gid + "\t" + nobody.Gid} {
		if !bytes.Contains(status, []byte(want)) {
			t.Errorf("/proc/%d/status has no %q:\n%s", pid, want, status)
		}
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("serve -u nobody did not stop on SIGTERM")
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file after the stop: %v, want it removed", err)
	}
}

// TestServeGearmandProcessFlags: --version, --file-descriptors and the
// --keepalive-* settings, which gearmand takes too.
func TestServeGearmandProcessFlags(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if code := cmdServe(t.Context(), []string{"-V"}, &out, io.Discard); code != 0 || out.String() != "gearflow serve "+version+"\n" {
		t.Errorf("-V: exit %d, %q", code, out.String())
	}

	bin := buildGearflow(t)
	port := freePort(t)
	p := startProcess(t, bin, nil, "serve", "-L", "127.0.0.1", "-p", port, "-f", "1000")
	if !ownServer(t, net.JoinHostPort("127.0.0.1", port), p.cmd.Process.Pid) {
		t.Fatal("serve -f 1000 does not answer on its port")
	}
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var openFiles string
	for line := range strings.Lines(string(limits)) {
		if strings.HasPrefix(line, "Max open files") {
			openFiles = strings.Join(strings.Fields(line)[3:4], "")
		}
	}
	if openFiles != "1000" {
		t.Errorf("soft limit of open files = %q, want 1000:\n%s", openFiles, limits)
	}

	// The keepalive settings reach every accepted connection.
	fs, f := newServeFlagSet(io.Discard)
	if _, _, ok := fs.Parse([]string{"--keepalive", "--keepalive-idle", "30", "--keepalive-interval", "5", "--keepalive-count", "3"}); !ok {
		t.Fatal("flags refused")
	}
	lc := f.listenConfig(fs)
	l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ac, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	raw, err := ac.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	raw.Control(func(fd uintptr) {
		for name, opt := range map[string][2]int{
			"SO_KEEPALIVE":  {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
			"TCP_KEEPIDLE":  {syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE},
			"TCP_KEEPINTVL": {syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL},
			"TCP_KEEPCNT":   {syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT},
		} {
			v, err := syscall.GetsockoptInt(int(fd), opt[0], opt[1])
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			got[name] = v
		}
	})
	want := map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": 30, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %d, want %d", name, got[name], v)
		}
	}
}
