package itest

// Health checks, passive ejection and panic mode against the real binary.
//
// Ordering facts the tests rely on (gateway/upstreams.go, health/checker.go,
// upstream/upstream.go): a health change is logged ("target health
// changed") before the upstream rebuilds its picker, and the
// outrigger_target_healthy and outrigger_upstream_panic gauges are set only
// after the new picker is in place. So "the gauge shows the new state" is
// the barrier after which every new request sees the new target set; no
// test sleeps for a probe interval instead.
//
// Helpers here are prefixed hc so they cannot collide with other files of
// the package.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// hcBackend is a backend whose /health answer the test controls. It counts
// probes (GET /health) and proxied traffic (any other path) apart.
type hcBackend struct {
	*backend
	status   atomic.Int64 // what /health answers (200 unless changed)
	failNext atomic.Int64 // /health answers 500 this many more times first
	probes   atomic.Int64 // /health requests
	probeOK  atomic.Int64 // /health answered 2xx
	probeBad atomic.Int64 // /health answered 5xx
	served   atomic.Int64 // requests on any other path
}

func startHCBackend(t testing.TB, name, addr string) *hcBackend {
	t.Helper()
	hb := &hcBackend{}
	hb.status.Store(http.StatusOK)
	hb.backend = startBackendAt(t, name, addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			hb.probes.Add(1)
			code := int(hb.status.Load())
			// Probes of one target never overlap, so load-then-store is safe.
			if n := hb.failNext.Load(); n > 0 {
				hb.failNext.Store(n - 1)
				code = http.StatusInternalServerError
			}
			if code >= 500 {
				hb.probeBad.Add(1)
			} else {
				hb.probeOK.Add(1)
			}
			w.WriteHeader(code)
			return
		}
		hb.served.Add(1)
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "%s %s %s", name, r.Method, r.URL.RequestURI())
	}))
	return hb
}

const hcChanged = "target health changed"

// hcEvents returns the "target health changed" log lines about target, in
// the order the gateway wrote them.
func hcEvents(g *gateway, target string) []map[string]any {
	var out []map[string]any
	for _, l := range g.logsWhere(hcChanged) {
		if l["target"] == target {
			out = append(out, l)
		}
	}
	return out
}

// hcLogs returns every JSON log line of g so far, in order.
func hcLogs(g *gateway) []map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.logs)
}

// hcWaitEvents waits until target has at least n health events.
func hcWaitEvents(t testing.TB, g *gateway, target string, n int) []map[string]any {
	t.Helper()
	var evs []map[string]any
	waitFor(t, 15*time.Second, fmt.Sprintf("%d health event(s) for %s", n, target), func() bool {
		evs = hcEvents(g, target)
		return len(evs) >= n
	})
	return evs
}

// hcCheckEvent fails unless ev is a change of upstream u to healthy, for
// cause.
func hcCheckEvent(t testing.TB, ev map[string]any, cause string, healthy bool) {
	t.Helper()
	if ev["upstream"] != "u" || ev["cause"] != cause || ev["healthy"] != healthy {
		t.Fatalf("health event %v: want upstream=u cause=%s healthy=%v", ev, cause, healthy)
	}
}

// hcMetrics scrapes the admin /metrics into series → value, the series
// written as in the exposition format: name{label="value",...}.
func hcMetrics(t testing.TB, g *gateway) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.AdminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 64*1024), 1<<20)
	for s.Scan() {
		line := s.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// hcSeries names a series from label name/value pairs; labels are sorted
// by name, as the exposition format prints them.
func hcSeries(name string, kv ...string) string {
	type pair struct{ k, v string }
	var ps []pair
	for i := 0; i+1 < len(kv); i += 2 {
		ps = append(ps, pair{kv[i], kv[i+1]})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].k < ps[j].k })
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", p.k, p.v)
	}
	b.WriteByte('}')
	return b.String()
}

// hcWaitMetric waits until series has value want.
func hcWaitMetric(t testing.TB, g *gateway, series string, want float64) {
	t.Helper()
	var got float64
	var ok bool
	waitFor(t, 15*time.Second, fmt.Sprintf("%s = %v", series, want), func() bool {
		got, ok = hcMetrics(t, g)[series]
		return ok && got == want
	})
}

