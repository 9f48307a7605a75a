//go:build race

package server

// raceEnabled reports a -race build, whose sync.Pool drops a quarter of
// Puts on purpose (and whose extra allocations bring more collections).
const raceEnabled = true
