package consul

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-gw/outrigger/discovery"
	"github.com/outrigger-gw/outrigger/internal/consultest"
)

// instance registration helpers for the real agent.

type reg struct {
	id      string
	port    int
	tags    []string
	meta    map[string]string
	weights *api.AgentWeights
	ttl     bool // a TTL check (starts passing) instead of no check
}

func register(t *testing.T, a *consultest.Agent, service string, r reg) {
	t.Helper()
	sr := &api.AgentServiceRegistration{
		ID:      r.id,
		Name:    service,
		Address: "127.0.0.1",
		Port:    r.port,
		Tags:    r.tags,
		Meta:    r.meta,
		Weights: r.weights,
	}
	if r.ttl {
		sr.Check = &api.AgentServiceCheck{CheckID: "service:" + r.id, TTL: "1h", Status: api.HealthPassing}
	}
	if err := a.Client.Agent().ServiceRegister(sr); err != nil {
		t.Fatalf("register %s: %v", r.id, err)
	}
}

func deregister(t *testing.T, a *consultest.Agent, id string) {
	t.Helper()
	if err := a.Client.Agent().ServiceDeregister(id); err != nil {
		t.Fatalf("deregister %s: %v", id, err)
	}
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func newAgentSource(t *testing.T, a *consultest.Agent, cfg SourceConfig, opts ...Option) *Source {
	t.Helper()
	cfg.Address = a.HTTPAddr
	s, err := NewSource(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSourceAgainstConsul(t *testing.T) {
	a := consultest.Start(t)

	t.Run("two instances, deregister one; emission latency", func(t *testing.T) {
		register(t, a, "web", reg{id: "web-1", port: 9001})
		register(t, a, "web", reg{id: "web-2", port: 9002})
		w := watch(t, newAgentSource(t, a, SourceConfig{Service: "web"}))
		// The same watch without the rate limit on answers without effect
		// (which a change never waits for) measures Consul's own change ->
		// answer path.
		raw := watch(t, newAgentSource(t, a, SourceConfig{Service: "web"}, WithRateLimit(0, 1)))
		u, _ := w.set(addr(9001), addr(9002))
		raw.set(addr(9001), addr(9002))
		for _, tg := range u.Targets {
			if tg.Weight != 1 {
				t.Errorf("%s: weight %d, want Consul's default 1", tg.Addr, tg.Weight)
			}
		}

		// Bounded repetitions: every change is followed by its emission
		// (on both watches) before the next change. Latency is measured
		// from just before the API call to the update's At (its emission).
		const reps = 20
		var lat, latRaw []time.Duration
		change := func(do func(), want ...string) {
			t0 := time.Now()
			do()
			u, _ := raw.set(want...)
			latRaw = append(latRaw, u.At.Sub(t0))
			u, _ = w.set(want...)
			lat = append(lat, u.At.Sub(t0))
		}
		for range reps {
			change(func() { deregister(t, a, "web-2") }, addr(9001))
			change(func() { register(t, a, "web", reg{id: "web-2", port: 9002}) }, addr(9001), addr(9002))
		}
		t.Logf("consul change -> emission, %d back-to-back changes, default options: p50 %s, p99 %s, max %s",
			len(lat), percentile(lat, 50), percentile(lat, 99), percentile(lat, 100))
		t.Logf("consul change -> emission, %d back-to-back changes, no rate limit: p50 %s, p99 %s, max %s",
			len(latRaw), percentile(latRaw, 50), percentile(latRaw, 99), percentile(latRaw, 100))
		t.Logf("first change: %s", lat[0])
		for _, u := range append(w.seen, raw.seen...) {
			if u.Err != nil {
				t.Errorf("unexpected error update: %v", u.Err)
			}
		}
		deregister(t, a, "web-1")
		deregister(t, a, "web-2")
		w.set()
	})

	t.Run("unchanged wakeups emit nothing", func(t *testing.T) {
		register(t, a, "churn", reg{id: "churn-1", port: 9101, ttl: true})
		w := watch(t, newAgentSource(t, a, SourceConfig{Service: "churn"}))
		w.set(addr(9101))
		// Each TTL update with a new output changes the health index (the
		// blocking query wakes up) but not the set.
		for i := range 5 {
			if err := a.Client.Agent().UpdateTTL("service:churn-1", "output "+strconv.Itoa(i), api.HealthPassing); err != nil {
				t.Fatal(err)
			}
		}
		register(t, a, "churn", reg{id: "churn-2", port: 9102})
		// The very next emission must be the real change.
		u, _ := w.until("any update", func(discovery.Update) bool { return true })
		if got := render(u); got != "[127.0.0.1:9101/w1 127.0.0.1:9102/w1]" {
			t.Errorf("next emission after output-only changes = %s, want the added instance", got)
		}
	})

	t.Run("failing check removes the instance; passing brings it back", func(t *testing.T) {
		register(t, a, "chk", reg{id: "chk-1", port: 9201, ttl: true})
		register(t, a, "chk", reg{id: "chk-2", port: 9202, ttl: true})
		w := watch(t, newAgentSource(t, a, SourceConfig{Service: "chk"}))
		w.set(addr(9201), addr(9202))
		if err := a.Client.Agent().UpdateTTL("service:chk-2", "broken", api.HealthCritical); err != nil {
			t.Fatal(err)
		}
		w.set(addr(9201))
		if err := a.Client.Agent().UpdateTTL("service:chk-2", "fine", api.HealthPassing); err != nil {
			t.Fatal(err)
		}
		w.set(addr(9201), addr(9202))
	})

	t.Run("TTL left to expire removes the instance", func(t *testing.T) {
		if err := a.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: "exp-1", Name: "exp", Address: "127.0.0.1", Port: 9301,
			Check: &api.AgentServiceCheck{CheckID: "service:exp-1", TTL: "1s", Status: api.HealthPassing},
		}); err != nil {
			t.Fatal(err)
		}
		w := watch(t, newAgentSource(t, a, SourceConfig{Service: "exp"}))
		// Either the passing set is seen first, or the check had already
		// expired; in both cases the set must become empty.
		_, d := w.set()
		t.Logf("TTL 1s expired -> empty set after %s", d)
	})

	t.Run("warning instances: weights.warning unless PassingOnly", func(t *testing.T) {
		register(t, a, "warn", reg{id: "warn-1", port: 9401, ttl: true, weights: &api.AgentWeights{Passing: 10, Warning: 3}})
		register(t, a, "warn", reg{id: "warn-2", port: 9402, ttl: true, weights: &api.AgentWeights{Passing: 10, Warning: 3}})
		if err := a.Client.Agent().UpdateTTL("service:warn-2", "degraded", api.HealthWarning); err != nil {
			t.Fatal(err)
		}
		all := watch(t, newAgentSource(t, a, SourceConfig{Service: "warn"}))
		u, _ := all.set(addr(9401), addr(9402))
		if got := render(u); got != "[127.0.0.1:9401/w10 127.0.0.1:9402/w3]" {
			t.Errorf("PassingOnly=false: %s, want the warning instance with weight 3", got)
		}
		passing := watch(t, newAgentSource(t, a, SourceConfig{Service: "warn", PassingOnly: true}))
		u, _ = passing.set(addr(9401))
		if got := render(u); got != "[127.0.0.1:9401/w10]" {
			t.Errorf("PassingOnly=true: %s", got)
		}
	})

	t.Run("tags are ANDed", func(t *testing.T) {
		register(t, a, "tagged", reg{id: "tg-1", port: 9501, tags: []string{"blue", "canary"}})
		register(t, a, "tagged", reg{id: "tg-2", port: 9502, tags: []string{"blue"}})
		register(t, a, "tagged", reg{id: "tg-3", port: 9503, tags: []string{"canary", "green"}})
		w := watch(t, newAgentSource(t, a, SourceConfig{Service: "tagged", Tags: []string{"blue", "canary"}}))
		u, _ := w.set(addr(9501))
		if tags := u.Targets[0].Tags; len(tags) != 2 || tags[0] != "blue" || tags[1] != "canary" {
			t.Errorf("tags = %v", tags)
		}
		one := watch(t, newAgentSource(t, a, SourceConfig{Service: "tagged", Tags: []string{"blue"}}))
		one.set(addr(9501), addr(9502))
	})

	t.Run("meta filter", func(t *testing.T) {
		register(t, a, "meta", reg{id: "m-1", port: 9601, meta: map[string]string{"zone": "a", "ver": "2", "priority": "3"}})
		register(t, a, "meta", reg{id: "m-2", port: 9602, meta: map[string]string{"zone": "a", "ver": "1"}})
		register(t, a, "meta", reg{id: "m-3", port: 9603, meta: map[string]string{"zone": "b", "ver": "2"}})
		w := watch(t, newAgentSource(t, a, SourceConfig{Service: "meta", Meta: map[string]string{"zone": "a", "ver": "2"}}))
		u, _ := w.set(addr(9601))
		if m := u.Targets[0].Meta; m["zone"] != "a" || m["ver"] != "2" {
			t.Errorf("meta = %v", m)
		}
		if p := u.Targets[0].Priority; p != 3 {
			t.Errorf("priority from the meta key = %d, want 3", p)
		}
		// A change of meta moves the instance in and out of the set.
		register(t, a, "meta", reg{id: "m-2", port: 9602, meta: map[string]string{"zone": "a", "ver": "2"}})
		w.set(addr(9601), addr(9602))
	})

	t.Run("locality and failover from service and node meta", func(t *testing.T) {
		// An instance on a node of its own, whose node meta gives the
		// zone and region; a service meta zone wins over the node's.
		_, err := a.Client.Catalog().Register(&api.CatalogRegistration{
			Node: "edge-1", Address: "127.0.0.1", NodeMeta: map[string]string{"zone": "node-zone", "region": "eu"},
			Service: &api.AgentService{ID: "loc-1", Service: "loc", Address: "127.0.0.1", Port: 9651,
				Meta: map[string]string{"priority": "1"}},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = a.Client.Catalog().Register(&api.CatalogRegistration{
			Node: "edge-2", Address: "127.0.0.1", NodeMeta: map[string]string{"zone": "node-zone"},
			Service: &api.AgentService{ID: "loc-2", Service: "loc", Address: "127.0.0.1", Port: 9652,
				Meta: map[string]string{"zone": "svc-zone", "backup": "true"}},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		w := watch(t, newAgentSource(t, a, SourceConfig{Service: "loc"}))
		u, _ := w.set(addr(9651), addr(9652))
		one, two := u.Targets[0], u.Targets[1]
		if one.Meta["zone"] != "node-zone" || one.Meta["region"] != "eu" || one.Priority != 1 || one.Backup {
			t.Errorf("node-meta instance %+v", one)
		}
		if two.Meta["zone"] != "svc-zone" || !two.Backup || two.Priority != 0 {
			t.Errorf("service-meta instance %+v", two)
		}
		// A change of backup alone is a change of the set.
		_, err = a.Client.Catalog().Register(&api.CatalogRegistration{
			Node: "edge-2", Address: "127.0.0.1", NodeMeta: map[string]string{"zone": "node-zone"},
			Service: &api.AgentService{ID: "loc-2", Service: "loc", Address: "127.0.0.1", Port: 9652,
				Meta: map[string]string{"zone": "svc-zone"}},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.until("backup cleared", func(u discovery.Update) bool {
			return u.Err == nil && len(u.Targets) == 2 && !u.Targets[1].Backup && u.Targets[1].Meta["zone"] == "svc-zone"
		})
		// zone_meta_key: another key, read from the service meta, else the
		// node's.
		_, err = a.Client.Catalog().Register(&api.CatalogRegistration{
			Node: "edge-3", Address: "127.0.0.1", NodeMeta: map[string]string{"az": "node-az"},
			Service: &api.AgentService{ID: "loc-3", Service: "loc", Address: "127.0.0.1", Port: 9653},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		byKey := watch(t, newAgentSource(t, a, SourceConfig{Service: "loc", ZoneMetaKey: "az"}))
		u, _ = byKey.set(addr(9651), addr(9652), addr(9653))
		if z := u.Targets[2].Meta["zone"]; z != "node-az" {
			t.Errorf("zone from the node meta key az = %q", z)
		}
		if z := u.Targets[1].Meta["zone"]; z != "svc-zone" {
			t.Errorf("a service's own zone meta = %q, want it kept", z)
		}
	})

	t.Run("weights from Service.Weights and from the meta key, clamped", func(t *testing.T) {
		register(t, a, "weighted", reg{id: "wt-1", port: 9701, weights: &api.AgentWeights{Passing: 7, Warning: 1}})
		register(t, a, "weighted", reg{id: "wt-2", port: 9702, meta: map[string]string{"lb_weight": "250"}})
		register(t, a, "weighted", reg{id: "wt-3", port: 9703, meta: map[string]string{"lb_weight": "100000"}})
		register(t, a, "weighted", reg{id: "wt-4", port: 9704, meta: map[string]string{"lb_weight": "0"}, weights: &api.AgentWeights{Passing: 5, Warning: 1}})
		plain := watch(t, newAgentSource(t, a, SourceConfig{Service: "weighted"}))
		u, _ := plain.set(addr(9701), addr(9702), addr(9703), addr(9704))
		if got := render(u); got != "[127.0.0.1:9701/w7 127.0.0.1:9702/w1 127.0.0.1:9703/w1 127.0.0.1:9704/w5]" {
			t.Errorf("Service.Weights: %s", got)
		}
		byMeta := watch(t, newAgentSource(t, a, SourceConfig{Service: "weighted", WeightMetaKey: "lb_weight"}))
		u, _ = byMeta.set(addr(9701), addr(9702), addr(9703), addr(9704))
		if got := render(u); got != "[127.0.0.1:9701/w7 127.0.0.1:9702/w250 127.0.0.1:9703/w65535 127.0.0.1:9704/w0]" {
			t.Errorf("meta weights: %s", got)
		}
	})

	t.Run("maintenance removes instances", func(t *testing.T) {
		register(t, a, "maint", reg{id: "mt-1", port: 9801})
		register(t, a, "maint", reg{id: "mt-2", port: 9802})
		w := watch(t, newAgentSource(t, a, SourceConfig{Service: "maint"}))
		w.set(addr(9801), addr(9802))
		ag := a.Client.Agent()
		if err := ag.EnableServiceMaintenance("mt-2", "upgrading"); err != nil {
			t.Fatal(err)
		}
		w.set(addr(9801))
		if err := ag.DisableServiceMaintenance("mt-2"); err != nil {
			t.Fatal(err)
		}
		w.set(addr(9801), addr(9802))
		if err := ag.EnableNodeMaintenance("node drain"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ag.DisableNodeMaintenance() })
		w.set()
		if err := ag.DisableNodeMaintenance(); err != nil {
			t.Fatal(err)
		}
		w.set(addr(9801), addr(9802))
	})
}

func TestSourceConsulOutage(t *testing.T) {
	a := consultest.Start(t)
	register(t, a, "web", reg{id: "web-1", port: 9001})
	register(t, a, "web", reg{id: "web-2", port: 9002})
	// Default 5m wait: recovery must come from the index reset, not from a
	// wait timing out. A short backoff keeps the test quick.
	w := watch(t, newAgentSource(t, a, SourceConfig{Service: "web"}, WithBackoff(50*time.Millisecond, time.Second)))
	w.set(addr(9001), addr(9002))
	// Push the raft index well above what a fresh agent will have.
	for i := range 30 {
		register(t, a, "filler", reg{id: "filler-" + strconv.Itoa(i), port: 10000 + i})
	}

	a.Kill()
	u, d := w.until("an error", func(u discovery.Update) bool { return u.Err != nil })
	t.Logf("agent killed -> Err update after %s: %v", d, u.Err)
	for _, u := range w.seen {
		if u.Err == nil && len(u.Targets) == 0 {
			t.Fatalf("an empty set was emitted during the outage")
		}
	}

	a.Restart()
	// A dev agent restarts empty: the authoritative answer is the empty set.
	_, d = w.set()
	t.Logf("agent restarted -> fresh (empty) set after %s", d)
	register(t, a, "web", reg{id: "web-3", port: 9003})
	_, d = w.set(addr(9003))
	t.Logf("registration after restart -> emission after %s", d)

	var errs int
	for _, u := range w.seen {
		if u.Err != nil {
			errs++
			if u.Targets != nil {
				t.Errorf("error update carries targets: %+v", u)
			}
		}
	}
	if errs == 0 {
		t.Errorf("no Err update during the outage")
	}
}

// TestSourceResumesPromptlyAfterAgentRestart: while the agent is down the
// watchers keep backing off, but once it answers again they resume within
// the probe interval, not when their backoff runs out. A new instance
// registered right after the agent is back must be in the target set within
// resumeBound, for a watcher with the default backoff and for one whose
// backoff (a minute, without jitter) far outlasts the test.
func TestSourceResumesPromptlyAfterAgentRestart(t *testing.T) {
	const (
		outage      = 10 * time.Second
		resumeBound = 5 * time.Second
	)
	a := consultest.Start(t)
	register(t, a, "web", reg{id: "web-1", port: 9001})
	probes := NewProbes()
	def := watch(t, newAgentSource(t, a, SourceConfig{Service: "web"}, WithProbes(probes)))
	slowSrc := newAgentSource(t, a, SourceConfig{Service: "web"}, WithProbes(probes), WithBackoff(time.Minute, time.Minute))
	slowSrc.jitter = func(d time.Duration) time.Duration { return d }
	slow := watch(t, slowSrc)
	def.set(addr(9001))
	slow.set(addr(9001))

	a.Stop()
	tDown := time.Now()
	def.until("an error", func(u discovery.Update) bool { return u.Err != nil })
	slow.until("an error", func(u discovery.Update) bool { return u.Err != nil })
	// The outage itself is what is tested: long enough for the default
	// backoff to grow to seconds.
	time.Sleep(outage - time.Since(tDown))
	// A dev agent comes back empty, and may answer before Restart returns
	// (or, when a port was taken, between attempts): an empty set from then
	// on is the restarted agent's authoritative answer, not the outage's.
	tRestart := time.Now()
	a.Restart()
	tBack := time.Now()
	register(t, a, "web", reg{id: "web-3", port: 9003})
	tReg := time.Now()

	for _, w := range []struct {
		name string
		w    *watcher
	}{{"default backoff", def}, {"1m backoff", slow}} {
		u, _ := w.w.set(addr(9003))
		d := u.At.Sub(tBack)
		t.Logf("%s: agent down %s; agent back -> new instance in the set after %s (%s after its registration)",
			w.name, tBack.Sub(tDown).Round(time.Millisecond), d.Round(time.Millisecond), u.At.Sub(tReg).Round(time.Millisecond))
		var timeline []string
		for _, u := range w.w.seen {
			if u.At.After(tDown) {
				timeline = append(timeline, fmt.Sprintf("%+.3fs %s", u.At.Sub(tBack).Seconds(), render(u)))
			}
			if u.Err == nil && len(u.Targets) == 0 && u.At.Before(tRestart) {
				t.Errorf("%s: an empty set was emitted during the outage", w.name)
			}
		}
		if d > resumeBound {
			t.Errorf("%s: the new instance reached the set %s after the agent was back, want within %s; updates since the stop (relative to the agent back):\n%s",
				w.name, d, resumeBound, strings.Join(timeline, "\n"))
		}
	}
}