// hcTargetHealthy is the outrigger_target_healthy series of target in
// upstream u.
func hcTargetHealthy(target string) string {
	return hcSeries("outrigger_target_healthy", "upstream", "u", "target", target)
}

// hcActiveConfig is one upstream u over targets with active HTTP checks on
// /health every 100 ms (healthy after `successes` good probes, unhealthy
// after `failures` bad ones), and a catch-all route to it.
func hcActiveConfig(successes, failures int, extra string, targets ...string) string {
	var ts []string
	for _, a := range targets {
		ts = append(ts, "{target: "+a+"}")
	}
	return fmt.Sprintf(`
upstreams:
  - name: u
    targets: [%s]
%s    healthchecks:
      active:
        http_path: /health
        timeout: 1
        healthy: {interval: 0.1, successes: %d}
        unhealthy: {interval: 0.1, http_failures: %d, tcp_failures: %d}
services:
  - {name: s, host: u, retries: 2, connect_timeout: 1000, routes: [{name: r, paths: [/]}]}
`, strings.Join(ts, ", "), extra, successes, failures, failures)
}

// hcSend sends n sequential GETs and returns how many each backend
// answered; any status but 200 fails the test.
func hcSend(t testing.TB, c *http.Client, g *gateway, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		status, who, body := get(t, c, g.url("/x"))
		if status != http.StatusOK {
			t.Fatalf("request %d: status %d: %s", i, status, body)
		}
		got[who]++
	}
	return got
}

// TestHealthActiveEjection: a target whose /health answers 500 is ejected
// exactly when the http_failures threshold is reached (fewer failures in a
// row do nothing), the change is logged and counted once, and the ejected
// target gets none of the proxied traffic.
func TestHealthActiveEjection(t *testing.T) {
	a := startHCBackend(t, "a", "127.0.0.1:0")
	b := startHCBackend(t, "b", "127.0.0.1:0")
	g := startGateway(t, hcActiveConfig(2, 3, "", a.Addr, b.Addr))
	c := newClient()

	// Below the threshold: two failures in a row, then successes. Probes
	// of a target are sequential and each is recorded before the next
	// is planned, so once a has answered two more probes after the
	// failures, both failures and a success have been counted.
	waitFor(t, 10*time.Second, "first probes", func() bool { return a.probes.Load() >= 2 })
	a.failNext.Store(2)
	waitFor(t, 10*time.Second, "two failed probes", func() bool { return a.failNext.Load() == 0 })
	ok1 := a.probeOK.Load()
	waitFor(t, 10*time.Second, "two good probes after them", func() bool { return a.probeOK.Load() >= ok1+2 })
	if n := a.probeBad.Load(); n != 2 {
		t.Fatalf("%d failed probes, want 2", n)
	}
	if evs := hcEvents(g, a.Addr); len(evs) != 0 {
		t.Fatalf("2 failed probes (threshold 3) changed the target's health: %v", evs)
	}

	// At the threshold.
	bad0 := a.probeBad.Load()
	a.status.Store(http.StatusInternalServerError)
	evs := hcWaitEvents(t, g, a.Addr, 1)
	hcCheckEvent(t, evs[0], "active", false)
	if n := a.probeBad.Load() - bad0; n < 3 {
		t.Fatalf("ejected after %d failed probes in a row, want 3", n)
	}
	hcWaitMetric(t, g, hcTargetHealthy(a.Addr), 0)
	m := hcMetrics(t, g)
	for series, want := range map[string]float64{
		hcSeries("outrigger_health_changes_total", "upstream", "u", "cause", "active", "state", "unhealthy"): 1,
		hcSeries("outrigger_upstream_targets", "upstream", "u", "state", "unhealthy"):                        1,
		hcSeries("outrigger_upstream_targets", "upstream", "u", "state", "eligible"):                         1,
		hcTargetHealthy(b.Addr): 1,
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}

	// No proxied traffic to a from now on.
	served := a.served.Load()
	if got := hcSend(t, c, g, 40); got["b"] != 40 {
		t.Fatalf("40 requests after the ejection went %v, want all to b", got)
	}
	if n := a.served.Load() - served; n != 0 {
		t.Fatalf("the ejected target received %d proxied requests", n)
	}

	// Logged once, not per probe: let a fail three more probes.
	bad1 := a.probeBad.Load()
	waitFor(t, 10*time.Second, "three more failed probes", func() bool { return a.probeBad.Load() >= bad1+3 })
	if evs := hcEvents(g, a.Addr); len(evs) != 1 {
		t.Fatalf("want exactly one health event for a, got %d: %v", len(evs), evs)
	}
}

