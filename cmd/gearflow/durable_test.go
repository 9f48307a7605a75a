package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
)

// durableJobs is how many background jobs TestDurableKill submits per
// round (GEARFLOW_DURABLE_JOBS, e.g. 100000), and durableKills how many
// rounds, each killed at a random point (GEARFLOW_DURABLE_KILLS).
func durableEnv(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

// startDurableServe starts `gearflow serve --data-dir dir` as a process
// on a port of its own and returns it with its address.
func startDurableServe(t *testing.T, bin, dir string) (*process, string) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		p := startProcess(t, bin, nil, "serve", "-L", "127.0.0.1", "-p", port, "--data-dir", dir,
			"--job-handle-prefix", "H:d", "--log-level", "warn")
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

func sendPacket(c net.Conn, typ protocol.Type, args ...string) error {
	b := make([][]byte, len(args))
	for i, a := range args {
		b[i] = []byte(a)
	}
	_, err := c.Write(protocol.New(protocol.Req, typ, b...).Append(nil))
	return err
}

// TestDurableKill: kill -9 of `gearflow serve --data-dir` while 16
// clients submit background jobs (and a worker runs some); after a
// restart on the same directory every job whose JOB_CREATED reached a
// client runs, and the jobs that run twice or without an ack are at
// most those in flight at the kill.
func TestDurableKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills server processes")
	}
	total := durableEnv(t, "GEARFLOW_DURABLE_JOBS", 20000)
	rounds := durableEnv(t, "GEARFLOW_DURABLE_KILLS", 2)
	bin := buildGearflow(t)
	for round := range rounds {
		// Kill somewhere between a tenth and nine tenths of the way.
		killAt := int64(total/10 + rand.IntN(total*8/10))
		t.Run("kill-at-"+strconv.FormatInt(killAt, 10), func(t *testing.T) {
			durableKillRound(t, bin, total, killAt)
		})
		_ = round
	}
}

const (
	durableClients = 16
	durableDepth   = 4 // submissions each client has in flight
)

