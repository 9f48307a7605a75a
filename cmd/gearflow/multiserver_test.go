//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gearflow/gearflow/runtime"
)

// oneAttemptWordcount is examples/wordcount with a single attempt per
// task: any attempt counted as failed fails the run.
const oneAttemptWordcount = `version: 1
name: wordcount
params:
  input:      { type: path }
  out:        { type: path }
  partitions: { type: int, default: 4 }
  lines:      { type: int, default: 4 }
defaults:
  timeout: 1m
  retry: { max_attempts: 1 }
stages:
  - name: count
    kind: map
    function: wc.map
    input:
      from: file:${params.input}
      split: { lines: ${params.lines} }
    combine: wc.sum
    partition: { by: key, count: ${params.partitions} }
  - name: total
    kind: reduce
    needs: [count]
    function: wc.sum
output:
  from: stage:total
  to: file:${params.out}
`

// startServe starts "gearflow serve" on port (a free one when port is
// empty) and returns it once it answers as itself. With a given port it
// fails the test if the port is not its own; with a free one it tries
// three ports.
func startServe(t *testing.T, bin, port string) (*process, string) {
	t.Helper()
	proc, addr, err := tryStartServe(t, bin, port)
	if err != nil {
		t.Fatal(err)
	}
	return proc, addr
}

// tryStartServe is startServe reporting a port it could not get as an
// error, for the goroutines of a test, which must not call t.Fatal.
func tryStartServe(t *testing.T, bin, port string) (*process, string, error) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		p := port
		if p == "" {
			p = freePort(t)
		}
		proc := startProcess(t, bin, nil, "serve", "-L", "127.0.0.1", "-p", p, "--log-level", "warn")
		addr := net.JoinHostPort("127.0.0.1", p)
		if ownServer(t, addr, proc.cmd.Process.Pid) {
			return proc, addr, nil
		}
		proc.kill()
		if port != "" || attempt == 2 {
			return nil, "", fmt.Errorf("serve did not get port %s", p)
		}
	}
}

// serverJobs sums the jobs (queued and running) in addr's admin
// "status", or -1 when the server does not answer.
func serverJobs(addr string) int {
	st, err := adminStatusOf(addr)
	if err != nil {
		return -1
	}
	n := 0
	for _, f := range st {
		n += f.Total
	}
	return n
}

// availableWorkers returns the workers that addr's admin "status" lists
// for fn, or -1 when the server does not answer.
func availableWorkers(addr, fn string) int {
	st, err := adminStatusOf(addr)
	if err != nil {
		return -1
	}
	for _, f := range st {
		if f.Function == fn {
			return f.Workers
		}
	}
	return 0
}

func adminStatusOf(addr string) ([]runtime.FunctionStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return runtime.AdminStatus(ctx, addr)
}

