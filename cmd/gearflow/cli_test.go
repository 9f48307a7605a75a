package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommandLines runs the gearflow binary and a custom binary built
// with flow/cli (examples/wordcount/cmd/wordcount) over the same command
// lines: both parse flags, print help and errors, and exit the same way.
func TestCommandLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	custom := filepath.Join(dir, "wordcount")
	if out, err := exec.Command("go", "build", "-o", custom, "../../examples/wordcount/cmd/wordcount").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bins := map[string]string{"gearflow": buildGearflow(t), "wordcount": custom}
	pipeline := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(pipeline, []byte(`version: 1
name: cli
params:
  out: { type: string, default: out.tsv }
stages:
  - { name: count, kind: map, function: wc.map, input: { from: "file:in.txt" } }
output:
  to: ${params.out}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	type want struct {
		code   int
		stdout string // a part of stdout
		stderr string // a part of stderr
	}
	tests := []struct {
		args []string
		want want
		only string // a binary's name when the line is only for it
	}{
		{args: nil, want: want{2, "", "usage: PROG COMMAND"}},
		{args: []string{"help"}, want: want{0, "Run 'PROG help COMMAND'", ""}},
		{args: []string{"--help"}, want: want{0, "commands:", ""}},
		{args: []string{"frobnicate"}, want: want{2, "", `PROG: unknown command "frobnicate"; run 'PROG help' for the list`}},
		{args: []string{"help", "run"}, want: want{0, "usage: PROG run PIPELINE.yaml [flags]", ""}},
		{args: []string{"help", "frobnicate"}, want: want{2, "", `unknown command "frobnicate"`}},
		{args: []string{"run", "-h"}, want: want{0, "", "--servers host:port,..."}},
		{args: []string{"plan", "-h"}, want: want{0, "", "usage: PROG plan PIPELINE.yaml"}},
		{args: []string{"validate", "-h"}, want: want{0, "", "usage: PROG validate PIPELINE.yaml"}},
		{args: []string{"validate", "--help"}, want: want{0, "", "-p, --param name=value"}},
		{args: []string{"worker", "-h"}, want: want{0, "", "usage: PROG worker --servers"}},
		{args: []string{"runs", "-h"}, want: want{0, "", "runs gc --keep-days N"}},
		{args: []string{"validate", pipeline}, want: want{0, "ok: cli (1 stage)", ""}},
		{args: []string{"validate", pipeline, "-p", "out=a.tsv"}, want: want{0, "ok: cli (1 stage)", ""}},
		{args: []string{"validate", "-pout=a.tsv", pipeline}, want: want{0, "ok: cli (1 stage)", ""}},
		{args: []string{"validate", pipeline, "--param=out=a.tsv"}, want: want{0, "ok: cli (1 stage)", ""}},
		{args: []string{"validate", pipeline, "--p", "out=a.tsv"}, want: want{0, "ok: cli (1 stage)", ""}},
		{args: []string{"validate", pipeline, "-p", "out=a", "-p", "out=b"}, want: want{2, "", `PROG validate: invalid argument "out=b" for "-p, --param" flag: param "out" given twice`}},
		{args: []string{"plan", pipeline, "-p", "out=a", "-p", "out=b"}, want: want{2, "", `param "out" given twice`}},
		{args: []string{"run", pipeline, "-p", "out=a", "-p", "out=b"}, want: want{2, "", `param "out" given twice`}},
		{args: []string{"validate", pipeline, "-p", "novalue"}, want: want{2, "", `want name=value, got "novalue"`}},
		{args: []string{"validate", pipeline, "-p", "nope=1"}, want: want{1, "", `no param "nope" is declared`}},
		{args: []string{"validate"}, want: want{2, "", "PROG validate: want exactly one pipeline file, got 0\nRun 'PROG validate -h' for usage."}},
		{args: []string{"run", pipeline, "--frobnicate"}, want: want{2, "", "PROG run: unknown flag: --frobnicate\nRun 'PROG run -h' for usage."}},
		{args: []string{"plan", pipeline, "-x"}, want: want{2, "", "PROG plan: unknown shorthand flag: 'x' in -x"}},
		{args: []string{"worker"}, want: want{2, "", "PROG worker: --servers is required"}},
		{args: []string{"runs", "frobnicate"}, want: want{2, "", `unknown subcommand "frobnicate"`}},
		{args: []string{"runs", "gc"}, want: want{2, "", "want --older-than DURATION"}},
		{args: []string{"serve", "-p4731", "--check-args"}, want: want{0, "", ""}, only: "gearflow"},
		{args: []string{"serve", "-p", "4731", "-L", "127.0.0.1", "-t0", "--check-args"}, want: want{0, "", ""}, only: "gearflow"},
		{args: []string{"serve", "--port=4731", "-check-args"}, want: want{0, "", ""}, only: "gearflow"},
		{args: []string{"serve", "--p", "4731", "--t", "0", "--L", "127.0.0.1", "--check-args"}, want: want{0, "", ""}, only: "gearflow"},
		{args: []string{"serve", "--p=4731", "--check-args"}, want: want{0, "", ""}, only: "gearflow"},
		{args: []string{"submit", "--f", "x", "--priority", "urgent"}, want: want{2, "", `--priority "urgent"`}, only: "gearflow"},
		{args: []string{"serve", "-p47x", "--check-args"}, want: want{2, "", `gearflow serve: bad port "47x"`}, only: "gearflow"},
		{args: []string{"serve", "-h"}, want: want{0, "", "-p, --port string"}, only: "gearflow"},
		{args: []string{"serve", "extra"}, want: want{2, "", `gearflow serve: unexpected argument "extra"`}, only: "gearflow"},
		{args: []string{"submit"}, want: want{2, "", "gearflow submit: -f FUNC is required"}, only: "gearflow"},
		{args: []string{"submit", "-f", "x", "--priority", "urgent"}, want: want{2, "", `--priority "urgent": want high, normal or low`}, only: "gearflow"},
		{args: []string{"status", "extra"}, want: want{2, "", `gearflow status: unexpected argument "extra"`}, only: "gearflow"},
		{args: []string{"bench", "-h"}, want: want{0, "", "--mode fg"}, only: "gearflow"},
		{args: []string{"help", "serve"}, want: want{0, "usage: gearflow serve [flags]", ""}, only: "gearflow"},
		{args: []string{"serve"}, want: want{2, "", `unknown command "serve"`}, only: "wordcount"},
	}
	for name, bin := range bins {
		for _, tt := range tests {
			if tt.only != "" && tt.only != name {
				continue
			}
			cmd := exec.Command(bin, tt.args...)
			cmd.Dir = dir
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			w := tt.want
			wantOut := strings.ReplaceAll(w.stdout, "PROG", name)
			wantErr := strings.ReplaceAll(w.stderr, "PROG", name)
			if code != w.code || !strings.Contains(stdout.String(), wantOut) || !strings.Contains(stderr.String(), wantErr) {
				t.Errorf("%s %q: exit %d, stdout %q, stderr %q;\nwant exit %d, stdout with %q, stderr with %q",
					name, tt.args, code, stdout.String(), stderr.String(), w.code, wantOut, wantErr)
			}
		}
	}
}
