package itest

// Fleet mode through the real binary: two sidecars keep their admin layer
// at one Consul KV key (admin.store: consul) of a real agent
// (internal/consultest). A change made on one is adopted by the other
// through its blocking-query watch (state/consulstore.go), and concurrent
// writes on both are serialised by check-and-set on the key's
// ModifyIndex (gateway/apply.go Mutate retries on a conflict).

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/internal/consultest"
	"github.com/outrigger-gw/outrigger/state"
)

// flBody: upstreams primary and canary (one target each) for service s on
// /s, and upstream w (targets x and y, weight 100 each) for service sw on
// /w.
func flBody(p, c, x, y string) string {
	return fmt.Sprintf(`
upstreams:
  - {name: primary, targets: [{target: %s}]}
  - {name: canary, targets: [{target: %s}]}
  - {name: w, targets: [{target: %s, weight: 100}, {target: %s, weight: 100}]}
services:
  - {name: s, host: primary, routes: [{name: rs, paths: [/s]}]}
  - {name: sw, host: w, routes: [{name: rw, paths: [/w]}]}
`, p, c, x, y)
}

// flPair is two sidecars sharing one admin layer in a fresh key of a real
// Consul agent, both on flBody's file.
type flPair struct {
	ag         *consultest.Agent
	key        string
	x          *backend // upstream w's first target
	ga, gb     *gateway
	apiA, apiB *adAPI
}

func flStartPair(t *testing.T) flPair {
	t.Helper()
	f := flPair{ag: consultest.Start(t), key: fmt.Sprintf("outrigger/test-%016x", rand.Uint64())}
	p := startBackend(t, "primary", nil)
	cb := startBackend(t, "canary", nil)
	f.x = startBackend(t, "x", nil)
	y := startBackend(t, "y", nil)
	extra := fmt.Sprintf("  store: consul\n  consul:\n    address: %s\n    key: %s\n", f.ag.HTTPAddr, f.key)
	body := flBody(p.Addr, cb.Addr, f.x.Addr, y.Addr)
	f.ga = adNewNode(t, extra, body).start()
	f.gb = adNewNode(t, extra, body).start()
	f.apiA, f.apiB = adAdmin(f.ga), adAdmin(f.gb)
	return f
}

