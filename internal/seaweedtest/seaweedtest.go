// Package seaweedtest starts a real S3-compatible object store, SeaweedFS's
// `weed server`, on loopback ports of its own, for tests of flow's s3
// storage. No mock: requests are signed and the credentials checked.
//
// The weed binary is found through GEARFLOW_WEED, then `weed` on PATH,
// then the cache path .ci/run builds it into ([CachePath]). Without it,
// tests skip with the command that builds it; with
// GEARFLOW_REQUIRE_INTEROP=1 (set by CI) they fail instead.
package seaweedtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

const (
	// Module and Version name the SeaweedFS build the tests use.
	Module  = "github.com/seaweedfs/seaweedfs"
	Version = "v0.0.0-20261109003541-7506e5f91cd6"
)

// CachePath is where .ci/run builds and keeps the weed binary.
func CachePath() string { return "/var/cache/gearflow/seaweedfs-" + Version + "/weed" }

// BuildHint says how to build the binary.
const BuildHint = "build SeaweedFS " + Version + ": `go mod download " + Module + "@" + Version +
	"` in a folder outside any module, then in `$(go env GOMODCACHE)/" + Module + "@" + Version +
	"` run `go build -o /var/cache/gearflow/seaweedfs-" + Version + "/weed ./weed` (about 5 minutes; " +
	".ci/run does this), or point GEARFLOW_WEED at a weed binary"

// ErrNoBinary is returned by Find when no weed binary is found.
var ErrNoBinary = errors.New("seaweedtest: SeaweedFS's weed binary not found")

// Find returns the path of the weed binary.
func Find() (string, error) {
	if p := os.Getenv("GEARFLOW_WEED"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: GEARFLOW_WEED=%s: %v", ErrNoBinary, p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("weed"); err == nil {
		return p, nil
	}
	if _, err := os.Stat(CachePath()); err == nil {
		return CachePath(), nil
	}
	return "", fmt.Errorf("%w; %s", ErrNoBinary, BuildHint)
}

// Missing skips t, or fails it when GEARFLOW_REQUIRE_INTEROP=1, with err.
func Missing(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("GEARFLOW_REQUIRE_INTEROP") == "1" {
		t.Fatal(err)
	}
	t.Skip(err)
}

// Store is a running SeaweedFS with its S3 gateway.
type Store struct {
	Endpoint  string // "http://127.0.0.1:PORT"
	AccessKey string // random for each server
	SecretKey string
	Region    string // "us-east-1"
	Bucket    string // created empty by Start
	Dir       string // the server's data folder
	Log       string // its log file

	grpcPorts []int // of the master, volume server, filer and S3 gateway
	cmd       *exec.Cmd
	done      chan struct{}
}

