package itest

// Nacos registration and discovery through the real binary against
// internal/nacostest (an in-process server speaking the Nacos 2.x gRPC
// protocol, started fresh for each test). Every instance is registered the
// way a real service's sidecar would do it: by an Outrigger process with a
// `register.nacos` block announcing a local backend; it is deregistered
// when that process gets SIGTERM, and it vanishes with the process's
// connection otherwise. A separate Outrigger process discovers the service
// with `discovery.nacos` and proxies to it.
//
// Facts the tests rely on:
//   - Discovery is by subscription: the server pushes every change of a
//     subscribed service; the source turns it into a target set at once
//     (discovery/nacos/source.go) and the upstream swaps its picker
//     atomically. Targets are the instances that are Healthy, Enabled and
//     of Weight > 0, of the configured clusters and carrying every
//     configured metadata entry; weight w becomes round(w*100), at least 1.
//   - Round-robin builds an exact cycle of the gcd-reduced weights
//     (balance/roundrobin.go): equal weights strictly alternate, 3:1 repeats
//     [0 0 1 0], so any window of a whole number of cycles splits exactly.
//     With two equal instances, two answers in a row from the same one
//     prove the other left the picker.
//   - An authoritative empty answer (the last instance left) applies after
//     empty_grace (upstream/watch.go); a lost connection keeps the last set,
//     and an empty answer right after a reconnect is held for 10s (the
//     source's reconnect grace) because the owners of the instances have
//     to reconnect and register again first.
//
// Helpers are prefixed nc; where the logic is the same, the tests use
// consul_test.go's cs helpers and harness_test.go's.

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/internal/nacostest"
)

// ncBound bounds every measuring loop.
const ncBound = 5 * time.Second

// ncServers is the connection part of a nacos block.
func ncServers(srv *nacostest.Server) string {
	return fmt.Sprintf("servers: [%s], grpc_port: %d", srv.HTTPAddr(), srv.GRPCPort())
}

// ncSidecar starts a sidecar registering backend b (127.0.0.1 and b's
// port) as an instance of service; extra adds keys to the register.nacos
// block (", cluster: east").
func ncSidecar(t testing.TB, srv *nacostest.Server, b *backend, service, extra string) *gateway {
	t.Helper()
	return startGateway(t, fmt.Sprintf(`
register:
  nacos: {%s, service: %s, ip: 127.0.0.1, port: %d%s}
`, ncServers(srv), service, csPort(t, b.Addr), extra))
}

// ncClientConfig is one upstream u discovered from Nacos service `service`
// (extra adds keys to the nacos block) and a catch-all route to it.
func ncClientConfig(srv *nacostest.Server, service, extra, grace string) string {
	return fmt.Sprintf(`
upstreams:
  - name: u
    discovery:
      nacos: {%s, service: %s%s}
      empty_grace: %s
services:
  - {name: s, host: u, retries: 2, connect_timeout: 1000, routes: [{name: r, paths: [/]}]}
`, ncServers(srv), service, extra, grace)
}

// ncHas reports whether srv lists an instance at port 127.0.0.1:port in
// namespace/group/service ("" for the defaults).
func ncHas(srv *nacostest.Server, ns, group, service string, port int) bool {
	for _, in := range srv.Instances(ns, group, service) {
		if in.IP == "127.0.0.1" && in.Port == port {
			return true
		}
	}
	return false
}

// ncWaitRegistered waits until srv lists backend b in ns/group/service.
func ncWaitRegistered(t testing.TB, srv *nacostest.Server, ns, group, service string, b *backend) {
	t.Helper()
	port := csPort(t, b.Addr)
	waitFor(t, 10*time.Second, fmt.Sprintf("%s to be registered in %q/%q/%s", b.Name, ns, group, service), func() bool {
		return ncHas(srv, ns, group, service, port)
	})
}

// ncWhen polls cond about every millisecond in a goroutine, for at most d,
// and delivers the time it first held (the zero time if it never did).
func ncWhen(d time.Duration, cond func() bool) <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			if cond() {
				ch <- time.Now()
				return
			}
			time.Sleep(time.Millisecond)
		}
		ch <- time.Time{}
	}()
	return ch
}

// ncAwait receives from ch, failing the test when it delivers the zero
// time (or nothing within d).
func ncAwait(t testing.TB, ch <-chan time.Time, d time.Duration, what string) time.Time {
	t.Helper()
	select {
	case at := <-ch:
		if at.IsZero() {
			t.Fatalf("never saw %s", what)
		}
		return at
	case <-time.After(d):
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
	return time.Time{}
}

// ncWho sends one GET through g and returns the backend that answered; a
// transport error or an answer other than 200 fails the test.
// Kept beside csWho (which returns a non-200 answer as "status <code>"): ncTimeToAppear must fail on one.
func ncWho(t testing.TB, c *http.Client, g *gateway) string {
	t.Helper()
	status, who, body, _, err := tryGet(c, g.url("/x"))
	if err != nil {
		t.Fatalf("GET through the gateway: %v", err)
	}
	if status != http.StatusOK {
		t.Fatalf("GET through the gateway: status %d: %s", status, body)
	}
	return who
}

// ncWaitSplit is csWaitSplit, then checks that the next window splits as
// want too (every answer a 200).
// Kept beside csWaitSplit: the nacos tests assert that the split holds in the next window too.
func ncWaitSplit(t testing.TB, c *http.Client, g *gateway, d time.Duration, want map[string]int) {
	t.Helper()
	csWaitSplit(t, c, g, d, want)
	n := 0
	for _, v := range want {
		n += v
	}
	if got := csSpread(t, c, g, n); !maps.Equal(got, want) {
		t.Fatalf("the window after an exact one split %v, want %v", got, want)
	}
}

// ncFirstFrom sends requests through g back to back in a goroutine, for at
// most d, and delivers the time of the first answer from backend name (the
// zero time if none came). Every answer must be a 200: the number of those
// that were not is in *failed once the time is delivered.
func ncFirstFrom(c *http.Client, g *gateway, name string, d time.Duration, failed *int) <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			status, who, _, _, err := tryGet(c, g.url("/x"))
			if err != nil || status != http.StatusOK {
				*failed++
				continue
			}
			if who == name {
				ch <- time.Now()
				return
			}
		}
		ch <- time.Time{}
	}()
	return ch
}

