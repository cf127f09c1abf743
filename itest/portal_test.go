package itest

// The admin portal in a real browser: Debian's chromium driven over the
// DevTools protocol (chromedp), against the real binary. Each scenario
// clicks and types as an operator would and checks the effect where it
// lands: at the origins, or in the admin API.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// browser is one headless Chromium with one tab.
type browser struct {
	t    *testing.T
	ctx  context.Context // bounded: every action of the test runs under it
	base string          // the admin listener's URL
	mu   sync.Mutex
	errs []string // uncaught exceptions and console.error calls of the page
}

// newBrowser starts Chromium at 1280×800 for one test, bounded by limit,
// or skips the test when no Chromium is installed.
func newBrowser(t *testing.T, g *gateway, limit time.Duration) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("no Chromium installed (Debian package chromium): the portal's browser tests need one")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in a container has no user namespace for the sandbox
		chromedp.WindowSize(1280, 800), chromedp.Flag("disable-gpu", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelAlloc)
	t.Cleanup(cancelBrowser)
	b := &browser{t: t, base: "http://" + g.AdminAddr}
	// The browser lives as long as the context of its first call: bound
	// its start with a timer rather than a deadline on that context.
	stuck := time.AfterFunc(60*time.Second, cancelBrowser)
	err = chromedp.Listen(bctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + ev.ExceptionDetails.Text
			if ex := ev.ExceptionDetails.Exception; ex != nil {
				msg += " " + ex.Description
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type != runtime.ConsoleAPICalledTypeError {
				return
			}
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			msg = "console.error: " + strings.Join(parts, " ")
		default:
			return
		}
		b.mu.Lock()
		b.errs = append(b.errs, msg)
		b.mu.Unlock()
	})
	if err == nil {
		err = chromedp.Do(bctx, chromedp.EmulateViewport(1280, 800))
	}
	stuck.Stop()
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, limit)
	t.Cleanup(cancel)
	b.ctx = ctx
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, e := range b.errs {
			t.Errorf("page: %s", e)
		}
	})
	return b
}

