package config

import "slices"

// Deep copies of the entities the admin layer stores (state.Doc.Clone):
// nothing reachable from a copy is shared with the original. A field
// added to an entity with a pointer, slice or map in it is copied here
// too (state's TestDocCloneIsDeep fills every field and fails otherwise).

// ClonePtr returns a pointer to a copy of *p (nil for nil); *p holds no
// pointer, slice or map.
func ClonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

// CloneLists returns a copy of m whose lists are copies too.
func CloneLists[K comparable, V any](m map[K][]V) map[K][]V {
	if m == nil {
		return nil
	}
	out := make(map[K][]V, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

// Clone returns a deep copy of u as the admin layer stores it: its
// Discovery (the file's, never stored) is left out.
func (u *Upstream) Clone() *Upstream {
	c := *u
	c.Discovery = nil
	c.StickyTTL = ClonePtr(u.StickyTTL)
	c.SlowStart = ClonePtr(u.SlowStart)
	c.Panic = ClonePtr(u.Panic)
	if u.Healthchecks != nil {
		c.Healthchecks = u.Healthchecks.Clone()
	}
	c.CircuitBreakers = ClonePtr(u.CircuitBreakers)
	c.RetryBudget = ClonePtr(u.RetryBudget)
	if u.RetryPolicy != nil {
		c.RetryPolicy = u.RetryPolicy.Clone()
	}
	c.Targets = slices.Clone(u.Targets)
	for i := range c.Targets {
		c.Targets[i].Tags = slices.Clone(c.Targets[i].Tags)
	}
	c.Tags = slices.Clone(u.Tags)
	return &c
}

// Clone returns a deep copy of rp.
func (rp *RetryPolicy) Clone() *RetryPolicy {
	c := *rp
	c.RetryOn = slices.Clone(rp.RetryOn)
	return &c
}

// Clone returns a deep copy of s.
func (s *Service) Clone() *Service {
	c := *s
	c.TLSVerify = ClonePtr(s.TLSVerify)
	c.TLSVerifyDepth = ClonePtr(s.TLSVerifyDepth)
	c.CACertificates = slices.Clone(s.CACertificates)
	c.ClientCertificate = ClonePtr(s.ClientCertificate)
	c.GRPCIdempotentMethods = slices.Clone(s.GRPCIdempotentMethods)
	c.Tags = slices.Clone(s.Tags)
	return &c
}

// Clone returns a deep copy of r.
func (r *Route) Clone() *Route {
	c := *r
	c.Paths, c.Hosts, c.Methods = slices.Clone(r.Paths), slices.Clone(r.Hosts), slices.Clone(r.Methods)
	c.Headers = CloneLists(r.Headers)
	c.Protocols, c.Tags = slices.Clone(r.Protocols), slices.Clone(r.Tags)
	return &c
}
