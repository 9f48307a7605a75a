package server

import (
	"net"
	"testing"
)

// TestLocalPeer checks which plaintext peers AdminAllow lets change
// state: loopback and Unix socket peers only (the tests' sockets are
// all on loopback, so the others are checked here).
func TestLocalPeer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		addr net.Addr
		want bool
	}{
		{"IPv4 loopback", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, true},
		{"IPv4 loopback range", &net.TCPAddr{IP: net.IPv4(127, 1, 2, 3), Port: 1}, true},
		{"IPv6 loopback", &net.TCPAddr{IP: net.IPv6loopback, Port: 1}, true},
		{"private address", &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 1}, false},
		{"IPv4-mapped public", &net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 1}, false},
		{"unspecified", &net.TCPAddr{IP: net.IPv4zero, Port: 1}, false},
		{"unix socket", &net.UnixAddr{Name: "", Net: "unix"}, true},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if got := localPeer(tt.addr); got != tt.want {
			t.Errorf("%s: localPeer(%v) = %v, want %v", tt.name, tt.addr, got, tt.want)
		}
	}
}
