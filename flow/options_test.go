package flow

import (
	"path/filepath"
	"testing"
)

// TestDefaultStateDir: the default state directory is absolute and
// follows $GEARFLOW_STATE_DIR, then $XDG_STATE_HOME, then the home
// folder, never the working folder.
func TestDefaultStateDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("GEARFLOW_STATE_DIR", "")
	t.Setenv("XDG_STATE_HOME", "")
	if got, want := DefaultStateDir(), filepath.Join(home, ".local/state/gearflow/runs"); got != want {
		t.Errorf("with HOME only: %q, want %q", got, want)
	}
	t.Setenv("XDG_STATE_HOME", "relative/state") // not absolute: ignored
	if got, want := DefaultStateDir(), filepath.Join(home, ".local/state/gearflow/runs"); got != want {
		t.Errorf("with a relative XDG_STATE_HOME: %q, want %q", got, want)
	}
	t.Setenv("XDG_STATE_HOME", "/xdg/state")
	if got, want := DefaultStateDir(), "/xdg/state/gearflow/runs"; got != want {
		t.Errorf("with XDG_STATE_HOME: %q, want %q", got, want)
	}
	t.Setenv("GEARFLOW_STATE_DIR", "/srv/gf")
	if got, want := DefaultStateDir(), "/srv/gf"; got != want {
		t.Errorf("with GEARFLOW_STATE_DIR: %q, want %q", got, want)
	}
	work := t.TempDir()
	t.Chdir(work)
	t.Setenv("GEARFLOW_STATE_DIR", "rel")
	if got, want := DefaultStateDir(), filepath.Join(work, "rel"); got != want {
		t.Errorf("with a relative GEARFLOW_STATE_DIR: %q, want %q", got, want)
	}
}
