package admin

import (
	"cmp"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// upstreamOut is an upstream as the API shows it (Kong's shape).
type upstreamOut struct {
	ID               string                `json:"id"`
	Name             string                `json:"name"`
	Algorithm        string                `json:"algorithm"`
	HashOn           string                `json:"hash_on"`
	HashFallback     string                `json:"hash_fallback"`
	HashOnHeader     *string               `json:"hash_on_header"`
	HashOnCookie     *string               `json:"hash_on_cookie"`
	HashOnCookiePath string                `json:"hash_on_cookie_path"`
	HashOnQueryArg   *string               `json:"hash_on_query_arg"`
	HashOnURICapture *string               `json:"hash_on_uri_capture"`
	Slots            int                   `json:"slots"`
	StickyCookie     string                `json:"sticky_sessions_cookie"`
	StickyTTL        state.Duration        `json:"sticky_sessions_cookie_ttl"`
	SlowStart        *state.SlowStart      `json:"slow_start"`
	Panic            state.Panic           `json:"panic"`
	Healthchecks     hcOut                 `json:"healthchecks"`
	CircuitBreakers  state.CircuitBreakers `json:"circuit_breakers"`
	RetryBudget      state.RetryBudget     `json:"retry_budget"`
	RetryPolicy      *state.RetryPolicy    `json:"retry_policy"`
	Tags             []string              `json:"tags"`
	CreatedAt        int64                 `json:"created_at"`
	UpdatedAt        int64                 `json:"updated_at"`
}

type hcOut struct {
	Threshold float64      `json:"threshold"`
	Active    hcActiveOut  `json:"active"`
	Passive   hcPassiveOut `json:"passive"`
}

type hcActiveOut struct {
	Type                   string              `json:"type"`
	GRPCService            *string             `json:"grpc_service"`
	HTTPPath               string              `json:"http_path"`
	Timeout                float64             `json:"timeout"`
	Concurrency            int                 `json:"concurrency"`
	HTTPSVerifyCertificate bool                `json:"https_verify_certificate"`
	HTTPSSNI               *string             `json:"https_sni"`
	Headers                map[string][]string `json:"headers"`
	Healthy                hcCounters          `json:"healthy"`
	Unhealthy              hcCounters          `json:"unhealthy"`
}

type hcPassiveOut struct {
	Type        string             `json:"type"`
	Healthy     hcCounters         `json:"healthy"`
	Unhealthy   hcCounters         `json:"unhealthy"`
	SuccessRate *state.SuccessRate `json:"success_rate"`
}

// hcCounters is a healthy or unhealthy block; fields a block does not
// have are left out.
type hcCounters struct {
	Interval     *float64 `json:"interval,omitempty"`
	Successes    *int     `json:"successes,omitempty"`
	HTTPFailures *int     `json:"http_failures,omitempty"`
	TCPFailures  *int     `json:"tcp_failures,omitempty"`
	Timeouts     *int     `json:"timeouts,omitempty"`
	HTTPStatuses []int    `json:"http_statuses"`
	GRPCStatuses []int    `json:"grpc_statuses,omitempty"` // passive unhealthy only
}

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func ptr[T any](v T) *T { return &v }

func secs(d time.Duration) float64 { return d.Seconds() }

// renderUpstream shows an effective upstream.
func renderUpstream(u *config.Upstream, m state.Meta) upstreamOut {
	h := u.Healthchecks
	return upstreamOut{
		ID: m.ID, Name: u.Name, Algorithm: u.Algorithm, HashOn: u.HashOn, HashFallback: u.HashFallback,
		HashOnHeader: strOrNil(u.HashOnHeader), HashOnCookie: strOrNil(u.HashOnCookie),
		HashOnCookiePath: u.HashOnCookiePath, HashOnQueryArg: strOrNil(u.HashOnQueryArg),
		HashOnURICapture: strOrNil(u.HashOnURICapture), Slots: u.Slots, Tags: tagsOut(u.Tags),
		StickyCookie: u.StickyCookie, StickyTTL: state.Duration(u.StickyTTL), SlowStart: slowStartOf(u),
		Panic: state.Panic{MinHealthyPercent: u.Panic.MinHealthyPercent, Mode: u.Panic.Mode},
		Healthchecks: hcOut{
			Threshold: h.Threshold,
			Active: hcActiveOut{
				Type: h.Active.Type, GRPCService: strOrNil(h.Active.GRPCService), HTTPPath: h.Active.HTTPPath, Timeout: secs(h.Active.Timeout),
				Concurrency: h.Active.Concurrency, HTTPSVerifyCertificate: h.Active.HTTPSVerifyCertificate,
				HTTPSSNI: strOrNil(h.Active.HTTPSSNI), Headers: h.Active.Headers,
				Healthy: hcCounters{Interval: ptr(secs(h.Active.Healthy.Interval)), Successes: ptr(h.Active.Healthy.Successes),
					HTTPStatuses: h.Active.Healthy.HTTPStatuses},
				Unhealthy: hcCounters{Interval: ptr(secs(h.Active.Unhealthy.Interval)), HTTPFailures: ptr(h.Active.Unhealthy.HTTPFailures),
					TCPFailures: ptr(h.Active.Unhealthy.TCPFailures), Timeouts: ptr(h.Active.Unhealthy.Timeouts),
					HTTPStatuses: h.Active.Unhealthy.HTTPStatuses},
			},
			Passive: hcPassiveOut{
				Type:    h.Passive.Type,
				Healthy: hcCounters{Successes: ptr(h.Passive.Healthy.Successes), HTTPStatuses: h.Passive.Healthy.HTTPStatuses},
				Unhealthy: hcCounters{HTTPFailures: ptr(h.Passive.Unhealthy.HTTPFailures), TCPFailures: ptr(h.Passive.Unhealthy.TCPFailures),
					Timeouts: ptr(h.Passive.Unhealthy.Timeouts), HTTPStatuses: h.Passive.Unhealthy.HTTPStatuses, GRPCStatuses: h.Passive.Unhealthy.GRPCStatuses},
				SuccessRate: successRateOut(h.Passive.SuccessRate),
			},
		},
		CircuitBreakers: breakersOut(u.CircuitBreakers),
		RetryPolicy:     retryPolicyOut(u.RetryPolicy),
		RetryBudget: state.RetryBudget{RetryRatio: u.RetryBudget.RetryRatio, MinRetriesPerSecond: u.RetryBudget.MinRetriesPerSecond,
			TTL: secs(u.RetryBudget.TTL)},
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
	}
}

func breakersOut(c config.CircuitBreakers) state.CircuitBreakers {
	return state.CircuitBreakers{MaxRequests: c.MaxRequests, MaxRetries: c.MaxRetries, MaxConnections: c.MaxConnections,
		MaxPendingRequests: c.MaxPendingRequests}
}

// retryPolicyOut is a retry policy in the admin layer's shape (nil for
// none).
func retryPolicyOut(rp *config.RetryPolicy) *state.RetryPolicy {
	if rp == nil {
		return nil
	}
	return &state.RetryPolicy{RetryOn: slices.Clone(rp.RetryOn), PerTryTimeout: secs(rp.PerTryTimeout), Timeout: secs(rp.Timeout),
		RetryBackoff: state.RetryBackoff{BaseInterval: secs(rp.BackoffBase), MaxInterval: secs(rp.BackoffMax)}}
}

func successRateOut(sr *config.SuccessRate) *state.SuccessRate {
	if sr == nil {
		return nil
	}
	return &state.SuccessRate{MinimumHosts: sr.MinimumHosts, RequestVolume: sr.RequestVolume, StdevFactor: sr.StdevFactor,
		Interval: secs(sr.Interval)}
}

// checksOn reports whether an upstream's health checks can change a
// target's health (Kong's HEALTHCHECKS_OFF otherwise).
func checksOn(u *config.Upstream) bool {
	a, p := u.Healthchecks.Active, u.Healthchecks.Passive
	return a.Enabled && (a.Healthy.Interval > 0 || a.Unhealthy.Interval > 0) ||
		p.Enabled && (p.Unhealthy.HTTPFailures > 0 || p.Unhealthy.TCPFailures > 0 || p.Unhealthy.Timeouts > 0 || p.SuccessRate != nil)
}

// newUpstream is an upstream with Kong's defaults, written out so that a
// file entity of the same name cannot shine through.
func newUpstream() state.Upstream {
	d := config.DefaultUpstream()
	return state.Upstream{
		Algorithm: d.Algorithm, HashOn: d.HashOn, HashFallback: d.HashFallback,
		HashOnCookiePath: d.HashOnCookiePath, Slots: d.Slots,
	}
}

// decodeUpstream applies a body to u. Healthchecks are merged into
// u.Healthchecks, starting from base() when u has none.
func decodeUpstream(o *obj, u *state.Upstream, base func() *state.Healthchecks) {
	d := config.DefaultUpstream()
	o.setString("name", &u.Name, "", keep(config.CheckUpstreamName))
	o.setString("algorithm", &u.Algorithm, d.Algorithm, oneOf(config.Algorithms()...))
	o.setString("hash_on", &u.HashOn, d.HashOn, oneOf(config.HashOnValues()...))
	o.setString("hash_fallback", &u.HashFallback, d.HashFallback, oneOf(config.HashOnValues()...))
	o.setString("hash_on_header", &u.HashOnHeader, "", keep(config.CheckToken))
	o.setString("hash_on_cookie", &u.HashOnCookie, "", keep(config.CheckToken))
	o.setString("hash_on_cookie_path", &u.HashOnCookiePath, d.HashOnCookiePath, checkPath)
	o.setString("hash_on_query_arg", &u.HashOnQueryArg, "", nonEmpty)
	o.setString("hash_on_uri_capture", &u.HashOnURICapture, "", nonEmpty)
	o.setInt("slots", &u.Slots, d.Slots, config.MinSlots, config.MaxSlots)
	o.setString("sticky_sessions_cookie", &u.StickyCookie, d.StickyCookie, keep(config.CheckToken))
	if v, present := o.get("sticky_sessions_cookie_ttl"); present {
		u.StickyTTL = nil
		if v != nil {
			if ttl, why := asDuration(v); why != "" {
				o.fail("sticky_sessions_cookie_ttl", "%s", why)
			} else {
				u.StickyTTL = ptr(state.Duration(ttl))
			}
		}
	}
	decodeSlowStartPanic(o, u)
	if c, present, null := o.child("healthchecks"); present {
		switch {
		case null:
			u.Healthchecks = &state.Healthchecks{}
		case c != nil:
			if u.Healthchecks == nil {
				u.Healthchecks = base()
			}
			decodeHealthchecks(c, u.Healthchecks)
		}
	}
	decodeBreakers(o, u)
	o.setStrings("tags", &u.Tags, checkTag)
	o.kongFields(config.KindUpstream)
	o.unknown()
}

// seeded records the blocks seedBreakers gave an upstream, as given.
type seeded struct {
	cb *state.CircuitBreakers
	rb *state.RetryBudget
	ss *state.SlowStart
	pa *state.Panic
	rp *state.RetryPolicy
}

// seedBreakers gives u, for a PATCH, the effective circuit_breakers and
// retry_budget where it has none of its own, so a partial block merges
// into the file's (or the defaults).
func seedBreakers(u *state.Upstream, eff *config.Upstream) seeded {
	var sd seeded
	if eff == nil {
		return sd
	}
	if u.CircuitBreakers == nil {
		c := eff.CircuitBreakers
		sd.cb = ptr(breakersOut(c))
		u.CircuitBreakers = ptr(*sd.cb)
	}
	if u.RetryPolicy == nil && eff.RetryPolicy != nil {
		sd.rp = retryPolicyOut(eff.RetryPolicy)
		u.RetryPolicy = retryPolicyOut(eff.RetryPolicy)
	}
	if u.RetryBudget == nil {
		r := eff.RetryBudget
		sd.rb = &state.RetryBudget{RetryRatio: r.RetryRatio, MinRetriesPerSecond: r.MinRetriesPerSecond, TTL: secs(r.TTL)}
		u.RetryBudget = ptr(*sd.rb)
	}
	if u.SlowStart == nil {
		if sd.ss = slowStartOf(eff); sd.ss == nil {
			sd.ss = &state.SlowStart{}
		}
		u.SlowStart = ptr(*sd.ss)
	}
	if u.Panic == nil {
		sd.pa = &state.Panic{MinHealthyPercent: eff.Panic.MinHealthyPercent, Mode: eff.Panic.Mode}
		u.Panic = ptr(*sd.pa)
	}
	return sd
}

// unseedBreakers drops the seeded blocks the PATCH left as they were, so
// the file's keep shining through.
func unseedBreakers(u *state.Upstream, sd seeded) {
	if sd.cb != nil && u.CircuitBreakers != nil && *u.CircuitBreakers == *sd.cb {
		u.CircuitBreakers = nil
	}
	if sd.rb != nil && u.RetryBudget != nil && *u.RetryBudget == *sd.rb {
		u.RetryBudget = nil
	}
	if sd.ss != nil && u.SlowStart != nil && *u.SlowStart == *sd.ss {
		u.SlowStart = nil
	}
	if sd.pa != nil && u.Panic != nil && *u.Panic == *sd.pa {
		u.Panic = nil
	}
	if sd.rp != nil && u.RetryPolicy != nil && reflect.DeepEqual(*u.RetryPolicy, *sd.rp) {
		u.RetryPolicy = nil
	}
}

// decodeBreakers applies circuit_breakers and retry_budget; a block is
// merged into the upstream's own, or into the defaults when it has none;
// null drops the upstream's own block.
func decodeBreakers(o *obj, u *state.Upstream) {
	mergeChild(o, "circuit_breakers", &u.CircuitBreakers, func() *state.CircuitBreakers { return &state.CircuitBreakers{} },
		func(c *obj, cb *state.CircuitBreakers) {
			c.setInt("max_requests", &cb.MaxRequests, 0, 0, config.MaxBreakerLimit)
			c.setInt("max_retries", &cb.MaxRetries, 0, 0, config.MaxBreakerLimit)
			c.setInt("max_connections", &cb.MaxConnections, 0, 0, config.MaxBreakerLimit)
			c.setInt("max_pending_requests", &cb.MaxPendingRequests, 0, 0, config.MaxBreakerLimit)
			c.unknown()
		})
	rbd := config.DefaultRetryBudget()
	mergeChild(o, "retry_budget", &u.RetryBudget, func() *state.RetryBudget {
		return &state.RetryBudget{RetryRatio: rbd.RetryRatio, MinRetriesPerSecond: rbd.MinRetriesPerSecond, TTL: secs(rbd.TTL)}
	}, func(c *obj, rb *state.RetryBudget) {
		c.setFloat("retry_ratio", &rb.RetryRatio, rbd.RetryRatio, 0, config.MaxRetryRatio)
		c.setFloat("min_retries_per_second", &rb.MinRetriesPerSecond, rbd.MinRetriesPerSecond, 0, config.MaxMinRetriesPerSecond)
		c.setFloat("ttl", &rb.TTL, secs(rbd.TTL), secs(config.MinRetryBudgetTTL), secs(config.MaxRetryBudgetTTL))
		c.unknown()
	})
	rpd := config.DefaultRetryPolicy()
	mergeChild(o, "retry_policy", &u.RetryPolicy, func() *state.RetryPolicy { return retryPolicyOut(&rpd) },
		func(c *obj, rp *state.RetryPolicy) { decodeRetryPolicy(c, rp, rpd) })
}

// mergeChild merges the object at k into *dst: a null drops the block
// (nil); an object is decoded into *dst, which fresh makes first when
// there is none; an absent k leaves *dst as it is.
func mergeChild[T any](o *obj, k string, dst **T, fresh func() *T, decode func(c *obj, t *T)) {
	c, present, null := o.child(k)
	switch {
	case !present:
	case null:
		*dst = nil
	case c != nil:
		if *dst == nil {
			*dst = fresh()
		}
		decode(c, *dst)
	}
}

// decodeRetryPolicy merges a retry_policy block into rp (d: the defaults
// null reverts to); as in the file, a base_interval without max_interval
// gets 10 × base_interval.
func decodeRetryPolicy(c *obj, rp *state.RetryPolicy, d config.RetryPolicy) {
	limit := secs(config.MaxRetryTimeout)
	c.setStrings("retry_on", &rp.RetryOn, keep(config.CheckRetryOn))
	if rp.RetryOn == nil {
		rp.RetryOn = slices.Clone(d.RetryOn)
	}
	c.setFloat("per_try_timeout", &rp.PerTryTimeout, 0, 0, limit)
	c.setFloat("timeout", &rp.Timeout, 0, 0, limit)
	if b, present, null := c.child("retry_backoff"); present {
		bo := &rp.RetryBackoff
		switch {
		case null:
			*bo = state.RetryBackoff{BaseInterval: secs(d.BackoffBase), MaxInterval: secs(d.BackoffMax)}
		case b != nil:
			_, maxGiven := b.m["max_interval"]
			b.setFloat("base_interval", &bo.BaseInterval, secs(d.BackoffBase), 0, limit)
			b.setFloat("max_interval", &bo.MaxInterval, secs(d.BackoffMax), 0, limit)
			if _, baseGiven := b.m["base_interval"]; baseGiven && !maxGiven {
				bo.MaxInterval = 10 * bo.BaseInterval
			}
			if bo.MaxInterval < bo.BaseInterval {
				b.fail("max_interval", "%g is less than base_interval %g", bo.MaxInterval, bo.BaseInterval)
			}
			b.unknown()
		}
	}
	c.unknown()
}

func decodeHealthchecks(o *obj, h *state.Healthchecks) {
	o.setFloat("threshold", &h.Threshold, 0, 0, config.MaxPercent)
	mergeChild(o, "active", &h.Active, func() *state.ActiveChecks { return &state.ActiveChecks{} }, func(c *obj, a *state.ActiveChecks) {
		c.setString("type", &a.Type, "", oneOf(config.ActiveCheckTypes()...))
		c.setString("grpc_service", &a.GRPCService, "", keep(config.CheckGRPCService))
		c.setString("http_path", &a.HTTPPath, "", checkPath)
		c.setFloat("timeout", &a.Timeout, 0, 0, config.MaxSeconds)
		c.setInt("concurrency", &a.Concurrency, 0, config.MinConcurrency, config.MaxConcurrency)
		if v, present := c.get("https_verify_certificate"); present {
			if v == nil {
				a.HTTPSVerifyCertificate = nil
			} else if b, why := asBool(v); why != "" {
				c.fail("https_verify_certificate", "%s", why)
			} else {
				a.HTTPSVerifyCertificate = &b
			}
		}
		c.setString("https_sni", &a.HTTPSSNI, "", checkSNI)
		c.setHeaders("headers", &a.Headers, false)
		a.Healthy = decodeCounters(c, "healthy", a.Healthy, true, false)
		a.Unhealthy = decodeCounters(c, "unhealthy", a.Unhealthy, true, true)
		if typ := a.Type; a.GRPCService != "" && !config.GRPCType(typ) {
			if typ == "" {
				typ = config.DefaultUpstream().Healthchecks.Active.Type
			}
			c.fail("grpc_service", "only used by checks of type grpc or grpcs (type is %s)", typ)
		}
		c.unknown()
	})
	mergeChild(o, "passive", &h.Passive, func() *state.PassiveChecks { return &state.PassiveChecks{} }, func(c *obj, p *state.PassiveChecks) {
		c.setString("type", &p.Type, "", oneOf(config.PassiveCheckTypes()...))
		p.Healthy = decodeCounters(c, "healthy", p.Healthy, false, false)
		p.Unhealthy = decodeCounters(c, "unhealthy", p.Unhealthy, false, true)
		d := config.DefaultSuccessRate()
		mergeChild(c, "success_rate", &p.SuccessRate, func() *state.SuccessRate { return successRateOut(&d) }, func(sc *obj, sr *state.SuccessRate) {
			sc.setInt("minimum_hosts", &sr.MinimumHosts, d.MinimumHosts, config.MinSuccessRateHosts, config.MaxSuccessRateCount)
			sc.setInt("request_volume", &sr.RequestVolume, d.RequestVolume, 1, config.MaxSuccessRateCount)
			sc.setInt("stdev_factor", &sr.StdevFactor, d.StdevFactor, 1, config.MaxSuccessRateCount)
			sc.setFloat("interval", &sr.Interval, secs(d.Interval), secs(config.MinSuccessRateInterval), secs(config.MaxSuccessRateInterval))
			sc.unknown()
		})
		c.unknown()
	})
	o.unknown()
}

// decodeCounters applies o[k] (a healthy or unhealthy block) to cur.
func decodeCounters(o *obj, k string, cur *state.Counters, active, unhealthy bool) *state.Counters {
	c, present, null := o.child(k)
	switch {
	case !present || (c == nil && !null):
		return cur
	case null:
		return nil
	}
	if cur == nil {
		cur = &state.Counters{}
	}
	if active {
		c.setFloat("interval", &cur.Interval, 0, 0, config.MaxSeconds)
	}
	if unhealthy {
		c.setInt("http_failures", &cur.HTTPFailures, 0, 0, config.MaxCounter)
		c.setInt("tcp_failures", &cur.TCPFailures, 0, 0, config.MaxCounter)
		c.setInt("timeouts", &cur.Timeouts, 0, 0, config.MaxCounter)
	} else {
		c.setInt("successes", &cur.Successes, 0, 0, config.MaxCounter)
	}
	c.setInts("http_statuses", &cur.HTTPStatuses, config.MinHTTPStatus, config.MaxHTTPStatus)
	if !active && unhealthy {
		c.setInts("grpc_statuses", &cur.GRPCStatuses, 0, config.MaxGRPCStatus)
	}
	c.unknown()
	return cur
}

// hcFromConfig converts an effective healthchecks block back to the
// admin layer's shape, so a PATCH can start from it.
func hcFromConfig(h config.Healthchecks) *state.Healthchecks {
	out := &state.Healthchecks{Threshold: h.Threshold}
	if a := h.Active; a.Enabled {
		out.Active = &state.ActiveChecks{
			Type: a.Type, GRPCService: a.GRPCService, HTTPPath: a.HTTPPath, Timeout: secs(a.Timeout), Concurrency: a.Concurrency,
			HTTPSVerifyCertificate: ptr(a.HTTPSVerifyCertificate), HTTPSSNI: a.HTTPSSNI, Headers: a.Headers,
			Healthy:   &state.Counters{Interval: secs(a.Healthy.Interval), Successes: a.Healthy.Successes, HTTPStatuses: a.Healthy.HTTPStatuses},
			Unhealthy: &state.Counters{Interval: secs(a.Unhealthy.Interval), HTTPFailures: a.Unhealthy.HTTPFailures, TCPFailures: a.Unhealthy.TCPFailures, Timeouts: a.Unhealthy.Timeouts, HTTPStatuses: a.Unhealthy.HTTPStatuses},
		}
	}
	if p := h.Passive; p.Enabled {
		out.Passive = &state.PassiveChecks{
			Type:        p.Type,
			Healthy:     &state.Counters{Successes: p.Healthy.Successes, HTTPStatuses: p.Healthy.HTTPStatuses},
			Unhealthy:   &state.Counters{HTTPFailures: p.Unhealthy.HTTPFailures, TCPFailures: p.Unhealthy.TCPFailures, Timeouts: p.Unhealthy.Timeouts, HTTPStatuses: p.Unhealthy.HTTPStatuses, GRPCStatuses: p.Unhealthy.GRPCStatuses},
			SuccessRate: successRateOut(p.SuccessRate),
		}
	}
	return out
}

func offHealthchecks() *state.Healthchecks { return &state.Healthchecks{} }

// checkHashing checks the hash_on / hash_fallback combination and that
// the inputs they name are set.
func checkHashing(u *state.Upstream) error {
	f := fields{}
	if why := config.HashFallbackProblem(u.HashOn, u.HashFallback); why != "" {
		f.add("hash_fallback", "%s", why)
	}
	inputs := config.HashInputs{Header: u.HashOnHeader, Cookie: u.HashOnCookie, QueryArg: u.HashOnQueryArg, URICapture: u.HashOnURICapture}
	for _, key := range []string{"hash_on", "hash_fallback"} {
		input := u.HashOn
		if key == "hash_fallback" {
			input = u.HashFallback
		}
		if inputs.Missing(input) {
			f.add("hash_on_"+input, "required when %s is %s", key, input)
		}
	}
	return f.err()
}

// cloneJSON deep-copies plain data.
func cloneJSON[T any](v *T) *T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("admin: clone: %v", err)) // plain data cannot fail
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		panic(fmt.Sprintf("admin: clone: %v", err))
	}
	return out
}

