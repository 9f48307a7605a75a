package storage_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/flow/storage"
)

// TestS3Credentials: the store's credentials are really checked, and a
// wrong one gives an error that says so (not "no such object").
func TestS3Credentials(t *testing.T) {
	st := openS3(t)
	put(t, st, "k", "v")
	ctx := context.Background()
	tests := []struct {
		name, env, value, want string
	}{
		{"wrong secret", "AWS_SECRET_ACCESS_KEY", "wrong-secret", "signature"},
		{"unknown key", "AWS_ACCESS_KEY_ID", "NOSUCHKEY", "access key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.env, tt.value)
			bad, err := storage.Open(ctx, st.URI())
			if err != nil {
				t.Fatal(err)
			}
			_, err = bad.List(ctx, "*")
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), tt.want) {
				t.Errorf("List = %v, want an error saying %q", err, tt.want)
			}
			if _, err := bad.Stat(ctx, "k"); err == nil || errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stat = %v, want an error other than fs.ErrNotExist", err)
			}
			if _, err := bad.Open(ctx, "k", 0, -1); err == nil || errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Open = %v, want an error other than fs.ErrNotExist", err)
			}
			for _, size := range []int{10, 3 << 20} { // one PUT, and a multipart upload
				w, err := bad.Create(ctx, "new")
				if err != nil {
					t.Fatal(err)
				}
				_, err = w.Write(make([]byte, size))
				if err == nil {
					err = w.Commit()
				} else {
					w.Abort()
				}
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), tt.want) {
					t.Errorf("writing %d bytes: %v; want an error saying %q", size, err, tt.want)
				}
				t.Logf("writing %d bytes: %v", size, err)
			}
		})
	}
	if got := keys(t, st, "*"); len(got) != 1 {
		t.Errorf("after writes with bad credentials, keys = %q, want only k", got)
	}
}

// TestS3Settings: settings an S3 tool would refuse are refused by Open
// with a clear error.
func TestS3Settings(t *testing.T) {
	s := sharedSeaweed(t)
	tests := []struct {
		name, env, value string
	}{
		{"endpoint without scheme", "AWS_ENDPOINT_URL_S3", "127.0.0.1:9000"},
		{"endpoint with a path", "AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000/x"},
		{"key without secret", "AWS_SECRET_ACCESS_KEY", ""},
		{"path style not a bool", "AWS_S3_FORCE_PATH_STYLE", "maybe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Setenv(t)
			t.Setenv(tt.env, tt.value)
			_, err := storage.Open(context.Background(), s.URI("x"))
			if !errors.Is(err, storage.ErrBadURI) {
				t.Errorf("Open with %s=%q = %v, want ErrBadURI naming it", tt.env, tt.value, err)
			}
		})
	}
	for _, uri := range []string{"s3://", "s3:///x", "s3://Bad_Bucket/x", "s3://b/../x", "s3://b//x"} {
		if _, err := storage.Open(context.Background(), uri); !errors.Is(err, storage.ErrBadURI) {
			t.Errorf("Open(%q) = %v, want ErrBadURI", uri, err)
		}
	}
	// AWS_ENDPOINT_URL serves when AWS_ENDPOINT_URL_S3 is unset.
	s.Setenv(t)
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AWS_ENDPOINT_URL", s.Endpoint)
	st, err := storage.Open(context.Background(), s.URI("generic-endpoint"))
	if err != nil {
		t.Fatal(err)
	}
	put(t, st, "x", "y")
	r, err := st.Open(context.Background(), "x", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "y" {
		t.Errorf("read %q through AWS_ENDPOINT_URL, want y", b)
	}
}
