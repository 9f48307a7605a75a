package server_test

import (
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/gearflow/gearflow/internal/browsertest"
	"github.com/gearflow/gearflow/internal/servertest"
	"github.com/gearflow/gearflow/internal/wiretest"
	"github.com/gearflow/gearflow/protocol"
	"github.com/gearflow/gearflow/server"
)

var (
	functionRow = regexp.MustCompile(`(?s)<tr data-function="([^"]+)">(.*?)</tr>`)
	queueCell   = regexp.MustCompile(`data-queue="(\w+)"[^>]*>([\d,]+)<`)
)

// queueDepths reads the queue depths per function and priority the page
// shows, from its rendered DOM.
func queueDepths(dom string) map[string]map[string]string {
	depths := map[string]map[string]string{}
	for _, row := range functionRow.FindAllStringSubmatch(dom, -1) {
		m := map[string]string{}
		for _, c := range queueCell.FindAllStringSubmatch(row[2], -1) {
			m[c[1]] = c[2]
		}
		depths[row[1]] = m
	}
	return depths
}

// TestServerPageInBrowser loads the status page in headless chromium
// after jobs are queued and checks that the rendered page shows each
// function's queue depth per priority (the page fetches /api/status and
// builds its tables in the browser). It also takes the screenshot
// docs/img/server-page.png is made from (GEARFLOW_SCREENSHOTS=docs/img).
func TestServerPageInBrowser(t *testing.T) {
	t.Parallel()
	browsertest.Chromium(t)
	srv := servertest.Start(t, server.Config{})
	srv.AllowLeftoverJobs()
	web := httptest.NewServer(srv.Srv.HTTPHandler())
	t.Cleanup(web.Close)

	client := wiretest.Dial(t, srv.Addr)
	for range 3 {
		client.Submit(t, protocol.SubmitJobBg, "resize", "", "img")
	}
	client.Submit(t, protocol.SubmitJobHighBg, "resize", "", "img")
	for range 12 {
		client.Submit(t, protocol.SubmitJobLowBg, "thumbnail", "", "img")
	}
	worker := wiretest.Dial(t, srv.Addr)
	worker.Req(protocol.SetClientID, "resizer-1")
	worker.CanDo("resize", "thumbnail")
	worker.GrabAny(t) // the HIGH resize job: running, no longer queued

	dom := browsertest.DOM(t, web.URL+"/")
	got := queueDepths(dom)
	want := map[string]map[string]string{
		"resize":    {"high": "0", "normal": "3", "low": "0"},
		"thumbnail": {"high": "0", "normal": "0", "low": "12"},
	}
	for fn, w := range want {
		for p, n := range w {
			if got[fn][p] != n {
				t.Errorf("page shows %s %s queue %q, want %q (rows read: %v)", fn, p, got[fn][p], n, got)
			}
		}
	}
	if !regexp.MustCompile(`resizer-1`).MatchString(dom) {
		t.Errorf("page does not list the worker resizer-1")
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
	browsertest.Screenshot(t, web.URL+"/", browsertest.ScreenshotPath(t, "server-page.png"))
}