// editableUpstream returns a copy of the named effective upstream in the
// admin layer's shape: the Doc's entity, or the file's converted whole
// (settings written out, targets with their derived ids, healthchecks nil
// so the file's stay in force until a change names them).
func (w *world) editableUpstream(name string) *state.Upstream {
	eff, _ := w.eff.Upstream(name)
	var u *state.Upstream
	if d, ok := w.doc.Upstreams[name]; ok && !d.Deleted {
		u = cloneJSON(d)
		if u.ID == "" {
			u.ID = w.k.upstream.fileID(w, name)
		}
		for i := range u.Targets {
			if u.Targets[i].ID == "" {
				u.Targets[i].ID = stableID(kindTarget, name+"/"+u.Targets[i].Target)
			}
		}
	} else {
		u = &state.Upstream{Meta: w.k.upstream.fileMeta(w, name), Name: name}
		for _, t := range eff.Targets {
			u.Targets = append(u.Targets, state.Target{
				Meta:   state.Meta{ID: cmp.Or(t.ID, targetID(name, t.Target)), CreatedAt: w.started, UpdatedAt: w.started},
				Target: t.Target, Weight: t.Weight, Tags: slices.Clone(t.Tags),
			})
		}
	}
	u.Algorithm, u.HashOn, u.HashFallback = eff.Algorithm, eff.HashOn, eff.HashFallback
	u.HashOnHeader, u.HashOnCookie, u.HashOnCookiePath = eff.HashOnHeader, eff.HashOnCookie, eff.HashOnCookiePath
	u.HashOnQueryArg, u.HashOnURICapture, u.Slots = eff.HashOnQueryArg, eff.HashOnURICapture, eff.Slots
	u.Tags = slices.Clone(eff.Tags)
	return u
}

