package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gearflow/gearflow/flow"
	"github.com/gearflow/gearflow/internal/cliflag"
)

const runsUsage = `usage: runs [list] [--state-dir DIR] [--json]
       runs show RUN_ID [--state-dir DIR] [--json]
       runs rm RUN_ID... [--state-dir DIR] [--keep-data]
       runs gc --older-than DURATION [--keep N] [--dry-run] [--state-dir DIR]
       runs gc --keep-days N [--keep-last N] ...

Run "runs SUBCOMMAND -h" for a subcommand's flags.`

// RunsCommand lists, shows and removes the runs of a state directory:
//
//	runs [list]                  id, pipeline, created, state, size; newest first
//	runs show RUN_ID             plan, stages, tasks done, failures, storage, output
//	runs rm RUN_ID...            remove runs (and their data in an outside storage)
//	runs gc --older-than 7d      remove finished runs that ended that long ago
//
// A run that is in progress (its coordinator holds the directory's lock)
// is never removed.
func RunsCommand(ctx context.Context, reg *flow.Registry, args []string, stdout, stderr io.Writer) int {
	sub := "list"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stderr, runsUsage)
		return cliflag.ExitOK
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "list", "ls":
		return runsList(args, stdout, stderr)
	case "show":
		return runsShow(args, stdout, stderr)
	case "rm", "remove":
		return runsRemove(ctx, args, stdout, stderr)
	case "gc":
		return runsGC(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprintln(stdout, runsUsage)
		return cliflag.ExitOK
	}
	fmt.Fprintf(stderr, "%s runs: unknown subcommand %q\n%s\n", progName(), sub, runsUsage)
	return cliflag.ExitUsage
}

func runsFlags(name, usage string, stderr io.Writer) (*cliflag.Set, *string) {
	fs := newFlags("runs "+name, usage, "", stderr)
	dir := fs.String("state-dir", "", "directory of run directories (default "+flow.DefaultStateDir()+")")
	return fs, dir
}

func runsList(args []string, stdout, stderr io.Writer) int {
	fs, dir := runsFlags("list", "[--state-dir DIR] [--json]", stderr)
	asJSON := fs.Bool("json", false, "print the runs as JSON, one object a line")
	pos, code, ok := fs.Parse(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return fs.Fail("unexpected argument %q", pos[0])
	}
	runs, err := flow.ListRuns(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "runs: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range runs {
			enc.Encode(runJSON(r, false))
		}
		return 0
	}
	if len(runs) == 0 {
		where := *dir
		if where == "" {
			where = flow.DefaultStateDir()
		}
		fmt.Fprintf(stderr, "no runs in %s\n", where)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tPIPELINE\tCREATED\tSTATE\tTOOK\tSIZE")
	var legacy int
	var total int64
	for _, r := range runs {
		id := r.Run
		if r.Legacy {
			id += " *"
			legacy++
		}
		took := "-"
		if r.Elapsed > 0 {
			took = r.Elapsed.Round(time.Millisecond).String()
		}
		total += r.Size
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", id, r.Pipeline, r.Created.Local().Format("2006-01-02 15:04:05"),
			r.State, took, humanBytes(r.Size))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d runs, %s\n", len(runs), humanBytes(total))
	if legacy > 0 {
		fmt.Fprintf(stdout, "* in the old state folder %s of this folder\n", flow.LegacyStateDir)
	}
	return 0
}

