package admin

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// Kong's /plugins, /consumers and /consumers/{consumer}/key-auth, served
// by the generic store: a plugin is keyed by id and scoped by references
// to a service, a route and a consumer (kept by key in the admin layer,
// followed on renames, deleted with their entity as Kong's cascades); its
// config is checked by the plugin's schema (config.CheckPluginConfig),
// the same one the file is checked by.

// Entity kinds, as used in derived ids.
const (
	kindPlugin   = "plugin"
	kindConsumer = "consumer"
	kindKeyAuth  = "keyauth_credential"
)

// pluginKinds are the kinds of this file.
type pluginKinds struct {
	plugin   *kind[config.Plugin, state.Plugin]
	consumer *kind[config.Consumer, state.Consumer]
	keyAuth  *kind[config.KeyAuth, state.KeyAuth]
}

func newPluginKinds() pluginKinds {
	return pluginKinds{plugin: pluginKind(), consumer: consumerKind(), keyAuth: keyAuthKind()}
}

func (w *world) consumer(key string) (*config.Consumer, state.Meta, bool) {
	return w.k.consumer.lookup(w, key)
}

// initPluginDocs gives a Doc the maps of this file's kinds.
func initPluginDocs(d *state.Doc) {
	if d.Plugins == nil {
		d.Plugins = map[string]*state.Plugin{}
	}
	if d.Consumers == nil {
		d.Consumers = map[string]*state.Consumer{}
	}
	if d.KeyAuths == nil {
		d.KeyAuths = map[string]*state.KeyAuth{}
	}
}

// Answers, in Kong's shapes.

type pluginOut struct {
	ID           string         `json:"id"`
	Name         string         `json:"name"`
	InstanceName *string        `json:"instance_name"`
	Config       map[string]any `json:"config"`
	Enabled      bool           `json:"enabled"`
	Protocols    []string       `json:"protocols"`
	Tags         []string       `json:"tags"`
	Service      *idRef         `json:"service"`
	Route        *idRef         `json:"route"`
	Consumer     *idRef         `json:"consumer"`
	Ordering     any            `json:"ordering"`
	CreatedAt    int64          `json:"created_at"`
	UpdatedAt    int64          `json:"updated_at"`
}

