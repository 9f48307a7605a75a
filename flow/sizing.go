package flow

import (
	"fmt"

	"github.com/gearflow/gearflow/flow/spec"
)

// Task sizing: a task costs a round trip through the job server to a
// worker and back (a millisecond or so, with its journal line and
// events), whatever its size. A task of a few hundred bytes does a few
// microseconds of work for that: a run of many of them spends its time
// on round trips (4-line splits of 200 MB: 689,462 tasks, 57 s, against
// 2.7 s with 50,000 lines). A task of gigabytes runs on one worker alone
// and a failure redoes all of it.
const (
	// tinyTaskBytes is the mean input per task below which a stage of
	// at least tinyTaskMin tasks is warned of: at ~100 MB/s of work a
	// task of 64 KiB is well under a millisecond.
	tinyTaskBytes = 64 << 10
	tinyTaskMin   = 1000
	// hugeTaskBytes is the input of one task above which it is warned of.
	hugeTaskBytes = 1 << 30
	// Sizing advice aims at 64 tasks, of minGoodTaskBytes to
	// goodTaskBytes each.
	goodTaskBytes    = 16 << 20
	minGoodTaskBytes = 1 << 20
	// compressedRatio is the assumed expansion of a .gz or .zst input,
	// read whole by one task.
	compressedRatio = 4
)

// chunkBytes returns the input bytes of a chunk, or -1 when its planning
// did not measure them (stage inputs, whole files).
func chunkBytes(c chunk) int64 {
	switch {
	case c.Split != nil && c.Split.Len >= 0:
		return c.Split.Len
	case c.Split != nil:
		return c.Split.Size * compressedRatio
	case c.File != "":
		return c.Length
	}
	return -1
}

// sizeWarnings returns what is wrong with the sizes of a stage's tasks:
// many tasks much too small for their round trip, or tasks too large
// for one worker. Only tasks whose input bytes are known are judged.
func sizeWarnings(st *spec.Stage, chunks []chunk) []string {
	var total, lines, maxBytes int64
	var known, huge, maxTask int
	for i, c := range chunks {
		b := chunkBytes(c)
		if b < 0 {
			continue
		}
		known++
		total += b
		lines += c.Lines
		if b > maxBytes {
			maxBytes, maxTask = b, i
		}
		if b > hugeTaskBytes {
			huge++
		}
	}
	if known == 0 {
		return nil
	}
	var out []string
	if mean := total / int64(known); known >= tinyTaskMin && mean < tinyTaskBytes {
		// Enough tasks to keep a fleet busy, each big enough to dwarf
		// its round trip.
		target := min(max(total/64, minGoodTaskBytes), goodTaskBytes)
		advice := fmt.Sprintf("split: { bytes: %s }", sizeString(target))
		if lines > 0 && st.Input.Split.By != spec.SplitBytes {
			perLine := max(total/lines, 1)
			advice = fmt.Sprintf("split: { %s: %d }", splitUnit(st.Input.Split.By), roundLines(target/perLine))
		}
		tasks := "one task"
		if n := (total + target - 1) / target; n > 1 {
			tasks = fmt.Sprintf("about %d tasks", n)
		}
		out = append(out, fmt.Sprintf("stage %s: %d tasks of %s each on average (%s in all): each task costs a round trip to a worker (about a millisecond) for far less work than that; bigger tasks, such as %s (%s), would run much faster",
			st.Name, known, sizeString(mean), sizeString(total), advice, tasks))
	}
	if huge > 0 {
		out = append(out, fmt.Sprintf("stage %s: %d of its %d tasks read more than %s (task %d: %s, %s): such a task runs on one worker alone and a failure redoes all of it; split its input smaller (split: { bytes: 256MiB }), or into several files if it is compressed",
			st.Name, huge, len(chunks), sizeString(hugeTaskBytes), maxTask, sizeString(maxBytes), chunks[maxTask].String()))
	}
	return out
}

// splitUnit names the split setting to advise: lines, or records for a
// records split.
func splitUnit(by spec.SplitBy) string {
	if by == spec.SplitRecords {
		return "records"
	}
	return "lines"
}

// roundLines rounds n down to two significant digits, at least 1000.
func roundLines(n int64) int64 {
	if n < 1000 {
		return 1000
	}
	p := int64(1)
	for n/p >= 100 {
		p *= 10
	}
	return n / p * p
}

// sizeString writes n bytes as B, KiB, MiB or GiB.
func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
