package gateway

import (
	"reflect"
	"time"

	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/admin"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/health"
	"github.com/outrigger-gw/outrigger/proxy"
	"github.com/outrigger-gw/outrigger/upstream"
)

// upstreamRT is one upstream with the configuration it was built from, so a
// reload can tell whether it may be kept.
type upstreamRT struct {
	u       *upstream.Upstream
	checker *health.Checker
	// spec is what the upstream object itself was built from (health,
	// panic, slow start); a change needs a new object.
	spec upstreamSpec
	// balSpec is what the balancer was built from; a change swaps it.
	balSpec  balancerSpec
	balancer balance.Builder
	hash     *proxy.HashSpec
	// conf is the upstream's effective configuration without its
	// targets: while it stays, the whole runtime is kept.
	conf config.Upstream
	// layers are the layer generations of the commit that last changed
	// the upstream's spec; set at commit, under g.mu.
	layers admin.LayerGenerations
}

// settingsOf reports whether cu configures rt as it is (targets aside).
func (rt *upstreamRT) settingsOf(cu config.Upstream) bool {
	cu.Targets = nil
	// Pointers: boxing the structs themselves would copy both per call.
	return reflect.DeepEqual(&rt.conf, &cu)
}

type upstreamSpec struct {
	Health    config.Healthchecks
	Panic     config.Panic
	SlowStart *config.SlowStart
}

func specOf(cu config.Upstream) upstreamSpec {
	return upstreamSpec{Health: *cu.Healthchecks, Panic: *cu.Panic, SlowStart: cu.SlowStart}
}

// balancerSpec is the part of an upstream's settings its balancer is built
// from.
type balancerSpec struct {
	Algorithm string
	Slots     int
	StickyTTL time.Duration
}

func balancerOf(cu config.Upstream) balancerSpec {
	return balancerSpec{Algorithm: cu.Algorithm, Slots: cu.Slots, StickyTTL: cu.StickyLifetime()}
}

// hashSpec maps Kong's hash_on settings (or the sticky-session cookie) to the
// proxy's request keying; nil when the algorithm uses no key.
func hashSpec(cu config.Upstream) *proxy.HashSpec {
	switch cu.Algorithm {
	case balance.AlgoConsistentHashing:
		if cu.HashOn == "" || cu.HashOn == proxy.HashNone {
			return nil
		}
		return &proxy.HashSpec{On: cu.HashOn, Fallback: cu.HashFallback, Header: cu.HashOnHeader,
			Cookie: cu.HashOnCookie, CookiePath: cu.HashOnCookiePath, QueryArg: cu.HashOnQueryArg, URICapture: cu.HashOnURICapture}
	case balance.AlgoStickySessions:
		return &proxy.HashSpec{On: proxy.HashCookie, Cookie: cu.StickyCookie, CookiePath: "/", CookieTTL: cu.StickyLifetime()}
	}
	return nil
}

// healthConfig maps the file's Kong-shaped healthchecks block.
func healthConfig(h config.Healthchecks) health.Config {
	a, p := h.Active, h.Passive
	hc := health.Config{
		Active: health.ActiveConfig{
			Enabled: a.Enabled, Type: a.Type, GRPCService: a.GRPCService, HTTPPath: a.HTTPPath, Timeout: time.Duration(a.Timeout), Concurrency: a.Concurrency,
			HTTPSVerifyCertificate: a.HTTPSVerifyCertificate, HTTPSSNI: a.HTTPSSNI, Headers: a.Headers,
			HealthyInterval: time.Duration(a.Healthy.Interval), Successes: a.Healthy.Successes, HealthyStatuses: a.Healthy.HTTPStatuses,
			UnhealthyInterval: time.Duration(a.Unhealthy.Interval), HTTPFailures: a.Unhealthy.HTTPFailures, TCPFailures: a.Unhealthy.TCPFailures,
			Timeouts: a.Unhealthy.Timeouts, UnhealthyStatuses: a.Unhealthy.HTTPStatuses,
		},
		Passive: health.PassiveConfig{
			Enabled: p.Enabled, Successes: p.Healthy.Successes, HealthyStatuses: p.Healthy.HTTPStatuses,
			HTTPFailures: p.Unhealthy.HTTPFailures, TCPFailures: p.Unhealthy.TCPFailures, Timeouts: p.Unhealthy.Timeouts,
			UnhealthyStatuses: p.Unhealthy.HTTPStatuses, MaxEjectionPercent: p.MaxEjectionPercent,
			BaseEjectionTime: p.BaseEjectionTime, MaxEjectionTime: p.MaxEjectionTime,
		},
	}
	if sr := p.SuccessRate; sr != nil {
		hc.Passive.SuccessRate = &health.SuccessRateConfig{MinimumHosts: sr.MinimumHosts, RequestVolume: sr.RequestVolume,
			StdevFactor: sr.StdevFactor, Interval: time.Duration(sr.Interval)}
	}
	if p.Type == "tcp" {
		// A tcp passive checker judges connections only, never statuses.
		hc.Passive.HealthyStatuses, hc.Passive.UnhealthyStatuses = nil, nil
	}
	return hc
}