func TestFleetConsulConvergence(t *testing.T) {
	f := flStartPair(t)
	ag, key, x, gb, apiA, apiB := f.ag, f.key, f.x, f.gb, f.apiA, f.apiB
	c := newClient()

	// xShare sends 4 consecutive requests to B's /w and counts x: round
	// robin gives exactly 2 at 100:100 and 3 at 300:100 in any 4 in a row.
	xShare := func() (int, error) {
		n := 0
		for range 4 {
			status, who, err := adHit(c, gb.url("/w"))
			if err != nil || status != 200 {
				return 0, fmt.Errorf("status %d: %v", status, err)
			}
			if who == "x" {
				n++
			}
		}
		return n, nil
	}
	type change struct {
		desc  string
		write func(t *testing.T)
		// onAdmin and onProxy report whether B's admin GET and B's proxy
		// show the change.
		onAdmin func(t *testing.T) bool
		onProxy func(t *testing.T) bool
	}
	canary := func(pct int) change {
		return change{
			desc: fmt.Sprintf("canary of s at %d%%", pct),
			write: func(t *testing.T) {
				if pct == 100 {
					// PUT creates the canary the first time (201), then replaces it.
					r := apiA.form(t, 0, http.MethodPut, "/services/s/canary", "upstream", "canary", "percent", "100")
					if r.status != http.StatusCreated && r.status != http.StatusOK {
						t.Fatalf("PUT canary on A: %d %s", r.status, r.raw)
					}
				} else {
					apiA.form(t, http.StatusOK, http.MethodPatch, "/services/s/canary", "percent", fmt.Sprint(pct))
				}
			},
			onAdmin: func(t *testing.T) bool {
				r := apiB.get(t, 0, "/services/s/canary")
				return r.status == 200 && r.num("percent") == float64(pct)
			},
			onProxy: func(t *testing.T) bool {
				status, who, err := adHit(c, gb.url("/s"))
				if err != nil || status != 200 {
					t.Fatalf("B's proxy: %d %v", status, err)
				}
				return who == map[bool]string{true: "canary", false: "primary"}[pct == 100]
			},
		}
	}
	weight := func(w int) change {
		want := map[int]int{100: 2, 300: 3}[w]
		return change{
			desc: fmt.Sprintf("weight of x at %d", w),
			write: func(t *testing.T) {
				apiA.form(t, http.StatusOK, http.MethodPatch, "/upstreams/w/targets/"+x.Addr, "weight", fmt.Sprint(w))
			},
			onAdmin: func(t *testing.T) bool {
				return apiB.get(t, http.StatusOK, "/upstreams/w/targets/"+x.Addr).num("weight") == float64(w)
			},
			onProxy: func(t *testing.T) bool {
				n, err := xShare()
				if err != nil {
					t.Fatalf("B's proxy: %v", err)
				}
				return n == want
			},
		}
	}

	// Before any change B routes as its file says.
	if n, err := xShare(); err != nil || n != 2 {
		t.Fatalf("before: x got %d of 4 on B (%v), want 2", n, err)
	}

	t.Run("a change on A reaches B's admin and proxy within 1s", func(t *testing.T) {
		var changes []change
		for range 4 {
			changes = append(changes, canary(100), weight(300), canary(0), weight(100))
		}
		var adminLat, proxyLat []time.Duration
		for i, ch := range changes {
			t0 := time.Now()
			ch.write(t)
			ack := time.Since(t0)
			var dAdmin, dProxy time.Duration
			end := t0.Add(5 * time.Second)
			for dAdmin == 0 || dProxy == 0 {
				if time.Now().After(end) {
					t.Fatalf("change %d (%s): not visible on B after 5s (admin %s, proxy %s)", i, ch.desc, dAdmin, dProxy)
				}
				if dAdmin == 0 && ch.onAdmin(t) {
					dAdmin = time.Since(t0)
				}
				if dProxy == 0 && ch.onProxy(t) {
					dProxy = time.Since(t0)
				}
			}
			t.Logf("change %2d %-22s ack on A %6.1fms, B admin %6.1fms, B proxy %6.1fms", i, ch.desc, csMS(ack), csMS(dAdmin), csMS(dProxy))
			adminLat, proxyLat = append(adminLat, dAdmin), append(proxyLat, dProxy)
			if dAdmin > time.Second || dProxy > time.Second {
				t.Errorf("change %d (%s) took admin %s, proxy %s to reach B, want <= 1s", i, ch.desc, dAdmin, dProxy)
			}
		}
		t.Logf("fleet convergence A→B over %d changes (from sending the PATCH): admin GET p50=%.1fms max=%.1fms; proxy p50=%.1fms max=%.1fms",
			len(changes), csMS(csPercentile(adminLat, 50)), csMS(slices.Max(adminLat)), csMS(csPercentile(proxyLat, 50)), csMS(slices.Max(proxyLat)))
	})

	t.Run("concurrent writes on A and B both survive", func(t *testing.T) {
		const each = 10
		var wg sync.WaitGroup
		errs := make(chan string, 2*each)
		for _, side := range []struct {
			name string
			api  *adAPI
		}{{"a", apiA}, {"b", apiB}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					r, err := side.api.try(http.MethodPost, "/upstreams", adFormType, adForm("name", fmt.Sprintf("from_%s_%d", side.name, i)))
					if err != nil || r.status != http.StatusCreated {
						errs <- fmt.Sprintf("%s %d: %d %v %s", side.name, i, r.status, err, r.raw)
					}
				}
			}()
		}
		// Meanwhile, different entities again: a target on each side.
		apiA.form(t, http.StatusCreated, http.MethodPost, "/upstreams/w/targets", "target", "127.0.0.1:7001")
		apiB.form(t, http.StatusCreated, http.MethodPost, "/upstreams/primary/targets", "target", "127.0.0.1:7002")
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Errorf("write failed: %s", e)
		}
		var want []string
		for _, s := range []string{"a", "b"} {
			for i := range each {
				want = append(want, fmt.Sprintf("from_%s_%d", s, i))
			}
		}
		sort.Strings(want)
		created := func(api *adAPI) []string {
			var got []string
			for _, u := range api.all(t, "/upstreams") {
				if n := u["name"].(string); strings.HasPrefix(n, "from_") {
					got = append(got, n)
				}
			}
			sort.Strings(got)
			return got
		}
		hasTarget := func(api *adAPI, up, addr string) bool {
			for _, tg := range api.all(t, "/upstreams/"+up+"/targets") {
				if tg["target"] == addr {
					return true
				}
			}
			return false
		}
		for _, side := range []struct {
			name string
			api  *adAPI
		}{{"A", apiA}, {"B", apiB}} {
			waitFor(t, 5*time.Second, side.name+" sees every write", func() bool {
				return slices.Equal(created(side.api), want) && hasTarget(side.api, "w", "127.0.0.1:7001") && hasTarget(side.api, "primary", "127.0.0.1:7002")
			})
		}
		// And the key holds them all.
		pair, _, err := ag.Client.KV().Get(key, nil)
		if err != nil || pair == nil {
			t.Fatalf("consul key %s: %v", key, err)
		}
		var doc state.Doc
		if err := json.Unmarshal(pair.Value, &doc); err != nil {
			t.Fatal(err)
		}
		for _, n := range want {
			if doc.Upstreams[n] == nil {
				t.Fatalf("the Consul key lacks upstream %s", n)
			}
		}
		t.Logf("%d concurrent creations (A and B) plus a target on each: all on both sidecars and in the key (ModifyIndex %d)", 2*each, pair.ModifyIndex)
	})
}

