package config

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes as "30s" in JSON (and
// accepts a number of seconds).
type Duration time.Duration

// MarshalJSON writes a Duration as Go's duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			if f, ferr := strconv.ParseFloat(s, 64); ferr == nil {
				*d = Duration(SecondsOf(f))
				return nil
			}
			return err
		}
		*d = Duration(v)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("duration: want \"30s\" or seconds, got %s", b)
	}
	*d = Duration(SecondsOf(f))
	return nil
}

// Seconds is a time.Duration that reads and writes as a number of seconds
// in JSON (Kong's unit for health-check intervals and timeouts).
type Seconds time.Duration

// SecondsOf is f seconds.
func SecondsOf(f float64) Seconds { return Seconds(f * float64(time.Second)) }

// Float is s in seconds.
func (s Seconds) Float() float64 { return time.Duration(s).Seconds() }

// MarshalJSON writes s as a number of seconds.
func (s Seconds) MarshalJSON() ([]byte, error) { return json.Marshal(s.Float()) }

// UnmarshalJSON reads a number of seconds.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("seconds: want a number, got %s", b)
	}
	*s = SecondsOf(f)
	return nil
}

// retryPolicyJSON is a RetryPolicy as the admin layer stores it.
type retryPolicyJSON struct {
	RetryOn       []string `json:"retry_on"`
	PerTryTimeout Seconds  `json:"per_try_timeout"`
	Timeout       Seconds  `json:"timeout"`
	RetryBackoff  struct {
		BaseInterval Seconds `json:"base_interval"`
		MaxInterval  Seconds `json:"max_interval"`
	} `json:"retry_backoff"`
}