// do runs actions, failing the test with what was being done.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression and returns its value.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// until waits for a JavaScript expression to be true (bounded by d and by
// the test's browser deadline).
func (b *browser) until(what, expr string, d time.Duration) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(d))); err != nil {
		page, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('main').innerText`))
		b.t.Fatalf("waiting for %s (%s): %v\npage:\n%s", what, expr, err, page)
	}
}

// open navigates to a portal page (a hash route) and waits for it.
func (b *browser) open(hash, ready string) {
	b.t.Helper()
	b.do("open "+hash, chromedp.Navigate(b.base+"/portal/#"+hash), chromedp.WaitVisible(chromedp.CSS(ready)))
}

// fill replaces the text of an input.
func (b *browser) fill(sel, text string) {
	b.t.Helper()
	b.do("fill "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	eval[bool](b, fmt.Sprintf(`(document.querySelector(%q).value = '') === ''`, sel))
	b.do("fill "+sel, chromedp.SendKeys(chromedp.CSS(sel), text))
}

func (b *browser) click(sel string) {
	b.t.Helper()
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// clickText clicks the button with that text inside the element sel.
func (b *browser) clickText(sel, text string) {
	b.t.Helper()
	js := fmt.Sprintf(`[...document.querySelectorAll(%q)].flatMap((e) => [...e.querySelectorAll('button')]).find((x) => x.textContent === %q)`, sel, text)
	b.do("click "+text+" in "+sel, chromedp.Click(chromedp.JSPath(js), chromedp.NodeVisible))
}

// screenshot saves the viewport as docs/NAME.png's twin in
// $PORTAL_SCREENSHOTS when that is set.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	dir := os.Getenv("PORTAL_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// whoSeq sends n sequential GETs and returns the X-Backend of each.
func whoSeq(t *testing.T, c *http.Client, url string, n int) []string {
	t.Helper()
	out := make([]string, 0, n)
	for range n {
		status, who, body := get(t, c, url)
		if status != 200 {
			t.Fatalf("GET %s: %d %s", url, status, body)
		}
		out = append(out, who)
	}
	return out
}

// TestPortalSeedFlow: the Kong tutorial's steps done by clicking: a new
// upstream, two targets, a service and a route; the proxy then alternates
// between the two origins.
func TestPortalSeedFlow(t *testing.T) {
	a, bk := startBackend(t, "origin-a", nil), startBackend(t, "origin-b", nil)
	g := startGateway(t, "")
	b := newBrowser(t, g, 90*time.Second)

	// A browser opening the admin address lands on the portal.
	b.do("open the admin address", chromedp.Navigate(b.base+"/"), chromedp.WaitVisible(chromedp.CSS("#nav")))
	if u := eval[string](b, "location.pathname"); u != "/portal/" {
		t.Fatalf("GET / from a browser went to %q", u)
	}
	b.click(`#nav a[data-page="upstreams"]`)
	b.do("new upstream form", chromedp.WaitVisible(chromedp.CSS("#new-upstream")))
	b.fill(`#new-upstream [name="name"]`, "example_upstream")
	b.click(`#new-upstream button[type=submit]`)
	b.do("the new upstream's page", chromedp.WaitVisible(chromedp.CSS("#new-target")))
	for _, o := range []*backend{a, bk} {
		b.fill(`#new-target [name="target"]`, o.Addr)
		b.click(`#new-target button[type=submit]`)
		b.until("target "+o.Addr+" in the table", fmt.Sprintf(`!!document.querySelector('tr[data-target=%q]')`, o.Addr), 10*time.Second)
	}
	b.click(`#nav a[data-page="services"]`)
	b.do("services page", chromedp.WaitVisible(chromedp.CSS("#service-form")))
	b.fill(`#service-form [name="name"]`, "example_service")
	b.fill(`#service-form [name="host"]`, "example_upstream")
	b.click(`#service-form button[type=submit]`)
	b.until("the service in the table", `!!document.querySelector('tr[data-service="example_service"]')`, 10*time.Second)
	b.fill(`#route-form [name="name"]`, "example_route")
	b.fill(`#route-form [name="paths"]`, "/mock")
	b.click(`#route-form button[type=submit]`)
	b.until("the route in the table", `!!document.querySelector('tr[data-route="example_route"]')`, 10*time.Second)

	c := newClient()
	seq := whoSeq(t, c, g.url("/mock/headers"), 6)
	for i := 1; i < len(seq); i++ {
		if seq[i] == seq[i-1] || (seq[i] != "origin-a" && seq[i] != "origin-b") {
			t.Fatalf("answers do not alternate between the origins: %v", seq)
		}
	}
	// strip_path (on by default, as in Kong) sent /headers to the origin.
	if _, _, body := get(t, c, g.url("/mock/headers")); !strings.HasSuffix(body, "GET /headers") {
		t.Fatalf("origin saw %q", body)
	}
	// The overview shows the upstream with both targets healthy and the
	// traffic just sent.
	whoSeq(t, c, g.url("/mock/x"), 40)
	b.click(`#nav a[data-page="overview"]`)
	b.until("overview row", `(() => { const r = document.querySelector('tr[data-upstream="example_upstream"]'); return r && r.cells[2].textContent === '2 / 2' && parseFloat(r.cells[3].textContent) > 0 && r.cells[5].textContent !== '–'; })()`, 15*time.Second)
	b.until("services listed", `!!document.querySelector('tr[data-service="example_service"]') && !!document.querySelector('tr[data-route="example_route"]')`, 5*time.Second)
	// Delete a target from its row: the proxy then uses the other alone.
	b.click(`tr[data-upstream="example_upstream"] a`)
	b.do("accept confirmations", chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`))
	b.clickText(fmt.Sprintf(`tr[data-target=%q]`, bk.Addr), "Delete")
	b.until("the target gone", fmt.Sprintf(`!document.querySelector('tr[data-target=%q]')`, bk.Addr), 10*time.Second)
	for _, who := range whoSeq(t, c, g.url("/mock/x"), 4) {
		if who != "origin-a" {
			t.Fatalf("a request reached %s after its target was deleted", who)
		}
	}
}

// portalFile is a file with a primary and a canary upstream of one
// origin each... or two targets on the primary when two are given.
func portalFile(primary []*backend, canary *backend) string {
	var b strings.Builder
	b.WriteString("upstreams:\n  - name: example_upstream\n    targets:\n")
	for _, o := range primary {
		fmt.Fprintf(&b, "      - target: %s\n", o.Addr)
	}
	if canary != nil {
		fmt.Fprintf(&b, "  - name: canary_upstream\n    targets:\n      - target: %s\n", canary.Addr)
	}
	b.WriteString("services:\n  - name: example_service\n    host: example_upstream\n    routes:\n      - name: example_route\n        paths: [/mock]\n")
	return b.String()
}

// adminJSON reads an admin API document.
func adminJSON(t *testing.T, g *gateway, path string) map[string]any {
	t.Helper()
	var v map[string]any
	getJSON(t, "http://"+g.AdminAddr+path, &v)
	return v
}

// TestPortalMarkUnhealthy: Mark Unhealthy in the targets table stops the
// traffic to that target; Clear gives it back.
func TestPortalMarkUnhealthy(t *testing.T) {
	a, bk := startBackend(t, "origin-a", nil), startBackend(t, "origin-b", nil)
	g := startGateway(t, portalFile([]*backend{a, bk}, nil))
	b := newBrowser(t, g, 90*time.Second)
	c := newClient()
	load := startLoad(c, g.url("/mock/x"), 20*time.Millisecond, 1500, 30*time.Second)
	defer load.Stop()
	b.open("/upstreams/example_upstream", "#new-target")
	row := func(o *backend) string { return fmt.Sprintf(`tr[data-target=%q]`, o.Addr) }
	b.until("both targets receiving traffic", fmt.Sprintf(`[%q, %q].every((s) => { const r = document.querySelector(s); return r && parseFloat(r.cells[6].textContent) > 0; })`, row(a), row(bk)), 15*time.Second)
	// Live updates change text, not layout: the table keeps its size.
	size := `(() => { const r = document.querySelector('table.targets').getBoundingClientRect(); return r.width + 'x' + r.height + ' ' + document.documentElement.scrollWidth; })()`
	frame := eval[float64](b, `live.frames.length`)
	s1 := eval[string](b, size)
	b.until("three more frames", fmt.Sprintf(`live.frames.length >= %v`, frame+3), 10*time.Second)
	if s2 := eval[string](b, size); s1 != s2 || !strings.HasSuffix(s1, " 1280") {
		t.Fatalf("the targets table moved while live data updated: %s, then %s (table WxH, page width)", s1, s2)
	}
	b.clickText(row(a), "Mark Unhealthy")
	b.until("origin-a shown unhealthy", fmt.Sprintf(`document.querySelector('%s .badge').textContent === 'unhealthy'`, row(a)), 10*time.Second)
	if h := adminJSON(t, g, "/upstreams/example_upstream/health"); !strings.Contains(fmt.Sprint(h["data"]), "UNHEALTHY") {
		t.Fatalf("health after the mark: %v", h["data"])
	}
	hitsA := a.Hits()
	seq := whoSeq(t, c, g.url("/mock/x"), 30)
	for _, who := range seq {
		if who != "origin-b" {
			t.Fatalf("a request reached %s after origin-a was marked unhealthy: %v", who, seq)
		}
	}
	// The background load finished its requests in flight at the mark.
	if d := a.Hits() - hitsA; d > 0 {
		t.Fatalf("origin-a got %d requests after the mark", d)
	}
	b.screenshot("portal-upstream")
	b.clickText(row(a), "Clear")
	b.until("origin-a healthy again", fmt.Sprintf(`document.querySelector('%s .badge').textContent === 'healthy'`, row(a)), 10*time.Second)
	seq = whoSeq(t, c, g.url("/mock/x"), 4)
	if !strings.Contains(strings.Join(seq, ","), "origin-a") {
		t.Fatalf("origin-a got nothing after Clear: %v", seq)
	}
	// Weight 0 in the table drains origin-b.
	b.fill(row(bk)+` input[type=number]`, "0")
	b.clickText(row(bk), "Set")
	b.until("origin-b at effective weight 0", fmt.Sprintf(`document.querySelector('%s').cells[2].textContent === '0'`, row(bk)), 10*time.Second)
	for _, who := range whoSeq(t, c, g.url("/mock/x"), 10) {
		if who != "origin-a" {
			t.Fatalf("a request reached %s at weight 0", who)
		}
	}
}

// createCanary opens the canary page of example_service and creates its
// canary on canary_upstream at 0 % through the page's form.
func (b *browser) createCanary() {
	b.t.Helper()
	b.open("/canary/example_service", "#canary-create")
	b.fill(`#canary-create [name="upstream"]`, "canary_upstream")
	b.click(`#canary-create button[type=submit]`)
	b.do("the canary's slider", chromedp.WaitVisible(chromedp.CSS("#canary-percent")))
}

// TestPortalCanarySlider: moving the slider to 25 % (by keyboard) sends
// exactly a quarter of the traffic to the canary's origin: without
// sticky_by the split is an exact counter, so any 400 consecutive
// requests hold floor or ceil of 400 × 25 % = 100 canary requests.
func TestPortalCanarySlider(t *testing.T) {
	p, cn := startBackend(t, "primary", nil), startBackend(t, "canary", nil)
	g := startGateway(t, portalFile([]*backend{p}, cn))
	b := newBrowser(t, g, 120*time.Second)
	b.createCanary()
	// A force rule added on the page sends matching requests to the
	// canary at 0 %.
	b.do("force kind", chromedp.SetValue(chromedp.CSS(`#force-form [name="force"]`), "header"))
	b.fill(`#force-form [name="force_name"]`, "X-Canary")
	b.fill(`#force-form [name="force_value"]`, "1")
	b.click(`#force-form button[type=submit]`)
	b.until("the rule listed", `[...document.querySelectorAll('#force td')].some((td) => td.textContent === 'X-Canary')`, 10*time.Second)
	if _, who, _ := get(t, newClient(), g.url("/mock/x"), "X-Canary", "1"); who != "canary" {
		t.Fatalf("a forced request went to %q", who)
	}
	b.clickText(`#force`, "Remove")
	b.until("the rule removed", `document.querySelector('#force td').textContent === 'no force rules'`, 10*time.Second)
	// Sticky by a header, then back to the exact split.
	b.do("sticky kind", chromedp.SetValue(chromedp.CSS(`#sticky-form [name="sticky_by"]`), "header"))
	b.fill(`#sticky-form [name="sticky_name"]`, "X-User")
	b.click(`#sticky-form button[type=submit]`)
	b.until("sticky saved", `document.querySelector('#sticky-form .ok-note').textContent === 'saved'`, 10*time.Second)
	if cn := adminJSON(t, g, "/services/example_service/canary"); cn["sticky_by"] != "header:X-User" || len(cn["force"].([]any)) != 0 {
		t.Fatalf("canary after the forms: %v", cn)
	}
	b.do("sticky off", chromedp.SetValue(chromedp.CSS(`#sticky-form [name="sticky_by"]`), "none"))
	b.click(`#sticky-form button[type=submit]`)
	waitFor(t, 10*time.Second, "sticky_by cleared", func() bool {
		return adminJSON(t, g, "/services/example_service/canary")["sticky_by"] == nil
	})
	// Home, two PageUps (a tenth of the range each) and five ArrowRights.
	b.do("move the slider", chromedp.Focus(chromedp.CSS("#canary-percent")),
		chromedp.KeyEvent(kb.Home+kb.PageUp+kb.PageUp+strings.Repeat(kb.ArrowRight, 5)))
	b.until("25 % applied", `document.querySelector('#canary-percent').value === '25' && document.querySelector('.slider + div [role=status]').textContent === 'applied: 25 % to canary_upstream'`, 15*time.Second)
	if c := adminJSON(t, g, "/services/example_service/canary"); c["percent"] != 25.0 {
		t.Fatalf("canary after the slider: %v", c)
	}
	c := newClient()
	counts := map[string]int{}
	for _, who := range whoSeq(t, c, g.url("/mock/x"), 400) {
		counts[who]++
	}
	if counts["canary"] != 100 || counts["primary"] != 300 {
		t.Fatalf("split over 400 requests: %v, want canary 100, primary 300", counts)
	}
	// The live view shows the split; keep traffic going for the charts.
	load := startLoad(c, g.url("/mock/x"), 10*time.Millisecond, 3000, 30*time.Second)
	defer load.Stop()
	b.until("observed share near 25 %", `(() => { const v = parseFloat(document.querySelector('[data-live=split]').textContent); return v >= 20 && v <= 30; })()`, 20*time.Second)
	if os.Getenv("PORTAL_SCREENSHOTS") != "" {
		b.until("20 s of live data for the charts", `live.frames.length >= 20`, 30*time.Second)
	}
	b.screenshot("portal-canary")
	b.click(`#nav a[data-page="overview"]`)
	b.until("the overview with traffic", `[...document.querySelectorAll('tr[data-upstream]')].filter((r) => parseFloat(r.cells[3].textContent) > 0).length === 2`, 15*time.Second)
	b.screenshot("portal-overview")
}

// TestPortalRollbackReason: a rollout started from the page whose canary
// fails rolls back by itself, and the page shows why.
func TestPortalRollbackReason(t *testing.T) {
	p := startBackend(t, "primary", nil)
	cn := startBackend(t, "canary", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Backend", "canary")
		http.Error(w, "broken build", http.StatusInternalServerError)
	}))
	g := startGateway(t, portalFile([]*backend{p}, cn))
	b := newBrowser(t, g, 120*time.Second)
	b.createCanary()
	b.do("rollout form", chromedp.WaitVisible(chromedp.CSS("#rollout-form")))
	b.fill(`#rollout-form [name="steps"]`, "20 50 100")
	b.fill(`#rollout-form [name="interval"]`, "1m")
	b.fill(`#rollout-form [name="min_requests"]`, "10")
	b.click(`#rollout-form button[type=submit]`)
	b.until("the rollout running", `!!document.querySelector('[data-rollout-state="running"]')`, 10*time.Second)
	c := newClient()
	load := startLoad(c, g.url("/mock/x"), 5*time.Millisecond, 2000, 30*time.Second)
	b.until("the rollback's reason", `(() => { const r = document.querySelector('#rollout-reason'); return r && r.textContent.includes('canary error rate'); })()`, 30*time.Second)
	load.Stop()
	ro := adminJSON(t, g, "/services/example_service/rollout")
	shown := eval[string](b, `document.querySelector('#rollout-reason').textContent`)
	if ro["state"] != "rolled_back" || ro["reason"] == nil || shown != "Rolled back: "+ro["reason"].(string) {
		t.Fatalf("page shows %q; the API: state %v, reason %v", shown, ro["state"], ro["reason"])
	}
	if s := eval[string](b, `document.querySelector('[data-rollout-state]').dataset.rolloutState + ' ' + document.querySelector('#canary-percent').value`); s != "rolled_back 0" {
		t.Fatalf("state and slider after the rollback: %q", s)
	}
}

