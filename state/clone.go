package state

import (
	"encoding/json"
	"maps"
	"slices"

	"github.com/outrigger-gw/outrigger/config"
)

// Clone returns a deep copy of d: nothing reachable from the copy is
// shared with d, so a change made to it (an admin write) leaves d, which
// readers may hold, as it is. What a layer does not store is not copied:
// an upstream's Discovery (config.Upstream.Clone).
func (d *Doc) Clone() *Doc {
	return &Doc{
		Upstreams:    cloneEach(d.Upstreams, (*config.Upstream).Clone),
		Services:     cloneEach(d.Services, (*Service).Clone),
		Routes:       cloneEach(d.Routes, (*Route).Clone),
		Overrides:    cloneOverrides(d.Overrides),
		Canaries:     cloneEach(d.Canaries, (*Canary).clone),
		Rollouts:     cloneEach(d.Rollouts, (*Rollout).clone),
		Marks:        cloneMarks(d.Marks),
		Certificates: cloneEach(d.Certificates, (*Certificate).clone),
		Config:       config.ClonePtr(d.Config),
		Plugins:      cloneEach(d.Plugins, (*Plugin).clone),
		Consumers:    cloneEach(d.Consumers, (*Consumer).clone),
		KeyAuths:     cloneEach(d.KeyAuths, (*KeyAuth).clone),
		SNIs:         cloneEach(d.SNIs, (*SNI).clone),
	}
}

// cloneEach copies a map of entities, each with clone.
func cloneEach[K comparable, E any](m map[K]*E, clone func(*E) *E) map[K]*E {
	if m == nil {
		return nil
	}
	out := make(map[K]*E, len(m))
	for k, e := range m {
		if e != nil {
			e = clone(e)
		}
		out[k] = e
	}
	return out
}

// withLists copies e and replaces, in the copy, each list lists names
// with a copy of it.
func withLists[E any](e *E, lists func(*E) []*[]string) *E {
	c := *e
	for _, l := range lists(&c) {
		*l = slices.Clone(*l)
	}
	return &c
}

func cloneOverrides(os []Override) []Override {
	out := slices.Clone(os)
	for i := range out {
		o := &out[i]
		o.Tags, o.Meta = slices.Clone(o.Tags), maps.Clone(o.Meta)
		o.Weight, o.Share = config.ClonePtr(o.Weight), config.ClonePtr(o.Share)
	}
	return out
}

func cloneMarks(m map[string]map[string]string) map[string]map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]map[string]string, len(m))
	for k, v := range m {
		out[k] = maps.Clone(v)
	}
	return out
}

func (c *Canary) clone() *Canary {
	out := *c
	out.Force = slices.Clone(c.Force)
	return &out
}

func (r *Rollout) clone() *Rollout {
	out := *r
	out.Steps = slices.Clone(r.Steps)
	return &out
}

func (c *Certificate) clone() *Certificate {
	return withLists(c, func(c *Certificate) []*[]string { return []*[]string{&c.SNIs, &c.Tags} })
}

func (p *Plugin) clone() *Plugin {
	c := withLists(p, func(p *Plugin) []*[]string { return []*[]string{&p.Protocols, &p.Tags} })
	c.Config = cloneValue(p.Config).(map[string]any)
	return c
}

func (c *Consumer) clone() *Consumer {
	return withLists(c, func(c *Consumer) []*[]string { return []*[]string{&c.Tags} })
}

func (k *KeyAuth) clone() *KeyAuth {
	return withLists(k, func(k *KeyAuth) []*[]string { return []*[]string{&k.Tags} })
}

func (s *SNI) clone() *SNI {
	return withLists(s, func(s *SNI) []*[]string { return []*[]string{&s.Tags} })
}

// cloneValue deep-copies a plugin configuration's value: JSON's maps,
// lists and scalars, lists of strings; anything else through JSON.
func cloneValue(v any) any {
	switch v := v.(type) {
	case nil, string, bool, float64, int, int64, json.Number:
		return v
	case map[string]any:
		if v == nil {
			return v
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = cloneValue(e)
		}
		return out
	case []any:
		if v == nil {
			return v
		}
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = cloneValue(e)
		}
		return out
	case []string:
		return slices.Clone(v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return v
	}
	return out
}
