//go:build !linux

package main

import "errors"

func serveEpoll(string) error { return errors.New("the epoll variant is Linux's only") }