// flKey reads the fleet's Consul key: its Doc and ModifyIndex (nil and 0
// while the key is absent).
func flKey(t *testing.T, ag *consultest.Agent, key string) (*state.Doc, uint64) {
	t.Helper()
	pair, _, err := ag.Client.KV().Get(key, &api.QueryOptions{RequireConsistent: true})
	if err != nil {
		t.Fatalf("consul key %s: %v", key, err)
	}
	if pair == nil {
		return nil, 0
	}
	var doc state.Doc
	if err := json.Unmarshal(pair.Value, &doc); err != nil {
		t.Fatalf("consul key %s: %v", key, err)
	}
	return &doc, pair.ModifyIndex
}

// flLayer is the admin_layer part of GET /status.
type flLayer struct {
	Store        string `json:"store"`
	State        string `json:"state"`
	Version      uint64 `json:"version"`
	StoreVersion uint64 `json:"store_version"`
	Error        string `json:"error"`
}

func flStatus(t *testing.T, g *gateway) flLayer {
	t.Helper()
	var st struct {
		Layer flLayer `json:"admin_layer"`
	}
	getJSON(t, "http://"+g.AdminAddr+"/status", &st)
	return st.Layer
}

// flMetric returns the value of one sample line of GET /metrics (series
// is the name with its labels, as exposed), or -1 when it is absent.
func flMetric(t *testing.T, g *gateway, series string) float64 {
	t.Helper()
	raw := adAdmin(g).get(t, http.StatusOK, "/metrics").raw
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}

// flHasTarget reports whether the upstream's target list holds addr.
func flHasTarget(t *testing.T, a *adAPI, up, addr string) bool {
	for _, tg := range a.all(t, "/upstreams/"+up+"/targets") {
		if tg["target"] == addr {
			return true
		}
	}
	return false
}

