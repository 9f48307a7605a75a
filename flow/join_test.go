package flow_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/gearflow/gearflow/flow"
)

// TestJoinKinds: an inner join pairs every left value of a key with
// every right one and drops keys missing on a side; a left join keeps
// left values without a match, with nil.
func TestJoinKinds(t *testing.T) {
	t.Parallel()
	groups := map[string]map[string][]any{
		"both":  {"l": {"l1", "l2"}, "r": {"r1", "r2"}},
		"left":  {"l": {"l3"}},
		"right": {"r": {"r3"}},
	}
	tests := []struct {
		kind flow.JoinKind
		want []string
	}{
		{flow.InnerJoin, []string{"both l1 r1", "both l1 r2", "both l2 r1", "both l2 r2"}},
		{flow.LeftJoin, []string{"both l1 r1", "both l1 r2", "both l2 r1", "both l2 r2", "left l3 <nil>"}},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			t.Parallel()
			var got []string
			fn := flow.Join(tt.kind, "l", "r", func(ctx context.Context, key string, l, r any, emit flow.Emit) error {
				return emit(key, fmt.Sprintf("%s %v %v", key, l, r))
			})
			for _, key := range []string{"both", "left", "right"} {
				err := fn(t.Context(), key, groups[key], func(k string, v any) error {
					got = append(got, v.(string))
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s join: %q, want %q", tt.kind, got, tt.want)
			}
		})
	}
}

// TestCoGroupNamedInputs: a reduce stage may list the stages it reads as
// inputs: with names of its own; its CoGroupFunc gets the values under
// those names, and a key missing from one input has no entry for it.
func TestCoGroupNamedInputs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("k1\nk2\nk1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.txt"), []byte("k2\nk3\n"), 0o644)
	p := parsePipeline(t, dir, `
version: 1
name: cg
stages:
  - name: a
    kind: map
    function: cg.key
    input: { from: file:a.txt, split: { lines: 1 } }
    partition: { count: 3 }
  - name: b
    kind: map
    function: cg.key
    input: { from: file:b.txt }
    partition: { count: 3 }
  - name: both
    kind: reduce
    function: cg.count
    inputs: [{ name: left, from: stage:a }, { name: right, from: stage:b }]
output: { to: out.tsv }
`, nil)
	reg := flow.NewRegistry()
	reg.Map("cg.key", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		return emit(rec.Value.(string), 1)
	})
	reg.CoGroup("cg.count", func(ctx context.Context, key string, groups map[string][]any, emit flow.Emit) error {
		_, hasRight := groups["right"]
		return emit(key, fmt.Sprintf("left=%d right=%d %v", len(groups["left"]), len(groups["right"]), hasRight))
	})
	if _, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: t.TempDir(), Workers: 2, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "out.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	want := "k1\tleft=2 right=0 false\nk2\tleft=1 right=1 true\nk3\tleft=0 right=1 true\n"
	if string(got) != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}