// ncTimeToAppear sends requests through g from t0 until backend name
// answers and returns the time to that answer; any answer but a 200 fails
// the test.
// Kept beside csTimeToAppear (which passes over non-200 answers): TestNacosHealthAndEnabled asserts none while b returns.
func ncTimeToAppear(t testing.TB, c *http.Client, g *gateway, t0 time.Time, name string) time.Duration {
	t.Helper()
	for time.Since(t0) < ncBound {
		if ncWho(t, c, g) == name {
			return time.Since(t0)
		}
	}
	t.Fatalf("%s got no traffic within %s of the change", name, ncBound)
	return 0
}

// ncLogErrors returns the "error" field of g's log lines whose message is
// msg.
func ncLogErrors(g *gateway, msg string) []string {
	var out []string
	for _, m := range g.logsWhere(msg) {
		s, _ := m["error"].(string)
		out = append(out, s)
	}
	return out
}

// ncCount counts the strings of ss containing sub.
func ncCount(ss []string, sub string) int {
	n := 0
	for _, s := range ss {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

// ncRegEvents returns the events of a sidecar's "nacos registration" log
// lines, in order.
func ncRegEvents(g *gateway) []string {
	var out []string
	for _, m := range g.logsWhere("nacos registration") {
		ev, _ := m["event"].(string)
		if e, ok := m["error"].(string); ok {
			ev += "(" + e + ")"
		}
		out = append(out, ev)
	}
	return out
}

// TestNacosRegisterAndDiscover runs the sidecar pattern against the
// wire-level Nacos server: two sidecars register their local backends as
// ephemeral instances, a third discovers them by subscription and balances
// over both; when one registering sidecar stops (SIGTERM), its instance is
// deregistered and its traffic stops; a weight set in Nacos steers the
// split.
func TestNacosRegisterAndDiscover(t *testing.T) {
	srv := nacostest.Start(t)
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	ga := ncSidecar(t, srv, a, "web", ", weight: 1, metadata: {version: v1}")
	ncSidecar(t, srv, b, "web", ", weight: 1, metadata: {version: v1}")
	client := startGateway(t, fmt.Sprintf(`
upstreams:
  - name: web
    discovery:
      nacos: {%s, service: web, metadata: {version: v1}}
      empty_grace: 2s
services:
  - {name: s, host: web, retries: 2, connect_timeout: 1000, routes: [{name: r, paths: [/]}]}
`, ncServers(srv)))
	c := newClient()
	waitFor(t, 15*time.Second, "both registered instances to get traffic", func() bool {
		seen := map[string]bool{}
		for i := 0; i < 4; i++ {
			if s, who, _ := get(t, c, client.url("/x")); s == 200 {
				seen[who] = true
			}
		}
		return seen["a"] && seen["b"]
	})
	counts := map[string]int{}
	for i := 0; i < 100; i++ {
		_, who, _ := get(t, c, client.url("/x"))
		counts[who]++
	}
	if counts["a"] != 50 || counts["b"] != 50 {
		t.Fatalf("equal Nacos weights split %v, want exactly 50/50", counts)
	}

	// A weight changed in Nacos (float, scaled ×100) steers the split.
	key := nacostest.ServiceKey{Group: "DEFAULT_GROUP", Service: "web"}
	if err := srv.SetWeight(key, b.Addr, 3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the new weight", func() bool {
		n := map[string]int{}
		for i := 0; i < 40; i++ {
			_, who, _ := get(t, c, client.url("/x"))
			n[who]++
		}
		return n["b"] == 30 && n["a"] == 10
	})

	// The registering sidecar of a stops: its instance leaves Nacos and
	// its traffic stops, with no failed request on the way.
	ga.signal(syscall.SIGTERM)
	if code := ga.wait(15 * time.Second); code != 0 {
		t.Fatalf("registering sidecar exit code %d", code)
	}
	waitFor(t, 10*time.Second, "a's deregistration", func() bool {
		for _, in := range srv.Instances("", "DEFAULT_GROUP", "web") {
			if in.Port == csPort(t, a.Addr) {
				return false
			}
		}
		return true
	})
	waitFor(t, 10*time.Second, "a's traffic to stop", func() bool {
		for i := 0; i < 10; i++ {
			if s, who, _ := get(t, c, client.url("/x")); s != 200 || who != "b" {
				return false
			}
		}
		return true
	})
}

// TestNacosChangeLatency: a sidecar registering, deregistering (SIGTERM)
// or dying (SIGKILL: its connection closes, the server drops the instance)
// changes the routing of the discovering sidecar within 1 s (spec
// requirement). Registration is measured from the instance appearing in
// the server (srv.Instances, polled every millisecond) to the first
// request answered by it; leaving is measured from the signal to the
// request that proves the instance left the picker. Rounds repeat the
// measurement; every round must meet the bound.
func TestNacosChangeLatency(t *testing.T) {
	const rounds = 5
	srv := nacostest.Start(t)
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	ncSidecar(t, srv, a, "web", "")
	ncWaitRegistered(t, srv, "", "", "web", a)
	client := startGateway(t, ncClientConfig(srv, "web", "", "5s"))
	c := newClient()
	csWaitBackends(t, c, client, 15*time.Second, "a")
	portB := csPort(t, b.Addr)

	var regs, deregs, kills, goneAfterSig []time.Duration
	for round := 0; round < rounds; round++ {
		// Register: b's sidecar starts while one goroutine watches the
		// server and another sends requests through the client.
		failed := 0
		appeared := ncWhen(10*time.Second, func() bool { return ncHas(srv, "", "", "web", portB) })
		served := ncFirstFrom(c, client, "b", 10*time.Second, &failed)
		gb := ncSidecar(t, srv, b, "web", "")
		tReg := ncAwait(t, appeared, 15*time.Second, "b's registration in the server")
		tServed := ncAwait(t, served, 15*time.Second, "b's first answer through the client")
		if failed != 0 {
			t.Fatalf("round %d: %d requests failed while b registered", round, failed)
		}
		d := max(tServed.Sub(tReg), 0)
		regs = append(regs, d)
		if d > time.Second {
			t.Fatalf("round %d: registration took %s to reach the routing, want <= 1s", round, d)
		}
		ncWaitSplit(t, c, client, 5*time.Second, map[string]int{"a": 20, "b": 20})

		// Leave: SIGTERM (deregistration) in even rounds, SIGKILL (the
		// connection closes) in odd ones.
		sig, what := syscall.SIGTERM, "SIGTERM"
		if round%2 == 1 {
			sig, what = syscall.SIGKILL, "SIGKILL"
		}
		gone := ncWhen(10*time.Second, func() bool { return !ncHas(srv, "", "", "web", portB) })
		t0 := time.Now()
		gb.signal(sig)
		d = csTimeToVanish(t, c, client, t0, "b")
		tGone := ncAwait(t, gone, 15*time.Second, "b leaving the server")
		goneAfterSig = append(goneAfterSig, tGone.Sub(t0))
		if sig == syscall.SIGTERM {
			deregs = append(deregs, d)
			if code := gb.wait(15 * time.Second); code != 0 {
				t.Fatalf("round %d: registering sidecar exit code %d after SIGTERM", round, code)
			}
		} else {
			kills = append(kills, d)
			gb.wait(15 * time.Second)
		}
		if d > time.Second {
			t.Fatalf("round %d: b kept traffic for %s after %s, want <= 1s", round, d, what)
		}
		hits := b.Hits()
		if got := csSpread(t, c, client, 20); got["a"] != 20 {
			t.Fatalf("round %d: after b left 20 requests split %v, want all on a", round, got)
		}
		if b.Hits() != hits {
			t.Fatalf("round %d: b was hit %d more times after it left", round, b.Hits()-hits)
		}
	}
	t.Logf("registration in the server -> first request served (ms): %v", ncMSs(regs))
	t.Logf("SIGTERM -> traffic stopped (ms): %v", ncMSs(deregs))
	t.Logf("SIGKILL -> traffic stopped (ms): %v", ncMSs(kills))
	t.Logf("signal -> instance gone from the server (ms): %v", ncMSs(goneAfterSig))
}

func ncMSs(ds []time.Duration) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = strconv.FormatFloat(csMS(d), 'f', 1, 64)
	}
	return out
}

