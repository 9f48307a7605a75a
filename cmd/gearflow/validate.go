package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/gearflow/gearflow/flow/spec"
)

// paramFlags collects repeated -p name=value flags. The run and plan
// commands take the same flag.
type paramFlags map[string]string

func (p paramFlags) String() string { return "" }

func (p paramFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", s)
	}
	if _, dup := p[name]; dup {
		return fmt.Errorf("param %q given twice", name)
	}
	p[name] = value
	return nil
}

// parseInterleaved parses fs over args, allowing flags after positional
// arguments ("gearflow validate p.yaml -p n=3"), and returns the
// positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// cmdValidate checks a pipeline file: it prints "ok: NAME (N stages)"
// and exits 0, or prints every error (file:line:column: message (hint:
// ...)) to stderr and exits 1; a usage error exits 2.
func cmdValidate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gearflow validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	params := paramFlags{}
	fs.Var(params, "p", "set a pipeline param: `name=value` (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gearflow validate PIPELINE.yaml [-p name=value]...")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "Checks a pipeline file and its params without running anything:")
		fmt.Fprintln(stderr, "every error is printed as file:line:column: message (hint: ...).")
		fmt.Fprintln(stderr, "See docs/PIPELINE.md for the file format.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	files, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(files) != 1 {
		fmt.Fprintln(stderr, "gearflow validate: want exactly one pipeline file")
		fs.Usage()
		return 2
	}
	p, err := spec.Load(files[0], params)
	if err != nil {
		errs := spec.Errors(err)
		if len(errs) == 0 {
			fmt.Fprintln(stderr, "gearflow validate:", err)
			return 1
		}
		for _, e := range errs {
			fmt.Fprintln(stderr, e)
		}
		return 1
	}
	n := len(p.Stages)
	plural := "s"
	if n == 1 {
		plural = ""
	}
	fmt.Fprintf(stdout, "ok: %s (%d stage%s)\n", p.Name, n, plural)
	return 0
}
