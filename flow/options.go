package flow

import (
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"time"

	"github.com/gearflow/gearflow/server"
)

// A run's options and their defaults.

// Options configures a run. The zero value runs with an embedded job
// server and GOMAXPROCS local workers, keeping state under
// ./.gearflow/runs.
type Options struct {
	// Servers are the job servers ("host:port") to submit tasks to.
	// Empty starts an embedded server for the run, reachable from
	// this process only.
	Servers []string
	// TLS, with Servers, makes the connections to them TLS with this
	// configuration (see runtime.ClientConfig.TLS). Nil means plaintext.
	// An embedded server needs none: nothing outside the process can
	// reach it.
	TLS *tls.Config
	// Workers is how many tasks the in-process worker runs at once. Zero
	// means GOMAXPROCS with an embedded server and none with Servers
	// (remote workers serve the functions); negative means none.
	Workers int
	// StateDir holds run directories (<StateDir>/<run id>/). Zero means
	// DefaultStateDir(), and a resumed run missing there is also looked
	// for under LegacyStateDir.
	StateDir string
	// RunID, with Resume, names the run to resume. Without Resume it
	// names the new run; zero means a new random UUID.
	RunID  string
	Resume bool
	// KeepData keeps a finished run's intermediate data: its stages'
	// task outputs, in its storage or its run directory. By default they
	// are removed once the output is written; the run's plan, journal
	// and result stay, for "gearflow runs show". A failed or interrupted
	// run keeps them always, for --resume.
	KeepData bool
	// PipelineFile and Params (-p overrides) are recorded in the run's
	// plan, so a resumed run can be told only its id.
	PipelineFile string
	Params       map[string]string
	// Storage is the URI of the run's intermediate data: file:///path (a
	// local folder, or a shared one mounted on every worker) or
	// s3://bucket/prefix. Map tasks then read their input splits and
	// write their partitions there, and reduce tasks merge them from
	// there: the job server carries only references. Empty takes the
	// pipeline's storage:, else, for an embedded run, a folder of the
	// run's directory; a run with Servers and no storage sends its data
	// through the job servers, as does a run whose Storage is
	// StorageNone. (The tasks of an encoding: raw stage carry their data
	// in any case, read and written by the coordinator.)
	Storage string
	// MemoryBudget bounds the bytes of records a shuffle holds in memory
	// before it spills sorted runs to disk. Zero means 256 MiB.
	MemoryBudget int64
	// SpeculateAfter is the least time a straggler's attempt runs before
	// it gets a backup attempt (in stages with speculative: true, once all
	// their tasks have started, and past twice the median task time).
	// Zero means 5s.
	SpeculateAfter time.Duration
	// OnEmbeddedServer, if set, is given the run's embedded job server
	// (a run without Servers) once it serves, before any task is
	// submitted, so that a caller can watch it: its HTTPHandler,
	// Collector and Status. The server is shut down before Run returns;
	// reading it afterwards gives its final state. It is called at most
	// once, and must not block.
	OnEmbeddedServer func(*server.Server)
	// OnEvent, if set, receives progress events. It is called from the
	// run's goroutines, one call at a time, and must not block.
	OnEvent func(Event)
	// Logger receives the run's logs. Nil discards them.
	Logger *slog.Logger
}

// StorageNone as Options.Storage sends a run's data through the job
// server even where storage could carry it.
const StorageNone = "none"

// LegacyStateDir is where run directories went, relative to the working
// folder, before DefaultStateDir: a run id missing from the default state
// directory is still found there.
const LegacyStateDir = ".gearflow/runs"

// DefaultStateDir is where run directories go when Options.StateDir is
// empty, whatever the working folder: $GEARFLOW_STATE_DIR, else
// $XDG_STATE_HOME/gearflow/runs, else ~/.local/state/gearflow/runs. It
// is absolute (a relative $GEARFLOW_STATE_DIR is made absolute; a
// relative $XDG_STATE_HOME is ignored, as the XDG spec says).
func DefaultStateDir() string {
	if d := os.Getenv("GEARFLOW_STATE_DIR"); d != "" {
		if abs, err := filepath.Abs(d); err == nil {
			return abs
		}
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "gearflow", "runs")
	}
	if home, err := os.UserHomeDir(); err == nil && filepath.IsAbs(home) {
		return filepath.Join(home, ".local", "state", "gearflow", "runs")
	}
	abs, err := filepath.Abs(LegacyStateDir)
	if err != nil {
		return LegacyStateDir
	}
	return abs
}

func (o Options) withDefaults() Options {
	if o.Workers == 0 {
		if len(o.Servers) == 0 {
			o.Workers = goruntime.GOMAXPROCS(0)
		} else {
			o.Workers = -1
		}
	}
	if o.MemoryBudget <= 0 {
		o.MemoryBudget = 256 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// RunDir returns the directory of run id under stateDir. With stateDir
// "" it is under DefaultStateDir(), unless only LegacyStateDir holds a
// run of that id (see LocateRun).
func RunDir(stateDir, id string) string {
	dir, _ := LocateRun(stateDir, id)
	return dir
}

// LocateRun returns the directory of run id under stateDir, and whether
// it is an old one under LegacyStateDir: with stateDir "", a run missing
// from DefaultStateDir() but present (with its plan) under
// ./.gearflow/runs of the working folder is found there.
func LocateRun(stateDir, id string) (dir string, legacy bool) {
	if stateDir != "" {
		return filepath.Join(stateDir, id), false
	}
	dir = filepath.Join(DefaultStateDir(), id)
	if id == "" || fileExists(filepath.Join(dir, "plan.json")) {
		return dir, false
	}
	old := filepath.Join(LegacyStateDir, id)
	if fileExists(filepath.Join(old, "plan.json")) {
		return old, true
	}
	return dir, false
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