// TestNacosLastInstanceLeaves: when the only instance's sidecar stops, the
// discovering sidecar keeps routing to it for empty_grace (the backend
// itself still answers), then answers 503 with the no-peer JSON; a new
// registration brings the service back at once.
func TestNacosLastInstanceLeaves(t *testing.T) {
	const grace = 2 * time.Second
	srv := nacostest.Start(t)
	a := startBackend(t, "a", nil)
	ga := ncSidecar(t, srv, a, "solo", "")
	ncWaitRegistered(t, srv, "", "", "solo", a)
	client := startGateway(t, ncClientConfig(srv, "solo", "", grace.String()))
	c := newClient()
	csWaitBackends(t, c, client, 15*time.Second, "a")
	port := csPort(t, a.Addr)

	gone := ncWhen(10*time.Second, func() bool { return !ncHas(srv, "", "", "solo", port) })
	tSig := time.Now()
	ga.signal(syscall.SIGTERM)
	served := 0
	var lastOK, first503 time.Time
	var body string
	var hdr http.Header
	for time.Since(tSig) < grace+ncBound {
		status, who, b, h, err := tryGet(c, client.url("/x"))
		now := time.Now()
		if err != nil {
			t.Fatalf("request %d after SIGTERM: %v", served, err)
		}
		if status == http.StatusOK {
			if who != "a" {
				t.Fatalf("request %d after SIGTERM answered by %q", served, who)
			}
			served++
			lastOK = now
			time.Sleep(2 * time.Millisecond)
			continue
		}
		if status != http.StatusServiceUnavailable {
			t.Fatalf("request %d after SIGTERM: status %d: %s", served, status, b)
		}
		first503, body, hdr = now, b, h
		break
	}
	if first503.IsZero() {
		t.Fatalf("the upstream still routed to a %s after its sidecar stopped (empty_grace %s)", grace+ncBound, grace)
	}
	tGone := ncAwait(t, gone, 10*time.Second, "a leaving the server")
	if code := ga.wait(15 * time.Second); code != 0 {
		t.Fatalf("registering sidecar exit code %d", code)
	}
	t.Logf("SIGTERM -> deregistered in the server %.1fms; deregistration -> last 200 %.1fms, first 503 %.1fms "+
		"(empty_grace %s); %d requests served during the grace", csMS(tGone.Sub(tSig)), csMS(lastOK.Sub(tGone)),
		csMS(first503.Sub(tGone)), grace, served)
	// The grace timer starts when the client receives the push, after the
	// server dropped the instance, which is at most one poll (1ms) before
	// tGone: allow 50ms for that.
	if d := first503.Sub(tGone); d < grace-50*time.Millisecond {
		t.Fatalf("the upstream emptied %s after the deregistration, before empty_grace %s", d, grace)
	}
	if d := first503.Sub(tGone); d > grace+time.Second {
		t.Fatalf("the upstream emptied %s after the deregistration, want within 1s of empty_grace %s", d, grace)
	}
	if strings.TrimSpace(body) != csNoPeer {
		t.Fatalf("503 body %q, want %s", body, csNoPeer)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("503 Content-Type %q, want application/json", ct)
	}
	var js map[string]any
	if err := json.Unmarshal([]byte(body), &js); err != nil {
		t.Fatalf("503 body is not JSON: %v", err)
	}
	for i := 0; i < 20; i++ {
		if status, _, b, _, err := tryGet(c, client.url("/x")); err != nil || status != http.StatusServiceUnavailable {
			t.Fatalf("request %d after the upstream emptied: status %d, %v: %s", i, status, err, b)
		}
	}
	if n := len(client.logsWhere("discovery answered empty; dropping the targets after the grace unless they come back")); n != 1 {
		t.Fatalf("%d empty-pending log lines, want 1", n)
	}
	if n := len(client.logsWhere("discovery: no targets")); n != 1 {
		t.Fatalf("%d 'no targets' log lines, want 1", n)
	}

	// A new sidecar registering a brings the service back at once (the
	// 503s before it are expected: failed is not checked).
	failed := 0
	back := ncWhen(10*time.Second, func() bool { return ncHas(srv, "", "", "solo", port) })
	servedAgain := ncFirstFrom(c, client, "a", 10*time.Second, &failed)
	ncSidecar(t, srv, a, "solo", "")
	tBack := ncAwait(t, back, 15*time.Second, "a's new registration")
	tServed := ncAwait(t, servedAgain, 15*time.Second, "a's first answer after its new registration")
	t.Logf("new registration -> first request served %.1fms", csMS(max(tServed.Sub(tBack), 0)))
	if d := tServed.Sub(tBack); d > time.Second {
		t.Fatalf("the new registration took %s to reach the routing, want <= 1s", d)
	}
}

