package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunsCommand: the stock binary's runs commands on a real run of the
// wordcount example.
func TestRunsCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	out := filepath.Join(dir, "wc.tsv")
	if code, _, stderr := runCmd(t, t.Context(), cmdRun, wordcountYAML, "-p", "out="+out, "--state-dir", state, "--run-id", "wc1"); code != 0 {
		t.Fatalf("run: %d %s", code, stderr)
	}
	code, stdout, stderr := runCmd(t, t.Context(), run, "runs", "--state-dir", state)
	if code != 0 || !strings.Contains(stdout, "wc1") || !strings.Contains(stdout, "wordcount") || !strings.Contains(stdout, "finished") {
		t.Errorf("gearflow runs: %d %q %q", code, stdout, stderr)
	}
	code, stdout, _ = runCmd(t, t.Context(), run, "runs", "show", "wc1", "--state-dir", state)
	if code != 0 || !strings.Contains(stdout, "output    "+out+" (48 records)") {
		t.Errorf("gearflow runs show: %d\n%s", code, stdout)
	}
	code, stdout, _ = runCmd(t, t.Context(), run, "runs", "rm", "wc1", "--state-dir", state)
	if _, err := os.Stat(filepath.Join(state, "wc1")); code != 0 || err == nil {
		t.Errorf("gearflow runs rm: %d %q; directory left: %v", code, stdout, err == nil)
	}
	if _, stdout, _ := runCmd(t, t.Context(), run, "help"); !strings.Contains(stdout, "runs ") {
		t.Errorf("gearflow help does not list runs:\n%s", stdout)
	}
}

// TestRunsLegacyStateDir: with the default state directory, runs lists
// the runs left under ./.gearflow/runs too, marked, and removes them.
func TestRunsLegacyStateDir(t *testing.T) {
	yaml, err := filepath.Abs(wordcountYAML)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GEARFLOW_STATE_DIR", filepath.Join(t.TempDir(), "state"))
	work := t.TempDir()
	t.Chdir(work)
	out := filepath.Join(work, "wc.tsv")
	if code, _, stderr := runCmd(t, t.Context(), cmdRun, yaml, "-p", "out="+out, "--run-id", "new1"); code != 0 {
		t.Fatalf("run: %d %s", code, stderr)
	}
	if code, _, stderr := runCmd(t, t.Context(), cmdRun, yaml, "-p", "out="+out, "--run-id", "old1", "--state-dir", ".gearflow/runs"); code != 0 {
		t.Fatalf("run: %d %s", code, stderr)
	}
	code, stdout, stderr := runCmd(t, t.Context(), run, "runs")
	if code != 0 || !strings.Contains(stdout, "new1 ") || !strings.Contains(stdout, "old1 *") || !strings.Contains(stdout, "old state folder") {
		t.Errorf("gearflow runs: %d %q %q", code, stdout, stderr)
	}
	if code, stdout, stderr := runCmd(t, t.Context(), run, "runs", "rm", "old1"); code != 0 || !strings.Contains(stdout, "removed old1") {
		t.Errorf("gearflow runs rm old1: %d %q %q", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(work, ".gearflow", "runs", "old1")); err == nil {
		t.Errorf("the legacy run's directory is still there")
	}
	if _, err := os.Stat(filepath.Join(os.Getenv("GEARFLOW_STATE_DIR"), "new1", "plan.json")); err != nil {
		t.Errorf("removing the legacy run touched the new one: %v", err)
	}
}
