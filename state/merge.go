package state

import (
	"slices"

	"github.com/outrigger-gw/outrigger/config"
)

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
		func(e *config.Upstream) (string, Meta) { return e.Name, e.Meta }, func(e *config.Upstream, base *config.Upstream) config.Upstream { return e.Resolve(base) })
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
