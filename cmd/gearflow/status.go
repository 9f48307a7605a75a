package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/gearflow/gearflow/flow/cli"
	"github.com/gearflow/gearflow/internal/cliflag"
	"github.com/gearflow/gearflow/runtime"
)

// serverStatus is one server's admin view, as printed by gearflow status.
type serverStatus struct {
	Server    string                   `json:"server"`
	Functions []runtime.FunctionStatus `json:"functions"`
	Workers   []runtime.WorkerInfo     `json:"workers"`
	Error     string                   `json:"error,omitempty"`
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := cliflag.New("gearflow status", "[--servers LIST] [--json] [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]",
		"Shows each server's functions (admin \"status\") and connections (admin \"workers\").", stderr)
	servers := fs.String("servers", defaultGearmanServers(), "job servers, comma-separated host:port (default from $GEARMAN_SERVERS)")
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	var tlsFlags cli.TLSFlags
	tlsFlags.Register(fs.FlagSet)
	pos, code, ok := fs.Parse(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return fs.Fail("unexpected argument %q", pos[0])
	}
	list := cliflag.SplitServers(*servers)
	if len(list) == 0 {
		fmt.Fprintln(stderr, "gearflow status: no servers")
		return 2
	}
	tlsCfg, err := tlsFlags.Config()
	if err != nil {
		return fs.Fail("%v", err)
	}
	admin := runtime.Admin{TLS: tlsCfg}
	code = cliflag.ExitOK
	var all []serverStatus
	for _, addr := range list {
		st := serverStatus{Server: addr}
		var err error
		st.Functions, err = admin.Status(ctx, addr)
		if err == nil {
			st.Workers, err = admin.Workers(ctx, addr)
		}
		if err != nil {
			st.Error = err.Error()
			fmt.Fprintf(stderr, "gearflow status: %s: %v\n", addr, err)
			code = 1
		}
		all = append(all, st)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(all); err != nil {
			fmt.Fprintf(stderr, "gearflow status: %v\n", err)
			return 1
		}
		return code
	}
	for i, st := range all {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		statusTables(stdout, st)
	}
	return code
}

// statusTables prints one server's functions and workers as tables.
func statusTables(w io.Writer, st serverStatus) {
	fmt.Fprintf(w, "server %s\n", st.Server)
	if st.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", st.Error)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FUNCTION\tTOTAL\tRUNNING\tWORKERS")
	for _, f := range st.Functions {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", f.Function, f.Total, f.Running, f.Workers)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FD\tADDRESS\tCLIENT-ID\tFUNCTIONS")
	for _, wk := range st.Workers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", wk.FD, wk.Addr, wk.ClientID, strings.Join(wk.Functions, " "))
	}
	tw.Flush()
}