// TestNacosReturnDuringGrace: when the only instance's sidecar stops and
// a new one registers it again within empty_grace, the pending drop is
// cancelled: no request fails, before or after the grace would have ended.
func TestNacosReturnDuringGrace(t *testing.T) {
	const grace = 1500 * time.Millisecond
	srv := nacostest.Start(t)
	a := startBackend(t, "a", nil)
	ga := ncSidecar(t, srv, a, "solo", "")
	ncWaitRegistered(t, srv, "", "", "solo", a)
	client := startGateway(t, ncClientConfig(srv, "solo", "", grace.String()))
	c := newClient()
	csWaitBackends(t, c, client, 15*time.Second, "a")

	const pendingMsg = "discovery answered empty; dropping the targets after the grace unless they come back"
	load := startLoad(c, client.url("/x"), 5*time.Millisecond, 2000, 10*time.Second)
	defer load.Stop()
	ga.signal(syscall.SIGTERM)
	waitFor(t, 5*time.Second, "the client to start the grace", func() bool { return len(client.logsWhere(pendingMsg)) > 0 })
	pending := time.Now()
	if code := ga.wait(15 * time.Second); code != 0 {
		t.Fatalf("registering sidecar exit code %d", code)
	}
	ncSidecar(t, srv, a, "solo", "")
	ncWaitRegistered(t, srv, "", "", "solo", a)
	back := time.Since(pending)
	if back >= grace {
		t.Fatalf("the new sidecar took %s to register, longer than empty_grace %s: the test proves nothing", back, grace)
	}
	time.Sleep(time.Until(pending.Add(grace + 500*time.Millisecond)))
	ok, failed, first, _ := load.Stop()
	t.Logf("grace started -> a registered again after %.0fms (empty_grace %s); load: %d ok, %d failed", csMS(back), grace, ok, failed)
	if failed != 0 {
		t.Fatalf("%d of %d requests failed; first: %q", failed, ok+failed, first)
	}
	if n := len(client.logsWhere("discovery: no targets")); n != 0 {
		t.Fatalf("the targets were dropped %d time(s) although a came back within the grace", n)
	}
	if got := csSpread(t, c, client, 20); got["a"] != 20 {
		t.Fatalf("20 requests split %v, want all on a", got)
	}
}