func runsShow(args []string, stdout, stderr io.Writer) int {
	fs, dir := runsFlags("show", "RUN_ID [--state-dir DIR] [--json]", stderr)
	asJSON := fs.Bool("json", false, "print the run as JSON")
	pos, code, ok := fs.Parse(args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return fs.Fail("want one run id, got %d", len(pos))
	}
	r, err := flow.StatRun(*dir, pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "runs show: %v\n", err)
		return 1
	}
	if *asJSON {
		json.NewEncoder(stdout).Encode(runJSON(r, true))
		return 0
	}
	fmt.Fprintf(stdout, "run       %s\n", r.Run)
	fmt.Fprintf(stdout, "pipeline  %s", r.Pipeline)
	if r.File != "" {
		fmt.Fprintf(stdout, " (%s)", r.File)
	}
	fmt.Fprintln(stdout)
	if len(r.Params) > 0 {
		fmt.Fprintf(stdout, "params    %s\n", cliflag.Params(r.Params).String())
	}
	fmt.Fprintf(stdout, "state     %s\n", r.State)
	fmt.Fprintf(stdout, "created   %s\n", r.Created.Local().Format(time.RFC3339))
	if !r.Ended.IsZero() {
		fmt.Fprintf(stdout, "ended     %s", r.Ended.Local().Format(time.RFC3339))
		if r.Elapsed > 0 {
			fmt.Fprintf(stdout, " (took %s)", r.Elapsed.Round(time.Millisecond))
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "directory %s (%s)\n", r.Dir, humanBytes(r.Size))
	storage := r.Storage
	switch {
	case storage == "":
		storage = "none (data through the job servers)"
	case r.OwnStorage:
		storage += " (the run's own folder)"
	}
	fmt.Fprintf(stdout, "storage   %s\n", storage)
	if r.Output != "" {
		fmt.Fprintf(stdout, "output    %s (%d records)\n", r.Output, r.Records)
	}
	if r.Err != "" {
		fmt.Fprintf(stdout, "error     %s\n", firstLine(r.Err))
	}
	fmt.Fprintln(stdout, "\nstages:")
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  STAGE\tDONE\tTASKS\tFAILED\tIN\tOUT")
	for _, s := range r.Stages {
		tasks := "?"
		if s.Tasks >= 0 {
			tasks = strconv.Itoa(s.Tasks)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%d\t%d\t%d\n", s.Name, s.Done, tasks, s.Failed, s.RecordsIn, s.RecordsOut)
	}
	tw.Flush()
	printCounters(stdout, r.Stages)
	if len(r.Failed) > 0 {
		fmt.Fprintf(stdout, "\nfailed tasks (%d):\n", len(r.Failed))
		for _, f := range r.Failed {
			fmt.Fprintf(stdout, "  %s\n", f)
		}
	}
	if r.State == flow.RunFailed || r.State == flow.RunIncomplete {
		fmt.Fprintf(stdout, "\nresume with: run --resume %s%s\n", r.Run, stateDirHint(*dir))
	}
	return 0
}

func stateDirHint(dir string) string {
	if dir != "" {
		return " --state-dir " + dir
	}
	return ""
}

func runsRemove(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, dir := runsFlags("rm", "RUN_ID... [--state-dir DIR] [--keep-data]", stderr)
	keepData := fs.Bool("keep-data", false, "leave the run's data in an outside storage (s3:// or a shared folder)")
	pos, code, ok := fs.Parse(args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return fs.Fail("want the ids of the runs to remove")
	}
	code = cliflag.ExitOK
	for _, id := range pos {
		if err := removeRun(ctx, *dir, id, *keepData, stdout); err != nil {
			fmt.Fprintf(stderr, "runs rm %s: %v\n", id, err)
			code = cliflag.ExitFailure
		}
	}
	return code
}

func removeRun(ctx context.Context, dir, id string, keepData bool, stdout io.Writer) error {
	r, err := flow.StatRun(dir, id)
	if err != nil && !errors.Is(err, flow.ErrNoRun) {
		return err
	}
	if err := flow.RemoveRun(ctx, dir, id, keepData); err != nil {
		if errors.Is(err, flow.ErrRunBusy) {
			return fmt.Errorf("the run is in progress (its coordinator holds %s); not removed", flow.RunDir(dir, id))
		}
		return err
	}
	msg := "removed " + id
	if r != nil {
		msg += " (" + humanBytes(r.Size) + ")"
		if !r.OwnStorage {
			if keepData {
				msg += "; its data stays in " + r.Storage
			} else {
				msg += " and its data in " + r.Storage
			}
		}
	}
	fmt.Fprintln(stdout, msg)
	return nil
}

func runsGC(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, dir := runsFlags("gc", "--older-than DURATION [--keep N] [--dry-run] [--state-dir DIR]", stderr)
	var olderThan age
	fs.Var(&olderThan, "older-than", "remove finished runs that ended at least this long ago (as 1h30m or 7d)")
	fs.Var(days{&olderThan}, "keep-days", "same as --older-than, in days")
	keep := fs.Int("keep", 0, "keep the N newest finished runs whatever their age")
	fs.IntVar(keep, "keep-last", 0, "same as --keep")
	dry := fs.Bool("dry-run", false, "only print what would be removed")
	keepData := fs.Bool("keep-data", false, "leave removed runs' data in an outside storage")
	pos, code, ok := fs.Parse(args)
	if !ok {
		return code
	}
	if len(pos) > 0 || !olderThan.set || *keep < 0 {
		return fs.Fail("want --older-than DURATION (and --keep N >= 0); failed and incomplete runs are kept, for --resume: remove them with runs rm")
	}
	runs, err := flow.ListRuns(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "runs gc: %v\n", err)
		return 1
	}
	var finished []*flow.RunStatus
	for _, r := range runs {
		if r.State == flow.RunFinished {
			finished = append(finished, r)
		}
	}
	now := time.Now()
	sort.SliceStable(finished, func(a, b int) bool { return finished[a].Age(now) < finished[b].Age(now) })
	code = cliflag.ExitOK
	var n int
	var freed int64
	for i, r := range finished {
		if i < *keep || r.Age(now) < olderThan.d {
			continue
		}
		if *dry {
			fmt.Fprintf(stdout, "would remove %s (%s, %s, ended %s ago)\n", r.Run, r.Pipeline, humanBytes(r.Size), r.Age(now).Round(time.Second))
			n++
			freed += r.Size
			continue
		}
		if err := removeRun(ctx, runDirParent(*dir, r), r.Run, *keepData, stdout); err != nil {
			fmt.Fprintf(stderr, "runs gc %s: %v\n", r.Run, err)
			code = cliflag.ExitFailure
			continue
		}
		n++
		freed += r.Size
	}
	verb := "removed"
	if *dry {
		verb = "would remove"
	}
	fmt.Fprintf(stdout, "%s %d of %d runs, %s\n", verb, n, len(runs), humanBytes(freed))
	return code
}

