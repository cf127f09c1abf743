package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// canaryOut is a service's canary as the API shows it.
type canaryOut struct {
	Service idRef `json:"service"`
	// Primary is the service's host (the primary upstream).
	Primary   string            `json:"primary"`
	Upstream  string            `json:"upstream"`
	Percent   float64           `json:"percent"`
	Force     []state.ForceRule `json:"force"`
	StickyBy  *string           `json:"sticky_by"`
	UpdatedAt int64             `json:"updated_at"`
}

func (w *world) renderCanary(service string, c *state.Canary) canaryOut {
	s, _ := w.eff.Service(service)
	m := w.k.service.metaOf(w, service)
	force := c.Force
	if force == nil {
		force = []state.ForceRule{}
	}
	return canaryOut{
		Service: idRef{ID: m.ID, Name: *shownNameOr(service, m)}, Primary: s.Host, Upstream: c.Upstream,
		Percent: c.Percent, Force: force, StickyBy: strOrNil(c.StickyBy), UpdatedAt: c.UpdatedAt,
	}
}

// parseForce reads a force rule: "kind:name:value" (kind header, cookie
// or query).
func parseForce(s string) (state.ForceRule, error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) != 3 {
		return state.ForceRule{}, fmt.Errorf("%q: expected kind:name:value (header:X-Canary:1)", s)
	}
	r := state.ForceRule{Kind: parts[0], Name: parts[1], Value: parts[2]}
	return r, checkForce(r)
}

// Force rule kinds.
const (
	forceHeader = "header"
	forceCookie = "cookie"
	forceQuery  = "query"
)

func forceKinds() []string { return []string{forceHeader, forceCookie, forceQuery} }

func checkForce(r state.ForceRule) error {
	switch r.Kind {
	case forceHeader, forceCookie:
		if err := config.CheckToken(r.Name); err != nil {
			return fmt.Errorf("invalid %s name: %v", r.Kind, err)
		}
	case forceQuery:
		if r.Name == "" {
			return fmt.Errorf("query argument name must not be empty")
		}
	default:
		return fmt.Errorf("kind %q: expected one of: %s", r.Kind, strings.Join(forceKinds(), ", "))
	}
	return nil
}

// checkSticky checks sticky_by: "", "ip", "header:NAME" or "cookie:NAME".
func checkSticky(s string) (string, error) {
	if s == "" || s == "ip" {
		return s, nil
	}
	kind, name, ok := strings.Cut(s, ":")
	if !ok || (kind != "header" && kind != "cookie") {
		return "", fmt.Errorf("expected ip, header:NAME or cookie:NAME")
	}
	if err := config.CheckToken(name); err != nil {
		return "", fmt.Errorf("invalid %s name: %v", kind, err)
	}
	return s, nil
}

func decodeCanary(o *obj, c *state.Canary) {
	o.setString("upstream", &c.Upstream, "", keep(config.CheckUpstreamName))
	o.setFloat("percent", &c.Percent, 0, 0, config.MaxPercent)
	o.setString("sticky_by", &c.StickyBy, "", checkSticky)
	if v, present := o.get("force"); present {
		c.Force = nil
		if v != nil {
			list, why := asList(v)
			if why != "" {
				o.fail("force", "%s", why)
			}
			rules := []state.ForceRule{}
			for i, item := range list {
				var r state.ForceRule
				var err error
				switch x := item.(type) {
				case string:
					r, err = parseForce(x)
				case formValue:
					r, err = parseForce(string(x))
				case map[string]any:
					rc := &obj{m: x, form: o.form, prefix: o.key("force") + "." + strconv.Itoa(i+1) + ".", errs: o.errs, used: map[string]bool{}}
					rc.setString("kind", &r.Kind, "", nil)
					rc.setString("name", &r.Name, "", nil)
					rc.setString("value", &r.Value, "", nil)
					rc.unknown()
					err = checkForce(r)
				default:
					err = fmt.Errorf("expected a record {kind, name, value} or \"kind:name:value\"")
				}
				if err != nil {
					o.fail("force", "item %d: %v", i+1, err)
					break
				}
				rules = append(rules, r)
			}
			c.Force = rules
		}
	}
	o.ignore("service", "primary", "updated_at")
	o.unknown()
}

