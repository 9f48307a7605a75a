package loadgen

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Mode says what a run measures.
type Mode int

const (
	// ModeForeground submits SUBMIT_JOB and times each job to its
	// WORK_COMPLETE while workers echo the payloads back.
	ModeForeground Mode = iota
	// ModeBackground submits every job with SUBMIT_JOB_BG first (the
	// submit phase), then starts the workers and times the drain.
	ModeBackground
)

// String returns the flag spelling of m: "fg" or "bg".
func (m Mode) String() string {
	switch m {
	case ModeForeground:
		return "fg"
	case ModeBackground:
		return "bg"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode parses "fg" or "bg" (also "foreground", "background").
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "fg", "foreground":
		return ModeForeground, nil
	case "bg", "background":
		return ModeBackground, nil
	}
	return 0, fmt.Errorf("loadgen: unknown mode %q (want fg or bg)", s)
}

// MarshalText encodes m as its String.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses m with ParseMode.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err == nil {
		*m = v
	}
	return err
}

// Defaults applied to a zero Config field.
const (
	DefaultJobs        = 10000
	DefaultPayloadSize = 64
	DefaultTimeout     = 10 * time.Minute
	DefaultDialTimeout = 5 * time.Second
	// MaxPayloadSize bounds Config.PayloadSize: gearflow serve's default
	// packet limit is larger, but a benchmark has no use for more.
	MaxPayloadSize = 16 << 20
	// MaxInFlight bounds Config.InFlight.
	MaxInFlight = 1 << 16
	// MaxConns bounds Config.Clients and Config.Workers.
	MaxConns = 4096
)

// ErrConfig is matched by every error about an invalid Config.
var ErrConfig = errors.New("loadgen: invalid config")

// Config describes one run. The zero value of every field but Addr is
// usable.
type Config struct {
	// Addr is the server's host:port. Required.
	Addr string
	// Mode is ModeForeground (the zero value) or ModeBackground.
	Mode Mode
	// Function is the function name the jobs are submitted under. Empty
	// means a name unique to the run ("gearflow.bench.<nanotime>"), so
	// jobs left queued by an earlier run never mix with this one.
	Function string
	// UniqueKeys gives each job a unique id of its own ("<n>", counting
	// from 1 in the run), as libgearman's clients send a UUID. Zero
	// means an empty unique, which no server coalesces, but which
	// gearmand's persistent queues key on: its sqlite queue keeps one
	// background job per function and empty unique, so a durable
	// benchmark against it needs UniqueKeys.
	UniqueKeys bool
	// Clients is the number of client connections. Zero means 1.
	Clients int
	// InFlight is how many jobs each client keeps submitted at once.
	// Zero means 1.
	InFlight int
	// Workers is the number of worker connections. Zero means 1 in
	// ModeForeground; in ModeBackground zero means none: the jobs are
	// submitted and left queued (a negative value means none in either
	// mode, which in ModeForeground only makes sense with Timeout).
	Workers int
	// PayloadSize is each job's payload in bytes. Zero means 64.
	PayloadSize int
	// Jobs is how many jobs to submit in all. Zero means DefaultJobs,
	// unless Duration is set, when it means no limit.
	Jobs int64
	// Duration stops submitting new jobs after this long; jobs in flight
	// then still complete. Zero means no time limit (only Jobs). In
	// ModeBackground it bounds the submit phase.
	Duration time.Duration
	// Timeout ends the run hard: connections are closed and Run returns
	// what was measured, with Result.TimedOut set. Zero means
	// DefaultTimeout.
	Timeout time.Duration
	// DialTimeout bounds each connection attempt. Zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// ServerPID, when the server runs on this machine, is its process
	// id: each phase then reports the server's CPU time beside the load
	// tool's (read from /proc, so on Linux only). Zero means unknown.
	ServerPID int
	// Logger receives debug and warning messages. Nil means discard.
	Logger *slog.Logger
}

// withDefaults returns a copy of c with the zero values replaced, or an
// error matching ErrConfig.
func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" {
		return c, fmt.Errorf("%w: no server address", ErrConfig)
	}
	if c.Mode != ModeForeground && c.Mode != ModeBackground {
		return c, fmt.Errorf("%w: mode %v", ErrConfig, c.Mode)
	}
	if c.Function == "" {
		c.Function = "gearflow.bench." + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	if c.ServerPID < 0 {
		return c, fmt.Errorf("%w: server pid %d", ErrConfig, c.ServerPID)
	}
	if c.Clients == 0 {
		c.Clients = 1
	}
	if c.InFlight == 0 {
		c.InFlight = 1
	}
	switch {
	case c.Workers < 0:
		c.Workers = 0
	case c.Workers == 0 && c.Mode == ModeForeground:
		c.Workers = 1
	}
	if c.PayloadSize == 0 {
		c.PayloadSize = DefaultPayloadSize
	}
	if c.Jobs == 0 && c.Duration == 0 {
		c.Jobs = DefaultJobs
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.Clients < 0 || c.Clients > MaxConns:
		return c, fmt.Errorf("%w: clients %d not in 1..%d", ErrConfig, c.Clients, MaxConns)
	case c.Workers > MaxConns:
		return c, fmt.Errorf("%w: workers %d above %d", ErrConfig, c.Workers, MaxConns)
	case c.InFlight < 0 || c.InFlight > MaxInFlight:
		return c, fmt.Errorf("%w: in-flight %d not in 1..%d", ErrConfig, c.InFlight, MaxInFlight)
	case c.PayloadSize < 0 || c.PayloadSize > MaxPayloadSize:
		return c, fmt.Errorf("%w: payload %d bytes not in 0..%d", ErrConfig, c.PayloadSize, MaxPayloadSize)
	case c.Jobs < 0:
		return c, fmt.Errorf("%w: negative job count %d", ErrConfig, c.Jobs)
	case c.Duration < 0 || c.Timeout < 0 || c.DialTimeout < 0:
		return c, fmt.Errorf("%w: negative duration", ErrConfig)
	case strings.ContainsRune(c.Function, 0):
		return c, fmt.Errorf("%w: function name contains NUL", ErrConfig)
	}
	return c, nil
}

// ParseSize parses a byte count: a plain number ("64"), or a number with
// a binary suffix ("64KiB", "1MiB", also "64K", "1M") or a decimal one
// ("64KB", "1MB"); "B" is allowed and case does not matter.
func ParseSize(s string) (int, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{
		{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
		{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000},
		{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30},
		{"b", 1},
	} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("loadgen: bad size %q (want bytes, e.g. 64 or 64KiB)", s)
	}
	return n * mult, nil
}
