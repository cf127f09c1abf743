package admin

import (
	"crypto/rand"
	"encoding/hex"
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

type consumerOut struct {
	ID        string   `json:"id"`
	Username  *string  `json:"username"`
	CustomID  *string  `json:"custom_id"`
	Tags      []string `json:"tags"`
	CreatedAt int64    `json:"created_at"`
	UpdatedAt int64    `json:"updated_at"`
}

func renderConsumer(c *config.Consumer, m state.Meta) consumerOut {
	out := consumerOut{ID: m.ID, Tags: tagsOut(c.Tags), CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
	if c.Username != "" {
		out.Username = ptr(c.Username)
	}
	if c.CustomID != "" {
		out.CustomID = ptr(c.CustomID)
	}
	return out
}

type keyAuthOut struct {
	ID        string   `json:"id"`
	Key       string   `json:"key"`
	Consumer  idRef    `json:"consumer"`
	TTL       *int     `json:"ttl"`
	Tags      []string `json:"tags"`
	CreatedAt int64    `json:"created_at"`
}

func (w *world) renderKeyAuth(k *config.KeyAuth, m state.Meta) keyAuthOut {
	return keyAuthOut{ID: m.ID, Key: k.Key, Consumer: idRef{ID: w.k.consumer.metaOf(w, k.Consumer).ID},
		Tags: tagsOut(k.Tags), CreatedAt: m.CreatedAt}
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
		fileID: func(id string) string { return id },
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
// {"name": ...} (a plain id or name too), or null.
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
		o.fail(field, "expected a record ({\"id\": ...})")
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
		msg := fmt.Sprintf("the foreign key '{%s=%q}' does not reference an existing '%s' entity.", k, by, entities)
		return "", &Error{Status: http.StatusBadRequest, Code: codeForeignKeyViolation, Name: "foreign key violation", Message: msg,
			Fields: map[string]string{field: msg}}
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
	o.kongOnly(map[string]string{"ordering": "", "consumer_group": ""})
	o.ignore("id", "created_at", "updated_at")
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
func decodePluginBody(_ *world, r *http.Request, b *obj, m mode, _ string) (applier[state.Plugin], error) {
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

func consumerKey(c *config.Consumer, ok bool) (string, bool) {
	if !ok {
		return "", false
	}
	return c.Key(), true
}

func consumerKind() *kind[config.Consumer, state.Consumer] {
	return &kind[config.Consumer, state.Consumer]{
		name: kindConsumer, param: "consumer", named: true, checkName: checkUsername,
		all:    func(f *config.File) []config.Consumer { return f.Consumers },
		tags:   func(c *config.Consumer) []string { return c.Tags },
		key:    func(c *config.Consumer) string { return c.Key() },
		docs:   func(d *state.Doc) map[string]*state.Consumer { return d.Consumers },
		meta:   func(d *state.Consumer) *state.Meta { return &d.Meta },
		docKey: func(d *state.Consumer) string { return d.Username },
		setKey: func(d *state.Consumer, key string) { d.Username = key },
		fileID: func(key string) string { return stableID(kindConsumer, key) },
		find: func(w *world, key string) (*config.Consumer, state.Meta, bool) {
			for i := range w.eff.Consumers {
				c := &w.eff.Consumers[i]
				m := w.k.consumer.metaOf(w, c.Key())
				if sameID(m.ID, key) || c.Key() == key {
					return c, m, true
				}
			}
			return nil, state.Meta{}, false
		},
		render: func(_ *world, c *config.Consumer, m state.Meta) any { return renderConsumer(c, m) },
		decode: func(_ *world, _ *http.Request, b *obj, m mode, _ string) (applier[state.Consumer], error) {
			decode := func(c *state.Consumer) error {
				return b.decode(func(o *obj) {
					o.setString("username", &c.Username, "", nil)
					o.setString("custom_id", &c.CustomID, "", nil)
					o.setStrings("tags", &c.Tags, checkTag)
					o.ignore("id", "created_at", "updated_at")
					o.unknown()
				})
			}
			scratch := &state.Consumer{}
			if err := decode(scratch); err != nil {
				return nil, err
			}
			if m == modeCreate && scratch.Username == "" && scratch.CustomID == "" {
				return nil, fieldError("@entity", "at least one of these fields must be non-empty: 'custom_id', 'username'")
			}
			return func(_ *world, c *state.Consumer) error {
				if c.Username == c.ID {
					c.Username = ""
				}
				return decode(c)
			}, nil
		},
		fresh: func() *state.Consumer { return &state.Consumer{} },
		editable: func(w *world, key string) *state.Consumer {
			if d, ok := w.doc.Consumers[key]; ok && !d.Deleted {
				return cloneJSON(d)
			}
			c, m, _ := w.consumer(key)
			return &state.Consumer{Meta: m, Username: c.Key(), CustomID: c.CustomID, Tags: slices.Clone(c.Tags)}
		},
		put: func(w *world, old string, c *state.Consumer, now int64) error { return w.putConsumer(old, c, now) },
		unlink: func(w *world, key string) error {
			w.cascade(func(p *config.Plugin) bool { return p.Consumer == key }, func(k *config.KeyAuth) bool { return k.Consumer == key })
			return nil
		},
	}
}

func checkUsername(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	return nil
}

// putConsumer stores c under its key; a rename is followed by its
// plugins and credentials.
func (w *world) putConsumer(old string, c *state.Consumer, now int64) error {
	c.Deleted = false
	key := c.Username
	for i := range w.eff.Consumers {
		o := &w.eff.Consumers[i]
		if o.Key() == old || sameID(o.ID, c.ID) {
			continue
		}
		if c.CustomID != "" && o.CustomID == c.CustomID {
			return uniqueViolation("custom_id", c.CustomID)
		}
	}
	if old != "" && key != old {
		if w.k.consumer.keyTaken(w, key) {
			return uniqueViolation("username", key)
		}
		w.followRename(func(p *state.Plugin) *string { return &p.Consumer }, func(k *state.KeyAuth) *string { return &k.Consumer }, old, key, now)
		w.k.consumer.remove(w, old, now)
	}
	w.doc.Consumers[key] = c
	return nil
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

func keyAuthKind() *kind[config.KeyAuth, state.KeyAuth] {
	return &kind[config.KeyAuth, state.KeyAuth]{
		name: kindKeyAuth, param: "keyauth", lowerIDs: true,
		all:    func(f *config.File) []config.KeyAuth { return f.KeyAuths },
		tags:   func(c *config.KeyAuth) []string { return c.Tags },
		key:    func(c *config.KeyAuth) string { return c.ID },
		docs:   func(d *state.Doc) map[string]*state.KeyAuth { return d.KeyAuths },
		meta:   func(d *state.KeyAuth) *state.Meta { return &d.Meta },
		docKey: func(d *state.KeyAuth) string { return d.ID },
		setKey: func(d *state.KeyAuth, key string) { d.ID = key },
		fileID: func(id string) string { return id },
		// By id or by key, as Kong's.
		find: func(w *world, key string) (*config.KeyAuth, state.Meta, bool) {
			for i := range w.eff.KeyAuths {
				k := &w.eff.KeyAuths[i]
				if sameID(k.ID, key) || k.Key == key {
					return k, w.k.keyAuth.metaOf(w, k.ID), true
				}
			}
			return nil, state.Meta{}, false
		},
		render: func(w *world, c *config.KeyAuth, m state.Meta) any { return w.renderKeyAuth(c, m) },
		scope: func(w *world, r *http.Request) (func(*config.KeyAuth) bool, error) {
			_, _, cons, err := scopeOfPath(w, r)
			if err != nil {
				return nil, err
			}
			return func(k *config.KeyAuth) bool { return cons == "" || k.Consumer == cons }, nil
		},
		decode: func(_ *world, r *http.Request, b *obj, m mode, _ string) (applier[state.KeyAuth], error) {
			var ref entityRef
			decode := func(k *state.KeyAuth) error {
				return b.decode(func(o *obj) {
					o.setString("key", &k.Key, "", nonEmpty)
					o.setStrings("tags", &k.Tags, checkTag)
					ref = decodeEntityRef(o, kindConsumer)
					o.kongOnly(map[string]string{"ttl": ""})
					o.ignore("id", "created_at")
					o.unknown()
				})
			}
			if err := decode(&state.KeyAuth{}); err != nil {
				return nil, err
			}
			return func(w *world, k *state.KeyAuth) error {
				if err := decode(k); err != nil {
					return err
				}
				_, _, cons, err := scopeOfPath(w, r)
				if err != nil {
					return err
				}
				key, err := ref.resolve(kindConsumer, "consumers", func(s string) (string, bool) { c, _, ok := w.consumer(s); return consumerKey(c, ok) })
				if err != nil {
					return err
				}
				switch {
				case cons != "" && key != "" && key != cons:
					return fieldError("consumer", "must be the consumer in the URL")
				case cons != "":
					k.Consumer = cons
				case key != "":
					k.Consumer = key
				}
				if k.Consumer == "" {
					return fieldError("consumer", "required field missing")
				}
				if k.Key == "" && m != modePatch {
					k.Key = randomKey()
				}
				return nil
			}, nil
		},
		fresh: func() *state.KeyAuth { return &state.KeyAuth{} },
		editable: func(w *world, id string) *state.KeyAuth {
			if d, ok := w.doc.KeyAuths[id]; ok && !d.Deleted {
				return cloneJSON(d)
			}
			k, m, _ := w.k.keyAuth.lookup(w, id)
			return &state.KeyAuth{Meta: m, Key: k.Key, Consumer: k.Consumer, Tags: slices.Clone(k.Tags)}
		},
		put: func(w *world, _ string, k *state.KeyAuth, _ int64) error {
			k.Deleted = false
			for i := range w.eff.KeyAuths {
				o := &w.eff.KeyAuths[i]
				if !sameID(o.ID, k.ID) && o.Key == k.Key {
					return uniqueViolation("key", k.Key)
				}
			}
			w.doc.KeyAuths[k.ID] = k
			return nil
		},
	}
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

// randomKey is a generated key, as Kong's (32 hex characters).
func randomKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// pluginSchema answers GET /schemas/plugins/{name} in Kong's shape (the
// one decK reads defaults from): the entity's fields, config a record of
// the plugin's fields with their types, defaults and checks.
func (a *api) pluginSchema(r *http.Request) (int, any, error) {
	s, ok := config.PluginSchemaOf(r.PathValue("name"))
	if !ok {
		return 0, nil, &Error{Status: http.StatusNotFound, Message: config.UnknownPlugin(r.PathValue("name"))}
	}
	protocols := make([]any, 0, 4)
	for _, p := range config.PluginProtocols() {
		protocols = append(protocols, p)
	}
	consumer := map[string]any{"type": "foreign", "reference": "consumers", "default": nil}
	if s.NoConsumer {
		consumer["eq"] = nil
	}
	fields := []any{
		map[string]any{"id": map[string]any{"type": "string", "uuid": true, "auto": true}},
		map[string]any{"name": map[string]any{"type": "string", "required": true}},
		map[string]any{"instance_name": map[string]any{"type": "string"}},
		map[string]any{"created_at": map[string]any{"type": "integer", "timestamp": true, "auto": true}},
		map[string]any{"updated_at": map[string]any{"type": "integer", "timestamp": true, "auto": true}},
		map[string]any{"route": map[string]any{"type": "foreign", "reference": "routes", "default": nil}},
		map[string]any{"service": map[string]any{"type": "foreign", "reference": "services", "default": nil}},
		map[string]any{"consumer": consumer},
		map[string]any{"protocols": map[string]any{"type": "set", "required": true, "default": protocols,
			"elements": map[string]any{"type": "string", "one_of": protocols}}},
		map[string]any{"enabled": map[string]any{"type": "boolean", "required": true, "default": true}},
		map[string]any{"tags": map[string]any{"type": "set", "elements": map[string]any{"type": "string"}}},
		map[string]any{"config": map[string]any{"type": "record", "required": true, "fields": kongFields(s.Config)}},
	}
	return http.StatusOK, map[string]any{"fields": fields}, nil
}

// kongFields are a record's fields as Kong's schema endpoint shows them.
func kongFields(fs []config.PluginField) []any {
	out := make([]any, 0, len(fs))
	for _, f := range fs {
		d := map[string]any{}
		switch f.Kind {
		case config.KindString:
			d["type"] = "string"
		case config.KindBool:
			d["type"] = "boolean"
		case config.KindNumber:
			d["type"] = "number"
		case config.KindInteger:
			d["type"] = "integer"
		case config.KindStrings:
			el := map[string]any{"type": "string"}
			if len(f.OneOf) > 0 {
				el["one_of"] = f.OneOf
			}
			d["type"], d["elements"] = "array", el
		case config.KindRecord:
			d["type"], d["fields"] = "record", kongFields(f.Fields)
			d["required"] = true
		case config.KindAnyJSON:
			switch f.Default.(type) {
			case float64:
				d["type"] = "number"
			case bool:
				d["type"] = "boolean"
			default:
				d["type"] = "string"
			}
		}
		if f.Kind != config.KindRecord {
			d["default"] = f.Default
		}
		if f.Required {
			d["required"] = true
		}
		if len(f.OneOf) > 0 && f.Kind == config.KindString {
			d["one_of"] = f.OneOf
		}
		if f.Positive {
			d["gt"] = 0
		}
		out = append(out, map[string]any{f.Name: d})
	}
	return out
}

// enabledPlugins answers GET /plugins/enabled (Kong's list of the
// plugins this node can run).
func (a *api) enabledPlugins(*http.Request) (int, any, error) {
	return http.StatusOK, map[string]any{"enabled_plugins": config.PluginNames()}, nil
}

// pluginEndpoints are the endpoints of this file's kinds.
func (a *api) pluginEndpoints(k *kinds, ctl func(endpoint) endpoint) []endpoint {
	p, c, ka := k.plugin, k.consumer, k.keyAuth
	pluginExample := map[string]any{"name": "rate-limiting", "config": map[string]any{"minute": 20, "policy": "local"}}
	var out []endpoint
	for _, parent := range []struct{ prefix, op, what string }{
		{"", "", ""}, {"/services/{service}", "Service", " of the service"},
		{"/routes/{route}", "Route", " of the route"}, {"/consumers/{consumer}", "Consumer", " of the consumer"},
	} {
		out = append(out,
			ctl(endpoint{method: http.MethodGet, path: parent.prefix + "/plugins", op: "list" + parent.op + "Plugins", tag: "plugins",
				summary: "List plugins" + parent.what + " (the file's and the API's)", out: "list:Plugin", ok: http.StatusOK, paged: true, tagged: true, h: p.list(a)}),
			ctl(endpoint{method: http.MethodPost, path: parent.prefix + "/plugins", op: "create" + parent.op + "Plugin", tag: "plugins",
				summary: "Add a plugin" + parent.what + " (one of a name per scope; unknown names are refused with the supported ones)", in: "PluginInput", out: "Plugin", ok: http.StatusCreated,
				example: pluginExample, h: p.create(a)}))
	}
	for _, parent := range []struct{ prefix, op, what string }{
		{"/services/{service}", "Service", " of the service"}, {"/routes/{route}", "Route", " of the route"}, {"/consumers/{consumer}", "Consumer", " of the consumer"},
	} {
		out = append(out,
			ctl(endpoint{method: http.MethodGet, path: parent.prefix + "/plugins/{plugin}", op: "get" + parent.op + "Plugin", tag: "plugins",
				summary: "Get a plugin" + parent.what + " (404 when it has another scope)", out: "Plugin", ok: http.StatusOK, h: p.inScope(a, p.get(a))}),
			ctl(endpoint{method: http.MethodPatch, path: parent.prefix + "/plugins/{plugin}", op: "patch" + parent.op + "Plugin", tag: "plugins",
				summary: "Update a plugin" + parent.what, in: "PluginInput", out: "Plugin", ok: http.StatusOK,
				example: map[string]any{"enabled": false}, h: p.inScope(a, p.patch(a))}),
			ctl(endpoint{method: http.MethodDelete, path: parent.prefix + "/plugins/{plugin}", op: "delete" + parent.op + "Plugin", tag: "plugins",
				summary: "Delete a plugin" + parent.what, ok: http.StatusNoContent, h: p.inScope(a, p.del(a))}))
	}
	return append(out,
		ctl(endpoint{method: http.MethodGet, path: "/plugins/enabled", op: "listEnabledPlugins", tag: "plugins", summary: "The plugins this gateway runs", out: "object", ok: http.StatusOK, h: a.enabledPlugins}),
		ctl(endpoint{method: http.MethodGet, path: "/schemas/plugins/{name}", op: "getPluginSchema", tag: "plugins", summary: "A plugin's schema in Kong's shape: its fields, config's types, defaults and checks (what decK reads defaults from)", out: "object", ok: http.StatusOK, h: a.pluginSchema}),
		ctl(endpoint{method: http.MethodGet, path: "/plugins/{plugin}", op: "getPlugin", tag: "plugins", summary: "Get a plugin", out: "Plugin", ok: http.StatusOK, h: p.get(a)}),
		ctl(endpoint{method: http.MethodPatch, path: "/plugins/{plugin}", op: "patchPlugin", tag: "plugins", summary: "Update a plugin (config merges field by field)", in: "PluginInput", out: "Plugin", ok: http.StatusOK,
			example: map[string]any{"config": map[string]any{"minute": 30}}, h: p.patch(a)}),
		ctl(endpoint{method: http.MethodPut, path: "/plugins/{plugin}", op: "putPlugin", tag: "plugins", summary: "Create or replace a plugin by id", in: "PluginInput", out: "Plugin", ok: http.StatusOK, upsert: true,
			example: map[string]any{"name": "cors", "config": map[string]any{"origins": []any{"*"}}}, h: p.replace(a)}),
		ctl(endpoint{method: http.MethodDelete, path: "/plugins/{plugin}", op: "deletePlugin", tag: "plugins", summary: "Delete a plugin", ok: http.StatusNoContent, h: p.del(a)}),

		ctl(endpoint{method: http.MethodGet, path: "/consumers", op: "listConsumers", tag: "consumers", summary: "List consumers", out: "list:Consumer", ok: http.StatusOK, paged: true, tagged: true, h: c.list(a)}),
		ctl(endpoint{method: http.MethodPost, path: "/consumers", op: "createConsumer", tag: "consumers", summary: "Create a consumer (username or custom_id)", in: "ConsumerInput", out: "Consumer", ok: http.StatusCreated,
			example: map[string]any{"username": "new_consumer", "custom_id": "c-42"}, h: c.create(a)}),
		ctl(endpoint{method: http.MethodGet, path: "/consumers/{consumer}", op: "getConsumer", tag: "consumers", summary: "Get a consumer by id or username", out: "Consumer", ok: http.StatusOK, h: c.get(a)}),
		ctl(endpoint{method: http.MethodPatch, path: "/consumers/{consumer}", op: "patchConsumer", tag: "consumers", summary: "Update a consumer", in: "ConsumerInput", out: "Consumer", ok: http.StatusOK,
			example: map[string]any{"tags": []any{"gold"}}, h: c.patch(a)}),
		ctl(endpoint{method: http.MethodPut, path: "/consumers/{consumer}", op: "putConsumer", tag: "consumers", summary: "Create or replace a consumer by id or username", in: "ConsumerInput", out: "Consumer", ok: http.StatusOK, upsert: true,
			example: map[string]any{"custom_id": "c-7"}, h: c.replace(a)}),
		ctl(endpoint{method: http.MethodDelete, path: "/consumers/{consumer}", op: "deleteConsumer", tag: "consumers", summary: "Delete a consumer, its credentials and plugins", ok: http.StatusNoContent, h: c.del(a)}),

		ctl(endpoint{method: http.MethodGet, path: "/consumers/{consumer}/key-auth", op: "listConsumerKeyAuths", tag: "consumers", summary: "List the consumer's key-auth credentials", out: "list:KeyAuth", ok: http.StatusOK, paged: true, tagged: true, h: ka.list(a)}),
		ctl(endpoint{method: http.MethodPost, path: "/consumers/{consumer}/key-auth", op: "createKeyAuth", tag: "consumers", summary: "Add a key-auth credential (a random key when none is given)", in: "KeyAuthInput", out: "KeyAuth", ok: http.StatusCreated,
			example: map[string]any{"key": "new-secret-key"}, h: ka.create(a)}),
		ctl(endpoint{method: http.MethodGet, path: "/consumers/{consumer}/key-auth/{keyauth}", op: "getConsumerKeyAuth", tag: "consumers", summary: "Get a key-auth credential by id or key", out: "KeyAuth", ok: http.StatusOK, h: ka.inScope(a, ka.get(a))}),
		ctl(endpoint{method: http.MethodPatch, path: "/consumers/{consumer}/key-auth/{keyauth}", op: "patchKeyAuth", tag: "consumers", summary: "Update a key-auth credential", in: "KeyAuthInput", out: "KeyAuth", ok: http.StatusOK,
			example: map[string]any{"tags": []any{"rotated"}}, h: ka.inScope(a, ka.patch(a))}),
		ctl(endpoint{method: http.MethodDelete, path: "/consumers/{consumer}/key-auth/{keyauth}", op: "deleteKeyAuth", tag: "consumers", summary: "Delete a key-auth credential", ok: http.StatusNoContent, h: ka.inScope(a, ka.del(a))}),
		ctl(endpoint{method: http.MethodGet, path: "/key-auths", op: "listKeyAuths", tag: "consumers", summary: "List every key-auth credential", out: "list:KeyAuth", ok: http.StatusOK, paged: true, tagged: true, h: ka.list(a)}),
		ctl(endpoint{method: http.MethodGet, path: "/key-auths/{keyauth}", op: "getKeyAuth", tag: "consumers", summary: "Get a key-auth credential by id or key", out: "KeyAuth", ok: http.StatusOK, h: ka.get(a)}),
	)
}

// pluginSchemas are the OpenAPI components of this file's entities.
func pluginSchemas() js {
	ref := func(what string) js {
		return nullable(js{"oneOf": []any{sref("IdRef"), sstr("an id or a name")}, "description": what + " the plugin is scoped to; null for any"})
	}
	pluginIn := js{
		"id":            uuidSchema("optional on creation"),
		"name":          senum("the plugin", config.PluginNames()...),
		"instance_name": nullable(sstr("unique")),
		"config":        js{"type": "object", "description": "checked by the plugin's schema; defaults filled in (GET /schemas/plugins/{name})"},
		"enabled":       sbool("default true"),
		"protocols":     sarr(senum("", config.PluginProtocols()...), "the request protocols it runs on (default all)"),
		"tags":          tagsSchema(),
		"service":       ref("the service"),
		"route":         ref("the route"),
		"consumer":      ref("the consumer (not for key-auth and cors)"),
	}
	consumerIn := js{"id": uuidSchema("optional on creation"), "username": nullable(sstr("unique")), "custom_id": nullable(sstr("unique")), "tags": tagsSchema()}
	keyAuthIn := js{"id": uuidSchema("optional on creation"), "key": sstr("unique; a random one when absent"), "tags": tagsSchema(),
		"consumer": nullable(sref("IdRef"))}
	return js{
		"PluginInput":   closed(sobj(pluginIn)),
		"Plugin":        sobj(with(pluginIn, with(timestamps(), js{"id": uuidSchema(""), "ordering": nullable(js{"type": "object"})})), "id", "name", "config", "enabled", "protocols"),
		"ConsumerInput": closed(sobj(consumerIn)),
		"Consumer":      sobj(with(consumerIn, timestamps()), "id", "username", "custom_id"),
		"KeyAuthInput":  closed(sobj(keyAuthIn)),
		"KeyAuth":       sobj(with(keyAuthIn, js{"created_at": js{"type": "integer"}, "ttl": nullable(js{"type": "integer"})}), "id", "key", "consumer"),
	}
}