// canaryDecoder checks a body's fields in full and returns its applier.
func canaryDecoder(b *obj) (func(c *state.Canary) error, error) {
	apply := func(c *state.Canary) error {
		return b.decode(func(o *obj) { decodeCanary(o, c) })
	}
	if err := apply(&state.Canary{}); err != nil {
		return nil, err
	}
	return apply, nil
}

// checkCanary checks a canary against the world: its upstream exists and
// is not the service's primary.
func (w *world) checkCanary(service string, c *state.Canary) error {
	if c.Upstream == "" {
		return fieldError("upstream", "required field missing")
	}
	if _, ok := w.eff.Upstream(c.Upstream); !ok {
		return fieldError("upstream", "upstream '%s' does not exist", c.Upstream)
	}
	if s, _ := w.eff.Service(service); s != nil && s.Host == c.Upstream {
		return fieldError("upstream", "must differ from the service's primary upstream '%s'", s.Host)
	}
	return nil
}

func (a *api) getCanary(r *http.Request) (int, any, error) {
	w, s, _, err := viewParent(a, r, services)
	if err != nil {
		return 0, nil, err
	}
	c := w.doc.Canaries[s.Name]
	if c == nil {
		return 0, nil, notFound()
	}
	return http.StatusOK, w.renderCanary(s.Name, c), nil
}

// putCanary returns PUT (replace; creating answers 201) or PATCH (the
// canary must exist) /services/{s}/canary.
func (a *api) putCanary(patch bool) func(*http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		apply, _, err := readApplier(r, canaryDecoder)
		if err != nil {
			return 0, nil, err
		}
		now := a.now().Unix()
		status := http.StatusOK
		var out canaryOut
		_, err = a.underService(r, func(w *world, s *config.Service, _ state.Meta) error {
			cur := w.doc.Canaries[s.Name]
			c := &state.Canary{}
			switch {
			case patch && cur == nil:
				return notFound()
			case patch:
				c = cur.Clone()
			case cur == nil:
				status = http.StatusCreated
			}
			if err := apply(c); err != nil {
				return err
			}
			if err := w.checkCanary(s.Name, c); err != nil {
				return err
			}
			c.UpdatedAt = now
			w.doc.Canaries[s.Name] = c
			out = w.renderCanary(s.Name, c)
			return nil
		})
		if err != nil {
			return 0, nil, err
		}
		return status, out, nil
	}
}