// TestNacosServerRestart: the Nacos server stops for ~2 s and comes back
// on the same ports with nothing registered (ephemeral instances die with
// their connections). Under a steady load (every 10 ms, at most 20 s)
// through the discovering sidecar no request fails: during the outage it
// keeps the last known set; after the restart it re-subscribes and holds
// the fresh server's empty answers (the reconnect grace) until the
// registering sidecars have reconnected and registered again; a sidecar
// registering after the restart then gets traffic within 1 s. The client's
// empty_grace is 1s on purpose: an empty answer taken for authoritative
// would empty the upstream inside the test.
//
// Who reconnects first is a race. The second case settles it: the
// registering sidecars are frozen (SIGSTOP) across the restart and resumed
// 1.5 s (more than empty_grace) after the client has subscribed again, so
// the client certainly reads the empty service first and must hold it.
func TestNacosServerRestart(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		freeze bool
	}{
		{desc: "everybody reconnects on their own", freeze: false},
		{desc: "the registering sidecars come back 1.5s after the client", freeze: true},
	} {
		t.Run(tc.desc, func(t *testing.T) { ncRestart(t, tc.freeze) })
	}
}

func ncRestart(t *testing.T, freeze bool) {
	const (
		outage = 2 * time.Second
		frozen = 1500 * time.Millisecond
	)
	srv := nacostest.Start(t)
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	cc := startBackend(t, "c", nil)
	ga := ncSidecar(t, srv, a, "web", "")
	gb := ncSidecar(t, srv, b, "web", "")
	ncWaitRegistered(t, srv, "", "", "web", a)
	ncWaitRegistered(t, srv, "", "", "web", b)
	client := startGateway(t, ncClientConfig(srv, "web", "", "1s"))
	c := newClient()
	csWaitBackends(t, c, client, 15*time.Second, "a", "b")
	key := nacostest.ServiceKey{Service: "web"}
	waitFor(t, 5*time.Second, "the client's subscription", func() bool { return srv.Subscribers(key) == 1 })
	before := srv.ConnectionIDs()
	portA, portB := csPort(t, a.Addr), csPort(t, b.Addr)

	hitsA, hitsB := a.Hits(), b.Hits()
	load := startLoad(c, client.url("/load"), 10*time.Millisecond, 2000, 20*time.Second)
	defer load.Stop()
	waitFor(t, 5*time.Second, "the load to reach a and b", func() bool { return a.Hits() > hitsA && b.Hits() > hitsB })

	stopped := time.Now()
	srv.Stop()
	stopTook := time.Since(stopped)
	const lostMsg = "discovery failed; keeping the last known targets"
	waitFor(t, 10*time.Second, "the client to notice the outage", func() bool {
		return ncCount(ncLogErrors(client, lostMsg), "connection to the server lost") > 0
	})
	noticed := time.Since(stopped)
	resumed := true
	resume := func() {
		if !resumed {
			resumed = true
			ga.signal(syscall.SIGCONT)
			gb.signal(syscall.SIGCONT)
		}
	}
	defer resume()
	if freeze {
		ga.signal(syscall.SIGSTOP)
		gb.signal(syscall.SIGSTOP)
		resumed = false
	}
	hitsA, hitsB = a.Hits(), b.Hits()
	time.Sleep(time.Until(stopped.Add(outage)))
	if a.Hits() == hitsA || b.Hits() == hitsB {
		t.Fatalf("during the outage a got %d and b %d requests, want both > 0", a.Hits()-hitsA, b.Hits()-hitsB)
	}

	srv.Restart()
	restarted := time.Now()
	regBack := ncWhen(20*time.Second, func() bool { return ncHas(srv, "", "", "web", portA) && ncHas(srv, "", "", "web", portB) })
	subBack := ncWhen(20*time.Second, func() bool { return srv.Subscribers(key) == 1 })
	resubscribed := ncAwait(t, subBack, 25*time.Second, "the client to subscribe again").Sub(restarted)
	if freeze {
		const heldMsg = "empty answer right after reconnecting"
		waitFor(t, 5*time.Second, "the client to hold the empty answer", func() bool {
			return ncCount(ncLogErrors(client, lostMsg), heldMsg) > 0
		})
		held := time.Since(restarted)
		if n := len(srv.Instances("", "", "web")); n != 0 {
			t.Fatalf("%d instances registered while their sidecars are frozen", n)
		}
		hitsA, hitsB = a.Hits(), b.Hits()
		time.Sleep(frozen)
		if a.Hits() == hitsA || b.Hits() == hitsB {
			t.Fatalf("while the server answered empty a got %d and b %d requests, want both > 0 (the last known set)",
				a.Hits()-hitsA, b.Hits()-hitsB)
		}
		resume()
		t.Logf("client held the empty answer from %.0fms after the restart; sidecars frozen until %.0fms",
			csMS(held), csMS(time.Since(restarted)))
	}
	reregistered := ncAwait(t, regBack, 25*time.Second, "a and b to register again").Sub(restarted)
	for _, id := range srv.ConnectionIDs() {
		if slices.Contains(before, id) {
			t.Fatalf("connection %s survived the restart", id)
		}
	}
	for _, in := range srv.Instances("", "", "web") {
		if !in.Ephemeral || in.ConnectionID == "" {
			t.Fatalf("instance %s is not an ephemeral one of a live connection: %+v", in.Addr(), in)
		}
	}
	// Both are in the routing (whether the client kept them or read them
	// again).
	csWaitBackends(t, c, client, 15*time.Second, "a", "b")
	backInRouting := time.Since(restarted)

	// A change after the restart: a third sidecar registers.
	failed := 0
	portC := csPort(t, cc.Addr)
	appeared := ncWhen(10*time.Second, func() bool { return ncHas(srv, "", "", "web", portC) })
	served := ncFirstFrom(c, client, "c", 10*time.Second, &failed)
	ncSidecar(t, srv, cc, "web", "")
	tReg := ncAwait(t, appeared, 15*time.Second, "c's registration")
	tServed := ncAwait(t, served, 15*time.Second, "c's first answer")
	if failed != 0 {
		t.Fatalf("%d requests failed while c registered", failed)
	}
	cLatency := max(tServed.Sub(tReg), 0)
	csWaitBackends(t, c, client, 5*time.Second, "a", "b", "c")

	ok, nFailed, first, byWho := load.Stop()
	// With the load stopped (it takes picks too), the split is exact.
	ncWaitSplit(t, c, client, 5*time.Second, map[string]int{"a": 100, "b": 100, "c": 100})

	lostErrs := ncLogErrors(client, lostMsg)
	t.Logf("stop took %.0fms; outage noticed after %.0fms; after the restart (outage %s): client subscribed again at "+
		"%.0fms, a and b registered again at %.0fms, both in the routing at %.0fms; c registration -> served %.1fms; "+
		"load: %d ok %v, %d failed", csMS(stopTook), csMS(noticed), outage, csMS(resubscribed), csMS(reregistered),
		csMS(backInRouting), csMS(cLatency), ok, byWho, nFailed)
	t.Logf("client discovery errors: %d disconnected, %d empty-after-reconnect held, %d total; sidecar a events %v, b events %v",
		ncCount(lostErrs, "connection to the server lost"), ncCount(lostErrs, "empty answer right after reconnecting"),
		len(lostErrs), ncRegEvents(ga), ncRegEvents(gb))
	if nFailed != 0 {
		t.Fatalf("%d of %d requests failed across the outage and restart; first: %q", nFailed, ok+nFailed, first)
	}
	if cLatency > time.Second {
		t.Fatalf("c's registration took %s to reach the routing after the restart, want <= 1s", cLatency)
	}
	if n := len(client.logsWhere("discovery answered empty; dropping the targets after the grace unless they come back")); n != 0 {
		t.Fatalf("the client took an empty answer for authoritative %d time(s) around the restart", n)
	}
	for name, g := range map[string]*gateway{"a": ga, "b": gb} {
		if !slices.Contains(ncRegEvents(g), "reconnect") {
			t.Fatalf("sidecar %s logged no reconnect: %v", name, ncRegEvents(g))
		}
	}
}

