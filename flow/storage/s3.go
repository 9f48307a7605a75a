package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

const (
	// s3PartSize is the part size of multipart uploads: the memory one
	// s3 Writer holds once its object outgrows s3SmallObject, and, times
	// S3's 10,000 parts, the largest object a Writer can write (156 GiB).
	s3PartSize = 16 << 20
	// s3SmallObject is the size up to which a Writer keeps the object in
	// memory and sends it with one PUT on Commit, instead of starting a
	// multipart upload: most shuffle runs and part files are small.
	s3SmallObject = 1 << 20
)

// s3Store is a bucket and prefix on an S3-compatible object store.
type s3Store struct {
	client *minio.Client
	bucket string
	prefix string // "" or a clean key without a trailing '/'
	uri    string
}

// s3Config is what openS3 reads from the environment.
type s3Config struct {
	endpoint  string // host[:port]
	secure    bool
	region    string
	pathStyle bool
	creds     *credentials.Credentials
}

func s3ConfigFromEnv() (s3Config, error) {
	c := s3Config{endpoint: "s3.amazonaws.com", secure: true}
	custom := false
	for _, name := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
		v := os.Getenv(name)
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return c, fmt.Errorf("%w: %s=%q: want http://host[:port] or https://host[:port]", ErrBadURI, name, v)
		}
		c.endpoint, c.secure, custom = u.Host, u.Scheme == "https", true
		break
	}
	c.region = cmpOr(os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION"))
	if c.region == "" && custom {
		c.region = "us-east-1"
	}
	c.pathStyle = custom
	if v := os.Getenv("AWS_S3_FORCE_PATH_STYLE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("%w: AWS_S3_FORCE_PATH_STYLE=%q: want true or false", ErrBadURI, v)
		}
		c.pathStyle = b
	}
	id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	switch {
	case id != "" && secret != "":
		c.creds = credentials.NewStaticV4(id, secret, os.Getenv("AWS_SESSION_TOKEN"))
	case id != "" || secret != "":
		return c, fmt.Errorf("%w: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together", ErrBadURI)
	default:
		c.creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.FileAWSCredentials{},
			&credentials.IAM{Client: &http.Client{Transport: http.DefaultTransport}},
		})
	}
	return c, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func openS3(_ context.Context, uri string) (Store, error) {
	rest := strings.TrimPrefix(uri, "s3://")
	if rest == uri {
		return nil, fmt.Errorf("%w: %q: want s3://bucket/prefix", ErrBadURI, uri)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return nil, fmt.Errorf("%w: %q: bucket %q: %v", ErrBadURI, uri, bucket, err)
	}
	prefix = strings.TrimSuffix(prefix, "/")
	if err := checkPrefix(prefix); err != nil {
		return nil, fmt.Errorf("%w: %q: prefix: %v", ErrBadURI, uri, err)
	}
	cfg, err := s3ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	lookup := minio.BucketLookupAuto
	if cfg.pathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(cfg.endpoint, &minio.Options{
		Creds:        cfg.creds,
		Secure:       cfg.secure,
		Region:       cfg.region,
		BucketLookup: lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrBadURI, uri, err)
	}
	u := "s3://" + bucket
	if prefix != "" {
		u += "/" + prefix
	}
	return &s3Store{client: client, bucket: bucket, prefix: prefix, uri: u}, nil
}

func (s *s3Store) URI() string { return s.uri }

// object is the object name of key.
func (s *s3Store) object(key string) string {
	if s.prefix == "" {
		return key
	}
	if key == "" {
		return s.prefix
	}
	return s.prefix + "/" + key
}

// s3Error adds the operation and object to err, and makes a missing
// object match fs.ErrNotExist.
func (s *s3Store) s3Error(op, key string, err error) error {
	resp := minio.ToErrorResponse(err)
	name := Join(s.uri, key)
	switch {
	case resp.Code == "NoSuchKey" || (resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket"):
		return fmt.Errorf("storage: %s %s: %w", op, name, fs.ErrNotExist)
	case resp.Code == "NoSuchBucket":
		return fmt.Errorf("storage: %s %s: bucket %q does not exist: %w", op, name, s.bucket, err)
	}
	return fmt.Errorf("storage: %s %s: %w", op, name, err)
}

func (s *s3Store) Stat(ctx context.Context, key string) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, s.object(key), minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.s3Error("stat", key, err)
	}
	if strings.HasSuffix(oi.Key, "/") {
		return Info{}, fmt.Errorf("storage: stat %s: a folder, not an object: %w", Join(s.uri, key), fs.ErrNotExist)
	}
	return Info{Key: key, Size: oi.Size, ModTime: oi.LastModified}, nil
}

