package archtest

import (
	"os"
	"os/exec"
	"testing"
)

// TestBuildsOnOtherSystems: every package builds for Windows and macOS,
// where Linux-only system calls (raw socket writes, Getrusage, a
// parent-death signal) have build-tagged fallbacks.
func TestBuildsOnOtherSystems(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the module twice; not in -short")
	}
	t.Parallel()
	for _, goos := range []string{"windows", "darwin"} {
		t.Run(goos, func(t *testing.T) {
			cmd := exec.Command(goTool(t), "build", "./...")
			cmd.Dir = "../.."
			cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=amd64", "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("GOOS=%s go build ./...: %v\n%s", goos, err, out)
			}
		})
	}
}