func (w *world) renderPlugin(p *config.Plugin, m state.Meta) pluginOut {
	out := pluginOut{ID: m.ID, Name: p.Name, Config: p.Config, Enabled: p.Enabled, Protocols: p.Protocols,
		Tags: tagsOut(p.Tags), CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
	if p.InstanceName != "" {
		out.InstanceName = ptr(p.InstanceName)
	}
	if p.Service != "" {
		out.Service = &idRef{ID: w.k.service.metaOf(w, p.Service).ID}
	}
	if p.Route != "" {
		out.Route = &idRef{ID: w.k.route.metaOf(w, p.Route).ID}
	}
	if p.Consumer != "" {
		out.Consumer = &idRef{ID: w.k.consumer.metaOf(w, p.Consumer).ID}
	}
	return out
}

// The kinds.

func pluginKind() *kind[config.Plugin, state.Plugin] {
	return &kind[config.Plugin, state.Plugin]{
		name: kindPlugin, param: "plugin", lowerIDs: true,
		all:    func(f *config.File) []config.Plugin { return f.Plugins },
		tags:   func(c *config.Plugin) []string { return c.Tags },
		key:    func(c *config.Plugin) string { return c.ID },
		docs:   func(d *state.Doc) map[string]*state.Plugin { return d.Plugins },
		meta:   func(d *state.Plugin) *state.Meta { return &d.Meta },
		docKey: func(d *state.Plugin) string { return d.ID },
		setKey: func(d *state.Plugin, key string) { d.ID = key },
		fileID: func(_ *world, id string) string { return id },
		render: func(w *world, c *config.Plugin, m state.Meta) any { return w.renderPlugin(c, m) },
		scope: func(w *world, r *http.Request) (func(*config.Plugin) bool, error) {
			svc, rt, cons, err := scopeOfPath(w, r)
			if err != nil {
				return nil, err
			}
			return func(p *config.Plugin) bool {
				return (svc == "" || p.Service == svc) && (rt == "" || p.Route == rt) && (cons == "" || p.Consumer == cons)
			}, nil
		},
		decode: decodePluginBody,
		fresh:  func() *state.Plugin { return &state.Plugin{Enabled: true} },
		editable: func(w *world, id string) *state.Plugin {
			if d, ok := w.doc.Plugins[id]; ok && !d.Deleted {
				return cloneJSON(d)
			}
			c, m, _ := w.k.plugin.byIDOrKey(w, id)
			return &state.Plugin{Meta: m, Name: c.Name, InstanceName: c.InstanceName, Config: c.Config, Enabled: c.Enabled,
				Protocols: slices.Clone(c.Protocols), Tags: slices.Clone(c.Tags), Service: c.Service, Route: c.Route, Consumer: c.Consumer}
		},
		put: func(w *world, _ string, d *state.Plugin, _ int64) error { return w.putPlugin(d) },
	}
}

// scopeOfPath is the scope a nested path names (/services/{service}/plugins,
// /routes/{route}/plugins, /consumers/{consumer}/plugins): the keys of
// its entity, 404 when it does not exist.
func scopeOfPath(w *world, r *http.Request) (svc, rt, cons string, err error) {
	if key := r.PathValue("service"); key != "" {
		s, _, ok := w.service(key)
		if !ok {
			return "", "", "", notFound()
		}
		svc = s.Name
	}
	if key := r.PathValue("route"); key != "" {
		x, _, ok := w.route(key)
		if !ok {
			return "", "", "", notFound()
		}
		rt = x.Name
	}
	if key := r.PathValue("consumer"); key != "" {
		c, _, ok := w.consumer(key)
		if !ok {
			return "", "", "", notFound()
		}
		cons = c.Key()
	}
	return svc, rt, cons, nil
}

// putPlugin stores p: one plugin of a name per scope, instance names
// unique.
func (w *world) putPlugin(p *state.Plugin) error {
	p.Deleted = false
	for i := range w.eff.Plugins {
		o := &w.eff.Plugins[i]
		if sameID(o.ID, p.ID) {
			continue
		}
		if o.Name == p.Name && o.Service == p.Service && o.Route == p.Route && o.Consumer == p.Consumer {
			return w.pluginScopeTaken(p)
		}
		if p.InstanceName != "" && o.InstanceName == p.InstanceName {
			return uniqueViolation("instance_name", p.InstanceName)
		}
	}
	w.doc.Plugins[p.ID] = p
	return nil
}

// pluginScopeTaken is Kong's 409 for a second plugin of a name in a
// scope: UNIQUE violation detected on '{consumer=null,name="x",route=...,service=...}'.
func (w *world) pluginScopeTaken(p *state.Plugin) *Error {
	ref := func(key string, id func(string) string) string {
		if key == "" {
			return "null"
		}
		return fmt.Sprintf("{id=%q}", id(key))
	}
	cons := ref(p.Consumer, func(k string) string { return w.k.consumer.metaOf(w, k).ID })
	rt := ref(p.Route, func(k string) string { return w.k.route.metaOf(w, k).ID })
	svc := ref(p.Service, func(k string) string { return w.k.service.metaOf(w, k).ID })
	return &Error{Status: http.StatusConflict, Code: codeUniqueViolation, Name: "unique constraint violation",
		Message: fmt.Sprintf("UNIQUE violation detected on '{consumer=%s,name=%q,route=%s,service=%s}'", cons, p.Name, rt, svc),
		Fields:  map[string]string{"consumer": cons, "name": p.Name, "route": rt, "service": svc}}
}

// entityRef is a body's reference to an entity: {"id": ...} or
// {"name": ...} (a plain id or name too; {"username": ...} for a
// consumer), or null. Routes' services are read the same way
// (decodeServiceRef).
type entityRef struct {
	id, name string
	present  bool
	null     bool
}

func decodeEntityRef(o *obj, field string) entityRef {
	v, present := o.get(field)
	ref := entityRef{present: present, null: present && v == nil}
	if !present || v == nil {
		return ref
	}
	if s, why := asString(v); why == "" {
		if config.IsUUID(s) {
			ref.id = s
		} else {
			ref.name = s
		}
		return ref
	}
	m, ok := v.(map[string]any)
	if !ok {
		o.fail(field, "expected a record ({\"id\": ...} or {\"name\": ...})")
		return ref
	}
	c := &obj{m: m, form: o.form, prefix: o.key(field) + ".", errs: o.errs, used: map[string]bool{}}
	c.setString("id", &ref.id, "", checkID)
	c.setString("name", &ref.name, "", nil)
	if field == kindConsumer {
		c.setString("username", &ref.name, "", nil)
	}
	c.unknown()
	if ref.id == "" && ref.name == "" {
		ref.null = true
	}
	return ref
}

// resolve is the key of the entity ref names among look's, "" for null.
func (ref entityRef) resolve(field, entities string, look func(string) (string, bool)) (string, error) {
	if ref.null || !ref.present {
		return "", nil
	}
	by := ref.id
	if by == "" {
		by = ref.name
	}
	key, ok := look(by)
	if !ok {
		k := "id"
		if ref.id == "" {
			k = "name"
		}
		return "", foreignKeyOf(field, entities, k, by)
	}
	return key, nil
}

// pluginBody is a decoded plugin body before its references and config
// are resolved against the world.
type pluginBody struct {
	name, instanceName       *string
	config                   any
	hasConfig                bool
	enabled                  *bool
	protocols, tags          *[]string
	service, route, consumer entityRef
}

func decodePluginFields(o *obj) pluginBody {
	var b pluginBody
	if o.has("name") {
		var s string
		o.setString("name", &s, "", func(s string) (string, error) {
			if _, ok := config.PluginSchemaOf(s); !ok {
				return "", fmt.Errorf("%s", config.UnknownPlugin(s))
			}
			return s, nil
		})
		b.name = &s
	}
	if o.has("instance_name") {
		var s string
		o.setString("instance_name", &s, "", keep(config.CheckName))
		b.instanceName = &s
	}
	if v, present := o.get("config"); present {
		b.config, b.hasConfig = looseJSON(v), true
	}
	if o.has("enabled") {
		e := true
		o.setBool("enabled", &e, true)
		b.enabled = &e
	}
	if o.has("protocols") {
		ps := config.PluginProtocols()
		o.setStrings("protocols", &ps, oneOf(config.PluginProtocols()...))
		if len(ps) == 0 {
			ps = config.PluginProtocols()
		}
		b.protocols = &ps
	}
	if o.has("tags") {
		var tags []string
		o.setStrings("tags", &tags, checkTag)
		b.tags = &tags
	}
	b.service = decodeEntityRef(o, kindService)
	b.route = decodeEntityRef(o, kindRoute)
	b.consumer = decodeEntityRef(o, kindConsumer)
	o.kongFields(config.KindPlugin)
	o.unknown()
	return b
}

// looseJSON converts a body's value for the plugin schemas: form values
// are loose text.
func looseJSON(v any) any {
	switch x := v.(type) {
	case formValue:
		return config.Loose(x)
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = looseJSON(x[i])
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = looseJSON(e)
		}
		return out
	}
	return v
}

