package state

import (
	"errors"
	"slices"
	"strings"

	"github.com/outrigger-gw/outrigger/config"
)

// Validate checks the layer's services and routes as a whole, by their
// Validate, as the admin API checked them when it stored them: a layer
// written by hand or by another version that breaks their rules is
// refused with every problem, each by its path ("services.api.tls_verify:
// ..."; a route's own problem under its name). Tombstones are not checked.
func (d *Doc) Validate() error {
	var msgs []string
	msgs = appendProblems(msgs, "services", d.Services, func(s *Service) (bool, []config.Problem) { return s.Deleted, s.Validate() })
	msgs = appendProblems(msgs, "routes", d.Routes, func(r *Route) (bool, []config.Problem) { return r.Deleted, r.Validate() })
	if len(msgs) == 0 {
		return nil
	}
	return errors.New("admin state: " + strings.Join(msgs, "; "))
}

// appendProblems adds the problems of the entities of one kind, in name
// order; validate says whether an entity is a tombstone (skipped), and
// what its Validate finds.
func appendProblems[E any](msgs []string, kind string, m map[string]*E, validate func(*E) (bool, []config.Problem)) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if m[n] == nil {
			continue
		}
		deleted, ps := validate(m[n])
		if deleted {
			continue
		}
		for _, p := range ps {
			path := kind + "." + n
			if p.Field != "" {
				path += "." + p.Field
			}
			msgs = append(msgs, path+": "+p.Msg)
		}
	}
	return msgs
}

// ValidateUpstreams checks the layer's upstreams as they are in force:
// in eff, Merge's result over the file (what a stored upstream leaves out
// is the file's, so only the effective one can be judged), by their
// Validate, each problem by its path ("upstreams.api.hash_on_header: ...").
func (d *Doc) ValidateUpstreams(eff *config.File) error {
	ours := map[string]*config.Upstream{}
	for i := range eff.Upstreams {
		if u := &eff.Upstreams[i]; d.Upstreams[u.Name] != nil {
			ours[u.Name] = u
		}
	}
	msgs := appendProblems(nil, "upstreams", ours, func(u *config.Upstream) (bool, []config.Problem) { return false, u.Validate() })
	if len(msgs) == 0 {
		return nil
	}
	return errors.New("admin state: " + strings.Join(msgs, "; "))
}