// TestPortalValidationError: a refused change shows each error next to
// its field, and nothing is applied.
func TestPortalValidationError(t *testing.T) {
	a := startBackend(t, "origin-a", nil)
	g := startGateway(t, portalFile([]*backend{a}, nil))
	b := newBrowser(t, g, 60*time.Second)
	before := adminJSON(t, g, "/upstreams/example_upstream")
	status := adminJSON(t, g, "/status")
	b.open("/upstreams/example_upstream", "#upstream-settings")
	b.fill(`#upstream-settings [name="healthchecks.active.http_path"]`, "health")
	b.fill(`#upstream-settings [name="slots"]`, "3")
	b.do("pick an algorithm", chromedp.SetValue(chromedp.CSS(`#upstream-settings [name="algorithm"]`), "least-connections"))
	b.click(`#upstream-settings button[type=submit]`)
	b.until("the errors beside their fields", `document.querySelector('[data-error-for="healthchecks.active.http_path"]').textContent === 'should start with: /' &&
		document.querySelector('[data-error-for="slots"]').textContent === 'value should be between 10 and 65536'`, 10*time.Second)
	if inv := eval[string](b, `[...document.querySelectorAll('#upstream-settings [aria-invalid=true]')].map((e) => e.name).join(',')`); inv != "slots,healthchecks.active.http_path" {
		t.Fatalf("inputs marked invalid: %q", inv)
	}
	if msg := eval[string](b, `document.querySelector('#upstream-settings .form-error').textContent + document.querySelector('[data-error-for="algorithm"]').textContent`); msg != "" {
		t.Fatalf("errors elsewhere: %q", msg)
	}
	after, st := adminJSON(t, g, "/upstreams/example_upstream"), adminJSON(t, g, "/status")
	if fmt.Sprint(after) != fmt.Sprint(before) || st["config_generation"] != status["config_generation"] {
		t.Fatalf("something was applied:\nbefore %v\nafter  %v\ngenerations %v → %v", before, after, status["config_generation"], st["config_generation"])
	}
	// Corrected, the same form applies everything at once.
	b.fill(`#upstream-settings [name="healthchecks.active.http_path"]`, "/healthz")
	b.fill(`#upstream-settings [name="slots"]`, "100")
	b.click(`#upstream-settings button[type=submit]`)
	b.until("saved", `document.querySelector('#upstream-settings .ok-note').textContent === 'saved' && !document.querySelector('#upstream-settings [aria-invalid]')`, 10*time.Second)
	up := adminJSON(t, g, "/upstreams/example_upstream")
	if hc := up["healthchecks"].(map[string]any)["active"].(map[string]any); up["algorithm"] != "least-connections" || up["slots"] != 100.0 || hc["http_path"] != "/healthz" {
		t.Fatalf("after the save: algorithm %v, slots %v, http_path %v", up["algorithm"], up["slots"], hc["http_path"])
	}
	// A bad target: the error is beside the target field, the table is unchanged.
	b.fill(`#new-target [name="target"]`, "bad:x:y")
	b.click(`#new-target button[type=submit]`)
	b.until("the target's error", `document.querySelector('#new-target [data-error-for="target"]').textContent.includes('invalid target')`, 10*time.Second)
	if n := len(adminJSON(t, g, "/upstreams/example_upstream/targets")["data"].([]any)); n != 1 {
		t.Fatalf("%d targets after a refused add", n)
	}
}