// Start starts a server in a temporary folder, creates the Bucket and
// stops the server when the test ends. It skips t (fails it in CI)
// without the weed binary.
func Start(t testing.TB) *Store {
	t.Helper()
	bin, err := Find()
	if err != nil {
		Missing(t, err)
	}
	s, err := Launch(bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Launch starts a server storing its data in dir (which must exist)
// and creates its bucket. The caller must Stop it. It is for a server
// shared by a package's tests (started from TestMain); tests use Start.
func Launch(bin, dir string) (*Store, error) {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var s *Store
		if s, err = launchOnce(bin, dir, attempt); err == nil {
			return s, nil
		}
	}
	return nil, err
}

// startTimeout bounds a server's start, generously: weed takes a few
// seconds alone and much longer on a loaded 2-core machine.
const startTimeout = 90 * time.Second

func launchOnce(bin, dir string, attempt int) (*Store, error) {
	ports, err := freePorts(8)
	if err != nil {
		return nil, err
	}
	dir = filepath.Join(dir, "weed-"+strconv.Itoa(attempt))
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	s := &Store{
		Endpoint:  "http://127.0.0.1:" + strconv.Itoa(ports[6]),
		AccessKey: "GF" + randomHex(9),
		SecretKey: randomHex(20),
		Region:    "us-east-1",
		Bucket:    "gearflow-test",
		Dir:       dir,
		Log:       filepath.Join(dir, "weed.log"),
		grpcPorts: []int{ports[1], ports[3], ports[5], ports[7]},
	}
	config := fmt.Sprintf(`{"identities":[{"name":"gearflow","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List","Tagging"]}]}`,
		s.AccessKey, s.SecretKey)
	configPath := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.Create(s.Log)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	p := func(i int) string { return strconv.Itoa(ports[i]) }
	s.cmd = exec.Command(bin, "server",
		"-dir", filepath.Join(dir, "data"),
		"-ip", "127.0.0.1", "-ip.bind", "127.0.0.1",
		"-master.port", p(0), "-master.port.grpc", p(1),
		"-volume.port", p(2), "-volume.port.grpc", p(3),
		"-filer.port", p(4), "-filer.port.grpc", p(5),
		"-s3", "-s3.port", p(6), "-s3.port.grpc", p(7),
		"-s3.config", configPath,
		// the other listeners it would open on fixed ports
		"-s3.port.iceberg", "0", "-s3.port.lance", "0",
		"-s3.localSocket", filepath.Join(dir, "s3.sock"),
		"-filer.localSocket", filepath.Join(dir, "filer.sock"),
		// small volumes, few of them: a test stores megabytes
		"-master.volumeSizeLimitMB", "128", "-volume.max", "16",
		"-volume.minFreeSpace", "1",
	)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.SysProcAttr = dieWithParent()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("seaweedtest: start %s: %w", bin, err)
	}
	s.done = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.done) }()
	if err := s.waitReady(); err != nil {
		s.Stop()
		return nil, fmt.Errorf("seaweedtest: weed server did not become ready: %w; log %s:\n%s", err, s.Log, tail(s.Log))
	}
	return s, nil
}

// waitReady creates the bucket and writes and deletes an object, which
// succeeds once the master, a volume server, the filer and the S3
// gateway are all up, and only with this server's credentials.
func (s *Store) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	client, err := s.Client()
	if err != nil {
		return err
	}
	var last error
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		select {
		case <-s.done:
			return fmt.Errorf("it exited (%v)", s.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("timed out after %v: %v", startTimeout, last)
		case <-time.After(delay):
		}
		last = s.probe(ctx, client)
		if last == nil {
			return nil
		}
	}
}

func (s *Store) probe(ctx context.Context, client *minio.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ok, err := client.BucketExists(ctx, s.Bucket)
	if err != nil {
		return err
	}
	if !ok {
		if err := client.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Region}); err != nil {
			return err
		}
	}
	const probe = ".seaweedtest-probe"
	if _, err := client.PutObject(ctx, s.Bucket, probe, strings.NewReader("ok"), 2, minio.PutObjectOptions{}); err != nil {
		return err
	}
	return client.RemoveObject(ctx, s.Bucket, probe, minio.RemoveObjectOptions{})
}

// Client returns an S3 client for the server, for what a test checks
// beside the code under test.
func (s *Store) Client() (*minio.Client, error) {
	return minio.New(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1,
	})
}

// Env returns the environment an S3 tool needs to reach the server, as
// "NAME=value" entries: for exec.Cmd.Env, or Setenv.
func (s *Store) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + s.Region,
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		"AWS_S3_FORCE_PATH_STYLE=true",
	}
}

// Setenv sets Env in t's process environment until t ends (so t and its
// parents cannot be parallel).
func (s *Store) Setenv(t testing.TB) {
	t.Helper()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// URI returns "s3://BUCKET/prefix" (or "s3://BUCKET" for "").
func (s *Store) URI(prefix string) string {
	if prefix == "" {
		return "s3://" + s.Bucket
	}
	return "s3://" + s.Bucket + "/" + prefix
}

// Stop kills the server (its data is disposable) and waits for it. It
// is safe to call more than once.
func (s *Store) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
	// weed puts its gRPC sockets in /tmp whatever its flags say
	for i, role := range []string{"master", "volume", "filer", "s3"} {
		os.Remove(fmt.Sprintf("/tmp/seaweedfs-%s-grpc-%d.sock", role, s.grpcPorts[i]))
	}
}

// freePorts returns n distinct loopback ports that were free a moment
// ago. Another process may take one meanwhile: Launch then retries.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}

// tail returns the end of a log file for an error message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// Pid is the server's process id (0 once stopped).
func (s *Store) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}