// TestHealthActiveRecovery: an ejected target comes back after `successes`
// good probes in a row and then gets its share of the traffic again.
func TestHealthActiveRecovery(t *testing.T) {
	a := startHCBackend(t, "a", "127.0.0.1:0")
	b := startHCBackend(t, "b", "127.0.0.1:0")
	a.status.Store(http.StatusInternalServerError)
	g := startGateway(t, hcActiveConfig(3, 2, "", a.Addr, b.Addr))
	c := newClient()

	hcCheckEvent(t, hcWaitEvents(t, g, a.Addr, 1)[0], "active", false)
	hcWaitMetric(t, g, hcTargetHealthy(a.Addr), 0)

	ok0 := a.probeOK.Load()
	a.status.Store(http.StatusOK)
	evs := hcWaitEvents(t, g, a.Addr, 2)
	hcCheckEvent(t, evs[1], "active", true)
	if n := a.probeOK.Load() - ok0; n < 3 {
		t.Fatalf("healthy again after %d good probes, want 3", n)
	}
	hcWaitMetric(t, g, hcTargetHealthy(a.Addr), 1)
	m := hcMetrics(t, g)
	if s := hcSeries("outrigger_health_changes_total", "upstream", "u", "cause", "active", "state", "healthy"); m[s] != 1 {
		t.Errorf("%s = %v, want 1", s, m[s])
	}

	// Round robin over two healthy targets of equal weight alternates.
	served := a.served.Load()
	if got := hcSend(t, c, g, 10); got["a"] != 5 || got["b"] != 5 {
		t.Fatalf("10 requests after the recovery went %v, want a=5 b=5", got)
	}
	if n := a.served.Load() - served; n != 5 {
		t.Fatalf("the recovered target received %d proxied requests, want 5", n)
	}
}

// hcHang accepts connections, reads the request line and never answers.
type hcHang struct {
	Addr    string
	probes  atomic.Int64 // GET /health seen
	proxied atomic.Int64 // any other request seen
}

func startHang(t testing.TB) *hcHang {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hcHang{Addr: ln.Addr().String()}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			go func() {
				br := bufio.NewReader(conn)
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if strings.HasPrefix(line, "GET /health ") {
					h.probes.Add(1)
				} else {
					h.proxied.Add(1)
				}
				_, _ = io.Copy(io.Discard, br) // until the client gives up
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return h
}

// TestHealthActiveTimeouts: a target that accepts connections and never
// answers is ejected by the active timeouts counter alone (http_failures
// and tcp_failures are 0 here, so no other counter can eject it).
func TestHealthActiveTimeouts(t *testing.T) {
	hang := startHang(t)
	good := startHCBackend(t, "good", "127.0.0.1:0")
	g := startGateway(t, fmt.Sprintf(`
upstreams:
  - name: u
    targets: [{target: %s}, {target: %s}]
    healthchecks:
      active:
        http_path: /health
        timeout: 0.2
        healthy: {interval: 0.1, successes: 1}
        unhealthy: {interval: 0.1, timeouts: 2, http_failures: 0, tcp_failures: 0}
services:
  - {name: s, host: u, retries: 1, read_timeout: 2000, routes: [{name: r, paths: [/]}]}
`, hang.Addr, good.Addr))

	evs := hcWaitEvents(t, g, hang.Addr, 1)
	hcCheckEvent(t, evs[0], "active", false)
	if n := hang.probes.Load(); n < 2 {
		t.Fatalf("ejected after %d probes reached the hanging target, want >= 2 (timeouts: 2)", n)
	}
	if evs := hcEvents(g, good.Addr); len(evs) != 0 {
		t.Fatalf("the good target changed health: %v", evs)
	}
	hcWaitMetric(t, g, hcTargetHealthy(hang.Addr), 0)
	if got := hcSend(t, newClient(), g, 10); got["good"] != 10 {
		t.Fatalf("10 requests went %v, want all to good", got)
	}
	if n := hang.proxied.Load(); n != 0 {
		t.Fatalf("the hanging target received %d proxied requests", n)
	}
}

// hcBlackhole returns a loopback address whose connects never complete: a
// listening socket that is never accepted from, with its accept queue
// (backlog 0) filled, so Linux drops further SYNs and the client's SYN
// retransmits until its own timeout. ok is false if the kernel completes
// connects anyway.
func hcBlackhole(t testing.TB) (addr string, ok bool) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr = fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for i := 0; i < 4; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return addr, true
		}
		if err != nil {
			t.Fatalf("filling the accept queue of %s: %v", addr, err)
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr, false
}

