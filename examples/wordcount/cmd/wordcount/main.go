// Command wordcount is a complete gearflow binary with the wordcount
// functions built in: run, plan, worker and validate.
//
//	go run ./examples/wordcount/cmd/wordcount run examples/wordcount/wordcount.yaml
package main

import (
	"github.com/gearflow/gearflow/examples/wordcount"
	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/flow/cli"
)

func main() {
	reg := flow.NewRegistry()
	wordcount.Register(reg)
	cli.Main(reg)
}
