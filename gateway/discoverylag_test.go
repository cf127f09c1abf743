package gateway

import (
	"math"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/outrigger-gw/outrigger/internal/consultest"
	"github.com/outrigger-gw/outrigger/internal/sourcetest"
	"github.com/outrigger-gw/outrigger/upstream"
)

// discoveryMetric returns the outrigger_discovery_<name> series of upstream
// up and source kind "consul", or nil.
func discoveryMetric(t *testing.T, g *Gateway, name, up string) *dto.Metric {
	t.Helper()
	mfs, err := g.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "outrigger_discovery_"+name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["upstream"] == up && labels["source_kind"] == "consul" {
				return m
			}
		}
	}
	return nil
}

// histogramQuantile estimates quantile q of h as Prometheus's
// histogram_quantile does (linear within the bucket).
func histogramQuantile(h *dto.Histogram, q float64) float64 {
	total := float64(h.GetSampleCount())
	if total == 0 {
		return math.NaN()
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range h.GetBucket() {
		n := float64(b.GetCumulativeCount())
		if n >= rank {
			if n == below {
				return b.GetUpperBound()
			}
			return lower + (b.GetUpperBound()-lower)*(rank-below)/(n-below)
		}
		lower, below = b.GetUpperBound(), n
	}
	return math.Inf(1)
}

// TestDiscoveryApplyLagUnderBurst: 100 back-to-back re-registrations of one
// Consul instance (a new weight and tag each time) reach the live picker
// promptly, the last registration is the state that stays, and every
// applied update is timed by outrigger_discovery_apply_seconds.
func TestDiscoveryApplyLagUnderBurst(t *testing.T) {
	a := consultest.Start(t)
	reg := func(i int) {
		if err := a.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: "web-1", Name: "web", Address: "127.0.0.1", Port: 9,
			Tags:    []string{"v" + strconv.Itoa(i)},
			Weights: &api.AgentWeights{Passing: i + 1, Warning: 1},
		}); err != nil {
			t.Error(err)
		}
	}
	reg(0)
	g := serving(t, "upstreams:"+consulUpstream("web", a.HTTPAddr, "web", "0s"))
	weight := func() int {
		ts := g.Upstream("web").Snapshot().Targets
		if len(ts) != 1 {
			return 0
		}
		return ts[0].Weight
	}
	sourcetest.Poll(t, waitTimeout, "the first registration live", func() bool { return weight() == 1 })
	before := discoveryMetric(t, g, "apply_seconds", "web").GetHistogram().GetSampleCount()

	// The burst runs in its own goroutine; this one polls the picker and
	// records when each registration (or a later one) is first live.
	const burst = 100
	sent := make([]time.Time, burst+1)
	wrote := make(chan struct{})
	started := make(chan int, burst) // registrations whose start time is written
	go func() {
		defer close(wrote)
		for i := 1; i <= burst; i++ {
			sent[i] = time.Now()
			started <- i
			reg(i)
		}
	}()
	var e2e []time.Duration
	next, known := 1, 0
	end := time.Now().Add(waitTimeout)
	for next <= burst && time.Now().Before(end) {
		for drained := false; !drained; {
			select {
			case i := <-started:
				known = i
			default:
				drained = true
			}
		}
		now := time.Now()
		for w := weight() - 1; next <= w && next <= known; next++ {
			e2e = append(e2e, now.Sub(sent[next]))
		}
		time.Sleep(200 * time.Microsecond)
	}
	<-wrote
	if next <= burst {
		t.Fatalf("registration %d of %d not live within %s (weight %d)", next, burst, waitTimeout, weight())
	}
	// The last state wins and stays: the newest answer is the one applied.
	sourcetest.Poll(t, waitTimeout, "the source has answered the last registration", func() bool {
		h := discoveryMetric(t, g, "apply_seconds", "web").GetHistogram()
		return h.GetSampleCount() > before && weight() == burst+1
	})
	ts := g.Upstream("web").Snapshot().Targets
	if len(ts) != 1 || ts[0].Weight != burst+1 || len(ts[0].Tags) != 1 || ts[0].Tags[0] != "v"+strconv.Itoa(burst) {
		t.Fatalf("after the burst: %+v, want weight %d tag v%d", ts, burst+1, burst)
	}

	h := discoveryMetric(t, g, "apply_seconds", "web").GetHistogram()
	n := h.GetSampleCount() - before
	if n < 1 || n > burst {
		t.Errorf("%d updates applied for %d registrations, want 1..%d (coalesced, never more)", n, burst, burst)
	}
	p50, p99 := histogramQuantile(h, .5), histogramQuantile(h, .99)
	sort.Slice(e2e, func(i, j int) bool { return e2e[i] < e2e[j] })
	t.Logf("burst of %d consul re-registrations: %d updates applied; outrigger_discovery_apply_seconds (answer -> live picker) p50 %.4fs p99 %.4fs",
		burst, n, p50, p99)
	t.Logf("registration call -> live picker (polled), %d changes: p50 %s, p99 %s, max %s",
		len(e2e), sourcetest.Percentile(e2e, 50), sourcetest.Percentile(e2e, 99), sourcetest.Percentile(e2e, 100))
	if p99 >= 1 {
		t.Errorf("apply lag p99 %.3fs, want < 1s", p99)
	}
	if d := sourcetest.Percentile(e2e, 99); d >= time.Second {
		t.Errorf("registration -> live picker p99 %s, want < 1s", d)
	}
}