// TestHealthBlackholeConnectTimeout: a target whose connects hang costs a
// request at most the service's connect_timeout before it is retried on
// the good target; nothing waits for the kernel's own connect timeout
// (about two minutes).
func TestHealthBlackholeConnectTimeout(t *testing.T) {
	hole, ok := hcBlackhole(t)
	if !ok {
		t.Skip("cannot make a loopback connect hang on this kernel: connects to a listener with a full accept queue still complete")
	}
	good := startHCBackend(t, "good", "127.0.0.1:0")
	g := startGateway(t, fmt.Sprintf(`
upstreams:
  - name: u
    targets: [{target: %s}, {target: %s}]
services:
  - {name: s, host: u, retries: 2, connect_timeout: 300, routes: [{name: r, paths: [/]}]}
`, hole, good.Addr))
	c := &http.Client{Timeout: 20 * time.Second}
	const bound = 5 * time.Second // liveness: far below the OS's ~2 min, far above 300 ms
	var longest time.Duration
	const n = 6
	for i := 0; i < n; i++ {
		t0 := time.Now()
		status, who, body := get(t, c, g.url("/x"))
		d := time.Since(t0)
		longest = max(longest, d)
		if status != http.StatusOK || who != "good" {
			t.Fatalf("request %d: %d from %q: %s", i, status, who, body)
		}
		if d > bound {
			t.Fatalf("request %d took %s: the connect to the blackholed target was not cut at connect_timeout", i, d)
		}
	}
	retries := hcMetrics(t, g)[hcSeries("outrigger_retries_total", "service", "s", "upstream", "u")]
	if retries < 1 {
		t.Fatal("no request was retried: the blackholed target was never tried, so the test proved nothing")
	}
	t.Logf("%d requests, %v retries off the blackholed target, longest %s", n, retries, longest)
}

