package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/gearflow/gearflow"

// pkg is the part of `go list -json` output the rules need.
type pkg struct {
	ImportPath   string
	Standard     bool
	Imports      []string
	TestImports  []string
	XTestImports []string
	Error        *struct{ Err string }
}

// graph maps every listed package to its record.
type graph map[string]*pkg

// area returns the top-level area of a module package ("protocol",
// "server", "cmd", "internal", ...), or "" for packages outside the module.
func area(path string) string {
	rest, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return ""
	}
	first, _, _ := strings.Cut(rest, "/")
	return first
}

func (g graph) isStd(path string) bool {
	if p, ok := g[path]; ok {
		return p.Standard
	}
	// Not listed (for example a test-only import): decide by its form.
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// reach returns the module packages reachable from path through non-test
// imports, path excluded.
func (g graph) reach(path string) []string {
	seen := map[string]bool{path: true}
	stack := []string{path}
	var out []string
	for len(stack) > 0 {
		p := g[stack[len(stack)-1]]
		stack = stack[:len(stack)-1]
		if p == nil {
			continue
		}
		for _, imp := range p.Imports {
			if seen[imp] || area(imp) == "" {
				continue
			}
			seen[imp] = true
			out = append(out, imp)
			stack = append(stack, imp)
		}
	}
	slices.Sort(out)
	return out
}

// violations lists every import edge that breaks the architecture.
func violations(g graph) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	var paths []string
	for path := range g {
		if area(path) != "" {
			paths = append(paths, path)
		}
	}
	slices.Sort(paths)
	for _, path := range paths {
		p := g[path]
		from := area(path)
		if from == "protocol" {
			// The standard library only. Its tests may also use the
			// module's internal test helpers (a real gearmand to check
			// against), never the layers above it.
			for _, imp := range p.Imports {
				if !g.isStd(imp) && area(imp) != "protocol" {
					bad("%s imports %s: protocol uses the standard library only", path, imp)
				}
			}
			for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
				if !g.isStd(imp) && area(imp) != "protocol" && area(imp) != "internal" {
					bad("%s tests import %s: protocol's tests use the standard library and internal test helpers only", path, imp)
				}
			}
		}
		for _, imp := range p.Imports {
			switch to := area(imp); {
			case to == "cmd":
				bad("%s imports %s: nothing imports cmd", path, imp)
			case to == "examples" && from != "examples" && from != "cmd":
				bad("%s imports %s: only cmd builds examples in", path, imp)
			case from == "examples" && to != "" && to != "examples" && to != "flow" && to != "runtime" && to != "protocol":
				bad("%s imports %s: examples use only flow, runtime and protocol", path, imp)
			}
		}
		for _, dep := range g.reach(path) {
			switch to := area(dep); {
			case from == "server" && (to == "runtime" || to == "flow"):
				bad("%s depends on %s: server never imports runtime or flow", path, dep)
			case from == "runtime" && (to == "server" || to == "flow"):
				bad("%s depends on %s: runtime never imports server or flow", path, dep)
			case from == "protocol" && to != "protocol":
				bad("%s depends on %s: protocol depends on nothing in the module", path, dep)
			}
		}
	}
	return out
}

func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := exec.LookPath(p); err != nil {
		t.Skip("go command not found")
	}
	return p
}

func listModule(t *testing.T) graph {
	t.Helper()
	cmd := exec.Command(goTool(t), "list", "-e", "-deps", "-test=false", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		g[p.ImportPath] = &p
	}
	return g
}

func TestImports(t *testing.T) {
	t.Parallel()
	g := listModule(t)
	present := map[string]bool{}
	for path, p := range g {
		if a := area(path); a != "" {
			present[a] = true
			if p.Error != nil {
				t.Logf("%s: %s (checked with the imports go list could read)", path, p.Error.Err)
			}
		}
	}
	if !present["protocol"] {
		t.Fatalf("go list found no protocol package: %d packages listed", len(g))
	}
	for _, a := range []string{"server", "runtime", "flow", "cmd", "examples"} {
		if !present[a] {
			t.Logf("no %s packages yet: their rules hold vacuously", a)
		}
	}
	for _, v := range violations(g) {
		t.Error(v)
	}
}

// TestViolations checks the rules themselves on made-up graphs.
func TestViolations(t *testing.T) {
	t.Parallel()
	m := func(s string) string { return module + "/" + s }
	tests := []struct {
		name  string
		edges map[string][]string
		want  []string // substrings, one per expected violation
	}{
		{"the design's graph", map[string][]string{
			m("cmd/gearflow"):     {m("flow"), m("server"), m("examples"), "fmt"},
			m("examples"):         {m("examples/wc")},
			m("flow"):             {m("runtime"), m("server"), m("protocol"), m("flow/spec"), "gopkg.in/yaml.v3"},
			m("flow/spec"):        {"gopkg.in/yaml.v3"},
			m("runtime"):          {m("protocol"), "context"},
			m("server"):           {m("protocol"), "net"},
			m("protocol"):         {"bufio", "encoding/binary"},
			m("examples/wc"):      {m("flow"), m("runtime"), "strings"},
			m("internal/servert"): {m("server")},
		}, nil},
		{"protocol imports a module", map[string][]string{
			m("protocol"): {"github.com/google/uuid"},
		}, []string{"standard library only"}},
		{"protocol imports an internal helper", map[string][]string{
			m("protocol"): {m("internal/gearmandtest")},
		}, []string{"standard library only", "depends on nothing in the module"}},
		{"server imports runtime through a helper", map[string][]string{
			m("server"):          {m("internal/helper")},
			m("internal/helper"): {m("runtime")},
			m("runtime"):         {m("protocol")},
			m("protocol"):        nil,
		}, []string{"server never imports runtime"}},
		{"runtime imports flow", map[string][]string{
			m("runtime"): {m("flow/spec")},
		}, []string{"runtime never imports server or flow"}},
		{"runtime imports server", map[string][]string{
			m("runtime/pool"): {m("server")},
		}, []string{"runtime never imports server or flow"}},
		{"something imports cmd", map[string][]string{
			m("flow"): {m("cmd/gearflow")},
		}, []string{"nothing imports cmd"}},
		{"example imports server", map[string][]string{
			m("examples/wc"): {m("server")},
		}, []string{"examples use only"}},
		{"library imports an example", map[string][]string{
			m("flow"): {m("examples/wc")},
		}, []string{"only cmd builds examples in"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := graph{}
			for from, imps := range tc.edges {
				g[from] = &pkg{ImportPath: from, Imports: imps}
				for _, imp := range imps {
					if area(imp) == "" {
						g[imp] = &pkg{ImportPath: imp, Standard: !strings.Contains(strings.Split(imp, "/")[0], ".")}
					}
				}
			}
			got := violations(g)
			if len(got) != len(tc.want) {
				t.Fatalf("violations %q, want %d matching %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("violation %q does not mention %q", got[i], w)
				}
			}
		})
	}
}
