package flow_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/examples/wordcount"
	"github.com/gearflow/gearflow/flow"
)

// TestStatRunStates: the state StatRun gives a run's directory, from
// result.json and, for a directory an older version left without it,
// from the journal, the planned tasks and failed.jsonl.
func TestStatRunStates(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	p, out := loadWordcount(t, nil)
	reg := flow.NewRegistry()
	wordcount.Register(reg)
	if _, err := flow.Run(t.Context(), p, reg, flow.Options{StateDir: state, RunID: "ok", Workers: 2, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	bad, _ := loadWordcount(t, nil)
	bad.Stages[0].Retry.MaxAttempts = 1
	failing := flow.NewRegistry()
	failing.Map("wc.map", func(ctx context.Context, rec flow.Record, emit flow.Emit) error {
		if strings.Contains(rec.Value.(string), "Gearman") {
			return errors.New("cannot parse gearman")
		}
		return wordcount.Map(ctx, rec, emit)
	})
	failing.Reduce("wc.sum", wordcount.Sum)
	if _, err := flow.Run(t.Context(), bad, failing, flow.Options{StateDir: state, RunID: "bad", Workers: 2, Logger: testLogger(t)}); err == nil {
		t.Fatal("the failing run succeeded")
	}

	check := func(id string, want flow.RunState, wantRecords int64) {
		t.Helper()
		s, err := flow.StatRun(state, id)
		if err != nil {
			t.Fatal(err)
		}
		if s.State != want || s.Records != wantRecords || s.Pipeline != "wordcount" || s.Size <= 0 {
			t.Errorf("StatRun(%s) = state %v, %d records, pipeline %q, size %d; want %v, %d records",
				id, s.State, s.Records, s.Pipeline, s.Size, want, wantRecords)
		}
		if want == flow.RunFinished && (s.Stages[0].Tasks != 3 || s.Stages[0].Done != 3 || s.Stages[1].Done != s.Stages[1].Tasks) {
			t.Errorf("StatRun(%s) stages %+v, want all tasks done", id, s.Stages)
		}
	}
	check("ok", flow.RunFinished, 48)
	check("bad", flow.RunFailed, 0)
	if s, _ := flow.StatRun(state, "ok"); s.Output != out || s.Ended.IsZero() {
		t.Errorf("StatRun(ok): output %q, ended %v; want %q and a time", s.Output, s.Ended, out)
	}
	if s, _ := flow.StatRun(state, "bad"); len(s.Failed) != 1 || s.Stages[0].Failed != 1 || !strings.Contains(s.Failed[0].Err, "cannot parse gearman") || !strings.Contains(s.Err, "ran out of attempts") {
		t.Errorf("StatRun(bad): failed %v, stage failures %d, error %q", s.Failed, s.Stages[0].Failed, s.Err)
	}

	// As an older version left them: no result.json.
	for _, id := range []string{"ok", "bad"} {
		if err := os.Remove(filepath.Join(state, id, "result.json")); err != nil {
			t.Fatal(err)
		}
	}
	check("ok", flow.RunFinished, 0)
	check("bad", flow.RunFailed, 0)
	// A run whose journal stops short and that recorded no failure
	// stopped before it ended.
	if err := os.WriteFile(filepath.Join(state, "ok", "journal.jsonl"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	check("ok", flow.RunIncomplete, 0)

	if _, err := flow.StatRun(state, "nope"); !errors.Is(err, flow.ErrNoRun) {
		t.Errorf("StatRun(nope) = %v, want ErrNoRun", err)
	}
	runs, err := flow.ListRuns(state)
	if err != nil || len(runs) != 2 || runs[0].Run != "bad" || runs[1].Run != "ok" {
		t.Errorf("ListRuns = %v, %v; want bad, then ok (newest first)", runs, err)
	}
}