// MarshalJSON writes rp in seconds, its backoff nested (retry_backoff).
func (rp RetryPolicy) MarshalJSON() ([]byte, error) {
	w := retryPolicyJSON{RetryOn: rp.RetryOn, PerTryTimeout: Seconds(rp.PerTryTimeout), Timeout: Seconds(rp.Timeout)}
	w.RetryBackoff.BaseInterval, w.RetryBackoff.MaxInterval = Seconds(rp.BackoffBase), Seconds(rp.BackoffMax)
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (rp *RetryPolicy) UnmarshalJSON(b []byte) error {
	var w retryPolicyJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*rp = RetryPolicy{RetryOn: w.RetryOn, PerTryTimeout: time.Duration(w.PerTryTimeout), Timeout: time.Duration(w.Timeout),
		BackoffBase: time.Duration(w.RetryBackoff.BaseInterval), BackoffMax: time.Duration(w.RetryBackoff.MaxInterval)}
	return nil
}

// healthchecksJSON is Healthchecks as the admin layer stores it: a
// checker is present when enabled.
type healthchecksJSON struct {
	Threshold float64  `json:"threshold,omitempty"`
	Active    *Active  `json:"active,omitempty"`
	Passive   *Passive `json:"passive,omitempty"`
}

// MarshalJSON writes h, leaving out the checkers not enabled.
func (h Healthchecks) MarshalJSON() ([]byte, error) {
	w := healthchecksJSON{Threshold: h.Threshold}
	if h.Active.Enabled {
		w.Active = &h.Active
	}
	if h.Passive.Enabled {
		w.Passive = &h.Passive
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON writes: over the defaults, a
// checker present is enabled, its settings left out keep their defaults.
func (h *Healthchecks) UnmarshalJSON(b []byte) error {
	d := defaultHealthchecks()
	var w struct {
		Threshold float64         `json:"threshold"`
		Active    json.RawMessage `json:"active"`
		Passive   json.RawMessage `json:"passive"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	d.Threshold = w.Threshold
	if present(w.Active) {
		d.Active.Enabled = true
		if err := json.Unmarshal(w.Active, &d.Active); err != nil {
			return err
		}
	}
	if present(w.Passive) {
		d.Passive.Enabled = true
		if err := json.Unmarshal(w.Passive, &d.Passive); err != nil {
			return err
		}
	}
	*h = d
	return nil
}

func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// Clone returns a deep copy of h.
func (h *Healthchecks) Clone() *Healthchecks {
	c := *h
	c.Active.Headers = CloneLists(h.Active.Headers)
	c.Active.Healthy.HTTPStatuses = slices.Clone(h.Active.Healthy.HTTPStatuses)
	c.Active.Unhealthy.HTTPStatuses = slices.Clone(h.Active.Unhealthy.HTTPStatuses)
	c.Passive.Healthy.HTTPStatuses = slices.Clone(h.Passive.Healthy.HTTPStatuses)
	c.Passive.Unhealthy.HTTPStatuses = slices.Clone(h.Passive.Unhealthy.HTTPStatuses)
	c.Passive.Unhealthy.GRPCStatuses = slices.Clone(h.Passive.Unhealthy.GRPCStatuses)
	if sr := h.Passive.SuccessRate; sr != nil {
		c.Passive.SuccessRate = ptrTo(*sr)
	}
	return &c
}

// Resolve returns the effective upstream of u, an upstream of the admin
// layer, over base, the file's upstream of the same name (nil for none:
// the defaults). It is the one place the layer's "left out means the
// file's" is applied:
//   - the name, tags and targets are u's;
//   - a string setting left empty, zero Slots and a nil StickyTTL take
//     base's;
//   - a block left nil takes base's; a slow_start block of zero Window
//     removes base's;
//   - healthchecks set replace base's whole, over the defaults (a checker
//     not enabled has the defaults; a type, path, timeout, concurrency or
//     status list left zero the default; the ejection settings, which
//     the layer does not store, the defaults);
//   - what the layer does not manage (Pos, discovery) and the Meta are
//     base's.
func (u *Upstream) Resolve(base *Upstream) Upstream {
	c := DefaultUpstream()
	if base != nil {
		c = *base
	}
	c.Name = u.Name
	setIfSet(&c.Algorithm, u.Algorithm)
	setIfSet(&c.HashOn, u.HashOn)
	setIfSet(&c.HashFallback, u.HashFallback)
	setIfSet(&c.HashOnHeader, u.HashOnHeader)
	setIfSet(&c.HashOnCookie, u.HashOnCookie)
	setIfSet(&c.HashOnCookiePath, u.HashOnCookiePath)
	setIfSet(&c.HashOnQueryArg, u.HashOnQueryArg)
	setIfSet(&c.HashOnURICapture, u.HashOnURICapture)
	setIfSet(&c.Slots, u.Slots)
	setIfSet(&c.StickyCookie, u.StickyCookie)
	if u.StickyTTL != nil {
		c.StickyTTL = ptrTo(*u.StickyTTL)
	}
	if s := u.SlowStart; s != nil {
		c.SlowStart = nil
		if s.Window > 0 {
			c.SlowStart = ptrTo(*s)
		}
	}
	if u.Panic != nil {
		c.Panic = ptrTo(*u.Panic)
	}
	if u.Healthchecks != nil {
		c.Healthchecks = u.Healthchecks.resolved()
	}
	if u.CircuitBreakers != nil {
		c.CircuitBreakers = ptrTo(*u.CircuitBreakers)
	}
	if rp := u.RetryPolicy; rp != nil {
		c.RetryPolicy = ptrTo(*rp)
		c.RetryPolicy.RetryOn = slices.Clone(rp.RetryOn)
	}
	if u.RetryBudget != nil {
		c.RetryBudget = ptrTo(*u.RetryBudget)
	}
	c.Tags = slices.Clone(u.Tags)
	c.Targets = make([]Target, 0, len(u.Targets))
	for _, t := range u.Targets {
		c.Targets = append(c.Targets, Target{Meta: Meta{ID: t.ID}, Target: t.Target, Weight: t.Weight, Tags: t.Tags,
			Priority: t.Priority, Backup: t.Backup, Zone: t.Zone})
	}
	return c
}

// resolved is h over the defaults, as Resolve takes an admin layer's
// healthchecks.
func (h *Healthchecks) resolved() *Healthchecks {
	d := defaultHealthchecks()
	c := h.Clone()
	if a := &c.Active; !a.Enabled {
		c.Active = d.Active
	} else {
		orZero(&a.Type, d.Active.Type)
		orZero(&a.HTTPPath, d.Active.HTTPPath)
		orZero(&a.Timeout, d.Active.Timeout)
		orZero(&a.Concurrency, d.Active.Concurrency)
		orDefault(&a.Healthy.HTTPStatuses, d.Active.Healthy.HTTPStatuses)
		orDefault(&a.Unhealthy.HTTPStatuses, d.Active.Unhealthy.HTTPStatuses)
	}
	if p := &c.Passive; !p.Enabled {
		c.Passive = d.Passive
	} else {
		orZero(&p.Type, d.Passive.Type)
		orDefault(&p.Healthy.HTTPStatuses, d.Passive.Healthy.HTTPStatuses)
		orDefault(&p.Unhealthy.HTTPStatuses, d.Passive.Unhealthy.HTTPStatuses)
		orDefault(&p.Unhealthy.GRPCStatuses, d.Passive.Unhealthy.GRPCStatuses)
		p.MaxEjectionPercent, p.BaseEjectionTime, p.MaxEjectionTime = d.Passive.MaxEjectionPercent, d.Passive.BaseEjectionTime, d.Passive.MaxEjectionTime
	}
	return c
}

// orZero sets *dst to def when it is the zero value.
func orZero[T comparable](dst *T, def T) {
	var zero T
	if *dst == zero {
		*dst = def
	}
}

// setIfSet sets *dst to v unless v is the zero value.
func setIfSet[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// orDefault sets a nil list to (a copy of) def.
func orDefault(dst *[]int, def []int) {
	if *dst == nil {
		*dst = slices.Clone(def)
	}
}

// Validate reports the settings of u that do not fit together: the
// hashing inputs (hash_fallback against hash_on, the hash_on_* setting
// each needs), a slow_start block without a window or with an aggression
// of 0, an active checker's
// grpc_service with a type that does not use it, a retry backoff whose
// max_interval is under its base_interval, passive ejection times the wrong
// way round. Each field's own range and form are the decoders'. u may be a
// decoded, an effective or (with its hashing settings written out, as the
// admin API stores them) a stored upstream. Nil when all is well.
func (u *Upstream) Validate() []Problem {
	var ps []Problem
	if why := HashFallbackProblem(u.HashOn, u.HashFallback); why != "" {
		ps = append(ps, Problem{Field: "hash_fallback", Msg: why, Because: []string{"hash_on"}})
	}
	inputs := HashInputs{Header: u.HashOnHeader, Cookie: u.HashOnCookie, QueryArg: u.HashOnQueryArg, URICapture: u.HashOnURICapture}
	for _, by := range []string{"hash_on", "hash_fallback"} {
		input := u.HashOn
		if by == "hash_fallback" {
			input = u.HashFallback
		}
		if inputs.Missing(input) {
			ps = append(ps, Problem{Field: "hash_on_" + input, Msg: "required when " + by + " is " + input, Because: []string{by}})
		}
	}
	if s := u.SlowStart; s != nil && *s != (SlowStart{}) {
		if s.Window == 0 {
			ps = append(ps, Problem{Field: "slow_start.window", Msg: "required field missing"})
		}
		if s.Aggression <= 0 {
			ps = append(ps, Problem{Field: "slow_start.aggression", Msg: "must be greater than 0"})
		}
	}
	if h := u.Healthchecks; h != nil {
		if a := h.Active; a.Enabled && a.GRPCService != "" {
			if typ := cmp.Or(a.Type, defaultHealthchecks().Active.Type); !GRPCType(typ) {
				ps = append(ps, Problem{Field: "healthchecks.active.grpc_service", Msg: grpcServiceWhy(typ), Because: []string{"healthchecks.active.type"}})
			}
		}
		if p := h.Passive; p.Enabled && p.MaxEjectionTime < p.BaseEjectionTime {
			ps = append(ps, below("healthchecks.passive.max_ejection_time", "healthchecks.passive.base_ejection_time", p.MaxEjectionTime, p.BaseEjectionTime))
		}
	}
	if rp := u.RetryPolicy; rp != nil && rp.BackoffMax < rp.BackoffBase {
		ps = append(ps, below("retry_policy.retry_backoff.max_interval", "retry_policy.retry_backoff.base_interval", rp.BackoffMax, rp.BackoffBase))
	}
	return ps
}

// below is the problem of a duration field under another's value.
func below(field, bound string, got, limit time.Duration) Problem {
	return Problem{Field: field, Msg: fmt.Sprintf("%v is less than %s %v", got, bound[strings.LastIndexByte(bound, '.')+1:], limit),
		Because: []string{bound}, Got: got, Bound: limit}
}

// grpcServiceWhy is the problem of a grpc_service on a check of type typ.
func grpcServiceWhy(typ string) string {
	return fmt.Sprintf("only used by checks of type grpc or grpcs (type is %s)", typ)
}
