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

func TestFleetConsulConvergence(t *testing.T) {
	ag := consultest.Start(t)
	key := fmt.Sprintf("outrigger/test-%016x", rand.Uint64())
	p := startBackend(t, "primary", nil)
	cb := startBackend(t, "canary", nil)
	x := startBackend(t, "x", nil)
	y := startBackend(t, "y", nil)
	extra := fmt.Sprintf("  store: consul\n  consul:\n    address: %s\n    key: %s\n", ag.HTTPAddr, key)
	body := flBody(p.Addr, cb.Addr, x.Addr, y.Addr)
	ga := adNewNode(t, extra, body).start()
	gb := adNewNode(t, extra, body).start()
	apiA, apiB := adAdmin(ga), adAdmin(gb)
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
