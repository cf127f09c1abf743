package admin

import (
	"cmp"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// upstreamOut is an upstream as the API shows it (Kong's shape).
type upstreamOut struct {
	ID               string                 `json:"id"`
	Name             string                 `json:"name"`
	Algorithm        string                 `json:"algorithm"`
	HashOn           string                 `json:"hash_on"`
	HashFallback     string                 `json:"hash_fallback"`
	HashOnHeader     *string                `json:"hash_on_header"`
	HashOnCookie     *string                `json:"hash_on_cookie"`
	HashOnCookiePath string                 `json:"hash_on_cookie_path"`
	HashOnQueryArg   *string                `json:"hash_on_query_arg"`
	HashOnURICapture *string                `json:"hash_on_uri_capture"`
	Slots            int                    `json:"slots"`
	StickyCookie     string                 `json:"sticky_sessions_cookie"`
	StickyTTL        config.Duration        `json:"sticky_sessions_cookie_ttl"`
	SlowStart        *config.SlowStart      `json:"slow_start"`
	Panic            config.Panic           `json:"panic"`
	Healthchecks     hcOut                  `json:"healthchecks"`
	CircuitBreakers  config.CircuitBreakers `json:"circuit_breakers"`
	RetryBudget      config.RetryBudget     `json:"retry_budget"`
	RetryPolicy      *config.RetryPolicy    `json:"retry_policy"`
	Tags             []string               `json:"tags"`
	CreatedAt        int64                  `json:"created_at"`
	UpdatedAt        int64                  `json:"updated_at"`
}

type hcOut struct {
	Threshold float64  `json:"threshold"`
	Active    blockOut `json:"active"`
	Passive   blockOut `json:"passive"`
}

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func ptr[T any](v T) *T { return &v }

// renderUpstream shows an effective upstream.
func renderUpstream(u *config.Upstream, m state.Meta) upstreamOut {
	h := u.Healthchecks
	return upstreamOut{
		ID: m.ID, Name: u.Name, Algorithm: u.Algorithm, HashOn: u.HashOn, HashFallback: u.HashFallback,
		HashOnHeader: strOrNil(u.HashOnHeader), HashOnCookie: strOrNil(u.HashOnCookie),
		HashOnCookiePath: u.HashOnCookiePath, HashOnQueryArg: strOrNil(u.HashOnQueryArg),
		HashOnURICapture: strOrNil(u.HashOnURICapture), Slots: u.Slots, Tags: tagsOut(u.Tags),
		StickyCookie: u.StickyCookie, StickyTTL: config.Duration(u.StickyLifetime()), SlowStart: u.SlowStart,
		Panic: *u.Panic,
		Healthchecks: hcOut{
			Threshold: h.Threshold,
			Active: fieldsOut(config.ActiveSchema(), &h.Active, map[string]any{"headers": h.Active.Headers,
				"healthy":   fieldsOut(config.ActiveHealthySchema(), &h.Active.Healthy, nil),
				"unhealthy": fieldsOut(config.ActiveUnhealthySchema(), &h.Active.Unhealthy, nil),
			}, "grpc_service", "https_sni"),
			Passive: fieldsOut(config.PassiveSchema(), &h.Passive, map[string]any{
				"healthy":      fieldsOut(config.PassiveHealthySchema(), &h.Passive.Healthy, nil),
				"unhealthy":    fieldsOut(config.PassiveUnhealthySchema(), &h.Passive.Unhealthy, nil),
				"success_rate": h.Passive.SuccessRate,
			}),
		},
		CircuitBreakers: *u.CircuitBreakers, RetryPolicy: u.RetryPolicy, RetryBudget: *u.RetryBudget,
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
	}
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
func newUpstream() config.Upstream {
	d := config.DefaultUpstream()
	return config.Upstream{
		Algorithm: d.Algorithm, HashOn: d.HashOn, HashFallback: d.HashFallback,
		HashOnCookiePath: d.HashOnCookiePath, Slots: d.Slots,
	}
}

// decodeUpstream applies a body to u. Healthchecks are merged into
// u.Healthchecks, starting from base() when u has none.
func decodeUpstream(o *obj, u *config.Upstream, base func() *config.Healthchecks) {
	decodeFields(o, config.UpstreamSchema(), u, map[string]func(string) (string, error){"hash_on_cookie_path": checkPath})
	if v, present := o.get("sticky_sessions_cookie_ttl"); present {
		u.StickyTTL = nil
		if v != nil {
			if ttl, why := asDuration(v); why != "" {
				o.fail("sticky_sessions_cookie_ttl", "%s", why)
			} else {
				u.StickyTTL = ptr(config.Duration(ttl))
			}
		}
	}
	decodeSlowStartPanic(o, u)
	if c, present, null := o.child("healthchecks"); present {
		switch {
		case null:
			u.Healthchecks = offHealthchecks()
		case c != nil:
			if u.Healthchecks == nil {
				u.Healthchecks = base()
			}
			decodeHealthchecks(c, u.Healthchecks)
		}
	}
	decodeBreakers(o, u)
	o.kongFields(config.KindUpstream)
	o.unknown()
	// The problems within a block are the body's own; the hashing and
	// slow start ones are judged once the body decoded (validate).
	for _, p := range u.Validate() {
		switch p.Field {
		case "healthchecks.active.grpc_service", "slow_start.aggression":
			o.fail(p.Field, "%s", p.Msg)
		case "retry_policy.retry_backoff.max_interval":
			o.fail(p.Field, "%g is less than base_interval %g", p.Got.Seconds(), p.Bound.Seconds())
		}
	}
}

// validate reports u's problems (Upstream.Validate) that of selects, as
// the API words them.
func validate(u *config.Upstream, of func(config.Problem) bool) error {
	f := fields{}
	for _, p := range u.Validate() {
		if of(p) {
			f.add(p.Field, "%s", p.Msg)
		}
	}
	return f.err()
}

// hashing selects the hashing problems, slowStart the slow start's.
func hashing(p config.Problem) bool {
	return p.Field == "hash_fallback" || strings.HasPrefix(p.Field, "hash_on_")
}

func slowStart(p config.Problem) bool { return p.Field == "slow_start.window" }

// seeded records the blocks seedBreakers gave an upstream, as given.
type seeded struct {
	cb *config.CircuitBreakers
	rb *config.RetryBudget
	ss *config.SlowStart
	pa *config.Panic
	rp *config.RetryPolicy
}

// seedBreakers gives u, for a PATCH, the effective circuit_breakers and
// retry_budget where it has none of its own, so a partial block merges
// into the file's (or the defaults).
func seedBreakers(u *config.Upstream, eff *config.Upstream) seeded {
	var sd seeded
	if eff == nil {
		return sd
	}
	if u.CircuitBreakers == nil {
		sd.cb = ptr(*eff.CircuitBreakers)
		u.CircuitBreakers = ptr(*sd.cb)
	}
	if u.RetryPolicy == nil && eff.RetryPolicy != nil {
		sd.rp = eff.RetryPolicy.Clone()
		u.RetryPolicy = eff.RetryPolicy.Clone()
	}
	if u.RetryBudget == nil {
		sd.rb = ptr(*eff.RetryBudget)
		u.RetryBudget = ptr(*sd.rb)
	}
	if u.SlowStart == nil {
		sd.ss = &config.SlowStart{}
		if eff.SlowStart != nil {
			sd.ss = ptr(*eff.SlowStart)
		}
		u.SlowStart = ptr(*sd.ss)
	}
	if u.Panic == nil {
		sd.pa = ptr(*eff.Panic)
		u.Panic = ptr(*sd.pa)
	}
	return sd
}

// unseedBreakers drops the seeded blocks the PATCH left as they were, so
// the file's keep shining through.
func unseedBreakers(u *config.Upstream, sd seeded) {
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
func decodeBreakers(o *obj, u *config.Upstream) {
	mergeChild(o, "circuit_breakers", &u.CircuitBreakers, func() *config.CircuitBreakers { return &config.CircuitBreakers{} },
		func(c *obj, cb *config.CircuitBreakers) {
			decodeFields(c, config.CircuitBreakersSchema(), cb, nil)
			c.unknown()
		})
	rbd := config.DefaultRetryBudget()
	mergeChild(o, "retry_budget", &u.RetryBudget, func() *config.RetryBudget { return ptr(rbd) }, func(c *obj, rb *config.RetryBudget) {
		decodeFields(c, config.RetryBudgetSchema(), rb, nil)
		c.unknown()
	})
	rpd := config.DefaultRetryPolicy()
	mergeChild(o, "retry_policy", &u.RetryPolicy, func() *config.RetryPolicy { return rpd.Clone() },
		func(c *obj, rp *config.RetryPolicy) { decodeRetryPolicy(c, rp, rpd) })
}

// setSeconds is setFloat for a duration given in seconds (def, lo and hi
// in seconds too).
func setSeconds[D ~int64](o *obj, k string, dst *D, def, lo, hi float64) {
	if !o.has(k) {
		return
	}
	cur := time.Duration(*dst).Seconds()
	f := cur
	o.setFloat(k, &f, def, lo, hi)
	if f != cur {
		*dst = D(config.SecondsOf(f))
	}
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
func decodeRetryPolicy(c *obj, rp *config.RetryPolicy, d config.RetryPolicy) {
	c.setStrings("retry_on", &rp.RetryOn, keep(config.CheckRetryOn))
	if rp.RetryOn == nil {
		rp.RetryOn = slices.Clone(d.RetryOn)
	}
	decodeFields(c, config.RetryPolicySchema(), rp, nil)
	if b, present, null := c.child("retry_backoff"); present {
		switch {
		case null:
			rp.BackoffBase, rp.BackoffMax = d.BackoffBase, d.BackoffMax
		case b != nil:
			_, maxGiven := b.m["max_interval"]
			decodeFields(b, config.RetryBackoffSchema(), rp, nil)
			if _, baseGiven := b.m["base_interval"]; baseGiven && !maxGiven {
				rp.BackoffMax = 10 * rp.BackoffBase
			}
			b.unknown()
		}
	}
	c.unknown()
}

// mergeChecker merges the object at k into a health checker: a null
// turns it off (its settings back to the defaults, off()); an object
// turns it on, over the defaults when it was off, and is decoded into it.
func mergeChecker(o *obj, k string, enabled *bool, off func(), decode func(c *obj)) {
	c, present, null := o.child(k)
	switch {
	case !present:
	case null:
		off()
	case c != nil:
		if !*enabled {
			off()
			*enabled = true
		}
		decode(c)
	}
}

func decodeHealthchecks(o *obj, h *config.Healthchecks) {
	d := config.DefaultUpstream().Healthchecks
	decodeFields(o, config.HealthchecksSchema(), h, nil)
	mergeChecker(o, "active", &h.Active.Enabled, func() { h.Active = d.Clone().Active }, func(c *obj) {
		a := &h.Active
		decodeFields(c, config.ActiveSchema(), a, map[string]func(string) (string, error){"http_path": checkPath, "https_sni": checkSNI})
		c.setHeaders("headers", &a.Headers, false)
		decodeCounters(c, config.ActiveHealthySchema(), &a.Healthy)
		decodeCounters(c, config.ActiveUnhealthySchema(), &a.Unhealthy)
		c.unknown()
	})
	mergeChecker(o, "passive", &h.Passive.Enabled, func() { h.Passive = d.Clone().Passive }, func(c *obj) {
		p := &h.Passive
		decodeFields(c, config.PassiveSchema(), p, nil)
		decodeCounters(c, config.PassiveHealthySchema(), &p.Healthy)
		decodeCounters(c, config.PassiveUnhealthySchema(), &p.Unhealthy)
		srd := config.DefaultSuccessRate()
		mergeChild(c, "success_rate", &p.SuccessRate, func() *config.SuccessRate { return ptr(srd) }, func(sc *obj, sr *config.SuccessRate) {
			decodeFields(sc, config.SuccessRateSchema(), sr, nil)
			sc.unknown()
		})
		c.unknown()
	})
	o.unknown()
}

// decodeCounters applies a healthy or unhealthy block (s) to v; null
// resets it to s's defaults.
func decodeCounters[T any](o *obj, s *config.Schema[T], v *T) {
	c, present, null := o.child(s.Kind)
	switch {
	case !present || (c == nil && !null):
		return
	case null:
		*v = s.New()
		return
	}
	decodeFields(c, s, v, nil)
	c.unknown()
}

// offHealthchecks is healthchecks with both checkers off.
func offHealthchecks() *config.Healthchecks { return config.DefaultUpstream().Healthchecks }

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
func (w *world) editableUpstream(name string) *config.Upstream {
	eff, _ := w.eff.Upstream(name)
	var u *config.Upstream
	if d, ok := w.doc.Upstreams[name]; ok && !d.Deleted {
		u = d.Clone()
		if u.ID == "" {
			u.ID = w.k.upstream.fileID(w, name)
		}
		for i := range u.Targets {
			if u.Targets[i].ID == "" {
				u.Targets[i].ID = stableID(kindTarget, name+"/"+u.Targets[i].Target)
			}
		}
	} else {
		u = &config.Upstream{Meta: w.k.upstream.fileMeta(w, name), Name: name}
		for _, t := range eff.Targets {
			u.Targets = append(u.Targets, config.Target{
				Meta:   state.Meta{ID: cmp.Or(t.ID, targetID(name, t.Target)), CreatedAt: w.started, UpdatedAt: w.started},
				Target: t.Target, Weight: t.Weight, Tags: slices.Clone(t.Tags), Priority: t.Priority, Backup: t.Backup, Zone: t.Zone,
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
func (w *world) putUpstream(old string, u *config.Upstream, now int64) error {
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
func upstreamDecoder(b *obj) (func(u *config.Upstream, base func() *config.Healthchecks) error, error) {
	apply := func(u *config.Upstream, base func() *config.Healthchecks) error {
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

// decodeSlowStartPanic applies slow_start and panic as the file reads
// them: slow_start needs a positive window (null removes it), aggression
// is positive, min_weight_percent and min_healthy_percent 0..100; a block
// is merged into the upstream's own.
func decodeSlowStartPanic(o *obj, u *config.Upstream) {
	if c, present, null := o.child("slow_start"); present {
		switch {
		case null:
			u.SlowStart = &config.SlowStart{}
		case c != nil:
			if u.SlowStart == nil || u.SlowStart.Window == 0 {
				u.SlowStart = ptr(config.SlowStartSchema().New())
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
					s.Window = config.Duration(d)
				}
			}
			decodeFields(c, config.SlowStartSchema(), s, nil)
			c.unknown()
		}
	}
	pd := config.DefaultUpstream().Panic
	mergeChild(o, "panic", &u.Panic, func() *config.Panic { return ptr(*pd) },
		func(c *obj, p *config.Panic) {
			decodeFields(c, config.PanicSchema(), p, nil)
			c.unknown()
		})
}
