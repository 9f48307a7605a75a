package shout_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/examples/shout"
	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/spec"
	"github.com/gearflow/gearflow/internal/gearmandtest"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/server"
)

func load(t *testing.T) (*spec.Pipeline, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "shout.tsv")
	p, err := spec.Load("shout.yaml", map[string]string{"out": out, "lines": "2"})
	if err != nil {
		t.Fatal(err)
	}
	return p, out
}

func check(t *testing.T, out string) {
	t.Helper()
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// testdata/want.tsv: tr a-z A-Z < data/input.txt | awk '{print $0"\t"length($0)}'
	want, _ := os.ReadFile("testdata/want.tsv")
	if string(got) != string(want) {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}

// TestShoutEmbedded runs both stages in Go on the embedded default.
func TestShoutEmbedded(t *testing.T) {
	t.Parallel()
	p, out := load(t)
	reg := flow.NewRegistry()
	shout.Register(reg)
	if _, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	check(t, out)
}

// TestShoutServedByLibgearman serves the raw stage with libgearman's
// "gearman -w ... -- tr a-z A-Z", on our in-process server and on
// gearmand; only the second stage runs in Go.
func TestShoutServedByLibgearman(t *testing.T) {
	t.Parallel()
	t.Run("ours", func(t *testing.T) {
		t.Parallel()
		shoutWithLibgearman(t, servertest.Start(t, server.Config{}).Addr)
	})
	t.Run("gearmand", func(t *testing.T) {
		t.Parallel()
		shoutWithLibgearman(t, gearmandtest.Start(t).Addr)
	})
}

func shoutWithLibgearman(t *testing.T, addr string) {
	tool := gearmandtest.Tool(t, "gearman")
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(tool, "-w", "-h", host, "-p", port, "-f", "shout.upper", "--", "tr", "a-z", "A-Z")
	cmd.SysProcAttr = gearmandtest.DieWithParent()
	cmd.Stderr = t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})

	p, out := load(t)
	reg := flow.NewRegistry()
	reg.Map("shout.measure", shout.Measure) // no Go shout.upper: only gearman -w can serve it
	res, err := flow.Run(t.Context(), p, reg, flow.Options{Servers: []string{addr}, Workers: 2, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	check(t, out)
	if res.Stages[0].Tasks != 3 || res.Stages[0].Done != 3 {
		t.Errorf("raw stage %+v: want 3 tasks done", res.Stages[0])
	}
}
