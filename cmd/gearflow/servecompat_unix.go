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
)

// gearmand's process flags, for a drop-in start: --daemon, --user and
// --file-descriptors, as Debian's unit and init script pass them.

// daemonEnv names the descriptor a daemon's child reports on: what it
// prints before it serves, then daemonReady.
const daemonEnv = "GEARFLOW_DAEMON_FD"

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

// dropUser makes the process run as the named user (its uid, primary
// group and supplementary groups), as gearmand -u does once its sockets
// and files are open. Only root can switch; for any other user, naming
// oneself is allowed and changes nothing.
func dropUser(name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("--user: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return fmt.Errorf("--user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return fmt.Errorf("--user %s: gid %q: %w", name, u.Gid, err)
	}
	if os.Geteuid() != 0 {
		if os.Geteuid() == uid {
			return nil
		}
		return fmt.Errorf("--user %s: only root can switch to another user", name)
	}
	groups := []int{gid}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil && g != gid {
				groups = append(groups, g)
			}
		}
	}
	// Groups first: once the uid is not root, they cannot change.
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("--user %s: setgroups: %w", name, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("--user %s: setgid: %w", name, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("--user %s: setuid: %w", name, err)
	}
	return nil
}

// setFileLimit sets the most open descriptors (RLIMIT_NOFILE) to n, as
// gearmand -f does. Raising the hard limit takes root.
func setFileLimit(n uint64) error {
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
