// Package archtest holds no code, only a test that enforces the direction
// of dependencies drawn in the project's DESIGN.md:
//
//	cmd/gearflow  ->  flow  ->  runtime  ->  protocol
//	                    \-> server  ->  protocol
//	examples/*    ->  flow, runtime, protocol
//
// protocol imports only the standard library; server and runtime never
// import each other or flow; nothing imports cmd; only cmd builds the
// examples in. Test files are not held to the layering, except
// protocol's, which may add only the internal test helpers. The test
// reads the import graph with `go list -deps -json`, so it sees the
// packages as the go command builds them.
package archtest
