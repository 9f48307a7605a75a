package server_test

import (
	"os"
	"testing"

	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/server"
)

// configFunc adjusts our server's configuration for a scenario.
type configFunc func(*server.Config)

// servers lists the servers every scenario runs against.
func servers() []namedServer {
	return []namedServer{
		{"gearmand", startGearmand},
		{"gearflow", startGearflow},
	}
}

func startGearflow(t *testing.T, o options) *peer {
	cfg := server.Config{JobHandlePrefix: handlePrefix}
	if o.config != nil {
		o.config(&cfg)
	}
	s := servertest.Start(t, cfg)
	if o.leavesJobs {
		s.AllowLeftoverJobs()
	}
	return &peer{Addr: s.Addr, pid: os.Getpid()}
}

// Our settings for the gearmand flags the scenarios use.
var (
	maxPacket1K      configFunc = func(c *server.Config) { c.MaxPacketSize = 1024 }
	workerWakeupZero configFunc = func(c *server.Config) { c.WorkerWakeup = 0 }
	workerWakeupOne  configFunc = func(c *server.Config) { c.WorkerWakeup = 1 }
	exceptionsOn     configFunc = func(c *server.Config) { c.Exceptions = true }
)

// jobRetries is our setting for "--job-retries=n" as gearmand 2.0 (and
// gearflow serve) read it: -1 unlimited, 0 drop on the first loss, n
// drop after n losses.
func jobRetries(n int) configFunc {
	return func(c *server.Config) {
		switch {
		case n < 0:
			c.JobRetries = 0
		case n == 0:
			c.JobRetries = 1
		default:
			c.JobRetries = n
		}
	}
}
