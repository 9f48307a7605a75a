package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	"github.com/gearflow/gearflow/flow/storage"
)

// put writes data at key and commits it.
func put(t testing.TB, st storage.Store, key, data string) {
	t.Helper()
	w, err := st.Create(context.Background(), key)
	if err != nil {
		t.Fatalf("Create(%q): %v", key, err)
	}
	if _, err := io.WriteString(w, data); err != nil {
		t.Fatalf("Write(%q): %v", key, err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit(%q): %v", key, err)
	}
}

// get reads all of key.
func get(t testing.TB, st storage.Store, key string, off, n int64) (string, error) {
	t.Helper()
	r, err := st.Open(context.Background(), key, off, n)
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return string(b), err
}

func keys(t testing.TB, st storage.Store, pattern string) []string {
	t.Helper()
	infos, err := st.List(context.Background(), pattern)
	if err != nil {
		t.Fatalf("List(%q): %v", pattern, err)
	}
	out := []string{}
	for _, in := range infos {
		out = append(out, in.Key)
	}
	return out
}

func TestList(t *testing.T) {
	forEachStore(t, func(t *testing.T, st storage.Store) {
		files := map[string]string{
			"a.txt":         "a",
			"b.txt":         "bb",
			"a.b":           "ab",
			"dir/c.txt":     "ccc",
			"dir/sub/d.txt": "dddd",
			"dir/.hidden":   "h",
			"dir/.git/conf": "g",
			".top":          "t",
			"x/y/z/e.log":   "e",
			"dir2/f.txt":    "f",
			"logs/2024/a":   "1",
			"logs/2025/b":   "2",
		}
		for k, v := range files {
			put(t, st, k, v)
		}
		tests := []struct {
			pattern string
			want    []string
		}{
			{"*", []string{"a.b", "a.txt", "b.txt"}},
			{"*.txt", []string{"a.txt", "b.txt"}},
			{"?.txt", []string{"a.txt", "b.txt"}},
			{"[a].*", []string{"a.b", "a.txt"}},
			{"[^a]*", []string{"b.txt"}},
			{"dir/*", []string{"dir/c.txt"}},
			{"dir/.*", []string{"dir/.hidden"}},
			{"dir/**", []string{"dir/c.txt", "dir/sub/d.txt"}},
			{"**/*.txt", []string{"a.txt", "b.txt", "dir/c.txt", "dir/sub/d.txt", "dir2/f.txt"}},
			{"**/.git/*", []string{"dir/.git/conf"}},
			{"**", []string{"a.b", "a.txt", "b.txt", "dir/c.txt", "dir/sub/d.txt", "dir2/f.txt", "logs/2024/a", "logs/2025/b", "x/y/z/e.log"}},
			{".*", []string{".top"}},
			{"{a,b}.txt", []string{"a.txt", "b.txt"}},
			{"{dir/sub,dir2}/*", []string{"dir/sub/d.txt", "dir2/f.txt"}},
			{"logs/{2024/a,2025/*}", []string{"logs/2024/a", "logs/2025/b"}},
			{"x/**/e.log", []string{"x/y/z/e.log"}},
			{"dir", []string{}},     // a folder is not an object
			{"dir/sub", []string{}}, // nor is a deeper one
			{"nothere/*", []string{}},
			{"a.txt/*", []string{}}, // under an object
			{"dir/c.txt", []string{"dir/c.txt"}},
		}
		for _, tt := range tests {
			if got := keys(t, st, tt.pattern); !slices.Equal(got, tt.want) {
				t.Errorf("List(%q) = %q, want %q", tt.pattern, got, tt.want)
			}
		}
		infos, err := st.List(context.Background(), "dir/**")
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range infos {
			if in.Size != int64(len(files[in.Key])) || in.ModTime.IsZero() {
				t.Errorf("List gave %+v, want size %d and a time", in, len(files[in.Key]))
			}
		}
		for _, bad := range []string{"", "a[", "{a,b", "a}", "/abs", "a//b", "../x", "x/", `a\`} {
			if _, err := st.List(context.Background(), bad); !errors.Is(err, storage.ErrBadPattern) {
				t.Errorf("List(%q) error = %v, want ErrBadPattern", bad, err)
			}
		}
	})
}

func TestStat(t *testing.T) {
	forEachStore(t, func(t *testing.T, st storage.Store) {
		put(t, st, "s/one", "12345")
		put(t, st, "s/empty", "")
		in, err := st.Stat(context.Background(), "s/one")
		if err != nil || in.Key != "s/one" || in.Size != 5 || in.ModTime.IsZero() {
			t.Errorf("Stat(s/one) = %+v, %v; want size 5", in, err)
		}
		if in, err := st.Stat(context.Background(), "s/empty"); err != nil || in.Size != 0 {
			t.Errorf("Stat(s/empty) = %+v, %v; want size 0", in, err)
		}
		for _, missing := range []string{"s/two", "s", "s/one/x", "none/x"} {
			if _, err := st.Stat(context.Background(), missing); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stat(%q) error = %v, want fs.ErrNotExist", missing, err)
			}
		}
		for _, bad := range []string{"", ".", "/s/one", "s//one", "s/../s/one", "s/one/"} {
			if _, err := st.Stat(context.Background(), bad); !errors.Is(err, storage.ErrBadKey) {
				t.Errorf("Stat(%q) error = %v, want ErrBadKey", bad, err)
			}
			if _, err := st.Create(context.Background(), bad); !errors.Is(err, storage.ErrBadKey) {
				t.Errorf("Create(%q) error = %v, want ErrBadKey", bad, err)
			}
		}
	})
}

func TestOpenRange(t *testing.T) {
	forEachStore(t, func(t *testing.T, st storage.Store) {
		put(t, st, "r", "0123456789")
		put(t, st, "empty", "")
		tests := []struct {
			key    string
			off, n int64
			want   string
		}{
			{"r", 0, -1, "0123456789"},
			{"r", 3, 4, "3456"},
			{"r", 0, 1, "0"},
			{"r", 9, -1, "9"},
			{"r", 8, 10, "89"}, // runs past the end
			{"r", 10, 5, ""},   // starts at the end
			{"r", 20, -1, ""},  // starts past it
			{"r", 4, 0, ""},
			{"empty", 0, -1, ""},
			{"empty", 0, 10, ""},
			{"empty", 5, 1, ""},
		}
		for _, tt := range tests {
			got, err := get(t, st, tt.key, tt.off, tt.n)
			if err != nil || got != tt.want {
				t.Errorf("Open(%q, %d, %d) read %q, %v; want %q", tt.key, tt.off, tt.n, got, err, tt.want)
			}
		}
		if _, err := get(t, st, "nothere", 0, -1); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(nothere) error = %v, want fs.ErrNotExist", err)
		}
		if _, err := get(t, st, "r", -1, 2); err == nil {
			t.Errorf("Open(r, -1, 2) gave no error")
		}
	})
}

func TestCreateVisibleOnCommit(t *testing.T) {
	forEachStore(t, func(t *testing.T, st storage.Store) {
		ctx := context.Background()
		put(t, st, "w/old", "old")
		w, err := st.Create(ctx, "w/new")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort()
		if _, err := io.WriteString(w, "new data"); err != nil {
			t.Fatal(err)
		}
		w2, err := st.Create(ctx, "w/old")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w2, "replaced"); err != nil {
			t.Fatal(err)
		}
		for _, pattern := range []string{"w/*", "w/**", "**", "w/.*", "**/.*"} {
			got := keys(t, st, pattern)
			if slices.Contains(got, "w/new") || slices.ContainsFunc(got, func(k string) bool { return strings.Contains(k, "new") }) || len(got) > 1 {
				t.Errorf("before Commit, List(%q) = %q, want only w/old", pattern, got)
			}
		}
		if _, err := st.Stat(ctx, "w/new"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("before Commit, Stat(w/new) error = %v, want fs.ErrNotExist", err)
		}
		if got, err := get(t, st, "w/old", 0, -1); got != "old" || err != nil {
			t.Errorf("before Commit, w/old reads %q, %v; want old", got, err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := w2.Commit(); err != nil {
			t.Fatal(err)
		}
		if got := keys(t, st, "w/*"); !slices.Equal(got, []string{"w/new", "w/old"}) {
			t.Errorf("after Commit, List(w/*) = %q", got)
		}
		if got, err := get(t, st, "w/new", 0, -1); got != "new data" || err != nil {
			t.Errorf("after Commit, w/new reads %q, %v", got, err)
		}
		if got, err := get(t, st, "w/old", 0, -1); got != "replaced" || err != nil {
			t.Errorf("after Commit, w/old reads %q, %v; want replaced", got, err)
		}
		if err := w.Abort(); err != nil {
			t.Errorf("Abort after Commit = %v, want nil", err)
		}
		if err := w.Commit(); !errors.Is(err, storage.ErrWriterDone) {
			t.Errorf("second Commit = %v, want ErrWriterDone", err)
		}
		if _, err := w.Write([]byte("x")); !errors.Is(err, storage.ErrWriterDone) {
			t.Errorf("Write after Commit = %v, want ErrWriterDone", err)
		}
	})
}

func TestAbortLeavesNothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, st storage.Store) {
		ctx := context.Background()
		put(t, st, "keep", "k")
		for _, size := range []int{0, 10, 6 << 20} {
			w, err := st.Create(ctx, "ab/obj")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(bytes.Repeat([]byte("x"), size)); err != nil {
				t.Fatal(err)
			}
			if err := w.Abort(); err != nil {
				t.Fatalf("Abort: %v", err)
			}
			if err := w.Abort(); err != nil {
				t.Errorf("second Abort: %v", err)
			}
			if err := w.Commit(); !errors.Is(err, storage.ErrWriterDone) {
				t.Errorf("Commit after Abort = %v, want ErrWriterDone", err)
			}
			if _, err := st.Stat(ctx, "ab/obj"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("after Abort of %d bytes, Stat error = %v, want fs.ErrNotExist", size, err)
			}
			if got := keys(t, st, "**"); !slices.Equal(got, []string{"keep"}) {
				t.Errorf("after Abort of %d bytes, List(**) = %q", size, got)
			}
		}
		checkNoLeftovers(t, st)
	})
}

func TestDeletePrefix(t *testing.T) {
	forEachStore(t, func(t *testing.T, st storage.Store) {
		ctx := context.Background()
		for _, k := range []string{"r/attempt-1/p0", "r/attempt-1/sub/p1", "r/attempt-10/p0", "r/attempt-1x", "r/attempt-1.b", "other"} {
			put(t, st, k, k)
		}
		if err := st.DeletePrefix(ctx, "r/attempt-1"); err != nil {
			t.Fatal(err)
		}
		if got, want := keys(t, st, "**"), []string{"other", "r/attempt-1.b", "r/attempt-10/p0", "r/attempt-1x"}; !slices.Equal(got, want) {
			t.Errorf("after DeletePrefix(r/attempt-1), keys = %q, want %q", got, want)
		}
		if err := st.DeletePrefix(ctx, "r/attempt-1x"); err != nil { // one object
			t.Fatal(err)
		}
		if err := st.DeletePrefix(ctx, "nothing/here"); err != nil {
			t.Errorf("DeletePrefix(missing) = %v, want nil", err)
		}
		if got, want := keys(t, st, "**"), []string{"other", "r/attempt-1.b", "r/attempt-10/p0"}; !slices.Equal(got, want) {
			t.Errorf("keys = %q, want %q", got, want)
		}
		if err := st.DeletePrefix(ctx, "../x"); !errors.Is(err, storage.ErrBadKey) {
			t.Errorf("DeletePrefix(../x) = %v, want ErrBadKey", err)
		}
		if err := st.DeletePrefix(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if got := keys(t, st, "**"); len(got) != 0 {
			t.Errorf("after DeletePrefix(\"\"), keys = %q", got)
		}
		put(t, st, "again", "x") // the store still works
		if got := keys(t, st, "*"); !slices.Equal(got, []string{"again"}) {
			t.Errorf("after a new write, keys = %q", got)
		}
	})
}

func TestRename(t *testing.T) {
	forEachStore(t, func(t *testing.T, st storage.Store) {
		ctx := context.Background()
		put(t, st, "tmp/a/part", "data")
		put(t, st, "out/part-00000", "old")
		if err := st.Rename(ctx, "tmp/a/part", "out/part-00000"); err != nil {
			t.Fatal(err)
		}
		if err := st.Rename(ctx, "tmp/a/part", "out/x"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Rename of a missing object = %v, want fs.ErrNotExist", err)
		}
		put(t, st, "one", "1")
		if err := st.Rename(ctx, "one", "new/deep/folder/one"); err != nil {
			t.Fatal(err)
		}
		if got, want := keys(t, st, "**"), []string{"new/deep/folder/one", "out/part-00000"}; !slices.Equal(got, want) {
			t.Errorf("keys = %q, want %q", got, want)
		}
		rc, err := st.Open(ctx, "out/part-00000", 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		if string(data) != "data" {
			t.Errorf("renamed object holds %q, want %q", data, "data")
		}
		if err := st.Rename(ctx, "../x", "y"); !errors.Is(err, storage.ErrBadKey) {
			t.Errorf("Rename(../x) = %v, want ErrBadKey", err)
		}
	})
}

// TestBigWriteStreams writes an object much larger than the memory the
// writer may hold and checks the heap stays well below its size, so
// writers stream instead of buffering whole objects. Not parallel: it
// measures the process's heap.
func TestBigWriteStreams(t *testing.T) {
	const size = 64 << 20
	forEachStore(t, func(t *testing.T, st storage.Store) {
		ctx := context.Background()
		chunk := make([]byte, 256<<10)
		for i := range chunk {
			chunk[i] = byte('a' + i%26)
		}
		goruntime.GC()
		var ms goruntime.MemStats
		goruntime.ReadMemStats(&ms)
		base := ms.HeapInuse
		var peak uint64
		w, err := st.Create(ctx, "big/obj")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort()
		for written := 0; written < size; written += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				t.Fatal(err)
			}
			if written%(4<<20) == 0 {
				goruntime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		goruntime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		grew := int64(peak) - int64(base)
		t.Logf("heap in use grew by %.1f MiB writing %d MiB", float64(grew)/(1<<20), size>>20)
		if grew > size/2 {
			t.Errorf("heap in use grew by %d bytes writing %d: the writer buffers", grew, size)
		}
		in, err := st.Stat(ctx, "big/obj")
		if err != nil || in.Size != size {
			t.Fatalf("Stat = %+v, %v; want %d bytes", in, err, size)
		}
		got, err := get(t, st, "big/obj", size-100, -1)
		if err != nil || got != string(chunk[len(chunk)-100:]) {
			t.Errorf("the last 100 bytes read %q, %v", got, err)
		}
	})
}

func TestContextCancelled(t *testing.T) {
	forEachStore(t, func(t *testing.T, st storage.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		w, err := st.Create(ctx, "c/obj")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "data")
		cancel()
		if err := w.Commit(); err == nil {
			t.Fatal("Commit with a cancelled context succeeded")
		}
		if _, err := st.Stat(context.Background(), "c/obj"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after a cancelled Commit, Stat error = %v, want fs.ErrNotExist", err)
		}
		if _, err := st.List(ctx, "**"); err == nil {
			t.Errorf("List with a cancelled context succeeded")
		}
	})
}

func ExampleSplit() {
	for _, uri := range []string{"s3://bucket/in/*.txt", "data/x.txt", "file:///logs/**/*.gz", "s3://bucket/{a,b}/x"} {
		root, pattern := storage.Split(uri)
		fmt.Printf("%s -> %s + %s\n", uri, root, pattern)
	}
	// Output:
	// s3://bucket/in/*.txt -> s3://bucket/in + *.txt
	// data/x.txt -> data + x.txt
	// file:///logs/**/*.gz -> file:///logs + **/*.gz
	// s3://bucket/{a,b}/x -> s3://bucket + {a,b}/x
}

func TestOpenHugeRange(t *testing.T) {
	forEachStore(t, func(t *testing.T, st storage.Store) {
		put(t, st, "h", "0123456789")
		if got, err := get(t, st, "h", 4, math.MaxInt64); got != "456789" || err != nil {
			t.Errorf("Open(h, 4, MaxInt64) read %q, %v; want 456789", got, err)
		}
	})
}