// TestFleetLayerThatDoesNotBuild: two sidecars whose configuration files
// differ (G1 has upstreams u1 and extra, G2 only u1). G1's writes make a
// layer G2 cannot build; G2 keeps its last good configuration, says so
// (log once, /status, metric) and refuses its own admin writes with 409,
// so G1's acknowledged writes are never overwritten by a writer that did
// not see them. Once the layer builds again on G2, G2 adopts it and its
// writes go on top of it.
func TestFleetLayerThatDoesNotBuild(t *testing.T) {
	ag := consultest.Start(t)
	key := fmt.Sprintf("outrigger/test-%016x", rand.Uint64())
	b1 := startBackend(t, "b1", nil)
	b2 := startBackend(t, "b2", nil)
	b3 := startBackend(t, "b3", nil)
	extra := fmt.Sprintf("  store: consul\n  consul:\n    address: %s\n    key: %s\n", ag.HTTPAddr, key)
	svc := "services:\n  - {name: s, host: u1, routes: [{name: rs, paths: [/s]}]}\n"
	g1 := adNewNode(t, extra, fmt.Sprintf("upstreams:\n  - {name: u1, targets: [{target: %s}]}\n  - {name: extra, targets: [{target: %s}]}\n%s", b1.Addr, b2.Addr, svc)).start()
	g2 := adNewNode(t, extra, fmt.Sprintf("upstreams:\n  - {name: u1, targets: [{target: %s}]}\n%s", b1.Addr, svc)).start()
	api1, api2 := adAdmin(g1), adAdmin(g2)
	c := newClient()

	// G1's two acknowledged writes: an override on extra, a target on u1.
	ov := api1.form(t, http.StatusCreated, http.MethodPost, "/upstreams/extra/overrides", "target", b2.Addr, "weight", "5")
	api1.form(t, http.StatusCreated, http.MethodPost, "/upstreams/u1/targets", "target", b3.Addr)
	_, bad := flKey(t, ag, key)

	waitFor(t, 5*time.Second, "G2 to log the layer it cannot build", func() bool {
		return slices.ContainsFunc(adLogsPrefixed(g2, "admin state does not apply to this configuration"), func(l map[string]any) bool {
			return l["version"] == float64(bad)
		})
	})
	// G2 serves its last good configuration: u1 with b1 only.
	for i := range 4 {
		if status, who, err := adHit(c, g2.url("/s")); err != nil || status != 200 || who != "b1" {
			t.Fatalf("G2's proxy, request %d: %d %q %v, want 200 from b1", i, status, who, err)
		}
	}

	// G2's own write: refused, and the key keeps G1's writes.
	r, err := api2.try(http.MethodPatch, "/upstreams/u1/targets/"+b1.Addr, adFormType, adForm("weight", "42"))
	if err != nil {
		t.Fatal(err)
	}
	doc, v := flKey(t, ag, key)
	if doc == nil || len(doc.Overrides) != 1 || doc.Overrides[0].Upstream != "extra" {
		t.Errorf("after G2's PATCH the key (version %d) lost G1's override on extra: %+v", v, doc)
	}
	if doc == nil || doc.Upstreams["u1"] == nil || !slices.ContainsFunc(doc.Upstreams["u1"].Targets, func(tg config.Target) bool { return tg.Target == b3.Addr }) {
		t.Errorf("after G2's PATCH the key (version %d) lost G1's target %s on u1", v, b3.Addr)
	}
	if r.status != http.StatusConflict || !strings.Contains(r.str("message"), `upstream "extra" does not exist`) {
		t.Fatalf("G2's PATCH while its layer does not build: %d %s, want 409 naming upstream extra", r.status, r.raw)
	}
	if v != bad {
		t.Errorf("the key moved from version %d to %d although G2's write was refused", bad, v)
	}
	if !flHasTarget(t, api1, "u1", b3.Addr) || len(api1.all(t, "/upstreams/extra/overrides")) != 1 {
		t.Errorf("G1 lost its own writes")
	}
	st := flStatus(t, g2)
	if st.State != "not_applied" || !strings.Contains(st.Error, `upstream "extra" does not exist`) || st.Store != "consul" || st.Version >= bad {
		t.Errorf("G2's /status admin_layer = %+v, want state not_applied naming upstream extra, version < %d", st, bad)
	}
	if v := flMetric(t, g2, `outrigger_admin_layer_state{state="not_applied"}`); v != 1 {
		t.Errorf("G2's outrigger_admin_layer_state{state=\"not_applied\"} = %v, want 1", v)
	}
	// Logged once per version (G1's two writes are two versions), and
	// never "applied".
	seen := map[float64]int{}
	for _, l := range adLogsPrefixed(g2, "admin state does not apply to this configuration") {
		seen[l["version"].(float64)]++
	}
	for ver, n := range seen {
		if n != 1 {
			t.Errorf("G2 logged version %v, which does not build, %d times, want once", ver, n)
		}
	}
	if seen[float64(bad)] != 1 {
		t.Errorf("G2 did not log version %d, which does not build", bad)
	}
	for _, l := range g2.logsWhere("admin state changed by another sidecar; applied") {
		if l["version"] == float64(bad) {
			t.Errorf("G2 logged version %d as applied: %v", bad, l)
		}
	}

	// G1 removes what G2 cannot build: G2 adopts the layer (with G1's
	// target), and its own writes go on top of it.
	api1.do(t, http.StatusNoContent, http.MethodDelete, "/upstreams/extra/overrides/"+ov.str("id"), "", "")
	waitFor(t, 5*time.Second, "G2 to apply the layer again", func() bool {
		return flStatus(t, g2).State == "in_sync" && flHasTarget(t, api2, "u1", b3.Addr)
	})
	if v := flMetric(t, g2, `outrigger_admin_layer_state{state="in_sync"}`); v != 1 {
		t.Errorf("G2's outrigger_admin_layer_state{state=\"in_sync\"} = %v, want 1", v)
	}
	if n := len(adLogsPrefixed(g2, "admin state applies to this configuration again")); n != 1 {
		t.Errorf("G2 logged the recovery %d times, want once", n)
	}
	api2.form(t, http.StatusOK, http.MethodPatch, "/upstreams/u1/targets/"+b1.Addr, "weight", "42")
	waitFor(t, 5*time.Second, "G1 to see G2's weight", func() bool {
		return api1.get(t, http.StatusOK, "/upstreams/u1/targets/"+b1.Addr).num("weight") == 42
	})
	if !flHasTarget(t, api1, "u1", b3.Addr) || !flHasTarget(t, api2, "u1", b3.Addr) {
		t.Errorf("G1's target %s vanished after G2's write", b3.Addr)
	}
	doc, v = flKey(t, ag, key)
	if doc == nil || doc.Upstreams["u1"] == nil || len(doc.Upstreams["u1"].Targets) != 2 || len(doc.Overrides) != 0 {
		t.Fatalf("the key (version %d) after G2's write: %+v, want u1 with b1 (42) and b3, no override", v, doc)
	}
	t.Logf("layer version %d refused on G2 (its write answered 409, key untouched); after G1's fix G2 wrote version %d on top of it", bad, v)
}

