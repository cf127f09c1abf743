package state

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/outrigger-gw/outrigger/config"
)

// Clone returns a deep copy of d.
func (d *Doc) Clone() *Doc {
	b, err := json.Marshal(d)
	if err != nil {
		panic(fmt.Sprintf("state: marshal: %v", err)) // plain data cannot fail
	}
	out := &Doc{}
	if err := json.Unmarshal(b, out); err != nil {
		panic(fmt.Sprintf("state: unmarshal: %v", err))
	}
	return out
}

// Base is the configuration the Doc's entities are layered over: f, or
// with a declarative document (d.Config) f with that document's entities
// instead of its own (config.WithEntities). The document's errors are
// config's (*config.ErrorList, named "config").
func Base(f *config.File, d *Doc) (*config.File, error) {
	if d == nil || d.Config == nil {
		return f, nil
	}
	decl, err := config.ParseDeclarative("config", []byte(d.Config.Text))
	if err != nil {
		return nil, err
	}
	return config.WithEntities(f, decl), nil
}

// Merge layers d over the file's configuration and returns the effective
// configuration (f is not modified). Entities are replaced whole by name;
// tombstones hide the file's entity; entities only in d are appended in
// name order.
func Merge(f *config.File, d *Doc) *config.File {
	out := *f
	out.Upstreams = mergeList(f.Upstreams, d.Upstreams, func(u config.Upstream) string { return u.Name },
		func(e *Upstream) (string, Meta) { return e.Name, e.Meta }, func(e *Upstream, base *config.Upstream) config.Upstream { return e.toConfig(base) })
	out.Services = mergeList(f.Services, d.Services, func(s config.Service) string { return s.Name },
		func(e *Service) (string, Meta) { return e.Name, e.Meta }, func(e *Service, _ *config.Service) config.Service { return *e })
	out.Routes = mergeList(f.Routes, d.Routes, func(r config.Route) string { return r.Name },
		func(e *Route) (string, Meta) { return e.Name, e.Meta }, func(e *Route, _ *config.Route) config.Route { return e.WithDefaults() })
	out.Certificates = mergeCertificates(f.Certificates, d.Certificates)
	mergePlugins(&out, f, d)
	out.SNIs = mergeSNIs(f.SNIs, d, out.Certificates)
	return &out
}

