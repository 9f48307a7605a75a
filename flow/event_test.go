package flow_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gearflow/gearflow/flow"
)

// TestJSONSnakeCaseSeconds: events, stage results and results are
// snake_case in JSON with durations in float seconds, and read back.
func TestJSONSnakeCaseSeconds(t *testing.T) {
	t.Parallel()
	ev := flow.Event{Kind: flow.EventTaskRetry, Stage: "count", Task: 3, Attempt: 2, Wait: 1500 * time.Millisecond,
		Duration: 250 * time.Millisecond, Worker: "w1", Counters: map[string]int64{"bad": 2}}
	res := flow.Result{Run: "r", Elapsed: 2 * time.Second, OutputRecords: 5,
		Stages: []flow.StageResult{{Name: "count", Function: "wc.map", Tasks: 3, RecordsIn: 12, Elapsed: 750 * time.Millisecond,
			Counters: map[string]int64{"bad": 2}}}}
	tests := []struct {
		name  string
		value any
		want  []string
	}{
		{"event", ev, []string{`"event":"task_retry"`, `"wait_s":1.5`, `"duration_s":0.25`, `"worker":"w1"`, `"counters":{"bad":2}`, `"attempt":2`}},
		{"result", res, []string{`"run":"r"`, `"elapsed_s":2`, `"output_records":5`, `"stages":[{"name":"count"`,
			`"function":"wc.map"`, `"records_in":12`, `"elapsed_s":0.75`, `"counters":{"bad":2}`}},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.value)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s JSON %s lacks %s", tt.name, b, w)
			}
		}
		for _, bad := range []string{`"Name"`, `"Elapsed"`, `"Wait"`, `_ns"`} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s JSON %s has %s", tt.name, b, bad)
			}
		}
	}
	var ev2 flow.Event
	b, _ := json.Marshal(ev)
	if err := json.Unmarshal(b, &ev2); err != nil || ev2.Wait != ev.Wait || ev2.Duration != ev.Duration || ev2.Kind != ev.Kind || ev2.Counters["bad"] != 2 {
		t.Errorf("event read back as %+v (%v), want %+v", ev2, err, ev)
	}
	var res2 flow.Result
	b, _ = json.Marshal(res)
	if err := json.Unmarshal(b, &res2); err != nil || res2.Elapsed != res.Elapsed || len(res2.Stages) != 1 || res2.Stages[0].Elapsed != res.Stages[0].Elapsed {
		t.Errorf("result read back as %+v (%v), want %+v", res2, err, res)
	}
}
