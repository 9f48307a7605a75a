// Package nodetest runs Node.js scripts built on abraxas (iarna/abraxas,
// an independent Gearman client and worker written in JavaScript) against
// a job server, so that tests can check that gearflow's server and
// runtime work with a peer they share no code with. Its tests run the
// same scenarios against gearflow's server and a real gearmand 1.1.20.
//
// The scripts are in testdata/. They find abraxas through NODE_PATH,
// which is set to the folder named by the environment variable
// GEARFLOW_NODE_MODULES (a node_modules folder). CI (.ci/run) installs
// abraxas there with every package of its tree pinned; on a developer's
// machine, abraxas and its wire code pinned are enough:
//
//	npm install --no-save --prefix "$HOME/.cache/gearflow/npm-abraxas" abraxas@2.1.10 gearman-packet@1.1.0
//	export GEARFLOW_NODE_MODULES="$HOME/.cache/gearflow/npm-abraxas/node_modules"
//
// Without node or the modules, tests skip with that hint; with
// GEARFLOW_REQUIRE_INTEROP=1 (set by CI) they fail instead.
package nodetest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gearflow/gearflow/internal/gearmandtest"
)

// ModulesEnv names the environment variable holding the node_modules
// folder where abraxas is installed.
const ModulesEnv = "GEARFLOW_NODE_MODULES"

// AbraxasVersion is the abraxas release the scripts are written for and
// CI installs.
const AbraxasVersion = "2.1.10"

const installHint = "install Node.js (apt-get install nodejs npm) and abraxas: " +
	"npm install --no-save --prefix DIR abraxas@" + AbraxasVersion + " gearman-packet@1.1.0" +
	" and set " + ModulesEnv + "=DIR/node_modules"

// RunTimeout bounds a script run by Run.
const RunTimeout = 60 * time.Second

// Missing skips t, or fails it when GEARFLOW_REQUIRE_INTEROP=1, saying
// what is missing and how to install it.
func Missing(t testing.TB, what string) {
	t.Helper()
	gearmandtest.Unavailable(t, what+" not found; "+installHint)
}

// Env returns the path of node and the node_modules folder holding
// abraxas, or skips t (fails it in CI) when either is missing.
func Env(t testing.TB) (node, modules string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		Missing(t, "node")
	}
	modules = os.Getenv(ModulesEnv)
	if modules == "" {
		Missing(t, "$"+ModulesEnv)
	}
	if _, err := os.Stat(filepath.Join(modules, "abraxas", "package.json")); err != nil {
		Missing(t, "abraxas in "+modules)
	}
	return node, modules
}

// command prepares node running script with args, bounded by ctx.
func command(ctx context.Context, node, modules, script string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, node, append([]string{"--no-deprecation", script}, args...)...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	cmd.SysProcAttr = gearmandtest.DieWithParent()
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Run runs script to completion (at most RunTimeout) and returns its
// standard output; it fails t, showing the standard error, if the script
// fails.
func Run(t testing.TB, script string, args ...string) []byte {
	t.Helper()
	Env(t)
	out, err := Exec(context.Background(), script, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Exec is Run bounded also by ctx, returning the failure (with the
// script's standard error) instead of failing a test, so that it may run
// in a goroutine of its own. Call Env first from the test, to skip where
// node or abraxas is missing.
func Exec(ctx context.Context, script string, args ...string) ([]byte, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, RunTimeout)
	defer cancel()
	cmd := command(ctx, node, os.Getenv(ModulesEnv), script, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("node %s %s: %w\nstdout: %s\nstderr: %s", script, strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// Proc is a long-running script started by Start.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu     sync.Mutex
	stderr bytes.Buffer
}

// Start runs script in the background (at most timeout) and waits, at
// most 20 seconds, until it prints a line "ready" on its standard
// output. The process is killed, by its pid, when the test ends.
func Start(t testing.TB, timeout time.Duration, script string, args ...string) *Proc {
	t.Helper()
	node, modules := Env(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := command(ctx, node, modules, script, args...)
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = (*lockedWriter)(p)
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatalf("node %s: %v", script, err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("node %s: %v", script, err)
	}
	ready := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(out)
		once := false
		for sc.Scan() {
			if !once && sc.Text() == "ready" {
				once = true
				close(ready)
			}
		}
	}()
	// Wait only once the output is read to its end (os/exec: reading a
	// StdoutPipe must end before Wait), so a script that prints "ready"
	// and exits at once is seen ready.
	go func() { <-readDone; _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop()
		cancel()
	})
	select {
	case <-ready:
	case <-readDone:
		select {
		case <-ready: // it printed "ready", then its output ended
			return p
		default:
		}
		<-p.done
		t.Fatalf("node %s exited before it was ready: %v\nstderr: %s", script, cmd.ProcessState, p.Stderr())
	case <-time.After(20 * time.Second):
		t.Fatalf("node %s not ready within 20s\nstderr: %s", script, p.Stderr())
	}
	return p
}

// Stop ends the process (SIGTERM, then SIGKILL after 5 s) and waits for
// it. It is safe to call more than once.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Stderr returns what the process wrote on its standard error so far.
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

type lockedWriter Proc

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stderr.Write(b)
}
