// Package cli is gearflow's pipeline command line as a library: a
// program that registers its own Go functions gets the run, plan, worker,
// validate and runs subcommands by calling Main with its Registry:
//
//	func main() {
//		reg := flow.NewRegistry()
//		reg.Map("mine.map", myMap)
//		reg.Reduce("mine.sum", mySum)
//		cli.Main(reg)
//	}
//
// Each subcommand is also a function of its own (RunCommand,
// PlanCommand, WorkerCommand, ValidateCommand, RunsCommand) returning an exit code:
// 0 success, 1 failure, 2 usage or pipeline error.
package cli
