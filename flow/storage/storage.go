package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Store is a place that holds objects named by slash-separated keys
// relative to its root. Its methods are safe for concurrent use.
type Store interface {
	// URI names the store's root, in a form Open accepts:
	// "file:///data/run" or "s3://bucket/prefix".
	URI() string

	// Stat describes the object at key. A missing object (or a folder)
	// gives an error that matches fs.ErrNotExist.
	Stat(ctx context.Context, key string) (Info, error)

	// List returns the objects whose keys match pattern (see the package
	// comment for the glob syntax), sorted by key. A pattern that matches
	// nothing gives an empty list, not an error; a malformed one gives an
	// error that matches ErrBadPattern.
	List(ctx context.Context, pattern string) ([]Info, error)

	// Open reads n bytes of the object at key from offset off, or
	// everything from off when n < 0. A range that runs past the end
	// reads what exists (nothing when off is at or past the end). A
	// missing object gives an error that matches fs.ErrNotExist; the s3
	// store may report it only from the first Read.
	Open(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)

	// Create starts writing the object at key. Nothing is visible under
	// key until the Writer commits; then the whole object replaces any
	// earlier one at once. ctx bounds the whole write, Commit included.
	Create(ctx context.Context, key string) (Writer, error)

	// Rename moves the object at from to to, replacing any object there,
	// within the store and without its bytes passing through the caller:
	// a rename on a filesystem, a server-side copy and a delete on S3
	// (where a reader may see both names for a moment, never neither).
	// A missing from gives an error that matches fs.ErrNotExist.
	Rename(ctx context.Context, from, to string) error

	// DeletePrefix deletes the object at prefix and every object under
	// prefix + "/" (so "a/attempt-1" spares "a/attempt-10"); "" deletes
	// everything under the root. Nothing to delete is not an error.
	DeletePrefix(ctx context.Context, prefix string) error
}

// Writer is an object being written. It ends with exactly one of Commit,
// which makes the object visible, and Abort, which discards it. There is
// no Close: the usual pattern is
//
//	w, err := st.Create(ctx, key)
//	if err != nil { ... }
//	defer w.Abort() // a no-op once Commit has run
//	... write ...
//	return w.Commit()
//
// A Writer is not safe for concurrent use. Writes go to the store as they
// come (the file store to its file, the s3 store one part at a time), so
// a Writer never holds a whole object; callers that write many small
// pieces should wrap it in a bufio.Writer.
type Writer interface {
	io.Writer
	// Commit finishes the object and makes it visible under its key. On
	// error nothing new is visible. After Commit or Abort it returns
	// ErrWriterDone.
	Commit() error
	// Abort discards what was written. It is a no-op after Commit or a
	// first Abort.
	Abort() error
}

// Info describes one object.
type Info struct {
	Key     string // relative to the store's root
	Size    int64
	ModTime time.Time
}

var (
	// ErrBadPattern is returned (wrapped) for a malformed glob.
	ErrBadPattern = errors.New("storage: malformed pattern")
	// ErrBadKey is returned (wrapped) for a key that is not a clean
	// relative path.
	ErrBadKey = errors.New("storage: invalid key")
	// ErrBadURI is returned (wrapped) by Open for a URI it cannot use.
	ErrBadURI = errors.New("storage: invalid URI")
	// ErrWriterDone is returned by Write and Commit after the writer has
	// committed or aborted.
	ErrWriterDone = errors.New("storage: writer already committed or aborted")
)

