package itest

// The upstream debug view (GET /upstreams/{u}/debug) through the real
// binary: a static upstream whose targets are marked, overridden, ramped
// and loaded, a DNS-discovered one, and the layer generations.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dvView is the part of the debug view the test reads.
type dvView struct {
	Upstream  string `json:"upstream"`
	Layers    *struct{ File, Admin, Config uint64 }
	LayersNow *struct{ File, Admin, Config uint64 } `json:"layers_now"`
	Discovery map[string]uint64                     `json:"discovery_generations"`
	Targets   []struct {
		Target          string            `json:"target"`
		Source          string            `json:"source"`
		Weight          int               `json:"weight"`
		EffectiveWeight int               `json:"effective_weight"`
		Override        string            `json:"override"`
		Eligible        bool              `json:"eligible"`
		Locality        map[string]string `json:"locality"`
		Meta            map[string]string `json:"meta"`
		Health          struct {
			Healthy bool       `json:"healthy"`
			Reason  string     `json:"reason"`
			Since   *time.Time `json:"since"`
			Mark    string     `json:"mark"`
			Ejected bool       `json:"ejected"`
		} `json:"health"`
		SlowStart *struct {
			Since  time.Time `json:"since"`
			Factor float64   `json:"factor"`
		} `json:"slow_start"`
		InFlight int64    `json:"in_flight"`
		Requests uint64   `json:"requests"`
		EWMA     *float64 `json:"latency_ewma_ms"`
	} `json:"targets"`
}

func dvGet(t testing.TB, g *gateway, up string) dvView {
	t.Helper()
	r := adAdmin(g).get(t, http.StatusOK, "/upstreams/"+up+"/debug")
	var v dvView
	if err := json.Unmarshal(r.raw, &v); err != nil {
		t.Fatalf("debug view: %v\n%s", err, r.raw)
	}
	if v.Upstream != up {
		t.Fatalf("debug view of %q: %s", v.Upstream, r.raw)
	}
	return v
}

// target returns the debug entry of addr, failing the test without one.
func (v dvView) target(t testing.TB, addr string) int {
	t.Helper()
	for i := range v.Targets {
		if v.Targets[i].Target == addr {
			return i
		}
	}
	t.Fatalf("debug view of %s has no target %s: %+v", v.Upstream, addr, v.Targets)
	return -1
}

