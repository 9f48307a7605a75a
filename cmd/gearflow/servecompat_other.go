//go:build !unix

package main

import (
	"errors"
	"fmt"
	"io"
)

var errNotHere = errors.New("not available on this system")

func daemonize(args []string, stderr io.Writer) int {
	fmt.Fprintln(stderr, "gearflow serve: --daemon:", errNotHere)
	return 2
}

func daemonChild() (io.Writer, func(), bool) { return nil, nil, false }

type runAs struct{}

func lookupUser(name string) (*runAs, error) { return nil, fmt.Errorf("--user: %w", errNotHere) }

func (r *runAs) switchTo() error { return nil }

func setFileLimit(n uint64) error { return fmt.Errorf("--file-descriptors: %w", errNotHere) }
