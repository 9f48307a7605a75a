// Package cliflag is the one way gearflow's commands parse their flags,
// shared by the gearflow binary and by custom binaries built with
// flow/cli, so both take the same flags, print the same messages and
// exit with the same codes.
//
// Flags are parsed by github.com/spf13/pflag: "--name value",
// "--name=value", one-letter shorthands with the value attached or not
// ("-p4731", "-p 4731"), and flags anywhere among the positional
// arguments. Go's single-dash long form ("-servers x") is still taken
// for a flag with a long name, so command lines written for earlier
// versions keep working.
package cliflag

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// Exit codes shared by every command.
const (
	ExitOK      = 0 // done, or help asked for
	ExitFailure = 1 // the command ran and failed
	ExitUsage   = 2 // the command line is wrong
)

// Set is a command's flags and how to describe them.
type Set struct {
	*pflag.FlagSet
	cmd    string    // "gearflow run"
	usage  string    // "PIPELINE.yaml [flags]"
	about  string    // paragraphs printed after the usage line
	stderr io.Writer // where usage errors go
}

// New returns the flags of command cmd (e.g. "gearflow run"). usage is
// what follows the command's name on the usage line, about explains the
// command in a few lines. Help goes to out; errors are printed by Parse.
func New(cmd, usage, about string, out io.Writer) *Set {
	fs := pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	fs.SetOutput(out)
	fs.SortFlags = false
	s := &Set{FlagSet: fs, cmd: cmd, usage: usage, about: about, stderr: out}
	fs.Usage = func() { s.PrintUsage(out) }
	return s
}

// PrintUsage writes the command's usage line, description and flags.
func (s *Set) PrintUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s %s\n", s.cmd, s.usage)
	if s.about != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(s.about, "\n"))
	}
	if flags := s.FlagUsages(); flags != "" {
		fmt.Fprintf(w, "\nflags:\n%s", flags)
	}
}

// Parse parses args and returns the positional arguments. When it
// returns ok=false the command must exit with code: ExitOK after help
// was printed (-h, --help), ExitUsage after an error was printed, with
// a pointer to the command's help.
func (s *Set) Parse(args []string) (pos []string, code int, ok bool) {
	err := s.FlagSet.Parse(s.normalize(args))
	if errors.Is(err, pflag.ErrHelp) {
		return nil, ExitOK, false
	}
	if err != nil {
		s.Fail("%v", err)
		return nil, ExitUsage, false
	}
	return s.Args(), ExitOK, true
}

// Fail prints a usage error the way Parse does and returns ExitUsage.
func (s *Set) Fail(format string, a ...any) int {
	fmt.Fprintf(s.stderr, "%s: %s\n", s.cmd, fmt.Sprintf(format, a...))
	fmt.Fprintf(s.stderr, "Run '%s -h' for usage.\n", s.cmd)
	return ExitUsage
}

// normalize rewrites what Go's flag package took and pflag does not:
// single-dash long flags ("-servers") become "--servers" when a flag of
// that long name exists, and a shorthand with two dashes ("--p 4731")
// becomes "-p 4731"; shorthand groups ("-p4731", "-v") are left alone.
// Nothing after "--" is touched.
func (s *Set) normalize(args []string) []string {
	var out []string
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if len(name) > 1 && s.Lookup(name) != nil {
				a = "-" + a
			}
		} else if len(a) > 2 && a[0] == '-' && a[1] == '-' {
			// Go's flag took "--p" for "-p": a one-letter name with two
			// dashes is its shorthand.
			name, value, hasValue := strings.Cut(a[2:], "=")
			if len(name) == 1 && s.Lookup(name) == nil && s.ShorthandLookup(name) != nil {
				a = "-" + name
				if hasValue {
					a += "=" + value
				}
			}
		}
		out = append(out, a)
	}
	return out
}

// Params collects repeated "-p name=value" flags; a name given twice is
// an error.
type Params map[string]string

func (p Params) String() string {
	var s []string
	for k, v := range p {
		s = append(s, k+"="+v)
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

// Set adds one name=value.
func (p Params) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", v)
	}
	if _, dup := p[name]; dup {
		return fmt.Errorf("param %q given twice", name)
	}
	p[name] = value
	return nil
}

// Type names the value in help.
func (p Params) Type() string { return "name=value" }

// Servers is a comma-separated, repeatable list of job servers; an
// address without a port gets Gearman's 4730.
type Servers []string

func (s *Servers) String() string { return strings.Join(*s, ",") }

// Set adds the servers of one flag.
func (s *Servers) Set(v string) error {
	*s = append(*s, SplitServers(v)...)
	return nil
}

// SplitServers splits "a:4730,b" into addresses, adding Gearman's port
// 4730 to one without a port ("b", "[::1]").
func SplitServers(v string) []string {
	var out []string
	for _, a := range strings.Split(v, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if !strings.Contains(a, ":") || strings.HasSuffix(a, "]") {
			a += ":4730"
		}
		out = append(out, a)
	}
	return out
}

// Type names the value in help.
func (s *Servers) Type() string { return "host:port,..." }
