// Command weedstore starts a SeaweedFS S3 store on loopback for
// examples/wordcount/bench.sh, puts files in it, and keeps it running
// until it gets SIGTERM or SIGINT, when it stops the store.
//
//	weedstore -dir DIR [-put LOCAL=KEY ...]
//
// It prints, one a line on stdout: the environment an S3 tool needs
// ("env NAME=value"), the store's pid ("pid N"), the bucket's URI
// ("uri s3://BUCKET"), and "ready" once every -put is committed. The
// weed binary is found as package internal/seaweedtest finds it
// (GEARFLOW_WEED, weed on PATH, the CI cache).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gearflow/gearflow/flow/storage"
	"github.com/gearflow/gearflow/internal/seaweedtest"
)

type puts []string

func (p *puts) String() string     { return strings.Join(*p, ",") }
func (p *puts) Set(v string) error { *p = append(*p, v); return nil }

func main() {
	dir := flag.String("dir", "", "folder for the store's data (required, must exist)")
	var put puts
	flag.Var(&put, "put", "LOCAL=KEY: copy the file LOCAL to KEY in the bucket (repeatable)")
	flag.Parse()
	if *dir == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*dir, put); err != nil {
		fmt.Fprintln(os.Stderr, "weedstore:", err)
		os.Exit(1)
	}
}

func run(dir string, put []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	bin, err := seaweedtest.Find()
	if err != nil {
		return err
	}
	s, err := seaweedtest.Launch(bin, dir)
	if err != nil {
		return err
	}
	defer s.Stop()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		if err := os.Setenv(k, v); err != nil {
			return err
		}
		fmt.Printf("env %s\n", kv)
	}
	fmt.Printf("pid %d\nuri %s\n", s.Pid(), s.URI(""))
	for _, p := range put {
		local, key, ok := strings.Cut(p, "=")
		if !ok || local == "" || key == "" {
			return fmt.Errorf("-put %q: want LOCAL=KEY", p)
		}
		if err := upload(ctx, s.URI(""), local, key); err != nil {
			return fmt.Errorf("-put %s: %w", p, err)
		}
	}
	fmt.Println("ready")
	<-ctx.Done()
	return nil
}

// upload copies the file local to key through flow's own storage code,
// the code the workers read it back with.
func upload(ctx context.Context, uri, local, key string) error {
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := storage.Open(ctx, uri)
	if err != nil {
		return err
	}
	w, err := st.Create(ctx, key)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, f); err != nil {
		w.Abort()
		return err
	}
	return w.Commit()
}
