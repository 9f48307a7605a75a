package logstore

// The few server types store.go uses, as the server defines them.
type priority uint8

const (
	priHigh priority = iota
	priNormal
	priLow
	numPriorities
)

type schedule struct{ minute, hour, mday, month, wday int }