// mergeConfig lays a PATCH's config over the current one: records merge
// field by field, anything else is replaced.
func mergeConfig(cur map[string]any, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok || cur == nil {
		return patch
	}
	out := make(map[string]any, len(cur)+len(pm))
	for k, v := range cur {
		out[k] = v
	}
	for k, v := range pm {
		if cm, ok := cur[k].(map[string]any); ok {
			out[k] = mergeConfig(cm, v)
		} else {
			out[k] = v
		}
	}
	return out
}

// decodePluginBody checks a plugin body and returns its applier, which
// resolves the scope (the URL's, for the nested collections) and checks
// the config against the plugin's schema.
func decodePluginBody(_ func() *world, r *http.Request, b *obj, m mode, _ string) (applier[state.Plugin], error) {
	var body pluginBody
	if err := b.decode(func(o *obj) { body = decodePluginFields(o) }); err != nil {
		return nil, err
	}
	if m != modePatch && body.name == nil {
		return nil, fieldError("name", "required field missing")
	}
	return func(w *world, p *state.Plugin) error {
		f := fields{}
		if body.name != nil {
			p.Name = *body.name
		}
		if body.instanceName != nil {
			p.InstanceName = *body.instanceName
		}
		if body.enabled != nil {
			p.Enabled = *body.enabled
		}
		if body.protocols != nil {
			p.Protocols = *body.protocols
		} else if m != modePatch || p.Protocols == nil {
			p.Protocols = config.PluginProtocols()
		}
		if body.tags != nil {
			p.Tags = *body.tags
		}
		refs := []struct {
			ref      entityRef
			dst      *string
			field    string
			entities string
			look     func(string) (string, bool)
		}{
			{body.service, &p.Service, kindService, "services", func(k string) (string, bool) { s, _, ok := w.service(k); return nameOf(s, ok) }},
			{body.route, &p.Route, kindRoute, "routes", func(k string) (string, bool) { x, _, ok := w.route(k); return routeName(x, ok) }},
			{body.consumer, &p.Consumer, kindConsumer, "consumers", func(k string) (string, bool) { c, _, ok := w.consumer(k); return consumerKey(c, ok) }},
		}
		for _, rf := range refs {
			if !rf.ref.present {
				continue
			}
			key, err := rf.ref.resolve(rf.field, rf.entities, rf.look)
			if err != nil {
				return err
			}
			*rf.dst = key
		}
		if m == modeCreate {
			svc, rt, cons, err := scopeOfPath(w, r)
			if err != nil {
				return err
			}
			for _, s := range []struct {
				path string
				dst  *string
				name string
			}{{svc, &p.Service, kindService}, {rt, &p.Route, kindRoute}, {cons, &p.Consumer, kindConsumer}} {
				if s.path == "" {
					continue
				}
				if *s.dst != "" && *s.dst != s.path {
					f.add(s.name, "must be the %s in the URL", s.name)
				}
				*s.dst = s.path
			}
		}
		schema, ok := config.PluginSchemaOf(p.Name)
		if !ok {
			f.add("name", "%s", config.UnknownPlugin(p.Name))
			return f.err()
		}
		if schema.NoConsumer && p.Consumer != "" {
			f.add("consumer", "value must be null")
		}
		raw := any(nil)
		switch {
		case body.hasConfig && m == modePatch && body.name == nil:
			raw = mergeConfig(p.Config, body.config)
		case body.hasConfig:
			raw = body.config
		case m == modePatch:
			raw = any(p.Config)
		}
		cfg, errs := config.CheckPluginConfig(schema, raw)
		for _, e := range errs {
			key := "config"
			if e.Path != "" {
				key += "." + e.Path
			}
			f.add(key, "%s", e.Msg)
		}
		if err := f.err(); err != nil {
			return err
		}
		p.Config = cfg
		return nil
	}, nil
}