// TestFleetKeyLossRepublished: the fleet's key disappears (deleted, then
// a -dev Consul restart that loses every key). Neither sidecar takes that
// for an empty layer: both keep every override and target, and the last
// known layer is published again with a create-only check-and-set (one
// sidecar wins, the other adopts its copy). An intentional reset is DELETE
// /state.
func TestFleetKeyLossRepublished(t *testing.T) {
	f := flStartPair(t)
	ag, key, x, ga, gb, apiA, apiB := f.ag, f.key, f.x, f.ga, f.gb, f.apiA, f.apiB

	const added = 50 // the file's 2 targets of w plus these
	for i := range added {
		apiA.form(t, http.StatusCreated, http.MethodPost, "/upstreams/w/targets", "target", fmt.Sprintf("127.0.0.1:%d", 20000+i), "weight", "1")
	}
	apiA.form(t, http.StatusCreated, http.MethodPost, "/upstreams/w/overrides", "target", x.Addr, "weight", "7")
	want := added + 2
	count := func(a *adAPI) int { return len(a.all(t, "/upstreams/w/targets")) }
	waitFor(t, 5*time.Second, "B to hold every target", func() bool { return count(apiB) == want })
	before, _ := flKey(t, ag, key)
	beforeJSON, _ := json.Marshal(before)

	lose := []struct {
		desc string
		do   func()
	}{
		{"key deleted", func() {
			if _, err := ag.Client.KV().Delete(key, nil); err != nil {
				t.Fatal(err)
			}
		}},
		{"dev agent restarted (every key lost)", ag.Restart},
	}
	publishes, losses := 0, 0
	for _, l := range lose {
		t.Run(l.desc, func(t *testing.T) {
			_, lostAt := flKey(t, ag, key)
			l.do()
			t0 := time.Now()
			var doc *state.Doc
			var v uint64
			// Until the key is back, poll both sidecars: neither may lose
			// a target at any moment.
			for i := 0; doc == nil; i++ {
				if time.Since(t0) > 20*time.Second {
					t.Fatalf("the key was not published again within 20s (%d polls)", i)
				}
				for _, side := range []struct {
					name string
					api  *adAPI
				}{{"A", apiA}, {"B", apiB}} {
					if r, err := side.api.try(http.MethodGet, "/upstreams/w/targets?size=1000", "", ""); err == nil && len(r.data()) != want {
						t.Fatalf("%s lists %d targets of w after the loss, want %d", side.name, len(r.data()), want)
					}
				}
				doc, v = flKey(t, ag, key)
				if doc == nil {
					time.Sleep(20 * time.Millisecond)
				}
			}
			got, _ := json.Marshal(doc)
			if string(got) != string(beforeJSON) {
				t.Fatalf("the key (version %d) holds\n%s\nwant the last known layer\n%s", v, got, beforeJSON)
			}
			t.Logf("the key (%d before) was back at version %d after %.0fms, holding all %d targets", lostAt, v, csMS(time.Since(t0)), want)
			for _, side := range []struct {
				name string
				g    *gateway
				api  *adAPI
			}{{"A", ga, apiA}, {"B", gb, apiB}} {
				// A sidecar whose watch reached the restarted agent before
				// it saw the loss waits out one blocking query (5 s) first.
				waitFor(t, 10*time.Second, side.name+" in sync with version "+fmt.Sprint(v), func() bool {
					st := flStatus(t, side.g)
					return st.State == "in_sync" && st.Version == v && st.StoreVersion == v
				})
				if n := count(side.api); n != want {
					t.Errorf("%s lists %d targets of w, want %d", side.name, n, want)
				}
				if w := side.api.get(t, http.StatusOK, "/upstreams/w/targets/"+x.Addr).num("effective_weight"); w != 7 {
					t.Errorf("%s: x's effective weight %v, want 7 (the override)", side.name, w)
				}
			}
			// One sidecar published the layer again; the other adopted it.
			n := len(ga.logsWhere("admin state: published the last known layer again")) + len(gb.logsWhere("admin state: published the last known layer again"))
			if n != publishes+1 {
				t.Errorf("%d publications of the last known layer, want exactly one", n-publishes)
			}
			publishes = n
			// The loss itself is logged, as an error, by whoever saw it.
			const lostMsg = "admin state: the store no longer holds the admin layer; keeping the last known one and publishing it again"
			lost := append(ga.logsWhere(lostMsg), gb.logsWhere(lostMsg)...)
			if len(lost) <= losses {
				t.Errorf("no sidecar logged the loss of the key")
			}
			for _, l := range lost {
				if l["level"] != "error" {
					t.Errorf("the loss was logged at level %v, want error: %v", l["level"], l)
				}
			}
			losses = len(lost)
		})
	}

	t.Run("DELETE /state resets the layer fleet-wide", func(t *testing.T) {
		apiB.do(t, http.StatusNoContent, http.MethodDelete, "/state", "", "")
		for _, side := range []struct {
			name string
			api  *adAPI
		}{{"A", apiA}, {"B", apiB}} {
			waitFor(t, 5*time.Second, side.name+" back to the file's targets", func() bool {
				return count(side.api) == 2 && len(side.api.all(t, "/upstreams/w/overrides")) == 0
			})
		}
		doc, v := flKey(t, ag, key)
		if doc == nil || v == 0 || len(doc.Upstreams) != 0 || len(doc.Overrides) != 0 {
			t.Fatalf("the key after the reset: version %d, %+v; want an empty layer stored", v, doc)
		}
		if st := flStatus(t, ga); st.State != "in_sync" || st.Version != v {
			t.Errorf("A after the reset: %+v, want in_sync at version %d", st, v)
		}
	})
}