func mergeList[C any, E any](file []C, doc map[string]*E, nameOf func(C) string, metaOf func(*E) (string, Meta), conv func(*E, *C) C) []C {
	out := make([]C, 0, len(file)+len(doc))
	seen := map[string]bool{}
	for i := range file {
		name := nameOf(file[i])
		seen[name] = true
		e, ok := doc[name]
		switch {
		case !ok:
			out = append(out, file[i])
		case func() bool { _, m := metaOf(e); return m.Deleted }():
		default:
			out = append(out, conv(e, &file[i]))
		}
	}
	names := make([]string, 0, len(doc))
	for n := range doc {
		if !seen[n] {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		e := doc[n]
		if _, m := metaOf(e); m.Deleted {
			continue
		}
		out = append(out, conv(e, nil))
	}
	return out
}

// toConfig converts an admin upstream. Settings it leaves unset (the
// sticky cookie, slow start and panic while nil, healthchecks while nil)
// and those the admin API does not manage (discovery) are kept from the
// file's upstream of the same name, if any.
func (u *Upstream) toConfig(base *config.Upstream) config.Upstream {
	c := config.DefaultUpstream()
	if base != nil {
		c = *base
	}
	c.Name = u.Name
	setStr(&c.Algorithm, u.Algorithm)
	setStr(&c.HashOn, u.HashOn)
	setStr(&c.HashFallback, u.HashFallback)
	setStr(&c.HashOnHeader, u.HashOnHeader)
	setStr(&c.HashOnCookie, u.HashOnCookie)
	setStr(&c.HashOnCookiePath, u.HashOnCookiePath)
	setStr(&c.HashOnQueryArg, u.HashOnQueryArg)
	setStr(&c.HashOnURICapture, u.HashOnURICapture)
	if u.Slots > 0 {
		c.Slots = u.Slots
	}
	setStr(&c.StickyCookie, u.StickyCookie)
	if s := u.SlowStart; s != nil {
		c.SlowStart = nil
		if s.Window > 0 {
			c.SlowStart = &config.SlowStart{Window: time.Duration(s.Window), Aggression: s.Aggression, MinWeightPercent: s.MinWeightPercent}
		}
	}
	if p := u.Panic; p != nil {
		c.Panic = config.Panic{MinHealthyPercent: p.MinHealthyPercent, Mode: p.Mode}
	}
	if u.StickyTTL != nil {
		c.StickyTTL = time.Duration(*u.StickyTTL)
	}
	if u.Healthchecks != nil {
		c.Healthchecks = u.Healthchecks.toConfig()
	}
	if cb := u.CircuitBreakers; cb != nil {
		c.CircuitBreakers = config.CircuitBreakers{MaxRequests: cb.MaxRequests, MaxRetries: cb.MaxRetries, MaxConnections: cb.MaxConnections,
			MaxPendingRequests: cb.MaxPendingRequests}
	}
	if rp := u.RetryPolicy; rp != nil {
		c.RetryPolicy = &config.RetryPolicy{RetryOn: slices.Clone(rp.RetryOn), PerTryTimeout: seconds(rp.PerTryTimeout),
			Timeout: seconds(rp.Timeout), BackoffBase: seconds(rp.RetryBackoff.BaseInterval), BackoffMax: seconds(rp.RetryBackoff.MaxInterval)}
	}
	if rb := u.RetryBudget; rb != nil {
		c.RetryBudget = config.RetryBudget{RetryRatio: rb.RetryRatio, MinRetriesPerSecond: rb.MinRetriesPerSecond,
			TTL: time.Duration(rb.TTL * float64(time.Second))}
	}
	c.Tags = slices.Clone(u.Tags)
	c.Targets = make([]config.Target, 0, len(u.Targets))
	for _, t := range u.Targets {
		c.Targets = append(c.Targets, config.Target{ID: t.ID, Target: t.Target, Weight: t.Weight, Tags: t.Tags, Priority: t.Priority, Backup: t.Backup, Zone: t.Zone})
	}
	return c
}

func setStr(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// toConfig maps Kong's healthchecks object over the file's defaults; a
// block that is present enables its checker, absent numbers are 0 (off).
func (h *Healthchecks) toConfig() config.Healthchecks {
	c := config.DefaultUpstream().Healthchecks
	c.Threshold = h.Threshold
	if a := h.Active; a != nil {
		c.Active.Enabled = true
		setStr(&c.Active.Type, a.Type)
		c.Active.GRPCService = a.GRPCService
		setStr(&c.Active.HTTPPath, a.HTTPPath)
		if a.Timeout > 0 {
			c.Active.Timeout = seconds(a.Timeout)
		}
		if a.Concurrency > 0 {
			c.Active.Concurrency = a.Concurrency
		}
		if a.HTTPSVerifyCertificate != nil {
			c.Active.HTTPSVerifyCertificate = *a.HTTPSVerifyCertificate
		}
		c.Active.HTTPSSNI = a.HTTPSSNI
		c.Active.Headers = a.Headers
		if x := a.Healthy; x != nil {
			c.Active.Healthy.Interval, c.Active.Healthy.Successes = seconds(x.Interval), x.Successes
			if x.HTTPStatuses != nil {
				c.Active.Healthy.HTTPStatuses = x.HTTPStatuses
			}
		}
		if x := a.Unhealthy; x != nil {
			c.Active.Unhealthy.Interval = seconds(x.Interval)
			c.Active.Unhealthy.HTTPFailures, c.Active.Unhealthy.TCPFailures, c.Active.Unhealthy.Timeouts = x.HTTPFailures, x.TCPFailures, x.Timeouts
			if x.HTTPStatuses != nil {
				c.Active.Unhealthy.HTTPStatuses = x.HTTPStatuses
			}
		}
	}
	if p := h.Passive; p != nil {
		c.Passive.Enabled = true
		setStr(&c.Passive.Type, p.Type)
		if x := p.Healthy; x != nil {
			c.Passive.Healthy.Successes = x.Successes
			if x.HTTPStatuses != nil {
				c.Passive.Healthy.HTTPStatuses = x.HTTPStatuses
			}
		}
		if x := p.Unhealthy; x != nil {
			c.Passive.Unhealthy.HTTPFailures, c.Passive.Unhealthy.TCPFailures, c.Passive.Unhealthy.Timeouts = x.HTTPFailures, x.TCPFailures, x.Timeouts
			if x.HTTPStatuses != nil {
				c.Passive.Unhealthy.HTTPStatuses = x.HTTPStatuses
			}
			if x.GRPCStatuses != nil {
				c.Passive.Unhealthy.GRPCStatuses = x.GRPCStatuses
			}
		}
		if sr := p.SuccessRate; sr != nil {
			c.Passive.SuccessRate = &config.SuccessRate{MinimumHosts: sr.MinimumHosts, RequestVolume: sr.RequestVolume,
				StdevFactor: sr.StdevFactor, Interval: seconds(sr.Interval)}
		}
	}
	return c
}

// MarshalJSON writes a Duration as Go's duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			if f, ferr := strconv.ParseFloat(s, 64); ferr == nil {
				*d = Duration(seconds(f))
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
	*d = Duration(seconds(f))
	return nil
}
