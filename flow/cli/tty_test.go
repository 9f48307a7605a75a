package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/internal/gearmandtest"
)

// ttyPipeline has four stages that run at once, with long names, so
// that the live line is far wider than 80 columns.
const ttyPipeline = `version: 1
name: wide
stages:
  - { name: extract_alpha_records, kind: map, function: slow.map, input: { from: "file:in.txt", split: { lines: 4 } } }
  - { name: extract_bravo_records, kind: map, function: slow.map, input: { from: "file:in.txt", split: { lines: 4 } } }
  - { name: extract_charlie_records, kind: map, function: slow.map, input: { from: "file:in.txt", split: { lines: 4 } } }
  - { name: extract_delta_records, kind: map, function: slow.map, input: { from: "file:in.txt", split: { lines: 4 } } }
output:
  from: stage:extract_alpha_records
  to: out.tsv
`

// TestTTYHelper is the program TestLiveLineInTerminal runs in a
// terminal: a run of ttyPipeline. It does nothing in a plain test run.
func TestTTYHelper(t *testing.T) {
	pipeline := os.Getenv("GEARFLOW_TTY_PIPELINE")
	if pipeline == "" {
		return
	}
	reg := flow.NewRegistry()
	reg.Map("slow.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		time.Sleep(15 * time.Millisecond)
		return emit("", rec.Value)
	})
	code := Dispatch(context.Background(), reg, []string{"run", pipeline, "--workers", "8",
		"--state-dir", filepath.Join(filepath.Dir(pipeline), "state")}, os.Stdout, os.Stderr)
	fmt.Printf("EXIT=%d\n", code)
}

// TestLiveLineInTerminal runs a run of several stages in a real terminal
// (tmux) 80 columns wide and reads the screen as it goes and at the
// end: the live line never takes more than one row, and leaves no
// wrapped rows behind.
func TestLiveLineInTerminal(t *testing.T) {
	t.Parallel()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		gearmandtest.Missing(t, "tmux")
	}
	dir := t.TempDir()
	var in strings.Builder
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&in, "record %d\n", i)
	}
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte(in.String()), 0o644)
	pipeline := filepath.Join(dir, "p.yaml")
	os.WriteFile(pipeline, []byte(ttyPipeline), 0o644)

	sock := filepath.Join(dir, "tmux.sock")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tmux, append([]string{"-S", sock, "-f", "/dev/null"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	cmd := fmt.Sprintf("GEARFLOW_TTY_PIPELINE=%s %s -test.run='^TestTTYHelper$'; sleep 120",
		pipeline, os.Args[0])
	run("new-session", "-d", "-x", "80", "-y", "50", "-s", "live", cmd)
	t.Cleanup(func() { exec.Command(tmux, "-S", sock, "kill-server").Run() })
	if w := strings.TrimSpace(run("display-message", "-p", "-t", "live", "#{pane_width}")); w != "80" {
		t.Fatalf("pane width %s, want 80", w)
	}

	// A live line holds " | " between stages; a finished stage's line
	// and the summary do not.
	liveRows := func(screen string) []string {
		var rows []string
		for _, row := range strings.Split(screen, "\n") {
			if strings.Contains(row, " | ") || strings.Contains(row, "ETA") {
				rows = append(rows, row)
			}
		}
		return rows
	}
	var screen string
	sawLive := false
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(screen, "EXIT=") {
		if time.Now().After(deadline) {
			t.Fatalf("the run did not end; screen:\n%s", screen)
		}
		time.Sleep(100 * time.Millisecond)
		screen = run("capture-pane", "-p", "-t", "live")
		if strings.Contains(screen, "EXIT=") {
			break
		}
		rows := liveRows(screen)
		// While it runs, the last of them is the live line itself.
		if len(rows) > 1 {
			t.Fatalf("the live line takes %d rows:\n%s", len(rows), screen)
		}
		if len(rows) == 1 && strings.Contains(rows[0], " | ") {
			sawLive = true
			if n := len([]rune(strings.TrimRight(rows[0], " "))); n >= 80 {
				t.Errorf("live line of %d columns in 80: %q", n, rows[0])
			}
		}
	}
	if !strings.Contains(screen, "EXIT=0") {
		t.Fatalf("the run failed:\n%s", screen)
	}
	if !sawLive {
		t.Errorf("never saw a live line of several stages; screen:\n%s", screen)
	}
	if rows := liveRows(screen); len(rows) > 0 {
		t.Errorf("rows of the live line left behind:\n%s\nscreen:\n%s", strings.Join(rows, "\n"), screen)
	}
	if !strings.Contains(screen, "run ") || !strings.Contains(screen, "output: ") {
		t.Errorf("the summary is missing:\n%s", screen)
	}
}

// TestIsTerminal: /dev/null and files are not terminals, though
// /dev/null is a character device.
func TestIsTerminal(t *testing.T) {
	t.Parallel()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, w := range []*os.File{null, f} {
		if isTerminal(w) {
			t.Errorf("%s taken for a terminal", w.Name())
		}
	}
}

func TestFit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line  string
		width int
		want  string
	}{
		{"short", 79, "short"},
		{strings.Repeat("x", 79), 79, strings.Repeat("x", 79)},
		{strings.Repeat("x", 80), 79, strings.Repeat("x", 78) + "…"},
		{"stage_é " + strings.Repeat("y", 100), 20, "stage_é " + strings.Repeat("y", 11) + "…"},
	}
	for _, tt := range tests {
		if got := fit(tt.line, tt.width); got != tt.want {
			t.Errorf("fit(%q, %d) = %q, want %q", tt.line, tt.width, got, tt.want)
		}
	}
}
