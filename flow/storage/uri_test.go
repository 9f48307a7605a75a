package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/gearflow/gearflow/flow/storage"
)

func TestSplitURI(t *testing.T) {
	t.Parallel()
	tests := []struct{ uri, root, pattern string }{
		{"s3://b/in/*.txt", "s3://b/in", "*.txt"},
		{"s3://b/*.txt", "s3://b", "*.txt"},
		{"s3://b/in/x.txt", "s3://b/in", "x.txt"},
		{"s3://b/a/b/**/c", "s3://b/a/b", "**/c"},
		{"s3://b/in/{a,b/c}/*", "s3://b/in", "{a,b/c}/*"},
		{"s3://b", "s3://b", ""},
		{"data/x.txt", "data", "x.txt"},
		{"x.txt", ".", "x.txt"},
		{"*.txt", ".", "*.txt"},
		{"/abs/d/*.gz", "/abs/d", "*.gz"},
		{"/x.txt", "/", "x.txt"},
		{"file:///logs/**/*.gz", "file:///logs", "**/*.gz"},
		{"file:///x", "file:///", "x"},
		{"file:rel/d/x", "file:rel/d", "x"},
		{"file:x", "file:.", "x"},
	}
	for _, tt := range tests {
		root, pattern := storage.Split(tt.uri)
		if root != tt.root || pattern != tt.pattern {
			t.Errorf("Split(%q) = %q, %q; want %q, %q", tt.uri, root, pattern, tt.root, tt.pattern)
		}
	}
}

func TestJoin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		uri  string
		elem []string
		want string
	}{
		{"s3://b/out", []string{"run1", "part-00000"}, "s3://b/out/run1/part-00000"},
		{"s3://b", []string{"x"}, "s3://b/x"},
		{"s3://b/", []string{"x/y"}, "s3://b/x/y"},
		{"s3://b", nil, "s3://b"},
		{"file:///d", []string{"x"}, "file:///d/x"},
		{"file:///", []string{"x"}, "file:///x"},
		{"file:rel", []string{"x"}, "file:rel/x"},
		{"data", []string{"x", "y"}, "data/x/y"},
		{"/abs", []string{"x"}, "/abs/x"},
	}
	for _, tt := range tests {
		if got := storage.Join(tt.uri, tt.elem...); got != tt.want {
			t.Errorf("Join(%q, %q) = %q, want %q", tt.uri, tt.elem, got, tt.want)
		}
	}
}

func TestOpenURI(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	os.Mkdir("rel", 0o777)
	abs, _ := filepath.Abs("rel")
	ctx := context.Background()
	for _, uri := range []string{"rel", "file:rel", "file://" + abs, "file://localhost" + abs, abs} {
		st, err := storage.Open(ctx, uri)
		if err != nil {
			t.Errorf("Open(%q): %v", uri, err)
			continue
		}
		if st.URI() != "file://"+abs {
			t.Errorf("Open(%q).URI() = %q, want %q", uri, st.URI(), "file://"+abs)
		}
	}
	for _, uri := range []string{"", "file://host/x", "ftp://x/y", "file:"} {
		if _, err := storage.Open(ctx, uri); !errors.Is(err, storage.ErrBadURI) {
			t.Errorf("Open(%q) error = %v, want ErrBadURI", uri, err)
		}
	}
}