func durableKillRound(t *testing.T, bin string, total int, killAt int64) {
	dir := t.TempDir()
	srv, addr := startDurableServe(t, bin, dir)

	var acked atomic.Int64
	ackedBy := make([][]string, durableClients)
	var wg sync.WaitGroup
	per := total / durableClients
	for ci := range durableClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			r := protocol.NewReader(c, protocol.ReaderConfig{})
			var pending []string
			next := 0
			for next < per || len(pending) > 0 {
				for next < per && len(pending) < durableDepth {
					id := "c" + strconv.Itoa(ci) + "-" + strconv.Itoa(next)
					next++
					if err := sendPacket(c, protocol.SubmitJobBg, "durable", "", id); err != nil {
						return
					}
					pending = append(pending, id)
				}
				p, err := r.ReadPacket()
				if err != nil {
					return // the server was killed
				}
				if p.Type != protocol.JobCreated {
					t.Errorf("client %d: got %v, want JOB_CREATED", ci, p.Type)
					return
				}
				ackedBy[ci] = append(ackedBy[ci], pending[0])
				pending = pending[1:]
				acked.Add(1)
			}
		}()
	}

	// A worker runs jobs meanwhile: the deletes of jobs it finishes may
	// be lost with the kill, and those jobs run again.
	ran1 := map[string]int{}
	var completed []time.Time // when the worker sent each WORK_COMPLETE
	var ranMu sync.Mutex
	stopWorker := make(chan struct{})
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		w, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer w.Close()
		w.SetDeadline(time.Now().Add(60 * time.Second))
		r := protocol.NewReader(w, protocol.ReaderConfig{})
		if sendPacket(w, protocol.CanDo, "durable") != nil {
			return
		}
		for {
			select {
			case <-stopWorker:
				return
			default:
			}
			if sendPacket(w, protocol.GrabJob) != nil {
				return
			}
			p, err := r.ReadPacket()
			if err != nil {
				return
			}
			if p.Type != protocol.JobAssign {
				time.Sleep(time.Millisecond)
				continue
			}
			ranMu.Lock()
			ran1[string(p.Args[2])]++
			ranMu.Unlock()
			if sendPacket(w, protocol.WorkComplete, string(p.Args[0]), "") != nil {
				return
			}
			ranMu.Lock()
			completed = append(completed, time.Now())
			ranMu.Unlock()
		}
	}()

	deadline := time.Now().Add(60 * time.Second)
	for acked.Load() < killAt && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond)
	}
	killTime := time.Now()
	srv.kill() // SIGKILL
	killedAfter := acked.Load()
	wg.Wait()
	close(stopWorker)
	<-workerDone
	if killedAfter < killAt {
		t.Fatalf("only %d of %d jobs acknowledged in 60s", killedAfter, killAt)
	}

	_, addr = startDurableServe(t, bin, dir)
	ran2 := map[string]int{}
	w := waitDial(t, addr)
	defer w.Close()
	w.SetDeadline(time.Now().Add(120 * time.Second))
	r := protocol.NewReader(w, protocol.ReaderConfig{})
	if err := sendPacket(w, protocol.CanDo, "durable"); err != nil {
		t.Fatal(err)
	}
	for range total + 1 {
		if err := sendPacket(w, protocol.GrabJob); err != nil {
			t.Fatal(err)
		}
		p, err := r.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		if p.Type == protocol.NoJob {
			break
		}
		if p.Type != protocol.JobAssign {
			t.Fatalf("worker got %v", p.Type)
		}
		ran2[string(p.Args[2])]++
		if err := sendPacket(w, protocol.WorkComplete, string(p.Args[0]), ""); err != nil {
			t.Fatal(err)
		}
	}

	nAcked, lost, twice, unacked := 0, 0, 0, 0
	ack := map[string]bool{}
	for _, ids := range ackedBy {
		for _, id := range ids {
			ack[id] = true
			nAcked++
			if ran1[id]+ran2[id] == 0 {
				lost++
				if lost <= 5 {
					t.Errorf("job %s was acknowledged and never ran", id)
				}
			}
		}
	}
	for id, n := range ran2 {
		if n > 1 {
			t.Errorf("job %s ran %d times after the restart", id, n)
		}
		if ran1[id] > 0 {
			twice++
		}
		if !ack[id] {
			unacked++
		}
	}
	// In flight at the kill: each client's unacknowledged submissions,
	// and the jobs the worker finished whose deletes were not written
	// yet (they wait in the process for the sync in progress): bounded
	// by those finished in the last 100 ms.
	inFlight := durableClients * durableDepth
	recent := 1 // the job the worker was running
	for _, at := range completed {
		if killTime.Sub(at) < 100*time.Millisecond {
			recent++
		}
	}
	t.Logf("acknowledged %d, ran %d before the kill and %d after; %d ran again (%d finished in the last 100 ms), %d ran without an ack, %d lost",
		nAcked, len(ran1), len(ran2), twice, recent, unacked, lost)
	if unacked > inFlight {
		t.Errorf("%d jobs without an ack ran; at most %d were in flight", unacked, inFlight)
	}
	if twice > recent {
		t.Errorf("%d finished jobs ran again; at most %d were finished in the last 100 ms", twice, recent)
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new temporary folder and
// returns it; it is unmounted when the test ends (after the processes
// the test starts later are killed). Without the right to mount it
// skips, except in CI, where the test must run.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs to fill (%v: %s); run as root to test a full disk", err, bytes.TrimSpace(out))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes path until the file system holding it is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{64 << 10, 4 << 10, 512, 1} {
		b := make([]byte, chunk)
		for range 1 << 16 { // bounded: a 2 MiB file system fills long before
			if _, err := f.Write(b); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling the disk: %v", err)
				}
				break
			}
		}
	}
	if _, err := f.Write([]byte{0}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("disk not full after filling it: %v", err)
	}
}