// ncReg is one registering sidecar of a filter case.
type ncReg struct {
	name      string
	ns, group string // "" for the defaults
	cluster   string // "" for DEFAULT
	meta      string // YAML flow mapping, "" for none
}

func (r ncReg) extra() string {
	var s string
	if r.ns != "" {
		s += ", namespace: " + r.ns
	}
	if r.group != "" {
		s += ", group: " + r.group
	}
	if r.cluster != "" {
		s += ", cluster: " + r.cluster
	}
	if r.meta != "" {
		s += ", metadata: " + r.meta
	}
	return s
}

// TestNacosFilters: cluster, group, namespace and metadata filters of the
// discovery block; only the matching instances get traffic (the others
// are registered, checked in the server, and never hit).
func TestNacosFilters(t *testing.T) {
	srv := nacostest.Start(t)
	for i, tc := range []struct {
		desc string
		regs []ncReg
		disc string // extra keys of discovery.nacos
		want []string
	}{
		{
			desc: "clusters [east] keeps the east instance only",
			regs: []ncReg{{name: "a", cluster: "east"}, {name: "b", cluster: "west"}, {name: "c"}},
			disc: ", clusters: [east]",
			want: []string{"a"},
		},
		{
			desc: "clusters [east, west] keeps both, not DEFAULT",
			regs: []ncReg{{name: "a", cluster: "east"}, {name: "b", cluster: "west"}, {name: "c"}},
			disc: ", clusters: [east, west]",
			want: []string{"a", "b"},
		},
		{
			desc: "clusters [DEFAULT] keeps the instance registered without a cluster",
			regs: []ncReg{{name: "a", cluster: "east"}, {name: "c"}},
			disc: ", clusters: [DEFAULT]",
			want: []string{"c"},
		},
		{
			desc: "group blue sees blue's instance only",
			regs: []ncReg{{name: "a", group: "blue"}, {name: "b"}, {name: "c", group: "green"}},
			disc: ", group: blue",
			want: []string{"a"},
		},
		{
			desc: "the default group ignores other groups",
			regs: []ncReg{{name: "a", group: "blue"}, {name: "b"}},
			want: []string{"b"},
		},
		{
			desc: "namespace dev sees dev's instance only",
			regs: []ncReg{{name: "a", ns: "dev"}, {name: "b"}, {name: "c", ns: "prod"}},
			disc: ", namespace: dev",
			want: []string{"a"},
		},
		{
			desc: "the public namespace ignores other namespaces",
			regs: []ncReg{{name: "a", ns: "dev"}, {name: "b"}},
			want: []string{"b"},
		},
		{
			desc: "metadata {version: v2} keeps the v2 instance only",
			regs: []ncReg{{name: "a", meta: "{version: v2}"}, {name: "b", meta: "{version: v1}"}, {name: "c"}},
			disc: ", metadata: {version: v2}",
			want: []string{"a"},
		},
		{
			desc: "every metadata entry must match",
			regs: []ncReg{
				{name: "a", meta: "{version: v2, zone: z1}"}, {name: "b", meta: "{version: v2, zone: z2}"},
				{name: "c", meta: "{version: v2}"},
			},
			disc: ", metadata: {version: v2, zone: z1}",
			want: []string{"a"},
		},
		{
			desc: "all filters combine",
			regs: []ncReg{
				{name: "a", ns: "dev", group: "blue", cluster: "east", meta: "{version: v2}"},
				{name: "b", ns: "dev", group: "blue", cluster: "east", meta: "{version: v1}"},
				{name: "c", ns: "dev", group: "blue", cluster: "west", meta: "{version: v2}"},
				{name: "d", ns: "dev", cluster: "east", meta: "{version: v2}"},
				{name: "e", group: "blue", cluster: "east", meta: "{version: v2}"},
			},
			disc: ", namespace: dev, group: blue, clusters: [east], metadata: {version: v2}",
			want: []string{"a"},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			service := fmt.Sprintf("f%d", i)
			var bs []*backend
			for _, r := range tc.regs {
				b := startBackend(t, r.name, nil)
				bs = append(bs, b)
				ncSidecar(t, srv, b, service, r.extra())
			}
			for j, r := range tc.regs {
				ncWaitRegistered(t, srv, r.ns, r.group, service, bs[j])
			}
			client := startGateway(t, ncClientConfig(srv, service, tc.disc, "5s"))
			c := newClient()
			csWaitBackends(t, c, client, 15*time.Second, tc.want...)
			got := csSpread(t, c, client, 50*len(tc.want))
			for _, w := range tc.want {
				if got[w] != 50 {
					t.Fatalf("%d requests split %v, want 50 on each of %v", 50*len(tc.want), got, tc.want)
				}
			}
			for j, r := range tc.regs {
				if !slices.Contains(tc.want, r.name) && bs[j].Hits() != 0 {
					t.Fatalf("filtered-out instance %s got %d requests", r.name, bs[j].Hits())
				}
			}
		})
	}
}

