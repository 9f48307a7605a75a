// Package examples registers the functions of every bundled example
// pipeline, so the stock gearflow binary can run them and serve them as a
// worker.
package examples

import (
	"github.com/gearflow/gearflow/examples/join"
	"github.com/gearflow/gearflow/examples/logstats"
	"github.com/gearflow/gearflow/examples/shout"
	"github.com/gearflow/gearflow/examples/wordcount"
	"github.com/gearflow/gearflow/flow"
)

// Register adds every example's functions to reg.
func Register(reg *flow.Registry) {
	join.Register(reg)
	logstats.Register(reg)
	shout.Register(reg)
	wordcount.Register(reg)
}
