// Package logstats is a three-stage pipeline over web server access logs
// (common log format): parse every line, aggregate hits, bytes and
// server errors per path, and keep the top N paths by hits.
package logstats

import (
	"context"
	"fmt"
	"iter"
	"sort"
	"strconv"
	"strings"

	"github.com/gearflow/gearflow/flow"
)

// Register adds the example's functions to reg: "logs.parse" (map),
// "logs.aggregate" (reduce) and "logs.top" (task).
func Register(reg *flow.Registry) {
	reg.Map("logs.parse", Parse)
	reg.Reduce("logs.aggregate", Aggregate)
	reg.Task("logs.top", Top)
}

// Parse reads one common-log-format line,
//
//	127.0.0.1 - - [10/Oct/2026:13:55:36 +0000] "GET /index.html HTTP/1.1" 200 2326
//
// and emits the request path with {"bytes": N, "status": S}. Lines that
// do not parse are skipped, counted under the key "(unparsed)".
func Parse(ctx context.Context, rec flow.Record, emit flow.Emit) error {
	line, _ := rec.Value.(string)
	if strings.TrimSpace(line) == "" {
		return nil
	}
	q1 := strings.IndexByte(line, '"')
	q2 := strings.LastIndexByte(line, '"')
	if q1 < 0 || q2 <= q1 {
		return emit("(unparsed)", map[string]any{"bytes": 0, "status": 0})
	}
	req := strings.Fields(line[q1+1 : q2])
	tail := strings.Fields(line[q2+1:])
	if len(req) < 2 || len(tail) < 2 {
		return emit("(unparsed)", map[string]any{"bytes": 0, "status": 0})
	}
	status, _ := strconv.Atoi(tail[0])
	size, _ := strconv.Atoi(tail[1]) // "-" counts as 0
	return emit(req[1], map[string]any{"bytes": size, "status": status})
}

// Aggregate sums a path's requests into {"hits", "bytes", "errors"}
// (errors: status 500 and above).
func Aggregate(ctx context.Context, path string, values iter.Seq[any], emit flow.Emit) error {
	var hits, size, errs int64
	for v := range values {
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("value %v is not a map", v)
		}
		b, _ := flow.Int64(m["bytes"])
		s, _ := flow.Int64(m["status"])
		hits++
		size += b
		if s >= 500 {
			errs++
		}
	}
	return emit(path, map[string]any{"hits": hits, "bytes": size, "errors": errs})
}

// Top emits the N paths with the most hits (ties by path), most first,
// where N is the stage param "n" (default 10).
func Top(ctx context.Context, recs []flow.Record, emit flow.Emit) error {
	n := 10
	if info, ok := flow.InfoFrom(ctx); ok && info.Params["n"] != "" {
		v, err := strconv.Atoi(info.Params["n"])
		if err != nil {
			return fmt.Errorf("param n: %w", err)
		}
		n = v
	}
	hits := func(r flow.Record) int64 {
		m, _ := r.Value.(map[string]any)
		h, _ := flow.Int64(m["hits"])
		return h
	}
	sort.SliceStable(recs, func(i, j int) bool {
		if hi, hj := hits(recs[i]), hits(recs[j]); hi != hj {
			return hi > hj
		}
		return recs[i].Key < recs[j].Key
	})
	for _, r := range recs[:min(n, len(recs))] {
		if err := emit(r.Key, r.Value); err != nil {
			return err
		}
	}
	return nil
}