// TestDurableDiskFull: `gearflow serve --data-dir` on a disk that fills
// up refuses background submissions with ERROR QUEUE_ERROR, keeps
// serving foreground jobs and writing the deletes of jobs that end,
// and takes background jobs again, without a restart, once space comes
// back; after a kill -9 the queue holds exactly the acknowledged jobs
// that did not run.
func TestDurableDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs and kills server processes")
	}
	t.Parallel()
	mnt := mountTmpfs(t, 2<<20)
	bin := buildGearflow(t)
	dir := filepath.Join(mnt, "data")
	srv, addr := startDurableServe(t, bin, dir)

	// Each job takes more than a page, so none fits the slack of the
	// log's last page once the disk is full.
	payload := func(id string) string { return id + strings.Repeat(".", 8000) }
	c := wiretest.Dial(t, addr)
	c.Timeout = 10 * time.Second
	const before, ran, refused, after = 20, 5, 10, 10
	for i := range before {
		c.Submit(t, protocol.SubmitJobBg, "f", "", payload("a"+strconv.Itoa(i)))
	}

	fillDisk(t, filepath.Join(mnt, "filler"))
	for i := range refused {
		c.Req(protocol.SubmitJobBg, "f", "", payload("r"+strconv.Itoa(i)))
		if text := c.ExpectErrorCode(t, protocol.CodeQueueError); !strings.Contains(text, "no space left") {
			t.Errorf("QUEUE_ERROR text %q does not say the disk is full", text)
		}
	}
	// Foreground jobs are not written and go on; jobs that end while
	// the disk is full are deleted once it has room.
	c.Submit(t, protocol.SubmitJob, "g", "", "fg")
	w := wiretest.Dial(t, addr)
	w.Timeout = 10 * time.Second
	w.CanDo("f")
	for i := range ran {
		p := w.GrabAny(t)
		if want := payload("a" + strconv.Itoa(i)); string(p.Args[2]) != want {
			t.Fatalf("worker got %.10q..., want %.10q...", p.Args[2], want)
		}
		w.Req(protocol.WorkComplete, string(p.Args[0]), "")
	}
	w.Sync(t)

	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	for i := range after {
		c.Submit(t, protocol.SubmitJobBg, "f", "", payload("b"+strconv.Itoa(i)))
	}

	srv.kill()
	_, addr = startDurableServe(t, bin, dir)
	checkQueueAfterKill(t, addr, ran, before, after, before+refused+after+1)
}

// checkQueueAfterKill takes every job of function "f" from the server at
// addr and checks that they are the acknowledged ones that had not run:
// "a<ran>" to "a<queued-1>", then "b0" to "b<after-1>" (a job's unique
// id is its name, up to a "."), taking at most limit.
func checkQueueAfterKill(t *testing.T, addr string, ran, queued, after, limit int) {
	t.Helper()
	w := wiretest.Dial(t, addr)
	w.Timeout = 10 * time.Second
	w.CanDo("f")
	var got []string
	for range limit {
		w.Req(protocol.GrabJob)
		p := w.Next(t)
		if p.Type == protocol.NoJob {
			break
		}
		if p.Type != protocol.JobAssign {
			t.Fatalf("worker got %s", wiretest.Format(p))
		}
		id, _, _ := strings.Cut(string(p.Args[2]), ".")
		got = append(got, id)
	}
	var want []string
	for i := ran; i < queued; i++ {
		want = append(want, "a"+strconv.Itoa(i))
	}
	for i := range after {
		want = append(want, "b"+strconv.Itoa(i))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("after kill -9 and restart the queue held\n%v\nwant the acknowledged jobs that did not run\n%v", got, want)
	}
}