// TestPortalToken: with admin.token set the portal shows nothing but its
// login until given the token, which it keeps in session storage only.
func TestPortalToken(t *testing.T) {
	const token = "portal-test-token-4f1d"
	a := startBackend(t, "origin-a", nil)
	n := adNewNode(t, "  token: "+token+"\n", portalFile([]*backend{a}, nil))
	g := n.start()
	b := newBrowser(t, g, 60*time.Second)
	for _, page := range []string{"/", "/services", "/canary/example_service", "/fleet", "/upstreams/example_upstream"} {
		b.open(page, "#login")
		b.until("the login form only", `document.querySelectorAll('main table, main tr, #new-target').length === 0`, 5*time.Second)
	}
	b.fill("#login-token", "wrong")
	b.click(`#login button[type=submit]`)
	b.until("the refusal", `document.querySelector('#login .form-error').textContent === 'The token was refused.'`, 10*time.Second)
	b.fill("#login-token", token)
	b.click(`#login button[type=submit]`)
	b.until("the upstream page", `!!document.querySelector('tr[data-target]') && !document.querySelector('#login')`, 15*time.Second)
	got := eval[string](b, `[sessionStorage.getItem('outrigger.admin.token'), localStorage.length, document.cookie, location.href.includes('`+token+`')].join('|')`)
	if got != token+"|0||false" {
		t.Fatalf("session storage, local storage, cookies, URL: %q", got)
	}
	// Logging out forgets it.
	b.click("#logout")
	b.until("the login form again", `!!document.querySelector('#login') && sessionStorage.length === 0`, 5*time.Second)
}

