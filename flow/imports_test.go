package flow

import (
	"go/build"
	"strings"
	"testing"
)

// TestImportDirection keeps the layering of DESIGN.md: flow and its
// subpackages never import the CLI or the examples, and flow/spec
// imports no other gearflow package.
func TestImportDirection(t *testing.T) {
	t.Parallel()
	const mod = "github.com/gearflow/gearflow/"
	tests := []struct {
		dir       string
		forbidden []string
	}{
		{".", []string{mod + "cmd", mod + "examples", mod + "flow/cli"}},
		{"cli", []string{mod + "cmd", mod + "examples"}},
		{"spec", []string{mod}},
	}
	for _, tt := range tests {
		pkg, err := build.ImportDir(tt.dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			for _, f := range tt.forbidden {
				if strings.HasPrefix(imp, f) {
					t.Errorf("flow/%s imports %s", tt.dir, imp)
				}
			}
		}
	}
}