func TestUpstreamDebugView(t *testing.T) {
	const srvName = "_web._tcp.outrigger.test"
	release := make(chan struct{})
	holding := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/hold") { // with or without the route's prefix
				select {
				case <-release:
				case <-time.After(20 * time.Second):
				}
			}
			w.Header().Set("X-Backend", name)
			fmt.Fprint(w, name)
		})
	}
	a, b := startBackend(t, "a", holding("a")), startBackend(t, "b", holding("b"))
	c := startBackend(t, "c", nil)
	s := dnStart(t, srvName)
	s.set(dns.RcodeSuccess, 1, dnSRV{10, 5, c})
	cfg := fmt.Sprintf(`
upstreams:
  - name: st
    slow_start: {window: 120s, aggression: 1.0, min_weight_percent: 10}
    targets: [{target: %s, weight: 100}, {target: %s, weight: 100}]
  - name: u
    discovery:
      dns_srv: {name: %s, resolver: "%s", min_ttl: 1s, max_ttl: 5s}
services:
  - {name: s, host: st, routes: [{name: r, paths: [/st]}]}
  - {name: d, host: u, routes: [{name: rd, paths: [/d]}]}
`, a.Addr, b.Addr, srvName, s.Addr)
	g := startGateway(t, cfg)
	api := adAdmin(g)
	hc := newClient()

	v0 := dvGet(t, g, "st")
	if v0.Layers == nil || v0.LayersNow == nil || v0.Layers.File != 1 || v0.LayersNow.File != 1 {
		t.Fatalf("layers at start: %+v %+v", v0.Layers, v0.LayersNow)
	}
	for _, addr := range []string{a.Addr, b.Addr} {
		tg := v0.Targets[v0.target(t, addr)]
		if tg.Source != "static" || tg.Weight != 100 || tg.EffectiveWeight != 100 || !tg.Eligible || !tg.Health.Healthy ||
			tg.Health.Reason != "initial" || tg.Requests != 0 || tg.EWMA != nil || tg.SlowStart != nil {
			t.Fatalf("%s at start: %+v", addr, tg)
		}
	}

	t.Run("counters after traffic", func(t *testing.T) {
		for i := range 10 {
			if st, _, _ := get(t, hc, g.url("/st/x")); st != http.StatusOK {
				t.Fatalf("request %d: %d", i, st)
			}
		}
		done := make(chan int, 1)
		go func() {
			resp, err := newClient().Get(g.url("/st/hold"))
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		var v dvView
		// The counters are separate atomics, bumped one after the other
		// when the request is sent: wait for both.
		waitFor(t, 10*time.Second, "one request in flight, 11 sent", func() bool {
			v = dvGet(t, g, "st")
			return v.Targets[0].InFlight+v.Targets[1].InFlight == 1 && v.Targets[0].Requests+v.Targets[1].Requests == 11
		})
		for _, tg := range v.Targets {
			if tg.Requests >= 5 && (tg.EWMA == nil || *tg.EWMA <= 0) {
				t.Fatalf("%s: no latency EWMA after %d requests", tg.Target, tg.Requests)
			}
		}
		close(release)
		if st := <-done; st != http.StatusOK {
			t.Fatalf("held request: %d", st)
		}
		waitFor(t, 10*time.Second, "nothing in flight", func() bool {
			v = dvGet(t, g, "st")
			return v.Targets[0].InFlight+v.Targets[1].InFlight == 0
		})
	})

	var marked dvView
	t.Run("a target marked unhealthy shows reason and since", func(t *testing.T) {
		before := time.Now().Add(-time.Second) // the since stamp has second precision at worst
		api.form(t, http.StatusNoContent, http.MethodPut, "/upstreams/st/targets/"+b.Addr+"/unhealthy")
		after := time.Now().Add(time.Second)
		marked = dvGet(t, g, "st")
		tg := marked.Targets[marked.target(t, b.Addr)]
		if tg.Health.Healthy || tg.Health.Reason != "manual" || tg.Health.Mark != "unhealthy" || tg.Health.Since == nil ||
			tg.Health.Since.Before(before) || tg.Health.Since.After(after) || tg.Eligible || tg.EffectiveWeight != 0 {
			t.Fatalf("marked target: %+v (since %v, marked between %v and %v)", tg, tg.Health.Since, before, after)
		}
		if marked.LayersNow.Admin <= v0.LayersNow.Admin || marked.LayersNow.Config <= v0.LayersNow.Config ||
			*marked.Layers != *marked.LayersNow || marked.LayersNow.File != v0.LayersNow.File {
			t.Fatalf("layers after an admin change: built %+v now %+v (before %+v)", marked.Layers, marked.LayersNow, v0.LayersNow)
		}
	})

	t.Run("a weight override shows the effective weight", func(t *testing.T) {
		ov := api.json(t, http.StatusCreated, http.MethodPost, "/upstreams/st/overrides", map[string]any{"target": a.Addr, "weight": 300})
		v := dvGet(t, g, "st")
		tg := v.Targets[v.target(t, a.Addr)]
		if tg.Weight != 100 || tg.EffectiveWeight != 300 || tg.Override != ov.str("id") || !tg.Eligible {
			t.Fatalf("overridden target: %+v (override %s)", tg, ov.str("id"))
		}
		if v.LayersNow.Admin != marked.LayersNow.Admin+1 {
			t.Fatalf("admin generation %d after one more change, was %d", v.LayersNow.Admin, marked.LayersNow.Admin)
		}
	})

	t.Run("a recovered target ramps", func(t *testing.T) {
		api.form(t, http.StatusNoContent, http.MethodDelete, "/upstreams/st/targets/"+b.Addr+"/unhealthy")
		v := dvGet(t, g, "st")
		tg := v.Targets[v.target(t, b.Addr)]
		if !tg.Health.Healthy || tg.Health.Reason != "manual" || tg.SlowStart == nil || tg.SlowStart.Factor < 0.1 ||
			tg.SlowStart.Factor >= 0.5 || tg.EffectiveWeight >= 50 || tg.EffectiveWeight < 10 || tg.SlowStart.Since.IsZero() {
			t.Fatalf("recovered target (120s window): %+v slow start %+v", tg, tg.SlowStart)
		}
	})

	t.Run("a discovered target names its source", func(t *testing.T) {
		var v dvView
		waitFor(t, 15*time.Second, "the discovered target", func() bool {
			v = dvGet(t, g, "u")
			return len(v.Targets) == 1
		})
		tg := v.Targets[v.target(t, c.Addr)]
		src := "dns_srv:" + srvName
		if tg.Source != src || tg.Weight != 5 || !tg.Eligible || v.Discovery[src] < 1 {
			t.Fatalf("discovered target: %+v, discovery generations %v", tg, v.Discovery)
		}
	})

	t.Run("a reload advances the file generation", func(t *testing.T) {
		before := dvGet(t, g, "st")
		g.writeConfig(cfg)
		g.signal(syscall.SIGHUP)
		var v dvView
		waitFor(t, 10*time.Second, "the reload", func() bool {
			v = dvGet(t, g, "st")
			return v.LayersNow.File == before.LayersNow.File+1
		})
		if v.LayersNow.Admin != before.LayersNow.Admin || v.LayersNow.Config <= before.LayersNow.Config {
			t.Fatalf("layers after a reload: %+v, before %+v", v.LayersNow, before.LayersNow)
		}
		// The upstream's spec did not change: it is still the one the
		// admin change built.
		if *v.Layers != *before.Layers {
			t.Fatalf("unchanged upstream rebuilt by the reload: %+v, was %+v", v.Layers, before.Layers)
		}
	})
}
