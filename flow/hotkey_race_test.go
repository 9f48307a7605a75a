//go:build race

package flow_test

// hotKeyRSSLimit is the most MiB a worker may hold at its peak while it
// maps and reduces TestHotKeyReducesInBoundedMemory's 300 MB key; the
// race detector's shadow memory and bookkeeping come on top of the
// program's own (132 MiB measured on a 2-core machine).
const hotKeyRSSLimit = 320