// TestHealthPassiveEjection: without active checks, three 500s in a row
// eject a target for base_ejection_time; it comes back when that runs out
// ("ejection-expired"), and a second ejection soon after counts as the
// second (ejections: 2, i.e. twice the base time). While ejected it gets no
// traffic.
func TestHealthPassiveEjection(t *testing.T) {
	bad := startBackend(t, "bad", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "bad")
		w.WriteHeader(http.StatusInternalServerError)
	}))
	good := startBackend(t, "good", nil)
	g := startGateway(t, fmt.Sprintf(`
upstreams:
  - name: u
    targets: [{target: %s}, {target: %s}]
    healthchecks:
      passive:
        unhealthy: {http_failures: 3, http_statuses: [500]}
        base_ejection_time: 1s
        max_ejection_time: 10s
services:
  - {name: s, host: u, retries: 0, routes: [{name: r, paths: [/]}]}
`, bad.Addr, good.Addr))
	c := newClient()

	// ejectOnce sends requests until the target's n-th event (an
	// ejection) is logged and returns how many 500s the client saw.
	ejectOnce := func(n int) (fives int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; len(hcEvents(g, bad.Addr)) < n; i++ {
			if i >= 200 || time.Now().After(deadline) {
				t.Fatalf("no ejection after %d requests", i)
			}
			status, who, body := get(t, c, g.url("/x"))
			switch {
			case status == http.StatusInternalServerError && who == "bad":
				fives++
			case status != http.StatusOK || who != "good":
				t.Fatalf("unexpected answer %d from %q: %s", status, who, body)
			}
		}
		return fives
	}
	// ejected checks that bad gets no traffic while ejected.
	ejected := func() {
		t.Helper()
		hcWaitMetric(t, g, hcTargetHealthy(bad.Addr), 0)
		hits := bad.Hits()
		if got := hcSend(t, c, g, 10); got["good"] != 10 {
			t.Fatalf("10 requests during the ejection went %v, want all to good", got)
		}
		if bad.Hits() != hits {
			t.Fatalf("the ejected target got %d requests", bad.Hits()-hits)
		}
	}

	// First ejection. The ejecting request delivers the event and the
	// picker rebuild before its response goes back, so a sequential
	// client sees exactly three 500s.
	if fives := ejectOnce(1); fives != 3 {
		t.Fatalf("first ejection after %d 500s, want 3", fives)
	}
	ejected()
	hcWaitEvents(t, g, bad.Addr, 2) // base_ejection_time: 1s

	// Second ejection, right after the return (well within one
	// base_ejection_time, so the ejection count has not decayed). Wait
	// until the picker has taken bad back, so that the expiry's delivery
	// is over and the ejection below is delivered by its own request.
	hcWaitMetric(t, g, hcTargetHealthy(bad.Addr), 1)
	if fives := ejectOnce(3); fives != 3 {
		t.Fatalf("second ejection after %d 500s, want 3", fives)
	}
	ejected()
	evs := hcWaitEvents(t, g, bad.Addr, 4) // 2 × base_ejection_time

	for i, want := range []struct {
		cause     string
		healthy   bool
		ejections float64
	}{
		{"passive", false, 1},
		{"ejection-expired", true, 1},
		{"passive", false, 2},
		{"ejection-expired", true, 2},
	} {
		hcCheckEvent(t, evs[i], want.cause, want.healthy)
		if evs[i]["ejections"] != want.ejections {
			t.Fatalf("event %d: ejections %v, want %v (%v)", i, evs[i]["ejections"], want.ejections, evs[i])
		}
	}
	// The log line does not carry ejected_until, so the durations (base ×
	// ejections) are checked through the ejections field only.

	// No request reached bad while it was ejected, over the whole run. The
	// log order proves it without timing: an ejection is logged before
	// the picker drops the target and an expiry before the picker takes
	// it back, so an access line for bad between the two is a request
	// sent to an ejected target; the one exception is the ejecting
	// request itself, whose access line directly follows its event.
	inEjection, first, during := false, false, 0
	for _, l := range hcLogs(g) {
		switch {
		case l["message"] == hcChanged && l["target"] == bad.Addr:
			inEjection, first = l["healthy"] == false, true
		case l["message"] == "access" && inEjection:
			if l["target"] == bad.Addr && !(first && l["status"] == float64(500)) {
				t.Fatalf("a request reached bad while it was ejected: %v", l)
			}
			if l["target"] == good.Addr {
				during++
			}
			first = false
		}
	}
	t.Logf("%d requests went to good during the two ejections, none to bad", during)
	if during < 2*10 {
		t.Fatalf("only %d requests were logged during the two ejections, want >= 20", during)
	}
	if evs := hcEvents(g, good.Addr); len(evs) != 0 {
		t.Fatalf("the good target changed health: %v", evs)
	}
	m := hcMetrics(t, g)
	for series, want := range map[string]float64{
		hcSeries("outrigger_health_changes_total", "upstream", "u", "cause", "passive", "state", "unhealthy"):        2,
		hcSeries("outrigger_health_changes_total", "upstream", "u", "cause", "ejection-expired", "state", "healthy"): 2,
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}
}