// TestPortalFleet: without a fleet listing the page shows this sidecar's
// layer from /status.
func TestPortalFleet(t *testing.T) {
	g := startGateway(t, "")
	b := newBrowser(t, g, 60*time.Second)
	b.open("/fleet", "#sidecars")
	root := adminJSON(t, g, "/")
	b.until("this sidecar listed", fmt.Sprintf(`!!document.querySelector('#sidecars tr[data-node=%q]')`, root["node_id"]), 10*time.Second)
	if txt := eval[string](b, `document.querySelector('main').innerText`); !strings.Contains(txt, "memory") || !strings.Contains(txt, "in_sync") {
		t.Fatalf("fleet page: %s", txt)
	}
}

// TestPortalServicesEdit: a service and a route edited and deleted from
// the services page, each change checked in the admin API.
func TestPortalServicesEdit(t *testing.T) {
	a := startBackend(t, "origin-a", nil)
	g := startGateway(t, portalFile([]*backend{a}, nil))
	b := newBrowser(t, g, 60*time.Second)
	b.open("/services", `tr[data-route="example_route"]`)
	b.clickText(`tr[data-route="example_route"]`, "Edit")
	b.until("the route in the form", `document.querySelector('#route-form [name="paths"]').value === '/mock'`, 5*time.Second)
	b.fill(`#route-form [name="paths"]`, "/api /v2")
	b.click(`#route-form input[name="method"][value="GET"]`)
	b.click(`#route-form [name="strip_path"]`)
	b.click(`#route-form button[type=submit]`)
	b.until("the edited route", `document.querySelector('tr[data-route="example_route"]').cells[1].textContent === '/api /v2'`, 10*time.Second)
	r := adminJSON(t, g, "/routes/example_route")
	if fmt.Sprint(r["paths"], r["methods"], r["strip_path"]) != "[/api /v2] [GET] false" {
		t.Fatalf("route after the edit: %v %v %v", r["paths"], r["methods"], r["strip_path"])
	}
	if status, _, _ := get(t, newClient(), g.url("/api/x")); status != 200 {
		t.Fatalf("GET /api/x through the edited route: %d", status)
	}
	b.clickText(`tr[data-service="example_service"]`, "Edit")
	b.fill(`#service-form [name="path"]`, "/base")
	b.click(`#service-form button[type=submit]`)
	b.until("the edited service", `document.querySelector('tr[data-service="example_service"]').cells[3].textContent === '/base'`, 10*time.Second)
	if s := adminJSON(t, g, "/services/example_service"); s["path"] != "/base" || s["host"] != "example_upstream" {
		t.Fatalf("service after the edit: %v", s)
	}
	// A service with routes cannot go: the API's refusal shows in its row.
	b.do("accept confirmations", chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`))
	b.clickText(`tr[data-service="example_service"]`, "Delete")
	b.until("the refusal in the row", `document.querySelector('tr[data-service="example_service"] .cellerr').textContent !== ''`, 10*time.Second)
	b.clickText(`tr[data-route="example_route"]`, "Delete")
	b.until("the route gone", `!document.querySelector('tr[data-route="example_route"]')`, 10*time.Second)
	b.clickText(`tr[data-service="example_service"]`, "Delete")
	b.until("the service gone", `!document.querySelector('tr[data-service="example_service"]')`, 10*time.Second)
	if n := len(adminJSON(t, g, "/services")["data"].([]any)) + len(adminJSON(t, g, "/routes")["data"].([]any)); n != 0 {
		t.Fatalf("%d services and routes left", n)
	}
}

// TestStatsStreamShutdown: an open stats stream does not hold the drain
// up: SIGTERM ends it and the process exits long before drain_timeout.
func TestStatsStreamShutdown(t *testing.T) {
	g := startGatewayOpts(t, gatewayOpts{Drain: "5m"}, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.AdminAddr+"/stats/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", err, resp)
	}
	defer resp.Body.Close()
	buf := make([]byte, 12)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "event: stats" {
		t.Fatalf("first frame: %q %v", buf, err)
	}
	g.signal(syscall.SIGTERM)
	// Far below the 5-minute drain: only the stream could hold it.
	if code := g.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil && ctx.Err() != nil {
		t.Fatalf("the stream did not end: %v", err)
	}
}

// TestPortalRolloutActions: Pause, Resume and Abort on the page drive the
// rollout through the API.
func TestPortalRolloutActions(t *testing.T) {
	p, cn := startBackend(t, "primary", nil), startBackend(t, "canary", nil)
	g := startGateway(t, portalFile([]*backend{p}, cn))
	b := newBrowser(t, g, 90*time.Second)
	b.createCanary()
	b.fill(`#rollout-form [name="steps"]`, "5, 50, 100")
	b.fill(`#rollout-form [name="interval"]`, "1h")
	b.click(`#rollout-form button[type=submit]`)
	b.until("running at step 1", `!!document.querySelector('[data-rollout-state="running"]') && document.querySelector('.steps li.current').textContent === '5 %' && document.querySelector('#canary-percent').value === '5'`, 10*time.Second)
	state := func() string { return adminJSON(t, g, "/services/example_service/rollout")["state"].(string) }
	for _, step := range []struct{ button, want string }{{"Pause", "paused"}, {"Resume", "running"}, {"Abort", "aborted"}} {
		b.clickText("#rollout", step.button)
		b.until(step.want, fmt.Sprintf(`!!document.querySelector('[data-rollout-state=%q]')`, step.want), 10*time.Second)
		if s := state(); s != step.want {
			t.Fatalf("after %s the API says %s", step.button, s)
		}
	}
	if c := adminJSON(t, g, "/services/example_service/canary"); c["percent"] != 0.0 {
		t.Fatalf("canary after Abort: %v", c["percent"])
	}
	b.until("the slider at 0", `document.querySelector('#canary-percent').value === '0'`, 5*time.Second)
}

// TestPortalFleetConsul: two sidecars sharing one layer in a real Consul
// agent. A weight set on A's portal is adopted by B, whose fleet page
// shows the Consul store at the layer version it runs.
func TestPortalFleetConsul(t *testing.T) {
	f := flStartPair(t)
	b := newBrowser(t, f.ga, 90*time.Second)
	row := fmt.Sprintf(`tr[data-target=%q]`, f.x.Addr)
	b.open("/upstreams/w", row)
	b.fill(row+` input[type=number]`, "300")
	b.clickText(row, "Set")
	b.until("A at weight 300", fmt.Sprintf(`document.querySelector('%s').cells[2].textContent === '300'`, row), 10*time.Second)
	b.base = "http://" + f.gb.AdminAddr
	b.open("/upstreams/w", row)
	b.until("B adopted weight 300", fmt.Sprintf(`document.querySelector('%s').cells[2].textContent === '300'`, row), 15*time.Second)
	st := adminJSON(t, f.gb, "/status")["admin_layer"].(map[string]any)
	if st["store"] != "consul" || st["version"] == 0.0 || st["version"] != st["store_version"] {
		t.Fatalf("B's admin layer: %v", st)
	}
	b.open("/fleet", "#sidecars")
	want := []string{"consul", fmt.Sprint(st["version"]), "in_sync"}
	txt := eval[string](b, `document.querySelector('main').innerText`)
	for _, w := range want {
		if !strings.Contains(txt, w) {
			t.Fatalf("fleet page lacks %q:\n%s", w, txt)
		}
	}
}