func nameOf(s *config.Service, ok bool) (string, bool) {
	if !ok {
		return "", false
	}
	return s.Name, true
}

func routeName(r *config.Route, ok bool) (string, bool) {
	if !ok {
		return "", false
	}
	return r.Name, true
}

// followRename moves the plugins (and credentials) referring to old by
// the field ref picks to key.
func (w *world) followRename(pref func(*state.Plugin) *string, kref func(*state.KeyAuth) *string, old, key string, now int64) {
	for i := range w.eff.Plugins {
		p := &w.eff.Plugins[i]
		ed := w.k.plugin.editable(w, p.ID)
		if f := pref(ed); *f == old {
			*f, ed.UpdatedAt = key, now
			w.doc.Plugins[ed.ID] = ed
		}
	}
	if kref == nil {
		return
	}
	for i := range w.eff.KeyAuths {
		k := &w.eff.KeyAuths[i]
		ed := w.k.keyAuth.editable(w, k.ID)
		if f := kref(ed); *f == old {
			*f = key
			w.doc.KeyAuths[ed.ID] = ed
		}
	}
}

// cascade deletes the plugins and credentials of an entity being deleted
// (Kong's ON DELETE CASCADE).
func (w *world) cascade(plugin func(*config.Plugin) bool, cred func(*config.KeyAuth) bool) {
	now := w.started
	for i := range w.eff.Plugins {
		if p := &w.eff.Plugins[i]; plugin(p) {
			w.k.plugin.remove(w, p.ID, now)
		}
	}
	if cred == nil {
		return
	}
	for i := range w.eff.KeyAuths {
		if k := &w.eff.KeyAuths[i]; cred(k) {
			w.k.keyAuth.remove(w, k.ID, now)
		}
	}
}

// pluginsFollow moves the plugins of a renamed service or route (field
// picks which reference); a deleted one's plugins go with it.
func (w *world) pluginsFollow(field string, old, key string, now int64) {
	pick := func(p *state.Plugin) *string {
		if field == kindService {
			return &p.Service
		}
		return &p.Route
	}
	w.followRename(pick, nil, old, key, now)
}

func (w *world) pluginsCascade(field, key string) {
	w.cascade(func(p *config.Plugin) bool {
		if field == kindService {
			return p.Service == key
		}
		return p.Route == key
	}, nil)
}

// inScope serves h for an entity under the path's parent only: one the
// parent's scope does not hold is 404 (one that does not exist is h's
// business: 404, or 204 for a DELETE).
func (k *kind[C, D]) inScope(a *api, h func(*http.Request) (int, any, error)) func(*http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		w := a.view()
		keep, err := k.scope(w, r)
		if err != nil {
			return 0, nil, err
		}
		if c, _, ok := k.lookup(w, r.PathValue(k.param)); ok && !keep(c) {
			return 0, nil, notFound()
		}
		return h(r)
	}
}