// upstreamUsers lists what refers to upstream name: services by host and
// canaries.
func (w *world) upstreamUsers(name string) (services []string) {
	for _, s := range w.eff.Services {
		if s.Host == name {
			services = append(services, s.Name)
		}
	}
	for svc, c := range w.doc.Canaries {
		if c != nil && c.Upstream == name && !slices.Contains(services, svc) {
			services = append(services, svc)
		}
	}
	slices.Sort(services)
	return services
}

// putUpstream stores u under its name, handling a rename from old: the
// name must be free, nothing may refer to the old name, and overrides and
// marks follow.
func (w *world) putUpstream(old string, u *state.Upstream, now int64) error {
	if old != "" && u.Name != old {
		if w.k.upstream.keyTaken(w, u.Name) {
			return uniqueViolation("name", u.Name)
		}
		if users := w.upstreamUsers(old); len(users) > 0 {
			return referenced("upstreams", "services", users)
		}
		w.k.upstream.remove(w, old, now)
		for i := range w.doc.Overrides {
			if w.doc.Overrides[i].Upstream == old {
				w.doc.Overrides[i].Upstream = u.Name
			}
		}
		if m, ok := w.doc.Marks[old]; ok {
			delete(w.doc.Marks, old)
			w.doc.Marks[u.Name] = m
		}
	}
	u.Deleted = false
	w.doc.Upstreams[u.Name] = u
	return nil
}