// TestDiscoveryStalenessAndErrors: while the Consul agent is stopped the
// staleness gauge grows and the consecutive-error gauge counts the failed
// queries; both go back to 0 with the first answer after the restart.
func TestDiscoveryStalenessAndErrors(t *testing.T) {
	a := consultest.Start(t)
	if err := a.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "web-1", Name: "web", Address: "127.0.0.1", Port: 9}); err != nil {
		t.Fatal(err)
	}
	g := serving(t, "upstreams:"+consulUpstream("web", a.HTTPAddr, "web", "0s"))
	gauge := func(name string) float64 {
		m := discoveryMetric(t, g, name, "web")
		if m == nil {
			return -1
		}
		return m.GetGauge().GetValue()
	}
	sourcetest.Poll(t, waitTimeout, "the first answer", func() bool { return len(g.Upstream("web").Snapshot().Targets) == 1 })
	if s, e := gauge("staleness_seconds"), gauge("consecutive_errors"); s != 0 || e != 0 {
		t.Fatalf("healthy source: staleness %v, consecutive errors %v; want 0 and 0", s, e)
	}

	a.Stop()
	sourcetest.Poll(t, waitTimeout, "two consecutive errors", func() bool { return gauge("consecutive_errors") >= 2 })
	s1 := gauge("staleness_seconds")
	if s1 <= 0 {
		t.Fatalf("staleness %v while failing, want > 0", s1)
	}
	var s2 float64
	sourcetest.Poll(t, waitTimeout, "staleness growing", func() bool { s2 = gauge("staleness_seconds"); return s2 > s1 })
	t.Logf("staleness read twice during the outage: %.3fs then %.3fs; consecutive errors %v", s1, s2, gauge("consecutive_errors"))
	if n := len(g.Upstream("web").Snapshot().Targets); n != 1 {
		t.Errorf("%d targets during the outage, want the last good 1", n)
	}

	a.Restart()
	sourcetest.Poll(t, waitTimeout, "staleness and errors back to 0 after the restart", func() bool {
		return gauge("staleness_seconds") == 0 && gauge("consecutive_errors") == 0
	})
}

// TestDiscoveryMetricsBookkeeping drives the discovery metrics with watch
// events: the lag of an applied update is Live - Observed, errors count up
// and reset, staleness runs from the first failure of a run, and forget
// removes every series of the source.
func TestDiscoveryMetricsBookkeeping(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newDiscoveryMetrics(reg)
	get := func(name string) *dto.Metric {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "outrigger_discovery_"+name {
				for _, s := range mf.GetMetric() {
					for _, lp := range s.GetLabel() {
						if lp.GetName() == "source_kind" && lp.GetValue() == "consul" {
							return s
						}
					}
				}
			}
		}
		return nil
	}
	now := time.Now()
	m.observe("web", upstream.WatchEvent{Source: "consul:web", Kind: "update", Targets: 1, At: now,
		Observed: now.Add(-30 * time.Millisecond), Live: now})
	h := get("apply_seconds").GetHistogram()
	if h.GetSampleCount() != 1 || math.Abs(h.GetSampleSum()-0.030) > 1e-9 {
		t.Fatalf("apply histogram count %d sum %v, want 1 and 0.030", h.GetSampleCount(), h.GetSampleSum())
	}
	if s, e := get("staleness_seconds").GetGauge().GetValue(), get("consecutive_errors").GetGauge().GetValue(); s != 0 || e != 0 {
		t.Fatalf("after a good answer: staleness %v errors %v, want 0 0", s, e)
	}
	// An event without Observed (a source that cannot tell) is not timed.
	m.observe("web", upstream.WatchEvent{Source: "consul:web", Kind: "update", Targets: 1, At: now, Live: now})
	if n := get("apply_seconds").GetHistogram().GetSampleCount(); n != 1 {
		t.Errorf("an update without Observed was timed: %d samples", n)
	}

	failed := time.Now().Add(-2 * time.Second)
	m.observe("web", upstream.WatchEvent{Source: "consul:web", Kind: "error", At: failed, Observed: failed})
	m.observe("web", upstream.WatchEvent{Source: "consul:web", Kind: "error", At: time.Now(), Observed: time.Now()})
	if e := get("consecutive_errors").GetGauge().GetValue(); e != 2 {
		t.Errorf("consecutive errors %v, want 2", e)
	}
	if s := get("staleness_seconds").GetGauge().GetValue(); s < 2 {
		t.Errorf("staleness %v, want at least the 2s since the first failure of the run", s)
	}
	m.observe("web", upstream.WatchEvent{Source: "consul:web", Kind: "update", Targets: 1, At: time.Now(), Live: time.Now()})
	if s, e := get("staleness_seconds").GetGauge().GetValue(), get("consecutive_errors").GetGauge().GetValue(); s != 0 || e != 0 {
		t.Errorf("after recovery: staleness %v errors %v, want 0 0", s, e)
	}

	m.forget("web", "consul:web")
	for _, name := range []string{"apply_seconds", "staleness_seconds", "consecutive_errors"} {
		if s := get(name); s != nil {
			t.Errorf("%s series left after forget: %v", name, s)
		}
	}
}
