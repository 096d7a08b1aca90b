//go:build browser

package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// stepTimeout bounds each browser step, so that a page that never loads
// fails the test instead of hanging it.
const stepTimeout = 30 * time.Second

// chromium is the browser the tests drive: Debian's chromium (or
// chromium-browser) on PATH. A missing one fails the test: CI installs
// it, and a developer is told how.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatalf("no chromium on PATH: the browser tests need it (Debian: apt-get install chromium)")
	return ""
}

// tab is one browser tab of a test, in a browser of its own. Each page it
// shows can be saved as a full-page screenshot in the test's artifact
// directory (`go test -artifacts -outputdir DIR` keeps them), and every
// console error or uncaught exception of the page fails the test: a
// Content-Security-Policy violation, a failed asset, a script error
// (see watch).
type tab struct {
	t     *testing.T
	ctx   context.Context
	base  string // the server's http://host:port
	shots int

	mu       sync.Mutex
	problems []string
}

// newTab starts the headless Chromium at path, 1200 px wide, for the test.
func newTab(t *testing.T, path, base string) *tab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		// Chromium's sandbox refuses to start as root, which CI is; the
		// browser only ever opens the test's own loopback server.
		chromedp.NoSandbox,
		chromedp.WindowSize(1200, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser to exit
	})
	b := &tab{t: t, ctx: ctx, base: base}
	// The first action starts the browser, bound to this context (not to
	// a step's timeout).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if err := chromedp.Listen(ctx, b.watch); err != nil {
		t.Fatalf("listen to the tab: %v", err)
	}
	return b
}

// watch keeps the page's problems: console errors (a Content-Security-
// Policy violation is one), uncaught exceptions, and assets that failed to
// load. It runs in the tab's event loop: it only records. The status of
// a page itself is the test's to check (a refused form answers 400), and
// the console's line about it is not counted; neither is the browser's
// own request for /favicon.ico, which the dashboard does not serve.
func (b *tab) watch(ev any) {
	var problem string
	switch ev := ev.(type) {
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError && ev.Entry.Source != log.EntrySourceNetwork {
			problem = fmt.Sprintf("console %s error: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
		}
	case *network.EventResponseReceived:
		u, err := url.Parse(ev.Response.URL)
		if ev.Type != network.ResourceTypeDocument && ev.Response.Status >= 400 && (err != nil || u.Path != "/favicon.ico") {
			problem = fmt.Sprintf("%s %s answered %d", ev.Type, ev.Response.URL, ev.Response.Status)
		}
	case *runtime.EventExceptionThrown:
		problem = "uncaught exception: " + ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			problem += " " + ev.ExceptionDetails.Exception.Description
		}
	}
	if problem != "" {
		b.mu.Lock()
		b.problems = append(b.problems, problem)
		b.mu.Unlock()
	}
}

// checkConsole fails the test with the console errors since the last
// check, naming the page they came from.
func (b *tab) checkConsole(page string) {
	b.t.Helper()
	b.mu.Lock()
	problems := b.problems
	b.problems = nil
	b.mu.Unlock()
	for _, p := range problems {
		b.t.Errorf("%s: %s", page, p)
	}
}

// step runs one action with stepTimeout and fails the test on an error.
func step[T any](b *tab, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v (at %s)", what, err, b.location())
	}
	return v
}

// location is the tab's URL, for messages; "" if it cannot be read.
func (b *tab) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	return loc
}

// path is the URL path the tab shows, checked to be on the server.
func (b *tab) path() string {
	b.t.Helper()
	loc := step(b, "read the location", chromedp.Location())
	u, err := url.Parse(loc)
	if err != nil || u.Scheme+"://"+u.Host != b.base {
		b.t.Fatalf("the tab is not on the server: %s", loc)
	}
	return u.Path
}

// open navigates to the server's path and expects the page to answer 200
// (after any redirects).
func (b *tab) open(path string) {
	b.t.Helper()
	resp := step(b, "open "+path, chromedp.NavigateResponse(b.base+path))
	if resp.Status != 200 {
		b.t.Fatalf("open %s: status %d", path, resp.Status)
	}
}

// click clicks the element and waits for the page it leads to, which
// must answer want (after a form's 303, the page redirected to).
func (b *tab) click(sel string, want int64) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("click %s: %v (at %s)", sel, err, b.location())
	}
	if resp.Status != want {
		b.t.Fatalf("click %s: the page it led to, %s, answered %d; want %d; it says %q", sel, resp.URL, resp.Status, want, b.texts("p.error"))
	}
}

// fill types value into the field, replacing what it held.
func (b *tab) fill(sel, value string) {
	b.t.Helper()
	step(b, "clear "+sel, chromedp.Clear(chromedp.CSS(sel)))
	step(b, "type into "+sel, chromedp.SendKeys(chromedp.CSS(sel), value))
}

// text is the visible text of the first element the selector finds.
func (b *tab) text(sel string) string {
	b.t.Helper()
	return strings.TrimSpace(step(b, "read "+sel, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible)))
}

// texts are the rendered texts of every element the selector finds, in
// document order, trimmed (none: empty).
func (b *tab) texts(sel string) []string {
	b.t.Helper()
	q, _ := json.Marshal(sel)
	return step(b, "read every "+sel, chromedp.Evaluate[[]string](
		fmt.Sprintf(`Array.from(document.querySelectorAll(%s), e => e.innerText.trim())`, q)))
}

// count is how many elements the selector finds.
func (b *tab) count(sel string) int {
	b.t.Helper()
	q, _ := json.Marshal(sel)
	return step(b, "count "+sel, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%s).length`, q)))
}

// checked reports whether the checkbox is checked.
func (b *tab) checked(sel string) bool {
	b.t.Helper()
	q, _ := json.Marshal(sel)
	return step(b, "read "+sel, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%s).checked`, q)))
}

// value is the current value of a form field.
func (b *tab) value(sel string) string {
	b.t.Helper()
	return step(b, "read the value of "+sel, chromedp.Value(chromedp.CSS(sel)))
}

// cookies are the browser's cookies for the server's path.
func (b *tab) cookies(path string) []*network.Cookie {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base + path}})
	if err != nil {
		b.t.Fatalf("read the cookies: %v", err)
	}
	return res.Cookies
}

// screenshot saves the whole page as NN-name.png in the test's artifact
// directory, and checks the console since the last screenshot.
func (b *tab) screenshot(name string) {
	b.t.Helper()
	png := step(b, "screenshot "+name, chromedp.FullScreenshot(100)) // 100: PNG
	b.shots++
	file := filepath.Join(b.t.ArtifactDir(), fmt.Sprintf("%02d-%s.png", b.shots, name))
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Fatalf("save the screenshot: %v", err)
	}
	b.checkConsole(name)
}
