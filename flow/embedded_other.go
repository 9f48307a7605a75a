//go:build !unix

package flow

import "net"

// connPair returns the two ends of an in-memory connection (net.Pipe),
// where Unix socket pairs are not available: no other process can
// reach it.
func connPair() (net.Conn, net.Conn, error) {
	a, b := net.Pipe()
	return a, b, nil
}