// TestNacosFiltersShareOneSubscription: two upstreams of one sidecar
// watch the same service with different cluster filters; the filters are
// applied client-side over a single subscription, and each route reaches
// its own cluster only.
func TestNacosFiltersShareOneSubscription(t *testing.T) {
	srv := nacostest.Start(t)
	east := startBackend(t, "east", nil)
	west := startBackend(t, "west", nil)
	ncSidecar(t, srv, east, "web", ", cluster: east")
	ncSidecar(t, srv, west, "web", ", cluster: west")
	ncWaitRegistered(t, srv, "", "", "web", east)
	ncWaitRegistered(t, srv, "", "", "web", west)
	client := startGateway(t, fmt.Sprintf(`
upstreams:
  - name: ue
    discovery:
      nacos: {%[1]s, service: web, clusters: [east]}
  - name: uw
    discovery:
      nacos: {%[1]s, service: web, clusters: [west]}
services:
  - {name: se, host: ue, routes: [{name: re, paths: [/east]}]}
  - {name: sw, host: uw, routes: [{name: rw, paths: [/west]}]}
`, ncServers(srv)))
	c := newClient()
	for _, tc := range []struct{ path, want string }{{"/east", "east"}, {"/west", "west"}} {
		waitFor(t, 15*time.Second, tc.path+" to reach "+tc.want, func() bool {
			status, who, _, _, err := tryGet(c, client.url(tc.path))
			return err == nil && status == http.StatusOK && who == tc.want
		})
		for i := 0; i < 50; i++ {
			status, who, body, _, err := tryGet(c, client.url(tc.path))
			if err != nil || status != http.StatusOK || who != tc.want {
				t.Fatalf("GET %s: %d %q %v %s, want 200 from %s", tc.path, status, who, err, body, tc.want)
			}
		}
	}
	if n := srv.Subscribers(nacostest.ServiceKey{Service: "web"}); n != 1 {
		t.Fatalf("%d connections subscribed to web, want 1 (one shared client, one subscription)", n)
	}
	if n := srv.Connections(); n != 3 {
		t.Fatalf("%d connections, want 3 (two registering sidecars, one shared client)", n)
	}
}

