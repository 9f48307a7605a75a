package loadgen

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"
)

// On a machine the load tool shares with the server, a throughput figure
// means little without the CPU time behind it: when the tool and the
// server together keep every core busy, the rate is the machine's, not
// the server's. So each phase reports the tool's own CPU time and, when
// the server's process id is given, the server's.

// cpuSample is the CPU time (user plus system, all threads) of the load
// tool and of the server at one moment; server is negative when unknown.
type cpuSample struct {
	tool, server time.Duration
}

func sampleCPU(serverPID int) cpuSample {
	s := cpuSample{tool: selfCPU(), server: -1}
	if serverPID > 0 {
		if d, err := procCPU(serverPID); err == nil {
			s.server = d
		}
	}
	return s
}

// setCPU fills p's CPU figures from samples taken at its start and end.
func (p *Phase) setCPU(start, end cpuSample) {
	p.ToolCPUSeconds = (end.tool - start.tool).Seconds()
	if start.server >= 0 && end.server >= 0 {
		s := (end.server - start.server).Seconds()
		p.ServerCPUSeconds = &s
	}
}

// clockTick is the unit of the CPU times in /proc/PID/stat (USER_HZ,
// 100 per second on Linux whatever the kernel's own tick rate).
const clockTick = 10 * time.Millisecond

// procCPU is the user plus system CPU time of process pid, all its
// threads, from /proc/PID/stat (Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseProcStat(b)
}

// parseProcStat reads utime and stime (fields 14 and 15) from the text
// of /proc/PID/stat. The command name, field 2, is in parentheses and may
// hold spaces and parentheses itself, so fields are counted from the last
// ')'.
func parseProcStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("loadgen: /proc stat without a command name")
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("loadgen: /proc stat has %d fields, want at least 15", len(f)+2)
	}
	// The sum, in clock ticks, must fit a time.Duration: a larger one
	// would wrap to a negative or wrong CPU time.
	const maxTicks = math.MaxInt64 / int64(clockTick)
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil || n < 0 || n > maxTicks-ticks {
			return 0, fmt.Errorf("loadgen: /proc stat CPU time %q", s)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}
