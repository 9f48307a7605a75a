package storage_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gearflow/gearflow/flow/storage"
	"github.com/gearflow/gearflow/internal/seaweedtest"
)

// One SeaweedFS server serves all the package's s3 tests, each under a
// prefix of its own; it starts with the first and stops in TestMain.
var (
	seaweedOnce sync.Once
	seaweed     *seaweedtest.Store
	seaweedErr  error
	seaweedDir  string
	prefixSeq   atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if seaweed != nil {
		seaweed.Stop()
	}
	if seaweedDir != "" {
		os.RemoveAll(seaweedDir)
	}
	os.Exit(code)
}

// sharedSeaweed returns the package's server, starting it if need be, or
// skips t (fails it in CI) without the weed binary.
func sharedSeaweed(t *testing.T) *seaweedtest.Store {
	t.Helper()
	bin, err := seaweedtest.Find()
	if err != nil {
		seaweedtest.Missing(t, err)
	}
	seaweedOnce.Do(func() {
		if seaweedDir, seaweedErr = os.MkdirTemp("", "storage-seaweed-"); seaweedErr == nil {
			seaweed, seaweedErr = seaweedtest.Launch(bin, seaweedDir)
		}
	})
	if seaweedErr != nil {
		t.Fatal(seaweedErr)
	}
	return seaweed
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9-]+`)

// openS3 opens an s3 store under a fresh prefix of the shared server,
// with the server's settings in the environment.
func openS3(t *testing.T) storage.Store {
	t.Helper()
	s := sharedSeaweed(t)
	s.Setenv(t)
	prefix := fmt.Sprintf("%s-%d", unsafeChars.ReplaceAllString(t.Name(), "-"), prefixSeq.Add(1))
	st, err := storage.Open(context.Background(), s.URI(prefix))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// forEachStore runs f against a fresh, empty store of each kind: a file
// store in a temporary folder and an s3 store on a SeaweedFS server.
func forEachStore(t *testing.T, f func(t *testing.T, st storage.Store)) {
	t.Run("file", func(t *testing.T) {
		st, err := storage.Open(context.Background(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		f(t, st)
	})
	t.Run("s3", func(t *testing.T) {
		f(t, openS3(t))
	})
}

// checkNoLeftovers fails t if st holds what an aborted write left: a
// temporary file, or an unfinished multipart upload.
func checkNoLeftovers(t *testing.T, st storage.Store) {
	t.Helper()
	if dir, ok := strings.CutPrefix(st.URI(), "file://"); ok {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.Contains(d.Name(), "tmp") {
				t.Errorf("left behind: %s", p)
			}
			return nil
		})
		return
	}
	client, err := seaweed.Client()
	if err != nil {
		t.Fatal(err)
	}
	prefix := strings.TrimPrefix(st.URI(), "s3://"+seaweed.Bucket+"/")
	for up := range client.ListIncompleteUploads(context.Background(), seaweed.Bucket, prefix, true) {
		if up.Err != nil {
			t.Fatalf("listing unfinished uploads: %v", up.Err)
		}
		t.Errorf("left behind: unfinished upload of %s (%s)", up.Key, up.UploadID)
	}
}
