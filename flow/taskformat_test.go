package flow

import (
	"bytes"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"
)

// docHex returns the bytes of the hex dump block "```hex NAME" in
// docs/TASKFORMAT.md.
func docHex(t *testing.T, name string) []byte {
	t.Helper()
	doc, err := os.ReadFile("../docs/TASKFORMAT.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "```hex "+name+"\n")
	if !ok {
		t.Fatalf("docs/TASKFORMAT.md has no hex block %q", name)
	}
	block, _, _ = strings.Cut(block, "```")
	line := regexp.MustCompile(`^[0-9a-f]{8}  ((?:[0-9a-f]{2} {1,2})+)`)
	var b []byte
	for _, l := range strings.Split(block, "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		p, err := hex.DecodeString(strings.ReplaceAll(m[1], " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, p...)
	}
	return b
}

// TestTaskFormatDoc checks that the worked example in docs/TASKFORMAT.md
// is what the code sends and accepts.
func TestTaskFormatDoc(t *testing.T) {
	t.Parallel()
	h := taskHeader{Run: "6f1d1c52-0b9e-4c21-9a55-0d2a4b7e8f10", Stage: "count", Task: 0, Attempt: 1,
		Kind: TaskMap, Combine: "wc.sum", Input: "in.txt:1-2", Params: map[string]string{}}
	recs := []rawRecord{{Value: mustValue(t, "the fox")}, {Value: mustValue(t, "the dog")}}
	payload := appendMapPayload(nil, &h, recs)
	if want := docHex(t, "payload"); !bytes.Equal(payload, want) {
		t.Errorf("payload\n%s\ndoc says\n%s", hex.Dump(payload), hex.Dump(want))
	}
	if len(payload) != 151 {
		t.Errorf("payload is %d bytes; the doc says 151", len(payload))
	}
	if u := uniqueID(h.Run, h.Stage, h.Task, h.Attempt); u != "6f1d1c52-0b9e-4c21-9a55-0d2a4b7e8f10:count:0" {
		t.Errorf("unique %q", u)
	}

	var batches [][]byte
	io := taskIO{
		data:   func(b []byte) error { batches = append(batches, bytes.Clone(b)); return nil },
		status: func(uint64, uint64) error { return nil },
	}
	summary, err := testRegistry().execute(t.Context(), "wc.map", payload, io)
	if err != nil {
		t.Fatal(err)
	}
	if len(batches) != 1 || !bytes.Equal(batches[0], docHex(t, "batch")) {
		t.Errorf("batches %x, doc says %x", batches, docHex(t, "batch"))
	}
	if !bytes.Equal(summary, docHex(t, "summary")) {
		t.Errorf("summary %x, doc says %x", summary, docHex(t, "summary"))
	}
}
