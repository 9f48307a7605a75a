package cli

import (
	"strings"
	"testing"

	"github.com/gearflow/gearflow/flow/storage"
	"github.com/gearflow/gearflow/internal/seaweedtest"
)

// TestRunsRemoveS3Storage: removing a run whose storage is s3:// deletes
// the run's prefix in the bucket and nothing else.
func TestRunsRemoveS3Storage(t *testing.T) {
	s3 := seaweedtest.Start(t)
	s3.Setenv(t) // not parallel
	f := newRunsFixture(t)
	uri := s3.URI("runs")
	for _, id := range []string{"one", "two"} {
		if err := f.run(t, t.Context(), id, "my.upper", uri); err != nil {
			t.Fatal(err)
		}
	}
	st, err := storage.Open(t.Context(), uri)
	if err != nil {
		t.Fatal(err)
	}
	count := func(id string) int {
		infos, err := st.List(t.Context(), id+"/**")
		if err != nil {
			t.Fatal(err)
		}
		return len(infos)
	}
	if count("one") == 0 || count("two") == 0 {
		t.Fatalf("the runs left nothing in s3: one %d, two %d objects", count("one"), count("two"))
	}
	code, out, errOut := runsCmd(t, "rm", "one", "--state-dir", f.state)
	if code != 0 || !strings.Contains(out, "and its data in "+uri) {
		t.Errorf("runs rm one: %d %q %q", code, out, errOut)
	}
	if n := count("one"); n != 0 {
		t.Errorf("run one still has %d objects in s3", n)
	}
	if count("two") == 0 {
		t.Errorf("removing run one removed run two's objects")
	}
}
