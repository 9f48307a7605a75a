package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"syscall"
)

// tempPrefix starts the names of files being written. They are hidden,
// so globs skip them, and List skips them even for a pattern that names
// hidden files.
const tempPrefix = ".gearflow-tmp-"

// fileStore is a folder on a local or shared filesystem.
type fileStore struct {
	root string // absolute, cleaned; immutable
}

func (s *fileStore) URI() string { return "file://" + filepath.ToSlash(s.root) }

func (s *fileStore) path(key string) string {
	return filepath.Join(s.root, filepath.FromSlash(key))
}

func (s *fileStore) Stat(ctx context.Context, key string) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(s.path(key))
	if err != nil {
		return Info{}, fmt.Errorf("storage: stat %s: %w", s.keyURI(key), unwrapPath(err))
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("storage: stat %s: a folder, not an object: %w", s.keyURI(key), fs.ErrNotExist)
	}
	return Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// keyURI names key in errors.
func (s *fileStore) keyURI(key string) string { return Join(s.URI(), key) }

// unwrapPath drops *fs.PathError's repetition of the path, which the
// callers' messages already give, keeping its errno for errors.Is.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, syscall.ENOTDIR) {
		// a parent is an object, so there is no such key
		return fmt.Errorf("%w (a parent is an object)", fs.ErrNotExist)
	}
	return err
}

func (s *fileStore) List(ctx context.Context, pattern string) ([]Info, error) {
	g, err := compileGlob(pattern)
	if err != nil {
		return nil, err
	}
	var out []Info
	start := literalDir(pattern)
	if start != "" && !g.mayContain(start) {
		return nil, nil
	}
	if err := s.walk(ctx, g, start, &out); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// walk lists dir (a key, "" for the root) and goes on into the folders
// that g may match keys under.
func (s *fileStore) walk(ctx context.Context, g *glob, dir string, out *[]Info) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(s.path(dir))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("storage: list %s: %w", s.keyURI(dir), unwrapPath(err))
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, tempPrefix) {
			continue
		}
		key := path.Join(dir, name)
		mode := e.Type()
		if mode&fs.ModeSymlink != 0 {
			// follow links to files; a link to a folder is not walked,
			// so a cycle cannot trap a listing
			fi, err := os.Stat(s.path(key))
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			if g.match(key) {
				*out = append(*out, Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
			}
			continue
		}
		switch {
		case mode.IsDir():
			if g.mayContain(key) {
				if err := s.walk(ctx, g, key, out); err != nil {
					return err
				}
			}
		case mode.IsRegular():
			if !g.match(key) {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted meanwhile
			}
			if err != nil {
				return fmt.Errorf("storage: list %s: %w", s.keyURI(key), unwrapPath(err))
			}
			*out = append(*out, Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
		}
	}
	return nil
}

func (s *fileStore) Open(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := checkRange(key, off); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", s.keyURI(key), unwrapPath(err))
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("a folder, not an object: %w", fs.ErrNotExist)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("storage: open %s: %w", s.keyURI(key), err)
	}
	if n < 0 {
		n = max(fi.Size()-off, 0)
	}
	return &fileReader{SectionReader: io.NewSectionReader(f, off, n), f: f}, nil
}

// fileReader reads a section of an open file and closes the file.
type fileReader struct {
	*io.SectionReader
	f *os.File
}

func (r *fileReader) Close() error { return r.f.Close() }

func (s *fileStore) Create(ctx context.Context, key string) (Writer, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	target := s.path(key)
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, fmt.Errorf("storage: create %s: %w", s.keyURI(key), unwrapPath(err))
	}
	f, err := os.CreateTemp(dir, tempPrefix+filepath.Base(target)+"-*")
	if err != nil {
		return nil, fmt.Errorf("storage: create %s: %w", s.keyURI(key), unwrapPath(err))
	}
	return &fileWriter{ctx: ctx, f: f, target: target, name: s.keyURI(key)}, nil
}

// fileWriter writes a hidden temporary file beside its target and renames
// it over the target on Commit.
type fileWriter struct {
	ctx    context.Context // the Create call's; bounds Commit
	f      *os.File        // nil once committed or aborted
	target string
	name   string // the object's URI, for errors
}

func (w *fileWriter) Write(p []byte) (int, error) {
	if w.f == nil {
		return 0, ErrWriterDone
	}
	n, err := w.f.Write(p)
	if err != nil {
		return n, fmt.Errorf("storage: write %s: %w", w.name, unwrapPath(err))
	}
	return n, nil
}

func (w *fileWriter) Commit() error {
	if w.f == nil {
		return ErrWriterDone
	}
	if err := w.ctx.Err(); err != nil {
		w.Abort()
		return fmt.Errorf("storage: commit %s: %w", w.name, err)
	}
	f := w.f
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), w.target)
	}
	if err != nil {
		os.Remove(f.Name())
		w.f = nil
		return fmt.Errorf("storage: commit %s: %w", w.name, unwrapPath(err))
	}
	w.f = nil
	// The rename is durable only once the folder's entry is.
	if err := syncDir(filepath.Dir(w.target)); err != nil {
		return fmt.Errorf("storage: commit %s: sync folder: %w", w.name, unwrapPath(err))
	}
	return nil
}

func (w *fileWriter) Abort() error {
	if w.f == nil {
		return nil
	}
	f := w.f
	w.f = nil
	f.Close()
	if err := os.Remove(f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: abort %s: %w", w.name, unwrapPath(err))
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *fileStore) DeletePrefix(ctx context.Context, prefix string) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if prefix != "" {
		if err := os.RemoveAll(s.path(prefix)); err != nil {
			return fmt.Errorf("storage: delete %s: %w", s.keyURI(prefix), unwrapPath(err))
		}
		return nil
	}
	// everything under the root, but not the root itself, which may be a
	// mount point or a folder the caller made
	entries, err := os.ReadDir(s.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: delete %s: %w", s.URI(), unwrapPath(err))
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.root, e.Name())); err != nil {
			return fmt.Errorf("storage: delete %s: %w", s.keyURI(e.Name()), unwrapPath(err))
		}
	}
	return nil
}

func (s *fileStore) Rename(ctx context.Context, from, to string) error {
	if err := checkKey(from); err != nil {
		return err
	}
	if err := checkKey(to); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dst := s.path(to)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("storage: rename %s: %w", s.keyURI(to), unwrapPath(err))
	}
	if err := os.Rename(s.path(from), dst); err != nil {
		return fmt.Errorf("storage: rename %s to %s: %w", s.keyURI(from), s.keyURI(to), unwrapPath(err))
	}
	return syncDir(filepath.Dir(dst))
}