func (a *api) deleteCanary(r *http.Request) (int, any, error) {
	_, err := a.underService(r, func(w *world, s *config.Service, _ state.Meta) error {
		if w.doc.Canaries[s.Name] == nil {
			return notFound()
		}
		if ro := w.doc.Rollouts[s.Name]; ro != nil && (ro.State == state.RolloutRunning || ro.State == state.RolloutPaused) {
			return conflict("a rollout of service '%s' is %s: abort it first", s.Name, ro.State)
		}
		delete(w.doc.Canaries, s.Name)
		delete(w.doc.Rollouts, s.Name)
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// Rollouts.

// Rollout defaults (their bounds are config's).
const (
	defaultMaxErrorRateIncrease = 0.01
	defaultMaxP99Ratio          = 1.5
	defaultMinRequests          = 100
)

// rolloutOut is a rollout and, while the gateway evaluates it, its
// measurements.
type rolloutOut struct {
	Service              idRef          `json:"service"`
	Steps                []float64      `json:"steps"`
	Interval             state.Duration `json:"interval"`
	MaxErrorRateIncrease float64        `json:"max_error_rate_increase"`
	MaxP99Ratio          float64        `json:"max_p99_ratio"`
	MinRequests          int            `json:"min_requests"`
	State                string         `json:"state"`
	Step                 int            `json:"step"`
	// Percent is the current step's canary percent; CanaryPercent the
	// canary's percent now (0 after an abort or a rollback).
	Percent       float64        `json:"percent"`
	CanaryPercent *float64       `json:"canary_percent"`
	StepSince     int64          `json:"step_since"`
	Reason        *string        `json:"reason"`
	UpdatedAt     int64          `json:"updated_at"`
	Status        *RolloutStatus `json:"status"`
}

func (w *world) renderRollout(service string, ro *state.Rollout, st *RolloutStatus) rolloutOut {
	m := w.k.service.metaOf(w, service)
	out := rolloutOut{
		Service: idRef{ID: m.ID, Name: *shownNameOr(service, m)}, Steps: ro.Steps, Interval: ro.Interval,
		MaxErrorRateIncrease: ro.MaxErrorRateIncrease, MaxP99Ratio: ro.MaxP99Ratio, MinRequests: ro.MinRequests,
		State: ro.State, Step: ro.Step, StepSince: ro.StepSince, Reason: strOrNil(ro.Reason), UpdatedAt: ro.UpdatedAt, Status: st,
	}
	if ro.Step >= 0 && ro.Step < len(ro.Steps) {
		out.Percent = ro.Steps[ro.Step]
	}
	if c := w.doc.Canaries[service]; c != nil {
		out.CanaryPercent = ptr(c.Percent)
	}
	return out
}

// setInterval sets *dst from k when k is present and not null, by
// parseInterval (zero, with the error reported, when it does not parse).
func (o *obj) setInterval(k string, dst *state.Duration) {
	if v, present := o.get(k); present && v != nil {
		d, why := parseInterval(v)
		if why != "" {
			o.fail(k, "%s", why)
		}
		*dst = state.Duration(d)
	}
}

// parseInterval reads "30s" or a number of seconds.
func parseInterval(v any) (time.Duration, string) {
	var d time.Duration
	switch x := v.(type) {
	case json.Number, formValue:
		s := fmt.Sprint(x)
		if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
			d = time.Duration(f * float64(time.Second))
			break
		}
		p, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return 0, "expected a duration (\"30s\") or a number of seconds"
		}
		d = p
	case string:
		p, err := time.ParseDuration(x)
		if err != nil {
			return 0, "expected a duration (\"30s\") or a number of seconds"
		}
		d = p
	default:
		return 0, "expected a duration (\"30s\") or a number of seconds"
	}
	if d < config.MinRolloutInterval || d > config.MaxRolloutInterval {
		return 0, "must be between " + fmtDuration(config.MinRolloutInterval) + " and " + fmtDuration(config.MaxRolloutInterval)
	}
	return d, ""
}

func decodeRollout(o *obj, ro *state.Rollout) {
	if v, present := o.get("steps"); present && v != nil {
		list, why := listOfNumbers(v)
		if why != "" {
			o.fail("steps", "%s", why)
		}
		steps := []float64{}
		for i, item := range list {
			f, why := asFloat(item)
			switch {
			case why != "":
				o.fail("steps", "item %d: %s", i+1, why)
			case f < 0 || f > config.MaxPercent:
				o.fail("steps", "item %d: value should be between 0 and %d", i+1, config.MaxPercent)
			case i > 0 && f <= steps[i-1]:
				o.fail("steps", "must be strictly increasing")
			}
			steps = append(steps, f)
		}
		ro.Steps = steps
	}
	o.setInterval("interval", &ro.Interval)
	o.setFloat("max_error_rate_increase", &ro.MaxErrorRateIncrease, defaultMaxErrorRateIncrease, 0, config.MaxErrorRateIncrease)
	o.setFloat("max_p99_ratio", &ro.MaxP99Ratio, defaultMaxP99Ratio, config.MinP99Ratio, config.MaxP99Ratio)
	o.setInt("min_requests", &ro.MinRequests, defaultMinRequests, 0, config.MaxMinRequests)
	o.unknown()
	if len(ro.Steps) == 0 {
		o.errs.add("steps", "required field missing")
	}
	if ro.Interval == 0 {
		o.errs.add("interval", "required field missing")
	}
}

func (a *api) getRollout(r *http.Request) (int, any, error) {
	w, s, _, err := viewParent(a, r, services)
	if err != nil {
		return 0, nil, err
	}
	ro := w.doc.Rollouts[s.Name]
	if ro == nil {
		return 0, nil, notFound()
	}
	var st *RolloutStatus
	if v, ok := a.ctl.RolloutStatus(s.Name); ok {
		st = &v
	}
	return http.StatusOK, w.renderRollout(s.Name, ro, st), nil
}

// startRollout (POST /services/{s}/rollout) starts a rollout: state
// running at step 0, the canary at steps[0]. A running or paused rollout
// must be aborted first.
func (a *api) startRollout(r *http.Request) (int, any, error) {
	b, err := readBody(r)
	if err != nil {
		return 0, nil, err
	}
	fresh := func() state.Rollout {
		return state.Rollout{MaxErrorRateIncrease: defaultMaxErrorRateIncrease, MaxP99Ratio: defaultMaxP99Ratio, MinRequests: defaultMinRequests}
	}
	ro := fresh()
	o := newObj(b.m, b.form)
	decodeRollout(o, &ro)
	if err := o.err(); err != nil {
		return 0, nil, err
	}
	now := a.now().Unix()
	var out rolloutOut
	_, err = a.underService(r, func(w *world, s *config.Service, _ state.Meta) error {
		c := w.doc.Canaries[s.Name]
		if c == nil {
			return fieldError("canary", "service '%s' has no canary: PUT /services/%s/canary first", s.Name, s.Name)
		}
		if cur := w.doc.Rollouts[s.Name]; cur != nil && (cur.State == state.RolloutRunning || cur.State == state.RolloutPaused) {
			return conflict("a rollout of service '%s' is already %s", s.Name, cur.State)
		}
		nro := ro
		nro.Steps = append([]float64(nil), ro.Steps...)
		nro.State, nro.Step, nro.StepSince, nro.UpdatedAt = state.RolloutRunning, 0, now, now
		w.doc.Rollouts[s.Name] = &nro
		c.Percent, c.UpdatedAt = nro.Steps[0], now
		out = w.renderRollout(s.Name, &nro, nil)
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, out, nil
}

// rolloutAction returns the handler of POST /services/{s}/rollout/pause,
// resume or abort.
func (a *api) rolloutAction(action string) func(*http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		if b, err := readBody(r); err != nil {
			return 0, nil, err
		} else if len(b.m) > 0 {
			o := newObj(b.m, b.form)
			o.ignore("reason")
			o.unknown()
			if err := o.err(); err != nil {
				return 0, nil, err
			}
		}
		now := a.now().Unix()
		var out rolloutOut
		_, err := a.underService(r, func(w *world, s *config.Service, _ state.Meta) error {
			ro := w.doc.Rollouts[s.Name]
			if ro == nil {
				return notFound()
			}
			switch action {
			case "pause":
				if ro.State != state.RolloutRunning {
					return conflict("the rollout of service '%s' is %s, not running", s.Name, ro.State)
				}
				ro.State = state.RolloutPaused
			case "resume":
				if ro.State != state.RolloutPaused {
					return conflict("the rollout of service '%s' is %s, not paused", s.Name, ro.State)
				}
				// The step's clock restarts: the hold time counts from now.
				ro.State, ro.StepSince = state.RolloutRunning, now
			case "abort":
				if ro.State != state.RolloutRunning && ro.State != state.RolloutPaused {
					return conflict("the rollout of service '%s' is %s; only a running or paused rollout can be aborted", s.Name, ro.State)
				}
				ro.State, ro.Reason = state.RolloutAborted, "aborted through the admin API"
				if c := w.doc.Canaries[s.Name]; c != nil {
					c.Percent, c.UpdatedAt = 0, now
				}
			}
			ro.UpdatedAt = now
			out = w.renderRollout(s.Name, ro, nil)
			return nil
		})
		if err != nil {
			return 0, nil, err
		}
		if st, ok := a.ctl.RolloutStatus(out.Service.Name); ok && out.Service.Name != "" {
			out.Status = &st
		}
		return http.StatusOK, out, nil
	}
}
