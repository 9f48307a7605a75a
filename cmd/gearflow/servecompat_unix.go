//go:build unix

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
	"testing"
)

// gearmand's process flags, for a drop-in start: --daemon, --user and
// --file-descriptors, as Debian's unit and init script pass them.

// daemonReady ends a daemon child's report: it serves.
const daemonReady = "\x00ready\n"

// daemonize starts this command again as a detached child (a session of
// its own, no terminal, standard streams on /dev/null) and waits until
// it serves, its pid file written, or fails. It returns the exit code
// for the parent: 0 once the child serves, else the child's own, with
// what the child printed copied to stderr. This is gearmand -d, as a
// systemd unit of Type=forking expects it; a Go program cannot fork,
// so the child is a new process running the same arguments.
func daemonize(args []string, stderr io.Writer) int {
	if testing.Testing() {
		// The executable is a test binary: run again, it would run the
		// tests, not the server.
		fmt.Fprintln(stderr, "gearflow serve: --daemon: not in a test binary; run the gearflow command")
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "gearflow serve: --daemon:", err)
		return 1
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintln(stderr, "gearflow serve: --daemon:", err)
		return 1
	}
	defer r.Close()
	cmd := exec.Command(exe, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), daemonEnv+"=3")
	cmd.ExtraFiles = []*os.File{w} // descriptor 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		fmt.Fprintln(stderr, "gearflow serve: --daemon:", err)
		return 1
	}
	report, _ := io.ReadAll(r) // until the child is ready or gone
	if msg, ok := bytes.CutSuffix(report, []byte(daemonReady)); ok {
		stderr.Write(msg)
		_ = cmd.Process.Release() // it serves on its own
		return 0
	}
	stderr.Write(report)
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			return ee.ExitCode()
		}
		fmt.Fprintln(stderr, "gearflow serve: --daemon:", err)
	}
	return 1
}

// daemonChild returns, in a daemon's child, the writer its messages go
// to until it serves (the parent copies them to its stderr) and the
// function that says it serves, after which they go nowhere. ok is false
// outside a daemon's child.
func daemonChild() (out io.Writer, ready func(), ok bool) {
	fd, err := strconv.Atoi(os.Getenv(daemonEnv))
	if err != nil || fd < 3 {
		return nil, nil, false
	}
	os.Unsetenv(daemonEnv) // not for processes it may start
	f := os.NewFile(uintptr(fd), "daemon report")
	sw := &switchWriter{w: f}
	return sw, func() {
		sw.set(io.Discard)
		f.WriteString(daemonReady)
		f.Close()
	}, true
}

// runAs is a user to switch to (--user), looked up before the server
// opens anything, so that a wrong name stops it before it starts.
type runAs struct {
	name        string
	uid, gid    int
	groups      []int // the primary group first
	alreadySelf bool  // not root, and the user is this process's own
}

// lookupUser resolves --user. Only root can switch; for any other user,
// naming oneself is allowed and changes nothing.
func lookupUser(name string) (*runAs, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("--user: %w", err)
	}
	r := &runAs{name: name}
	if r.uid, err = strconv.Atoi(u.Uid); err != nil {
		return nil, fmt.Errorf("--user %s: uid %q: %w", name, u.Uid, err)
	}
	if r.gid, err = strconv.Atoi(u.Gid); err != nil {
		return nil, fmt.Errorf("--user %s: gid %q: %w", name, u.Gid, err)
	}
	if os.Geteuid() != 0 {
		if os.Geteuid() != r.uid {
			return nil, fmt.Errorf("--user %s: only root can switch to another user", name)
		}
		r.alreadySelf = true
		return r, nil
	}
	r.groups = []int{r.gid}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil && g != r.gid {
				r.groups = append(r.groups, g)
			}
		}
	}
	return r, nil
}

// switchTo makes the process run as r (its uid, primary group and
// supplementary groups), as gearmand -u does once its sockets and files
// are open.
func (r *runAs) switchTo() error {
	if r.alreadySelf {
		return nil
	}
	// Groups first: once the uid is not root, they cannot change.
	if err := syscall.Setgroups(r.groups); err != nil {
		return fmt.Errorf("--user %s: setgroups: %w", r.name, err)
	}
	if err := syscall.Setgid(r.gid); err != nil {
		return fmt.Errorf("--user %s: setgid: %w", r.name, err)
	}
	if err := syscall.Setuid(r.uid); err != nil {
		return fmt.Errorf("--user %s: setuid: %w", r.name, err)
	}
	return nil
}

// setFileLimit sets the most open descriptors (RLIMIT_NOFILE) to n, as
// gearmand -f does. Raising the hard limit takes root.
func setFileLimit(n uint64) error {
	if n == 0 {
		return fmt.Errorf("--file-descriptors 0: a server needs descriptors")
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("--file-descriptors: %w", err)
	}
	lim.Cur = n
	lim.Max = max(lim.Max, n)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("--file-descriptors %d: %w", n, err)
	}
	return nil
}
