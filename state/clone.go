package state

import (
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
		Canaries:     cloneEach(d.Canaries, (*Canary).Clone),
		Rollouts:     cloneEach(d.Rollouts, (*Rollout).Clone),
		Marks:        cloneMarks(d.Marks),
		Certificates: cloneEach(d.Certificates, (*Certificate).Clone),
		Config:       config.ClonePtr(d.Config),
		Plugins:      cloneEach(d.Plugins, (*Plugin).Clone),
		Consumers:    cloneEach(d.Consumers, (*Consumer).Clone),
		KeyAuths:     cloneEach(d.KeyAuths, (*KeyAuth).Clone),
		SNIs:         cloneEach(d.SNIs, (*SNI).Clone),
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

// Clone returns a deep copy of c.
func (c *Canary) Clone() *Canary {
	out := *c
	out.Force = slices.Clone(c.Force)
	return &out
}

// Clone returns a deep copy of r.
func (r *Rollout) Clone() *Rollout {
	out := *r
	out.Steps = slices.Clone(r.Steps)
	return &out
}

// Clone returns a deep copy of c.
func (c *Certificate) Clone() *Certificate {
	return withLists(c, func(c *Certificate) []*[]string { return []*[]string{&c.SNIs, &c.Tags} })
}

// Clone returns a deep copy of p.
func (p *Plugin) Clone() *Plugin {
	c := withLists(p, func(p *Plugin) []*[]string { return []*[]string{&p.Protocols, &p.Tags} })
	c.Config = cloneConfig(p.Config)
	return c
}

// Clone returns a deep copy of c.
func (c *Consumer) Clone() *Consumer {
	return withLists(c, func(c *Consumer) []*[]string { return []*[]string{&c.Tags} })
}

// Clone returns a deep copy of k.
func (k *KeyAuth) Clone() *KeyAuth {
	return withLists(k, func(k *KeyAuth) []*[]string { return []*[]string{&k.Tags} })
}

// Clone returns a deep copy of s.
func (s *SNI) Clone() *SNI {
	return withLists(s, func(s *SNI) []*[]string { return []*[]string{&s.Tags} })
}