// Handlers.

// upstreamDecoder checks a body in full (against defaults) and returns
// the function that applies it to an entity inside Mutate.
func upstreamDecoder(b *obj) (func(u *state.Upstream, base func() *state.Healthchecks) error, error) {
	apply := func(u *state.Upstream, base func() *state.Healthchecks) error {
		return b.decode(func(o *obj) { decodeUpstream(o, u, base) })
	}
	scratch := newUpstream()
	if err := apply(&scratch, offHealthchecks); err != nil {
		return nil, err
	}
	return apply, nil
}

// bodyID reads an optional "id" from a body.
func bodyID(b *obj) (string, error) {
	o := newObj(b.m, b.form)
	id := ""
	o.setString("id", &id, "", checkID)
	return id, o.err()
}

// slowStartOf is an upstream's slow start in the API's shape (nil: none).
func slowStartOf(u *config.Upstream) *state.SlowStart {
	s := u.SlowStart
	if s == nil {
		return nil
	}
	return &state.SlowStart{Window: state.Duration(s.Window), Aggression: s.Aggression, MinWeightPercent: s.MinWeightPercent}
}

// checkSlowStart refuses a slow_start block without a window (merged
// into an upstream that had none).
func checkSlowStart(u *state.Upstream) error {
	if s := u.SlowStart; s != nil && s.Window == 0 && *s != (state.SlowStart{}) {
		return fieldError("slow_start.window", "required field missing")
	}
	return nil
}

