//go:build unix

package seaweedtest_test

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/gearflow/gearflow/internal/seaweedtest"
)

func TestStart(t *testing.T) {
	t.Parallel()
	s := seaweedtest.Start(t)
	ctx := context.Background()
	client, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.PutObject(ctx, s.Bucket, "a/b", strings.NewReader("hello"), 5, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	obj, err := client.GetObject(ctx, s.Bucket, "a/b", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	if err != nil || string(got) != "hello" {
		t.Fatalf("GetObject read %q, %v", got, err)
	}

	// Credentials are checked: a wrong secret is refused.
	bad, err := minio.New(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey+"x", ""),
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.PutObject(ctx, s.Bucket, "a/c", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err == nil {
		t.Fatal("a PUT with a wrong secret succeeded")
	} else if code := minio.ToErrorResponse(err).Code; code != "SignatureDoesNotMatch" {
		t.Errorf("a PUT with a wrong secret gave %q (%v), want SignatureDoesNotMatch", code, err)
	}

	pid := s.Pid()
	s.Stop()
	if err := processAlive(pid); err == nil {
		t.Errorf("weed (pid %d) still runs after Stop", pid)
	}
	s.Stop() // twice is fine
}

func TestEnv(t *testing.T) {
	s := &seaweedtest.Store{Endpoint: "http://127.0.0.1:1", AccessKey: "K", SecretKey: "S", Region: "r", Bucket: "b"}
	s.Setenv(t)
	for k, want := range map[string]string{
		"AWS_ACCESS_KEY_ID": "K", "AWS_SECRET_ACCESS_KEY": "S", "AWS_REGION": "r",
		"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1", "AWS_S3_FORCE_PATH_STYLE": "true",
	} {
		if got := os.Getenv(k); got != want {
			t.Errorf("after Setenv, %s = %q, want %q", k, got, want)
		}
	}
	if got := s.URI("p/q"); got != "s3://b/p/q" {
		t.Errorf("URI = %q", got)
	}
}

func TestFindHonoursEnv(t *testing.T) {
	t.Setenv("GEARFLOW_WEED", "/nonexistent/weed")
	if _, err := seaweedtest.Find(); err == nil || !strings.Contains(err.Error(), "/nonexistent/weed") {
		t.Errorf("Find with a missing GEARFLOW_WEED = %v, want an error naming it", err)
	}
}