// TestHealthPanicMode: two of three targets fail their probes, which puts
// the upstream under min_healthy_percent 50. fail-open sends traffic to
// all three again; fail-closed answers 503 with a JSON body.
func TestHealthPanicMode(t *testing.T) {
	for _, tc := range []struct {
		desc, mode string
		check      func(t *testing.T, g *gateway, bs []*hcBackend)
	}{
		{desc: "fail-open uses every target", mode: "fail-open", check: func(t *testing.T, g *gateway, bs []*hcBackend) {
			got := hcSend(t, newClient(), g, 30)
			for _, b := range bs {
				if got[b.Name] == 0 {
					t.Fatalf("30 requests in fail-open panic went %v: %s got none", got, b.Name)
				}
			}
		}},
		{desc: "fail-closed answers 503", mode: "fail-closed", check: func(t *testing.T, g *gateway, bs []*hcBackend) {
			c := newClient()
			for i := 0; i < 5; i++ {
				resp, err := c.Get(g.url("/x"))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
					!strings.HasPrefix(string(body), `{"message":`) {
					t.Fatalf("fail-closed panic: %d %q %q, want 503 with a JSON message", resp.StatusCode, resp.Header.Get("Content-Type"), body)
				}
			}
			for _, b := range bs {
				if n := b.served.Load(); n != 0 {
					t.Fatalf("%s received %d proxied requests in fail-closed panic", b.Name, n)
				}
			}
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			bs := []*hcBackend{
				startHCBackend(t, "a", "127.0.0.1:0"),
				startHCBackend(t, "b", "127.0.0.1:0"),
				startHCBackend(t, "c", "127.0.0.1:0"),
			}
			bs[0].status.Store(http.StatusInternalServerError)
			bs[1].status.Store(http.StatusInternalServerError)
			g := startGateway(t, hcActiveConfig(2, 2, "    panic: {min_healthy_percent: 50, mode: "+tc.mode+"}\n",
				bs[0].Addr, bs[1].Addr, bs[2].Addr))
			for _, b := range bs[:2] {
				hcCheckEvent(t, hcWaitEvents(t, g, b.Addr, 1)[0], "active", false)
			}
			// The panic gauge is set after the panic snapshot is in place.
			hcWaitMetric(t, g, hcSeries("outrigger_upstream_panic", "upstream", "u"), 1)
			if s := hcSeries("outrigger_upstream_panics_total", "upstream", "u"); hcMetrics(t, g)[s] != 1 {
				t.Fatalf("%s != 1", s)
			}
			lines := g.logsWhere("panic mode engaged: too few healthy targets")
			if len(lines) != 1 {
				t.Fatalf("want one panic log line, got %v", lines)
			}
			if l := lines[0]; l["upstream"] != "u" || l["fail_closed"] != (tc.mode == "fail-closed") {
				t.Fatalf("panic log line %v", l)
			}
			if pct, _ := lines[0]["healthy_percent"].(float64); pct < 33 || pct > 34 {
				t.Fatalf("panic log healthy_percent %v, want 33.3 (one of three)", lines[0]["healthy_percent"])
			}
			tc.check(t, g, bs)

			// Both ways out: b recovers, two of three are healthy (66%),
			// panic mode ends and only the healthy targets get traffic.
			bs[1].status.Store(http.StatusOK)
			hcCheckEvent(t, hcWaitEvents(t, g, bs[1].Addr, 2)[1], "active", true)
			hcWaitMetric(t, g, hcSeries("outrigger_upstream_panic", "upstream", "u"), 0)
			if lines := g.logsWhere("panic mode ended"); len(lines) != 1 || lines[0]["upstream"] != "u" {
				t.Fatalf("want one \"panic mode ended\" line for u, got %v", lines)
			}
			served := bs[0].served.Load()
			if got := hcSend(t, newClient(), g, 20); got["b"] != 10 || got["c"] != 10 {
				t.Fatalf("20 requests after the panic went %v, want b=10 c=10", got)
			}
			if n := bs[0].served.Load() - served; n != 0 {
				t.Fatalf("the unhealthy target received %d requests after the panic ended", n)
			}
		})
	}
}