// TestNacosHealthAndEnabled: an instance marked unhealthy or disabled in
// Nacos (or given weight 0) leaves the routing within 1 s and gets no
// traffic; it comes back, at its share, when restored.
func TestNacosHealthAndEnabled(t *testing.T) {
	srv := nacostest.Start(t)
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	ncSidecar(t, srv, a, "web", "")
	ncSidecar(t, srv, b, "web", "")
	ncWaitRegistered(t, srv, "", "", "web", a)
	ncWaitRegistered(t, srv, "", "", "web", b)
	client := startGateway(t, ncClientConfig(srv, "web", "", "5s"))
	c := newClient()
	key := nacostest.ServiceKey{Service: "web"}
	for _, tc := range []struct {
		desc string
		set  func(on bool) error
	}{
		{"unhealthy (SetHealthy false)", func(on bool) error { return srv.SetHealthy(key, b.Addr, on) }},
		{"disabled (SetEnabled false)", func(on bool) error { return srv.SetEnabled(key, b.Addr, on) }},
		{"weight 0 (SetWeight 0)", func(on bool) error {
			w := 0.0
			if on {
				w = 1
			}
			return srv.SetWeight(key, b.Addr, w)
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			ncWaitSplit(t, c, client, 15*time.Second, map[string]int{"a": 20, "b": 20})
			t0 := time.Now()
			if err := tc.set(false); err != nil {
				t.Fatal(err)
			}
			off := csTimeToVanish(t, c, client, t0, "b")
			hits := b.Hits()
			if got := csSpread(t, c, client, 100); got["a"] != 100 {
				t.Fatalf("100 requests split %v, want all on a", got)
			}
			if b.Hits() != hits {
				t.Fatalf("b was hit %d times while out", b.Hits()-hits)
			}
			// A client subscribing now reads the subscribe answer (which
			// carries disabled instances too, as Nacos's does) rather
			// than a push: b stays out there as well.
			fresh := startGateway(t, ncClientConfig(srv, "web", "", "5s"))
			csWaitBackends(t, c, fresh, 15*time.Second, "a")
			if got := csSpread(t, c, fresh, 100); got["a"] != 100 {
				t.Fatalf("a client subscribing while b is out split 100 requests %v, want all on a", got)
			}
			if b.Hits() != hits {
				t.Fatalf("b was hit %d times while out (through a new client)", b.Hits()-hits)
			}
			t1 := time.Now()
			if err := tc.set(true); err != nil {
				t.Fatal(err)
			}
			on := ncTimeToAppear(t, c, client, t1, "b")
			ncWaitSplit(t, c, client, 5*time.Second, map[string]int{"a": 20, "b": 20})
			ncWaitSplit(t, c, fresh, 5*time.Second, map[string]int{"a": 20, "b": 20})
			t.Logf("change -> b out of the routing %.1fms; restore -> b served %.1fms", csMS(off), csMS(on))
			if off > time.Second || on > time.Second {
				t.Fatalf("took %s to leave and %s to come back, want <= 1s each", off, on)
			}
		})
	}
}

// TestNacosWeights: the weights the sidecars register (floats, scaled
// ×100) steer an exact round-robin split.
func TestNacosWeights(t *testing.T) {
	srv := nacostest.Start(t)
	for i, tc := range []struct {
		desc   string
		wa, wb string
		want   map[string]int
	}{
		{"weights 3.0 and 1.0 split 300/100 of 400", "3.0", "1.0", map[string]int{"a": 300, "b": 100}},
		{"float weights 0.5 and 1.5 split 1:3 (50 and 150)", "0.5", "1.5", map[string]int{"a": 100, "b": 300}},
		{"weights 1.0 and 1.0 alternate", "1.0", "1.0", map[string]int{"a": 50, "b": 50}},
		{"weight 0.001 still counts as 1 against 1.23 (123)", "1.23", "0.001", map[string]int{"a": 123, "b": 1}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			service := fmt.Sprintf("w%d", i)
			a := startBackend(t, "a", nil)
			b := startBackend(t, "b", nil)
			ncSidecar(t, srv, a, service, ", weight: "+tc.wa)
			ncSidecar(t, srv, b, service, ", weight: "+tc.wb)
			ncWaitRegistered(t, srv, "", "", service, a)
			ncWaitRegistered(t, srv, "", "", service, b)
			for _, in := range srv.Instances("", "", service) {
				want := tc.wa
				if in.Port == csPort(t, b.Addr) {
					want = tc.wb
				}
				if w, _ := strconv.ParseFloat(want, 64); in.Weight != w {
					t.Fatalf("instance %s registered with weight %v, want %s", in.Addr(), in.Weight, want)
				}
			}
			client := startGateway(t, ncClientConfig(srv, service, "", "5s"))
			c := newClient()
			ncWaitSplit(t, c, client, 15*time.Second, tc.want)
		})
	}
}

// TestNacosRegistrarCheckGatesReady: a sidecar registering its service in
// Nacos with a check of the local service answers /ready 503 while that
// check fails, and 200 once it passes (a readiness probe must keep traffic
// away from a sidecar whose own service is down, whichever registry it
// registers in).
func TestNacosRegistrarCheckGatesReady(t *testing.T) {
	srv := nacostest.Start(t)
	var healthy atomic.Bool
	b := startBackend(t, "b", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	g := ncSidecar(t, srv, b, "web", fmt.Sprintf(", check: {health_url: %q, interval: 100ms, timeout: 1s}", "http://"+b.Addr+"/health"))
	var code int
	var msg string
	waitFor(t, 10*time.Second, "/ready 503 while the local service fails its check", func() bool {
		code, msg = g.ready(t)
		return code == http.StatusServiceUnavailable && strings.Contains(msg, "the local service is not healthy")
	})
	healthy.Store(true)
	waitFor(t, 10*time.Second, "/ready 200 once the check passes", func() bool {
		code, msg = g.ready(t)
		return code == http.StatusOK
	})
}