// panicPolicy maps panic: and Kong's healthchecks.threshold (a fail-closed
// floor on healthy weight) to the upstream's policy; panic: wins.
func panicPolicy(cu config.Upstream) upstream.Panic {
	if cu.Panic.MinHealthyPercent > 0 {
		return upstream.Panic{MinHealthyPercent: cu.Panic.MinHealthyPercent, FailClosed: cu.Panic.Mode == "fail-closed"}
	}
	if cu.Healthchecks.Threshold > 0 {
		return upstream.Panic{MinHealthyPercent: cu.Healthchecks.Threshold, FailClosed: true}
	}
	return upstream.Panic{}
}

// buildUpstream prepares the runtime of cu, reusing old where the
// configuration allows so per-target state survives a reload. It has no
// visible effect until commit.
func (g *Gateway) buildUpstream(cu config.Upstream, old *upstreamRT) (*upstreamRT, error) {
	rt := &upstreamRT{spec: specOf(cu), balSpec: balancerOf(cu), hash: hashSpec(cu), conf: cu}
	rt.conf.Targets = nil
	if old != nil && old.balSpec == rt.balSpec {
		rt.balancer = old.balancer // keeps sticky memory
	} else {
		b, err := balance.ForName(cu.Algorithm, balance.Options{Slots: cu.Slots, StickyTTL: cu.StickyLifetime()})
		if err != nil {
			return nil, err
		}
		rt.balancer = b
	}
	if old != nil && reflect.DeepEqual(old.spec, rt.spec) {
		rt.u, rt.checker = old.u, old.checker
		return rt, nil
	}
	name := cu.Name
	log := g.log.With().Str("upstream", name).Logger()
	var u *upstream.Upstream
	// Every upstream gets a checker, if only for manual marks; without
	// active or passive checks it sends no probe and ignores outcomes.
	rt.checker = health.New(healthConfig(*cu.Healthchecks), health.Options{
		OnChange: func() { u.Rebuild() },
		OnEvent:  func(ev health.Event) { g.healthEvent(name, log, ev) },
	})
	pol := panicPolicy(cu)
	opts := upstream.Options{
		Name:         name,
		Balancer:     rt.balancer,
		Health:       rt.checker,
		Panic:        pol,
		OnSnapshot:   func(s *upstream.Snapshot) { g.metrics.observeSnapshot(name, s) },
		GRPCFailures: cu.Healthchecks.Passive.Unhealthy.GRPCStatuses,
		Zone:         g.zone,
		// A departed target's series go once its last request is counted.
		OnTargetGone: func(addr string) { g.metrics.forgetTarget(name, addr) },
		OnPanic: func(on bool, pct float64) {
			g.metrics.panic(name, on)
			if on {
				log.Warn().Float64("healthy_percent", pct).Bool("fail_closed", pol.FailClosed).
					Msg("panic mode engaged: too few healthy targets")
			} else {
				log.Info().Float64("healthy_percent", pct).Msg("panic mode ended")
			}
		},
	}
	if ss := cu.SlowStart; ss != nil {
		opts.SlowStart = &upstream.SlowStart{Window: time.Duration(ss.Window), Aggression: ss.Aggression, MinWeightPercent: ss.MinWeightPercent}
	}
	u = upstream.New(opts)
	rt.u = u
	return rt, nil
}

// setBreakers gives u the circuit breakers, retry budget and retry policy
// of cu; the counts in progress stay.
func setBreakers(u *upstream.Upstream, cu config.Upstream) {
	cb, rb := cu.CircuitBreakers, cu.RetryBudget
	u.Breakers().SetLimits(upstream.Limits{MaxRequests: int64(cb.MaxRequests), MaxRetries: int64(cb.MaxRetries),
		MaxConnections: int64(cb.MaxConnections), MaxPendingRequests: int64(cb.MaxPendingRequests)})
	u.Breakers().SetBudget(upstream.Budget{Ratio: rb.RetryRatio, MinPerSecond: rb.MinRetriesPerSecond, TTL: time.Duration(rb.TTL)})
	u.SetRetryPolicy(retryPolicy(cu.RetryPolicy))
}

// retryPolicy maps a retry_policy block (nil: the built-in policy). The
// block's retry_on entries are checked by the config package.
func retryPolicy(rp *config.RetryPolicy) *upstream.RetryPolicy {
	if rp == nil {
		return nil
	}
	on, err := upstream.ParseRetryOn(rp.RetryOn)
	if err != nil {
		on = upstream.DefaultRetryOn() // unreachable: config checked them
	}
	return &upstream.RetryPolicy{On: on, PerTryTimeout: rp.PerTryTimeout, Timeout: rp.Timeout,
		BackoffBase: rp.BackoffBase, BackoffMax: rp.BackoffMax}
}

// healthEvent logs and counts one health change (never per probe).
func (g *Gateway) healthEvent(upstreamName string, log zerolog.Logger, ev health.Event) {
	g.metrics.healthEvent(upstreamName, ev)
	e := log.Info()
	if !ev.New {
		e = log.Warn()
	}
	e.Str("target", ev.Addr).Str("cause", ev.Cause.String()).Bool("healthy", ev.New).Bool("was_healthy", ev.Old).
		Bool("checks_healthy", ev.Checks).Str("mark", ev.Mark.String()).Int("ejections", ev.Ejections).Msg("target health changed")
}