// TestHealthKillRestartSameAddress: under a bounded load, a target is
// killed (ejected by failing probes) and restarted on the same address
// (healthy again after good probes); no client GET fails, and the restarted
// target gets traffic again.
func TestHealthKillRestartSameAddress(t *testing.T) {
	a := startHCBackend(t, "a", "127.0.0.1:0")
	b := startHCBackend(t, "b", "127.0.0.1:0")
	g := startGateway(t, hcActiveConfig(2, 2, "", a.Addr, b.Addr))

	const workers, maxRequests = 4, 3000
	var sent, ok atomic.Int64
	var failMu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	deadline := time.Now().Add(20 * time.Second)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient()
			// Paced so that the request budget outlasts the probe-driven
			// phases below (about 400 requests/s in all).
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for sent.Add(1) <= maxRequests && time.Now().Before(deadline) {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				resp, err := c.Get(g.url("/x"))
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						ok.Add(1)
						continue
					}
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
				failMu.Lock()
				failures = append(failures, err.Error())
				failMu.Unlock()
			}
		}()
	}
	finish := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	defer finish()

	waitFor(t, 10*time.Second, "traffic on both targets", func() bool { return a.served.Load() > 20 && b.served.Load() > 20 })
	addr := b.Addr
	b.Close()
	hcCheckEvent(t, hcWaitEvents(t, g, addr, 1)[0], "active", false)
	b2 := startHCBackend(t, "b", addr)
	hcCheckEvent(t, hcWaitEvents(t, g, addr, 2)[1], "active", true)
	waitFor(t, 10*time.Second, "traffic on the restarted target", func() bool { return b2.served.Load() >= 20 })
	finish()

	failMu.Lock()
	defer failMu.Unlock()
	if len(failures) != 0 {
		t.Fatalf("%d of %d GETs failed while a target was killed and restarted; want 0. First: %v",
			len(failures), int64(len(failures))+ok.Load(), failures[:min(len(failures), 5)])
	}
	t.Logf("%d GETs, 0 failed; the restarted target served %d", ok.Load(), b2.served.Load())
}

// TestHealthStateSurvivesReload: a target made unhealthy by its probes
// stays unhealthy across a SIGHUP reload that keeps the healthchecks block
// and lists the target again (in another order, with another route added):
// it gets no traffic right after the reload, and no new health event
// appears (a fresh checker would start it healthy and eject it again).
func TestHealthStateSurvivesReload(t *testing.T) {
	a := startHCBackend(t, "a", "127.0.0.1:0")
	b := startHCBackend(t, "b", "127.0.0.1:0")
	a.status.Store(http.StatusInternalServerError)
	extra := startBackend(t, "extra", nil)
	g := startGateway(t, hcActiveConfig(2, 3, "", a.Addr, b.Addr))
	c := newClient()

	hcCheckEvent(t, hcWaitEvents(t, g, a.Addr, 1)[0], "active", false)
	hcWaitMetric(t, g, hcTargetHealthy(a.Addr), 0)

	gen := g.generation()
	g.writeConfig(hcActiveConfig(2, 3, "", b.Addr, a.Addr) +
		fmt.Sprintf("  - {name: s2, url: \"http://%s\", routes: [{name: r2, paths: [/extra]}]}\n", extra.Addr))
	g.signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "reload", func() bool { return g.generation() > gen })
	if s, who, _ := get(t, c, g.url("/extra")); s != http.StatusOK || who != "extra" {
		t.Fatalf("/extra after the reload: %d from %q", s, who)
	}

	if v := hcMetrics(t, g)[hcTargetHealthy(a.Addr)]; v != 0 {
		t.Fatalf("%s = %v right after the reload, want 0", hcTargetHealthy(a.Addr), v)
	}
	served := a.served.Load()
	if got := hcSend(t, c, g, 20); got["b"] != 20 {
		t.Fatalf("20 requests right after the reload went %v, want all to b", got)
	}
	if n := a.served.Load() - served; n != 0 {
		t.Fatalf("the unhealthy target received %d proxied requests after the reload", n)
	}
	// Keep probing long enough for a fresh checker to have re-ejected it.
	p := a.probes.Load()
	waitFor(t, 10*time.Second, "six more probes", func() bool { return a.probes.Load() >= p+6 })
	evs := hcEvents(g, a.Addr)
	if len(evs) != 1 {
		t.Fatalf("health events for a: %v; want only the one before the reload", evs)
	}
	if idx := slices.IndexFunc(g.logsWhere(hcChanged), func(l map[string]any) bool { return l["target"] == b.Addr }); idx >= 0 {
		t.Fatalf("b changed health: %v", g.logsWhere(hcChanged)[idx])
	}
}
