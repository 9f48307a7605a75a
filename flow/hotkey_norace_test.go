//go:build !race

package flow_test

// hotKeyRSSLimit is the most MiB a worker may hold at its peak while it
// maps and reduces TestHotKeyReducesInBoundedMemory's 300 MB key
// (48 MiB measured on a 2-core machine).
const hotKeyRSSLimit = 128
