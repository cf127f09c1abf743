package admin

import (
	"net/http"
	"slices"

	"github.com/outrigger-gw/outrigger/certs"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// kinds are the top-level kinds the generic store serves. Immutable.
type kinds struct {
	upstream *kind[config.Upstream, config.Upstream]
	service  *kind[config.Service, state.Service]
	route    *kind[config.Route, state.Route]
	cert     *kind[config.Certificate, state.Certificate]
	pluginKinds
	sni *kind[config.SNI, state.SNI]
}

func newKinds() *kinds {
	return &kinds{upstream: upstreamKind(), service: serviceKind(), route: routeKind(), cert: certificateKind(), sni: sniKind(), pluginKinds: newPluginKinds()}
}

// Lookups by id or key, for the nested collections and references.

func (w *world) upstream(key string) (*config.Upstream, state.Meta, bool) {
	return w.k.upstream.lookup(w, key)
}

func (w *world) service(key string) (*config.Service, state.Meta, bool) {
	return w.k.service.lookup(w, key)
}

func (w *world) route(key string) (*config.Route, state.Meta, bool) { return w.k.route.lookup(w, key) }

// fileMeta is the meta of a file entity no Doc entity replaces.
func (k *kind[C, D]) fileMeta(w *world, key string) state.Meta {
	return state.Meta{ID: k.fileID(w, key), CreatedAt: w.started, UpdatedAt: w.started}
}

// fileIDOf is the id of a file entity of kind: the one the file gives
// (idOf, "" for none), else one derived from its key.
func fileIDOf(kind string, idOf func(f *config.File, key string) string) func(*world, string) string {
	return func(w *world, key string) string {
		if id := idOf(w.file, key); id != "" {
			return id
		}
		return stableID(kind, key)
	}
}

func upstreamKind() *kind[config.Upstream, config.Upstream] {
	return &kind[config.Upstream, config.Upstream]{
		name: kindUpstream, param: "upstream", named: true, nameRequired: true, checkName: config.CheckUpstreamName,
		all:    func(f *config.File) []config.Upstream { return f.Upstreams },
		tags:   func(c *config.Upstream) []string { return c.Tags },
		key:    func(c *config.Upstream) string { return c.Name },
		docs:   func(d *state.Doc) map[string]*config.Upstream { return d.Upstreams },
		meta:   func(d *config.Upstream) *state.Meta { return &d.Meta },
		docKey: func(d *config.Upstream) string { return d.Name },
		setKey: func(d *config.Upstream, key string) { d.Name = key },
		fileID: fileIDOf(kindUpstream, func(f *config.File, key string) string {
			if u, ok := f.Upstream(key); ok {
				return u.ID
			}
			return ""
		}),
		render:   func(_ *world, c *config.Upstream, m state.Meta) any { return renderUpstream(c, m) },
		decode:   decodeUpstreamBody,
		fresh:    func() *config.Upstream { u := newUpstream(); return &u },
		editable: func(w *world, key string) *config.Upstream { return w.editableUpstream(key) },
		put:      func(w *world, old string, d *config.Upstream, now int64) error { return w.putUpstream(old, d, now) },
		// Targets are entities of their own: a PUT keeps them.
		replaced: func(w *world, old string, d *config.Upstream) { d.Targets = w.editableUpstream(old).Targets },
		unlink: func(w *world, name string) error {
			if users := w.upstreamUsers(name); len(users) > 0 {
				return referenced("upstreams", "services", users)
			}
			w.doc.Overrides = slices.DeleteFunc(w.doc.Overrides, func(o state.Override) bool { return o.Upstream == name })
			delete(w.doc.Marks, name)
			return nil
		},
	}
}

// decodeUpstreamBody checks an upstream body (against defaults, and the
// hashing settings as a whole) and returns its applier; healthchecks are
// merged into a PATCHed upstream's, starting from the effective ones.
func decodeUpstreamBody(_ func() *world, _ *http.Request, b *obj, m mode, _ string) (applier[config.Upstream], error) {
	apply, err := upstreamDecoder(b)
	if err != nil {
		return nil, err
	}
	if m != modePatch {
		scratch := newUpstream()
		_ = apply(&scratch, offHealthchecks)
		if m == modeCreate && scratch.Name == "" {
			return nil, fieldError("name", "required field missing")
		}
		if err := validate(&scratch, hashing); err != nil {
			return nil, err
		}
		if err := validate(&scratch, slowStart); err != nil {
			return nil, err
		}
	}
	return func(w *world, u *config.Upstream) error {
		if m != modePatch {
			if err := apply(u, offHealthchecks); err != nil {
				return err
			}
			if u.Healthchecks == nil {
				u.Healthchecks = offHealthchecks()
			}
			return nil
		}
		eff, _ := w.eff.Upstream(u.Name)
		sd := seedBreakers(u, eff)
		if err := apply(u, func() *config.Healthchecks { return eff.Healthchecks.Clone() }); err != nil {
			return err
		}
		unseedBreakers(u, sd)
		if err := validate(u, slowStart); err != nil {
			return err
		}
		return validate(u, hashing)
	}, nil
}

func serviceKind() *kind[config.Service, state.Service] {
	return &kind[config.Service, state.Service]{
		name: kindService, param: "service", named: true, checkName: config.CheckName,
		all:    func(f *config.File) []config.Service { return f.Services },
		tags:   func(c *config.Service) []string { return c.Tags },
		key:    func(c *config.Service) string { return c.Name },
		docs:   func(d *state.Doc) map[string]*state.Service { return d.Services },
		meta:   func(d *state.Service) *state.Meta { return &d.Meta },
		docKey: func(d *state.Service) string { return d.Name },
		setKey: func(d *state.Service, key string) { d.Name = key },
		fileID: fileIDOf(kindService, func(f *config.File, key string) string {
			if s, ok := f.Service(key); ok {
				return s.ID
			}
			return ""
		}),
		render: func(_ *world, c *config.Service, m state.Meta) any { return renderService(c, m) },
		decode: func(_ func() *world, _ *http.Request, b *obj, m mode, _ string) (applier[state.Service], error) {
			apply, err := serviceDecoder(b)
			if err != nil {
				return nil, err
			}
			if m == modePatch {
				if v, present := b.m["host"]; present && (v == nil || v == formValue("")) {
					return nil, fieldError("host", "required field missing")
				}
			} else {
				scratch := newService()
				_ = apply(&scratch, true)
				if scratch.Host == "" {
					return nil, fieldError("host", "required field missing")
				}
			}
			return func(_ *world, s *state.Service) error { return apply(s, m != modePatch) }, nil
		},
		fresh:    func() *state.Service { s := newService(); return &s },
		editable: func(w *world, key string) *state.Service { return w.editableService(key) },
		put:      func(w *world, old string, d *state.Service, now int64) error { return w.putService(old, d, now) },
		unlink: func(w *world, name string) error {
			if routes := w.routesOf(name); len(routes) > 0 {
				return referenced("services", "routes", routes)
			}
			delete(w.doc.Canaries, name)
			delete(w.doc.Rollouts, name)
			w.pluginsCascade(kindService, name)
			return nil
		},
	}
}

func routeKind() *kind[config.Route, state.Route] {
	return &kind[config.Route, state.Route]{
		name: kindRoute, param: "route", named: true, checkName: config.CheckName,
		all:    func(f *config.File) []config.Route { return f.Routes },
		tags:   func(c *config.Route) []string { return c.Tags },
		key:    func(c *config.Route) string { return c.Name },
		docs:   func(d *state.Doc) map[string]*state.Route { return d.Routes },
		meta:   func(d *state.Route) *state.Meta { return &d.Meta },
		docKey: func(d *state.Route) string { return d.Name },
		setKey: func(d *state.Route, key string) { d.Name = key },
		fileID: fileIDOf(kindRoute, func(f *config.File, key string) string {
			for i := range f.Routes {
				if f.Routes[i].Name == key {
					return f.Routes[i].ID
				}
			}
			return ""
		}),
		render: func(w *world, c *config.Route, m state.Meta) any { return w.renderRoute(c, m) },
		scope: func(w *world, r *http.Request) (func(*config.Route) bool, error) {
			key := r.PathValue("service")
			if key == "" {
				return func(*config.Route) bool { return true }, nil
			}
			s, _, ok := w.service(key)
			if !ok {
				return nil, notFound()
			}
			return func(c *config.Route) bool { return c.Service == s.Name }, nil
		},
		decode:   decodeRouteBody,
		fresh:    func() *state.Route { r := newRoute(); return &r },
		editable: func(w *world, key string) *state.Route { return w.editableRoute(key) },
		put:      func(w *world, old string, d *state.Route, now int64) error { return w.putRoute(old, d, now) },
		unlink:   func(w *world, name string) error { w.pluginsCascade(kindRoute, name); return nil },
	}
}

// decodeRouteBody checks a route body and returns its applier, which
// resolves the route's service: the URL's (POST /services/{service}/routes),
// the body's, or for a PATCH the current one unless the body names one
// (or null). A route may have no service, as in Kong.
func decodeRouteBody(_ func() *world, r *http.Request, b *obj, m mode, _ string) (applier[state.Route], error) {
	apply, err := routeDecoder(b)
	if err != nil {
		return nil, err
	}
	if m != modePatch {
		scratch := newRoute()
		if _, err := apply(&scratch); err != nil {
			return nil, err
		}
	}
	return func(w *world, rt *state.Route) error {
		ref, err := apply(rt)
		if err != nil {
			return err
		}
		named := ref.id != "" || ref.name != ""
		switch {
		case m == modeCreate:
			rt.Service, err = serviceFromPath(w, r, ref)
		case named:
			rt.Service, err = ref.resolve(w)
		case m == modePut || ref.present:
			// No service (or service: null), as Kong allows: the
			// route's requests are answered 503.
			rt.Service = ""
		}
		return err
	}, nil
}

func certificateKind() *kind[config.Certificate, state.Certificate] {
	return &kind[config.Certificate, state.Certificate]{
		name: kindCertificate, param: "certificate", lowerIDs: true,
		all:    func(f *config.File) []config.Certificate { return f.Certificates },
		tags:   func(c *config.Certificate) []string { return c.Tags },
		key:    func(c *config.Certificate) string { return c.ID },
		docs:   func(d *state.Doc) map[string]*state.Certificate { return d.Certificates },
		meta:   func(d *state.Certificate) *state.Meta { return &d.Meta },
		docKey: func(d *state.Certificate) string { return d.ID },
		setKey: func(d *state.Certificate, key string) { d.ID = key },
		fileID: func(_ *world, id string) string { return id },
		find:   func(w *world, key string) (*config.Certificate, state.Meta, bool) { return w.certificate(key) },
		render: func(_ *world, c *config.Certificate, m state.Meta) any { return renderCertificate(c, m) },
		// A PATCH is checked against the certificate as it is now; inside
		// Mutate it is applied to the latest one.
		decode: func(view func() *world, _ *http.Request, b *obj, m mode, key string) (applier[state.Certificate], error) {
			var base *state.Certificate
			if m == modePatch {
				v := view()
				cur, _, ok := v.certificate(key)
				if !ok {
					return nil, notFound()
				}
				base = v.editableCertificate(cur.ID)
			}
			apply, err := certificateDecoder(b, base)
			if err != nil {
				return nil, err
			}
			return func(_ *world, c *state.Certificate) error { return apply(c) }, nil
		},
		fresh:    func() *state.Certificate { return &state.Certificate{} },
		editable: func(w *world, id string) *state.Certificate { return w.editableCertificate(id) },
		put: func(w *world, _ string, c *state.Certificate, now int64) error {
			c.Deleted = false
			return w.putCertificate(c, now)
		},
		// Its SNIs go with it.
		unlink: func(w *world, id string) error {
			for name, s := range w.doc.SNIs {
				if sameID(s.Certificate, id) {
					delete(w.doc.SNIs, name)
				}
			}
			return nil
		},
		// PUT /certificates/{sni}: a new certificate serving it.
		putAt: func(c *state.Certificate, key string) error {
			name, err := certs.CheckName(key)
			if err != nil {
				return fieldError("snis", "%v", err)
			}
			if !slices.Contains(c.SNIs, name) {
				c.SNIs = append(c.SNIs, name)
			}
			return nil
		},
	}
}
