// Package browsertest loads pages in a real headless browser, Debian's
// chromium, for tests of the web pages the server and runs serve.
//
// Without chromium a test is skipped, saying what to install; where the
// environment variable CI is set (or GEARFLOW_REQUIRE_INTEROP=1, as
// .ci/run sets it) it fails instead, so the pages are always tested there.
package browsertest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// budget is the virtual time a page gets to run its scripts (fetch its
// JSON and render it) before the DOM is dumped or the screenshot taken.
const budget = "3000"

// Chromium returns the browser's path, or skips (or, in CI, fails) t.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "browsertest: chromium not found; install it (apt-get install -y chromium) to test the web pages"
	if os.Getenv("CI") != "" || os.Getenv("GEARFLOW_REQUIRE_INTEROP") == "1" {
		t.Fatal(msg + " (required in CI)")
	}
	t.Skip(msg)
	return ""
}

// run runs headless chromium with the flags every call shares, then
// extra, bounded by 60 seconds, and returns its standard output.
func run(t testing.TB, extra ...string) []byte {
	t.Helper()
	bin := Chromium(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir(), "--virtual-time-budget=" + budget}, extra...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("browsertest: chromium %v: %v\n%s", extra, err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// DOM loads url and returns the DOM after its scripts ran (--dump-dom).
func DOM(t testing.TB, url string) string {
	t.Helper()
	return string(run(t, "--dump-dom", url))
}

// Screenshot loads url in a 1200x800 window and writes a PNG of it to
// file, failing t unless a PNG was written.
func Screenshot(t testing.TB, url, file string) {
	t.Helper()
	os.Remove(file)
	run(t, "--hide-scrollbars", "--window-size=1200,800", "--screenshot="+file, url)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("browsertest: screenshot of %s: %v", url, err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("browsertest: screenshot of %s is not a PNG (%d bytes)", url, len(b))
	}
}

// ScreenshotPath is where a test puts the screenshot named name: the
// repository's docs/img when GEARFLOW_SCREENSHOTS names it (to update
// the checked-in images), a temporary folder otherwise.
func ScreenshotPath(t testing.TB, name string) string {
	if dir := os.Getenv("GEARFLOW_SCREENSHOTS"); dir != "" {
		return dir + "/" + name
	}
	return t.TempDir() + "/" + name
}