// Open returns the store at uri: "file:///abs/path", "file:rel/path", a
// plain path (a file store; relative paths are made absolute here), or
// "s3://bucket/prefix". It creates nothing and contacts no server; a file
// store's folder is created by the first write.
func Open(ctx context.Context, uri string) (Store, error) {
	scheme, rest, ok := strings.Cut(uri, ":")
	if !ok || len(scheme) < 2 || strings.ContainsAny(scheme, "/\\.") {
		// a plain path (one letter before ':' would be a Windows drive)
		return openFile(uri)
	}
	switch scheme {
	case "file":
		p := rest
		if strings.HasPrefix(rest, "//") {
			host, abs, _ := strings.Cut(rest[2:], "/")
			if host != "" && host != "localhost" {
				return nil, fmt.Errorf("%w: %q: file URIs name no host", ErrBadURI, uri)
			}
			p = "/" + abs
		}
		if p == "" {
			return nil, fmt.Errorf("%w: %q: empty path", ErrBadURI, uri)
		}
		return openFile(p)
	case "s3":
		return openS3(ctx, uri)
	}
	return nil, fmt.Errorf("%w: %q: unknown scheme %q (want file or s3)", ErrBadURI, uri, scheme)
}

func openFile(p string) (Store, error) {
	if p == "" {
		return nil, fmt.Errorf("%w: empty path", ErrBadURI)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrBadURI, p, err)
	}
	return &fileStore{root: abs}, nil
}

// Split cuts a URI holding a glob into the root of the store to open (the
// longest folder prefix free of glob characters) and the pattern relative
// to it: "s3://b/in/*.txt" gives ("s3://b/in", "*.txt"), "data/x.txt"
// gives ("data", "x.txt"), "x.txt" gives (".", "x.txt"),
// "file:///logs/**/*.gz" gives ("file:///logs", "**/*.gz").
func Split(uri string) (root, pattern string) {
	head, p := splitAuthority(uri)
	if p == "" && head != "" {
		return head, ""
	}
	rooted := strings.HasPrefix(p, "/")
	elems := strings.Split(strings.TrimPrefix(p, "/"), "/")
	n := 0
	for n < len(elems)-1 && !strings.ContainsAny(elems[n], metaChars) {
		n++
	}
	// A brace alternative may hold '/', so the root ends before the
	// element holding the first glob character, whatever follows.
	dir := strings.Join(elems[:n], "/")
	pattern = strings.Join(elems[n:], "/")
	switch {
	case rooted && dir == "" && strings.Contains(head, "://") && !strings.HasSuffix(head, "://"):
		// "s3://b/*.txt": the bucket itself is the root
	case rooted:
		dir = "/" + dir
	case dir == "":
		dir = "."
	}
	return head + dir, pattern
}

// metaChars are the characters that make an element a glob.
const metaChars = `*?[{\`

// splitAuthority cuts "s3://bucket/p" into ("s3://bucket", "/p"),
// "file:///p" into ("file://", "/p"), "file:p" into ("file:", "p") and a
// plain path into ("", path).
func splitAuthority(uri string) (head, p string) {
	scheme, rest, ok := strings.Cut(uri, ":")
	if !ok || len(scheme) < 2 || strings.ContainsAny(scheme, "/\\.") {
		return "", uri
	}
	if !strings.HasPrefix(rest, "//") {
		return scheme + ":", rest
	}
	auth, p, found := strings.Cut(rest[2:], "/")
	if !found {
		return scheme + "://" + auth, ""
	}
	return scheme + "://" + auth, "/" + p
}

// Join appends elements to uri, the way path.Join does to a path:
// Join("s3://b/out", "run1", "part-00000") is "s3://b/out/run1/part-00000".
func Join(uri string, elem ...string) string {
	head, p := splitAuthority(uri)
	if strings.Contains(head, "//") {
		j := path.Join(append([]string{"/", p}, elem...)...)
		if j == "/" {
			if p == "" {
				return head
			}
			return head + "/"
		}
		return head + j
	}
	return head + path.Join(append([]string{p}, elem...)...)
}

// checkKey reports whether key can name an object.
func checkKey(key string) error {
	if key == "." || !fs.ValidPath(key) || strings.Contains(key, "\\") {
		return fmt.Errorf("%w: %q (want a clean relative path such as \"a/b.txt\")", ErrBadKey, key)
	}
	return nil
}

// checkPrefix is checkKey that also allows "" (the whole store).
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return checkKey(prefix)
}

// checkRange validates the arguments of Open.
func checkRange(key string, off int64) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if off < 0 {
		return fmt.Errorf("storage: open %s: negative offset %d", key, off)
	}
	return nil
}