func (s *s3Store) List(ctx context.Context, pattern string) ([]Info, error) {
	g, err := compileGlob(pattern)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the listing goroutine when we return early
	root := ""
	if s.prefix != "" {
		root = s.prefix + "/"
	}
	var out []Info
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{
		Prefix:    root + literalPrefix(pattern),
		Recursive: true,
	}) {
		if oi.Err != nil {
			return nil, s.s3Error("list", pattern, oi.Err)
		}
		key, ok := strings.CutPrefix(oi.Key, root)
		if !ok || checkKey(key) != nil {
			continue // a folder marker ("a/") or a name no key can have
		}
		if g.match(key) {
			out = append(out, Info{Key: key, Size: oi.Size, ModTime: oi.LastModified})
		}
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (s *s3Store) Open(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := checkRange(key, off); err != nil {
		return nil, err
	}
	if n == 0 {
		if _, err := s.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	var opts minio.GetObjectOptions
	switch {
	case n > 0 && off <= math.MaxInt64-n:
		opts.SetRange(off, off+n-1)
	case off > 0: // to the end, also when off+n would overflow
		opts.SetRange(off, 0)
	}
	// Core's GetObject sends the request now, so a missing object is
	// reported here rather than by the first Read.
	body, _, _, err := minio.Core{Client: s.client}.GetObject(ctx, s.bucket, s.object(key), opts)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "InvalidRange" {
			// the range starts at or past the end: it holds nothing
			return io.NopCloser(bytes.NewReader(nil)), nil
		}
		return nil, s.s3Error("open", key, err)
	}
	return body, nil
}

func (s *s3Store) Create(ctx context.Context, key string) (Writer, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &s3Writer{ctx: ctx, s: s, key: key}, nil
}

// errAborted ends the upload of an aborted writer.
var errAborted = errors.New("storage: write aborted")

// s3Writer keeps a small object in memory and sends it with one PUT on
// Commit; past s3SmallObject it streams the object through a pipe into a
// multipart upload, which S3 makes visible only when Commit completes it.
type s3Writer struct {
	ctx context.Context // the Create call's; bounds the upload
	s   *s3Store
	key string

	buf      bytes.Buffer // the object while it is small
	pw       *io.PipeWriter
	done     chan struct{} // closed when the upload returns
	err      error         // the upload's result; read after done
	finished bool
}

func (w *s3Writer) Write(p []byte) (int, error) {
	if w.finished {
		return 0, ErrWriterDone
	}
	if w.pw == nil {
		if w.buf.Len()+len(p) <= s3SmallObject {
			return w.buf.Write(p)
		}
		w.startUpload()
	}
	n, err := w.pw.Write(p)
	if err != nil {
		return n, w.s.s3Error("write", w.key, err)
	}
	return n, nil
}

// startUpload starts the multipart upload, fed first from the buffer,
// then from the pipe.
func (w *s3Writer) startUpload() {
	pr, pw := io.Pipe()
	w.pw = pw
	w.done = make(chan struct{})
	head := bytes.NewReader(w.buf.Bytes())
	go func() {
		defer close(w.done)
		_, err := w.s.client.PutObject(w.ctx, w.s.bucket, w.s.object(w.key), io.MultiReader(head, pr), -1,
			minio.PutObjectOptions{PartSize: s3PartSize, ContentType: "application/octet-stream"})
		w.err = err
		if err == nil {
			err = errors.New("upload ended early")
		}
		pr.CloseWithError(err) // Writes now fail instead of blocking
	}()
}

func (w *s3Writer) Commit() error {
	if w.finished {
		return ErrWriterDone
	}
	w.finished = true
	var err error
	if w.pw == nil {
		if err = w.ctx.Err(); err == nil {
			_, err = w.s.client.PutObject(w.ctx, w.s.bucket, w.s.object(w.key), bytes.NewReader(w.buf.Bytes()), int64(w.buf.Len()),
				minio.PutObjectOptions{ContentType: "application/octet-stream"})
		}
	} else {
		w.pw.Close()
		<-w.done
		err = w.err
	}
	w.buf = bytes.Buffer{}
	if err != nil {
		return w.s.s3Error("commit", w.key, err)
	}
	return nil
}

func (w *s3Writer) Abort() error {
	if w.finished {
		return nil
	}
	w.finished = true
	w.buf = bytes.Buffer{}
	if w.pw != nil {
		// The upload sees the error on its next read and aborts the
		// multipart upload, so the store keeps none of its parts.
		w.pw.CloseWithError(errAborted)
		<-w.done
	}
	return nil
}

func (s *s3Store) DeletePrefix(ctx context.Context, prefix string) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	under := s.object(prefix)
	if under != "" {
		under += "/"
	}
	objects := make(chan minio.ObjectInfo)
	var listErr error // set by the lister; read after listed is closed
	listed := make(chan struct{})
	go func() {
		defer close(listed)
		defer close(objects)
		if prefix != "" {
			select {
			case objects <- minio.ObjectInfo{Key: s.object(prefix)}:
			case <-ctx.Done():
				return
			}
		}
		for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: under, Recursive: true}) {
			if oi.Err != nil {
				listErr = oi.Err
				return
			}
			select {
			case objects <- oi:
			case <-ctx.Done():
				return
			}
		}
	}()
	var first error
	for e := range s.client.RemoveObjects(ctx, s.bucket, objects, minio.RemoveObjectsOptions{}) {
		if first == nil && e.Err != nil && minio.ToErrorResponse(e.Err).Code != "NoSuchKey" {
			first = fmt.Errorf("%s: %w", e.ObjectName, e.Err)
		}
	}
	cancel()
	<-listed
	if first == nil {
		first = listErr
	}
	if first != nil {
		return s.s3Error("delete", prefix, first)
	}
	return parent.Err() // a cancelled listing may have ended early
}

func (s *s3Store) Rename(ctx context.Context, from, to string) error {
	if err := checkKey(from); err != nil {
		return err
	}
	if err := checkKey(to); err != nil {
		return err
	}
	// ComposeObject copies on the server, in parts when the object is
	// past CopyObject's 5 GiB.
	src := minio.CopySrcOptions{Bucket: s.bucket, Object: s.object(from)}
	dst := minio.CopyDestOptions{Bucket: s.bucket, Object: s.object(to)}
	if _, err := s.client.ComposeObject(ctx, dst, src); err != nil {
		return s.s3Error("rename", from, err)
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.object(from), minio.RemoveObjectOptions{}); err != nil {
		return s.s3Error("rename", from, err)
	}
	return nil
}