// decodeSlowStartPanic applies slow_start and panic as the file reads
// them: slow_start needs a positive window (null removes it), aggression
// is positive, min_weight_percent and min_healthy_percent 0..100; a block
// is merged into the upstream's own.
func decodeSlowStartPanic(o *obj, u *state.Upstream) {
	if c, present, null := o.child("slow_start"); present {
		switch {
		case null:
			u.SlowStart = &state.SlowStart{}
		case c != nil:
			if u.SlowStart == nil || u.SlowStart.Window == 0 {
				u.SlowStart = &state.SlowStart{Aggression: 1, MinWeightPercent: 10}
			}
			s := u.SlowStart
			if v, present := c.get("window"); present {
				d, why := asDuration(v)
				switch {
				case v == nil || d == 0 && why == "":
					c.fail("window", "must be positive")
				case why != "":
					c.fail("window", "%s", why)
				default:
					s.Window = state.Duration(d)
				}
			}
			c.setFloat("aggression", &s.Aggression, 1, 0, config.MaxAggression)
			if s.Aggression <= 0 {
				c.fail("aggression", "must be greater than 0")
			}
			c.setFloat("min_weight_percent", &s.MinWeightPercent, 10, 0, config.MaxPercent)
			c.unknown()
		}
	}
	pd := config.DefaultUpstream().Panic
	mergeChild(o, "panic", &u.Panic, func() *state.Panic { return &state.Panic{MinHealthyPercent: pd.MinHealthyPercent, Mode: pd.Mode} },
		func(c *obj, p *state.Panic) {
			c.setFloat("min_healthy_percent", &p.MinHealthyPercent, pd.MinHealthyPercent, 0, config.MaxPercent)
			c.setString("mode", &p.Mode, pd.Mode, oneOf(config.PanicModes()...))
			c.unknown()
		})
}
