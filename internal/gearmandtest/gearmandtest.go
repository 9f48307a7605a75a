// Package gearmandtest starts a real gearmand (Debian's gearman-job-server)
// for tests, on a loopback port of its own, and finds libgearman's
// command-line tools.
//
// Without the binaries, tests skip with an install hint; with the
// environment variable GEARFLOW_REQUIRE_INTEROP=1 (set by CI) they fail
// instead, so a missing package can never pass silently.
package gearmandtest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Binary is where Debian installs gearmand.
const Binary = "/usr/sbin/gearmand"

const installHint = "install Debian's gearman-job-server and gearman-tools: apt-get install gearman-job-server gearman-tools"

// Missing skips t, or fails it when GEARFLOW_REQUIRE_INTEROP=1, saying
// what is missing and how to install it.
func Missing(t testing.TB, what string) {
	t.Helper()
	Unavailable(t, what+" not found; "+installHint)
}

// Unavailable skips t with msg, a peer the test needs and how to get
// it, or fails it when GEARFLOW_REQUIRE_INTEROP=1 (as in CI, where a
// skipped interop test would hide that the peer was never tried).
func Unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("GEARFLOW_REQUIRE_INTEROP") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Tool returns the path of one of libgearman's tools ("gearman",
// "gearadmin"), or skips t (fails it in CI) when it is not installed.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name)
	}
	return p
}

// Server is a running gearmand started by Start.
type Server struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	// Port is the listening port.
	Port int
	// Log is the path of gearmand's log file.
	Log string

	t    testing.TB
	args []string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs gearmand in the foreground on a free loopback port with the
// extra flags given (for example "--job-retries=1", "--threads=0") and
// waits until it answers the admin "getpid" command with its own process
// id (so a server that took the port meanwhile is never mistaken for it).
// It is stopped when the test ends.
func Start(t testing.TB, flags ...string) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		Missing(t, Binary)
	}
	s := &Server{t: t, args: flags, dir: t.TempDir()}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var port int
		port, err = freePort()
		if err != nil {
			continue
		}
		if err = s.start(port); err == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("gearmandtest: gearmand did not start: %v", err)
	return nil
}

// Stop ends gearmand (SIGTERM, then SIGKILL after 5 s) and waits for it.
// It is safe to call more than once.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Restart stops gearmand and starts it again on the same port with the
// same flags. Jobs in memory are lost, as with a real restart.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.start(s.Port); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // the port may linger briefly
	}
	s.t.Fatalf("gearmandtest: restart on port %d: %v", s.Port, err)
}

// PID returns gearmand's process id, or 0 when it is stopped.
func (s *Server) PID() int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *Server) start(port int) error {
	s.Port = port
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.Log = filepath.Join(s.dir, "gearmand.log")
	args := []string{"-L", "127.0.0.1", "-p", strconv.Itoa(port),
		"-l", s.Log, "-P", filepath.Join(s.dir, "gearmand.pid")}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	args = append(args, s.args...)
	cmd := exec.Command(Binary, args...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = DieWithParent()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			log, _ := os.ReadFile(s.Log)
			return fmt.Errorf("gearmand exited: %s", strings.TrimSpace(string(log)))
		default:
		}
		pid, err := ping(s.Addr)
		if err == nil && pid == cmd.Process.Pid {
			s.cmd, s.done = cmd, done
			return nil
		}
		if err == nil {
			// Another server took the port between freePort and our
			// gearmand's bind (gearmand then retries bind for seconds):
			// give up on this port rather than test against a stranger.
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("port %d is served by process %d, not our gearmand %d", port, pid, cmd.Process.Pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-done
	return fmt.Errorf("gearmand on %s not ready within 10s", s.Addr)
}

// ping asks the server at addr for its process id over the admin
// protocol ("getpid", which gearmand answers with "OK <pid>").
func ping(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("getpid\n")); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "OK ")))
	if !strings.HasPrefix(line, "OK ") || err != nil {
		return 0, fmt.Errorf("unexpected getpid reply %q", line)
	}
	return pid, nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
