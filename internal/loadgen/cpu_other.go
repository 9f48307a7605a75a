//go:build !unix && !windows

package loadgen

import "time"

// selfCPU is 0: this system has no way to ask for the process's CPU
// time that the load tool uses, so ToolCPUSeconds reads 0.
func selfCPU() time.Duration { return 0 }