// TestDurableHandlesAcrossRestarts: `gearflow serve --data-dir` never
// issues a handle again after a restart, a graceful one or a kill -9,
// though the jobs that had it ended and the queue is empty: a client
// may still hold it and ask GET_STATUS.
func TestDurableHandlesAcrossRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("kills server processes")
	}
	t.Parallel()
	bin := buildGearflow(t)
	dir := t.TempDir()
	seen := map[string]string{}
	for _, stop := range []string{"SIGTERM", "kill -9", "end"} {
		srv, addr := startDurableServe(t, bin, dir)
		c := wiretest.Dial(t, addr)
		c.Timeout = 10 * time.Second
		var hs []string
		for i := range 3 {
			hs = append(hs, c.Submit(t, protocol.SubmitJobBg, "f", "", strconv.Itoa(i)))
		}
		w := wiretest.Dial(t, addr)
		w.Timeout = 10 * time.Second
		w.CanDo("f")
		for i, h := range hs {
			w.Grab(t, h, "f", strconv.Itoa(i))
			w.Req(protocol.WorkComplete, h, "")
		}
		w.Sync(t)
		// The deletes of the ended jobs go to the log after their
		// WORK_COMPLETEs without the server waiting for the disk, so a
		// kill -9 right after may bring them back (at-least-once). A
		// background job's JOB_CREATED comes once the log is synced up
		// to it, those deletes included.
		hs = append(hs, c.Submit(t, protocol.SubmitJobBg, "barrier", "", stop))
		// A foreground job nobody runs: it dies with its client.
		hs = append(hs, c.Submit(t, protocol.SubmitJob, "g", "", "fg"))
		for _, h := range hs {
			if before, ok := seen[h]; ok {
				t.Fatalf("handle %s issued again after a restart (first issued before the %s)", h, before)
			}
			seen[h] = stop
		}
		c.Close()
		w.Close()
		switch stop {
		case "SIGTERM":
			srv.cmd.Process.Signal(syscall.SIGTERM)
			if code := exitCode(t, srv, 10*time.Second); code != 0 {
				t.Fatalf("serve exited %d after SIGTERM", code)
			}
		case "kill -9":
			srv.kill()
		}
	}
}

// segmentNames returns the names of the log segments in dir.
func segmentNames(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	return names
}

// TestDurableStartOnFullDisk: `gearflow serve --data-dir` restarted (after
// a kill -9) on a full disk, where the live jobs cannot be rewritten to a
// new segment, starts on the segments as they are: the acknowledged jobs
// run, background submissions get QUEUE_ERROR and foreground ones go on;
// once space comes back it takes background jobs again and compacts the
// old segments away, and a kill -9 then loses nothing.
func TestDurableStartOnFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs and kills server processes")
	}
	t.Parallel()
	mnt := mountTmpfs(t, 2<<20)
	bin := buildGearflow(t)
	dir := filepath.Join(mnt, "data")
	srv, addr := startDurableServe(t, bin, dir)

	payload := func(id string) string { return id + strings.Repeat(".", 8000) }
	c := wiretest.Dial(t, addr)
	c.Timeout = 10 * time.Second
	const queued, ran = 20, 5
	for i := range queued {
		c.Submit(t, protocol.SubmitJobBg, "f", "", payload("a"+strconv.Itoa(i)))
	}
	c.Close()
	fillDisk(t, filepath.Join(mnt, "filler"))
	srv.kill()
	old := segmentNames(t, dir)

	srv, addr = startDurableServe(t, bin, dir)
	w := wiretest.Dial(t, addr)
	w.Timeout = 10 * time.Second
	w.CanDo("f")
	for i := range ran {
		p := w.GrabAny(t)
		if want := payload("a" + strconv.Itoa(i)); string(p.Args[2]) != want {
			t.Fatalf("worker got %.10q..., want %.10q...", p.Args[2], want)
		}
		w.Req(protocol.WorkComplete, string(p.Args[0]), "")
	}
	w.Sync(t)
	c = wiretest.Dial(t, addr)
	c.Timeout = 10 * time.Second
	c.Req(protocol.SubmitJobBg, "f", "", payload("refused"))
	if text := c.ExpectErrorCode(t, protocol.CodeQueueError); !strings.Contains(text, "no space left") {
		t.Errorf("QUEUE_ERROR text %q does not say the disk is full", text)
	}
	c.Submit(t, protocol.SubmitJob, "g", "", "fg")

	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	// Compaction is tried again at most every 10 s after one failed: keep
	// submitting until the old segments are gone.
	var after int
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.Submit(t, protocol.SubmitJobBg, "f", "", payload("b"+strconv.Itoa(after)))
		after++
		segs := segmentNames(t, dir)
		if len(segs) == 1 && segs[0] > old[len(old)-1] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after space came back the segments are %v (before the restart %v): not compacted", segs, old)
		}
		time.Sleep(100 * time.Millisecond)
	}

	srv.kill()
	_, addr = startDurableServe(t, bin, dir)
	checkQueueAfterKill(t, addr, ran, queued, after, queued+after+1)
}