// runDirParent is the state directory run r was listed from.
func runDirParent(dir string, r *flow.RunStatus) string {
	if r.Legacy {
		return flow.LegacyStateDir
	}
	return dir
}

// age is a duration flag that also takes days: "7d", "1.5d".
type age struct {
	d   time.Duration
	set bool
}

func (a *age) String() string { return a.d.String() }

// Type names the value in help.
func (a *age) Type() string { return "duration" }

// days is an age given in days, with or without the "d".
type days struct{ *age }

// Set takes "7" as "7d".
func (d days) Set(v string) error {
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		v += "d"
	}
	return d.age.Set(v)
}

// Type names the value in help.
func (d days) Type() string { return "days" }
func (a *age) Set(v string) error {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		f, err := strconv.ParseFloat(days, 64)
		if err != nil || f < 0 {
			return fmt.Errorf("want a duration such as 36h or 7d, got %q", v)
		}
		a.d, a.set = time.Duration(f*float64(24*time.Hour)), true
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("want a duration such as 36h or 7d, got %q", v)
	}
	a.d, a.set = d, true
	return nil
}

// runJSON is a run as runs list --json and runs show --json print it.
func runJSON(r *flow.RunStatus, full bool) map[string]any {
	m := map[string]any{
		"run": r.Run, "pipeline": r.Pipeline, "state": r.State, "created": r.Created,
		"dir": r.Dir, "size": r.Size, "storage": r.Storage,
	}
	if !r.Ended.IsZero() {
		m["ended"] = r.Ended
		m["elapsed_s"] = r.Elapsed.Seconds()
	}
	if r.Output != "" {
		m["output"], m["output_records"] = r.Output, r.Records
	}
	if r.Err != "" {
		m["error"] = r.Err
	}
	if !full {
		return m
	}
	m["file"], m["params"], m["own_storage"] = r.File, r.Params, r.OwnStorage
	var stages []map[string]any
	for _, s := range r.Stages {
		st := map[string]any{"name": s.Name, "tasks": s.Tasks, "done": s.Done, "failed": s.Failed,
			"records_in": s.RecordsIn, "records_out": s.RecordsOut}
		if len(s.Counters) > 0 {
			st["counters"] = s.Counters
		}
		stages = append(stages, st)
	}
	m["stages"] = stages
	m["failed"] = r.Failed
	return m
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// printCounters prints the stages' counters, if any, one a line:
// "  stage  name  total", names in order.
func printCounters(w io.Writer, stages []flow.StageStatus) {
	some := false
	for _, s := range stages {
		some = some || len(s.Counters) > 0
	}
	if !some {
		return
	}
	fmt.Fprintln(w, "\ncounters:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  STAGE\tCOUNTER\tTOTAL")
	for _, s := range stages {
		for _, name := range slices.Sorted(maps.Keys(s.Counters)) {
			fmt.Fprintf(tw, "  %s\t%s\t%d\n", s.Name, name, s.Counters[name])
		}
	}
	tw.Flush()
}
