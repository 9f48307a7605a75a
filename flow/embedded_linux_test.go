//go:build linux

package flow_test

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gearflow/gearflow/examples/wordcount"
	"github.com/gearflow/gearflow/flow"
)

// processSockets reads what /proc says of this process's sockets: the
// TCP and Unix sockets it listens on ("tcp 0100007F:PORT" as /proc
// writes addresses, "unix PATH"), and how many of its sockets are
// connected Unix sockets. It may run on any goroutine.
func processSockets() (listening []string, unixConnected int, err error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, 0, err
	}
	mine := map[string]bool{} // socket inodes
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil {
			continue // closed since ReadDir
		}
		if inode, ok := strings.CutPrefix(target, "socket:["); ok {
			mine[strings.TrimSuffix(inode, "]")] = true
		}
	}
	// /proc/net/tcp{,6}: sl local_address rem_address st ... inode;
	// state 0A is LISTEN.
	for _, name := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		rows, err := procTable(name)
		if err != nil {
			return nil, 0, err
		}
		for _, f := range rows {
			if len(f) > 9 && f[3] == "0A" && mine[f[9]] {
				listening = append(listening, "tcp "+f[1])
			}
		}
	}
	// /proc/net/unix: Num RefCount Protocol Flags Type St Inode [Path];
	// flag 0x10000 (__SO_ACCEPTCON) marks a listening socket, state 03
	// a connected one.
	rows, err := procTable("/proc/self/net/unix")
	if err != nil {
		return nil, 0, err
	}
	for _, f := range rows {
		if len(f) < 7 || !mine[f[6]] {
			continue
		}
		flags, _ := strconv.ParseUint(f[3], 16, 32)
		path := ""
		if len(f) > 7 {
			path = f[7]
		}
		switch {
		case flags&0x10000 != 0:
			listening = append(listening, "unix "+path)
		case f[5] == "03":
			unixConnected++
		}
	}
	return listening, unixConnected, nil
}

// procTable returns the fields of each line of a /proc table after its
// header.
func procTable(name string) ([][]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	for first := true; sc.Scan(); first = false {
		if !first {
			rows = append(rows, strings.Fields(sc.Text()))
		}
	}
	return rows, sc.Err()
}

// TestEmbeddedRunListensOnNothing checks that while an embedded run is
// running, the process listens on no TCP port and no Unix socket, so no
// other local process can join the run as a worker and take its tasks,
// while the run's own client and workers are connected (through socket
// pairs); and that the run's output is right.
//
// Not parallel: a parallel test's server would listen in this process.
func TestEmbeddedRunListensOnNothing(t *testing.T) {
	// The check sees listeners of both kinds.
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ul, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	if l, _, err := processSockets(); err != nil || len(l) != 2 {
		t.Fatalf("with a TCP and a Unix listener open, processSockets found %q, %v", l, err)
	}
	tl.Close()
	ul.Close()
	if l, _, err := processSockets(); err != nil || len(l) != 0 {
		t.Fatalf("before the run the process listens on %q (%v); the test cannot tell the run's listeners apart", l, err)
	}

	p, out := loadWordcount(t, nil)
	reg := flow.NewRegistry()
	wordcount.Register(reg)
	var mu sync.Mutex
	var seen []string
	var scanErr error
	scans, maxConnected := 0, 0
	_, err = flow.Run(t.Context(), p, reg, flow.Options{
		StateDir: t.TempDir(), Workers: 2, Logger: testLogger(t),
		OnEvent: func(e flow.Event) {
			if e.Kind != flow.EventTaskDone {
				return
			}
			l, n, err := processSockets()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				scanErr = err
				return
			}
			scans++
			seen = append(seen, l...)
			maxConnected = max(maxConnected, n)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkOutput(t, out, wantWordcount(t))
	mu.Lock()
	defer mu.Unlock()
	if scanErr != nil {
		t.Fatalf("reading /proc during the run: %v", scanErr)
	}
	if scans == 0 {
		t.Fatal("no task completed during the run: nothing was checked")
	}
	if len(seen) > 0 {
		t.Errorf("during the embedded run the process listened on %q: another process could connect as a worker", seen)
	}
	// Two workers and the client, both ends of each in this process.
	if maxConnected < 6 {
		t.Errorf("during the run the process had at most %d connected Unix sockets, want at least 6 (2 workers and a client)", maxConnected)
	}
}