// TestMultiServerOutage runs wordcount across three "gearflow serve"
// processes, with two "gearflow worker" processes connected to all three
// and the coordinator in this process; while the map stage runs, one
// server is SIGKILLed while it holds jobs and restarted on the same port
// after an outage of 1 s, or 5 s. Each task has a single attempt: the
// attempts lost with the server must be run again without counting as
// failures, and the output must be exact.
func TestMultiServerOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three servers through two outages (about 30 s)")
	}
	t.Parallel()
	bin := buildGearflow(t)
	const tasks = 2000 // map tasks of 20 lines
	input, want := bigInput(t, 20*tasks)
	yaml := filepath.Join(t.TempDir(), "wordcount.yaml")
	if err := os.WriteFile(yaml, []byte(oneAttemptWordcount), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, outage := range []time.Duration{time.Second, 5 * time.Second} {
		t.Run(outage.String(), func(t *testing.T) {
			var addrs []string
			var procs []*process
			for i := 0; i < 3; i++ {
				p, addr := startServe(t, bin, "")
				procs, addrs = append(procs, p), append(addrs, addr)
			}
			servers := strings.Join(addrs, ",")
			var workers []*process
			for i := 0; i < 2; i++ {
				workers = append(workers, startProcess(t, bin, nil, "worker", "--servers", servers, "--concurrency", "3"))
			}
			// The victim is the first server found holding jobs once the
			// workers are stopped (addrs[1] when none does): the jobs in
			// flight are spread over the three servers by their uniques,
			// and a given server may hold none of them. Set by the kill
			// goroutine before it closes restarted.
			victim := addrs[1]

			var (
				mu        sync.Mutex
				events    []map[string]any
				kill      = make(chan struct{}) // closed at the 20th task done
				restarted = make(chan int)      // events seen when the server was back
				once      sync.Once
			)
			// The events are read at a set pace, as a slow reader of the
			// coordinator's output would, so that the run outlasts the
			// outage however fast the machine: it waits for its stdout.
			pace := (outage + 3*time.Second) / tasks
			pr, pw := io.Pipe()
			scanned := make(chan struct{})
			go func() {
				defer close(scanned)
				sc := bufio.NewScanner(pr)
				sc.Buffer(nil, 1<<20)
				done := 0
				for sc.Scan() {
					var ev map[string]any
					if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
						t.Errorf("not JSON: %q", sc.Text())
						continue
					}
					mu.Lock()
					events = append(events, ev)
					mu.Unlock()
					if ev["event"] == "task_done" {
						if done++; done == 20 {
							once.Do(func() { close(kill) })
						}
						time.Sleep(pace)
					}
				}
			}()
			var killedJobs int
			go func() {
				defer close(restarted)
				<-kill
				// Kill it while it holds jobs the coordinator waits for:
				// with the workers stopped, none of them can finish
				// before the kill, so each is an attempt lost.
				for _, w := range workers {
					w.cmd.Process.Signal(syscall.SIGSTOP)
				}
				v := 1
			poll:
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
					for i, addr := range addrs {
						if killedJobs = serverJobs(addr); killedJobs > 0 {
							v = i
							break poll
						}
					}
				}
				victim = addrs[v]
				_, victimPort, _ := net.SplitHostPort(victim)
				procs[v].kill()
				for _, w := range workers {
					w.cmd.Process.Signal(syscall.SIGCONT)
				}
				time.Sleep(outage)
				if _, _, err := tryStartServe(t, bin, victimPort); err != nil {
					t.Errorf("restarting the killed server: %v", err)
				}
				mu.Lock()
				n := len(events)
				mu.Unlock()
				restarted <- n
			}()

			out := filepath.Join(t.TempDir(), "wc.tsv")
			var stderr bytes.Buffer
			start := time.Now()
			code := cmdRun(t.Context(), []string{yaml, "--json", "--servers", servers,
				"-p", "input=" + input, "-p", "out=" + out, "-p", "lines=20", "--state-dir", t.TempDir()}, pw, &stderr)
			pw.Close()
			<-scanned
			elapsed := time.Since(start)
			once.Do(func() { close(kill) })
			atRestart := <-restarted
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr.String())
			}
			got, _ := os.ReadFile(out)
			if string(got) != want {
				t.Errorf("output differs from the expected counts (%d bytes, want %d)", len(got), len(want))
			}

			kinds := map[string]int{}
			lostAndRedone := 0
			for _, ev := range events {
				kinds[ev["event"].(string)]++
				if ev["event"] == "task_done" && ev["attempt"].(float64) > 1 {
					lostAndRedone++
				}
				if ev["event"] == "task_failed" || ev["event"] == "task_retry" {
					t.Errorf("an attempt counted as failed: %v", ev)
				}
				if ev["event"] == "summary" {
					if ev["ok"] != true {
						t.Errorf("summary %v: want ok", ev)
					}
					for _, st := range ev["stages"].([]any) {
						if st := st.(map[string]any); st["retries"] != float64(0) || st["failed"] != float64(0) {
							t.Errorf("stage %v: want no retries and no failures", st)
						}
					}
				}
			}
			t.Logf("%v outage: run took %v; %d jobs on the server at the kill (%s); %d tasks redone after a lost attempt; "+
				"%d of %d events came after the restart; events %v", outage, elapsed.Round(time.Millisecond), killedJobs, victim,
				lostAndRedone, len(events)-atRestart, len(events), kinds)
			if killedJobs <= 0 {
				t.Errorf("no server held a job when one was killed (%d): the test lost no attempt", killedJobs)
			} else if lostAndRedone < killedJobs {
				// A job whose JOB_CREATED had not reached the coordinator
				// when its server died is submitted again by the client
				// itself, as the same attempt. Either way max_attempts is 1,
				// so a lost attempt counted as a failure fails the run.
				t.Logf("%d jobs were lost with the server; %d tasks took another attempt, the rest the client's own failover", killedJobs, lostAndRedone)
			}
			if atRestart >= len(events) {
				t.Errorf("the run ended before the server came back: %s", fmt.Sprint(kinds))
			}
			// Both workers are back on the restarted server.
			back := 0
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if back = availableWorkers(victim, "wc.map"); back == 2 {
					break
				}
			}
			if back != 2 {
				t.Errorf("%d workers serve wc.map on the restarted server, want 2", back)
			}
		})
	}
}
