package config

import (
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Kong's declarative format (decK files, Kong's DB-less kong.yml): the
// meta keys of the top level, the bookkeeping and Kong-only fields of
// each entity (KongFields, MetaFields), top-level targets naming their
// upstream, and routes naming their service by name or id.

// declarative decodes the top-level meta keys of a Kong declarative file.
func (d *decoder) declarative() []field {
	return []field{
		{"_format_version", func(v *yaml.Node) {
			if s, ok := d.str(v, "_format_version"); ok && !slices.Contains(DeclarativeFormats(), s) {
				d.errorf(deref(v), "_format_version: unsupported version %s; expected one of: %s", quote(s), strings.Join(DeclarativeFormats(), ", "))
			}
		}},
		// _transform: false only matters for credentials (hashed or
		// not), which Outrigger's entities do not hold.
		{"_transform", func(v *yaml.Node) { d.boolean(v, "_transform") }},
		{"_comment", func(v *yaml.Node) { d.text(v, "_comment") }},
		{"_workspace", func(v *yaml.Node) {
			if s, ok := d.str(v, "_workspace"); ok && s != "default" {
				d.errorf(deref(v), "_workspace: only the default workspace exists in outrigger, got %s", quote(s))
			}
		}},
		{"_info", func(v *yaml.Node) {
			d.mapping(v, "_info", "_info", []field{
				// decK writes the tags it selected on every entity too;
				// here they are only checked.
				{"select_tags", func(v *yaml.Node) {
					var tags []string
					d.tags(&tags)(v)
				}},
				{"defaults", func(v *yaml.Node) {
					if n := deref(v); !isNull(n) && !(n.Kind == yaml.MappingNode && len(n.Content) == 0) {
						d.errorf(n, "_info.defaults: not supported by outrigger: write the values on the entities")
					}
				}},
			})
		}},
	}
}

// kongFields are the fields of kind besides its own: the meta fields (id
// kept in *id, the others checked and dropped) and the Kong-only fields,
// accepted at their default.
func (d *decoder) kongFields(kind string, id *string) []field {
	var out []field
	for _, k := range MetaFields(kind) {
		switch k {
		case "id":
			out = append(out, field{k, d.idField(id)})
		case "created_at", "updated_at":
			out = append(out, field{k, func(v *yaml.Node) {
				if !isNull(deref(v)) {
					d.integer(v, k, 0, MaxExactInteger)
				}
			}})
		case "ws_id":
			out = append(out, field{k, func(v *yaml.Node) {
				if s, ok := d.str(v, k); ok && !IsUUID(s) {
					d.errorf(deref(v), "ws_id: expected a UUID, got %s", quote(s))
				}
			}})
		}
	}
	for _, kf := range KongFields(kind) {
		out = append(out, field{kf.Name, func(v *yaml.Node) {
			n := deref(v)
			switch {
			case isNull(n), n.Kind == yaml.SequenceNode && len(n.Content) == 0:
				return
			case n.Kind == yaml.ScalarNode:
				if sv, ok := d.scalar(n, kf.Name, "a scalar"); !ok || kf.Accepts(sv.text) {
					return
				}
			}
			d.errorf(n, "%s: %s", kf.Name, kf.Refusal())
		}})
	}
	return out
}

// entityRef decodes a reference to another entity: its name as a string,
// or Kong's {name: ...} / {id: ...} record.
func (d *decoder) entityRef(v *yaml.Node, label string) (name, id string, ok bool) {
	n := deref(v)
	if n.Kind != yaml.MappingNode {
		name, ok = d.str(n, label)
		return name, "", ok
	}
	ok = true
	seen := d.mapping(n, label, label, []field{
		{"name", func(v *yaml.Node) {
			if s, good := d.str(v, label+".name"); good {
				name = s
			} else {
				ok = false
			}
		}},
		{"id", func(v *yaml.Node) {
			s, good := d.str(v, label+".id")
			if good && !IsUUID(s) {
				d.errorf(deref(v), "%s.id: expected a UUID, got %s", label, quote(s))
				good = false
			}
			if good {
				id = strings.ToLower(s)
			} else {
				ok = false
			}
		}},
	})
	if ok && len(seen) == 0 {
		d.errorf(n, "%s: expected {name: ...} or {id: ...}", label)
		ok = false
	}
	return name, id, ok
}

// topTarget is a target written at the top level, naming its upstream.
type topTarget struct {
	target Target
	at     *yaml.Node // the valid address, for duplicates
	ref    *yaml.Node // the upstream: value
	name   string     // the upstream's name, or
	id     string     // its id
}

// topLevelTarget decodes one item of the top-level targets list.
func (d *decoder) topLevelTarget(n *yaml.Node) (topTarget, bool) {
	var tt topTarget
	ok := true
	t, at := d.targetWith(n, field{"upstream", func(v *yaml.Node) {
		tt.ref = deref(v)
		tt.name, tt.id, ok = d.entityRef(v, "upstream")
	}})
	tt.target, tt.at = t, at
	if tt.ref == nil && deref(n).Kind == yaml.MappingNode {
		d.errorAt(t.Pos, "target: upstream is required for a top-level target")
		ok = false
	}
	return tt, ok
}

// attachTargets adds the top-level targets to their upstreams, refusing
// unknown upstreams and addresses an upstream already has.
func (d *decoder) attachTargets(f *File, targets []topTarget) {
	for _, tt := range targets {
		idx := -1
		for i := range f.Upstreams {
			u := &f.Upstreams[i]
			if (tt.name != "" && u.Name == tt.name) || (tt.id != "" && u.ID == tt.id) {
				idx = i
				break
			}
		}
		if idx < 0 {
			d.errorf(tt.ref, "upstream: unknown upstream %s", quote(tt.name+tt.id))
			continue
		}
		u := &f.Upstreams[idx]
		if tt.at != nil && slices.ContainsFunc(u.Targets, func(t Target) bool { return t.Target == tt.target.Target }) {
			d.errorf(tt.at, "target: duplicate target %s in upstream %s", tt.target.Target, quote(u.Name))
			continue
		}
		u.Targets = append(u.Targets, tt.target)
	}
}

// uniqueIDs reports an id given to two entities of one kind.
func (d *decoder) uniqueIDs(kind string, ids []idAt) {
	first := map[string]int{}
	for _, e := range ids {
		if e.id == "" {
			continue
		}
		if line, dup := first[e.id]; dup {
			d.errorAt(e.pos, "id: duplicate %s id %s (first at line %d)", kind, e.id, line)
			continue
		}
		first[e.id] = e.pos.Line
	}
}

// idAt is an entity's id and where the entity is.
type idAt struct {
	id  string
	pos Pos
}

// resolveServiceID sets the service of a route that names it by id
// (service: {id: ...}), checking a name given with it.
func (d *decoder) resolveServiceID(f *File, r *routeEntry) {
	for i := range f.Services {
		s := &f.Services[i]
		if s.ID != r.serviceID {
			continue
		}
		if r.route.Service != "" && r.route.Service != s.Name {
			d.errorf(r.service, "service: id %s is service %s, not %s", r.serviceID, quote(s.Name), quote(r.route.Service))
			return
		}
		r.route.Service = s.Name
		return
	}
	d.errorf(r.service, "service: unknown service id %s", r.serviceID)
}

// checkIDs reports ids used twice within a kind.
func (d *decoder) checkIDs(f *File) {
	var ups, targets, svcs []idAt
	for _, u := range f.Upstreams {
		ups = append(ups, idAt{u.ID, u.Pos})
		for _, t := range u.Targets {
			targets = append(targets, idAt{t.ID, t.Pos})
		}
	}
	for _, s := range f.Services {
		svcs = append(svcs, idAt{s.ID, s.Pos})
	}
	d.uniqueIDs("upstream", ups)
	d.uniqueIDs("target", targets)
	d.uniqueIDs("service", svcs)
}

// checkScalars reports the scalars of n that do not expand (an unset
// variable) or carry an unsupported tag, as decoding them would.
func (d *decoder) checkScalars(n *yaml.Node, label string, depth int) {
	n = deref(n)
	if depth > maxDepth {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for _, p := range d.pairs(n, 0) {
			d.checkScalars(p.val, p.key.Value, depth+1)
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			d.checkScalars(item, label, depth+1)
		}
	case yaml.ScalarNode:
		d.scalar(n, label, "a scalar")
	}
}

// plain is n as plain values (map[string]any, []any, string, int64,
// float64, bool, nil) after variable expansion; an expanded scalar takes
// the type YAML would give its text. Errors are left to the decoding of
// n itself.
func (d *decoder) plain(n *yaml.Node, depth int) any {
	n = deref(n)
	if depth > maxDepth {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		out := map[string]any{}
		quiet := &decoder{file: d.file, lookup: d.lookup}
		for _, p := range quiet.pairs(n, 0) {
			out[p.key.Value] = d.plain(p.val, depth+1)
		}
		return out
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, item := range n.Content {
			out = append(out, d.plain(item, depth+1))
		}
		return out
	case yaml.ScalarNode:
		text, changed, err := expand(n.Value, d.lookup)
		if err != nil {
			return nil
		}
		if !changed && n.ShortTag() == tagStr {
			return text
		}
		var v any
		if yaml.Unmarshal([]byte(text), &v) != nil {
			return text
		}
		if changed {
			if _, isStr := v.(string); !isStr {
				return v
			}
			return text
		}
		return v
	}
	return nil
}

// declarativeKind is one entity kind of a declarative document: its
// top-level key, and how a document's entities of the kind replace the
// configuration file's (nil for a key that only feeds another kind, as
// top-level targets feed their upstreams).
type declarativeKind struct {
	key     string
	replace func(dst, src *File)
}

// declarativeKinds are the entity kinds of a declarative document, in the
// order Export writes them. A new kind of entity is one row here, its
// decoder in decodeFile and its writer in Export.
func declarativeKinds() []declarativeKind {
	return []declarativeKind{
		{"upstreams", func(dst, src *File) { dst.Upstreams = src.Upstreams }},
		{"targets", nil},
		{"services", func(dst, src *File) { dst.Services = src.Services }},
		{"routes", func(dst, src *File) { dst.Routes = src.Routes }},
		{"certificates", func(dst, src *File) { dst.Certificates, dst.SNIs = src.Certificates, src.SNIs }},
		{"snis", nil},
		{"plugins", func(dst, src *File) { dst.Plugins = src.Plugins }},
		{"consumers", func(dst, src *File) { dst.Consumers, dst.KeyAuths = src.Consumers, src.KeyAuths }},
	}
}

// DeclarativeKeys are the top-level entity keys of a declarative
// document.
func DeclarativeKeys() []string {
	var out []string
	for _, k := range declarativeKinds() {
		out = append(out, k.key)
	}
	return out
}

// onlyEntities refuses, in a declarative document, the top-level keys
// that configure the process rather than its entities.
func (d *decoder) onlyEntities(fields []field) []field {
	if !d.entitiesOnly {
		return fields
	}
	out := make([]field, 0, len(fields))
	for _, f := range fields {
		if strings.HasPrefix(f.key, "_") || slices.Contains(DeclarativeKeys(), f.key) || slices.Contains(layerKinds(), f.key) {
			out = append(out, f)
			continue
		}
		key := f.key
		out = append(out, field{key, func(v *yaml.Node) {
			d.errorf(deref(v), "%s: not allowed in a declarative configuration (it holds %s; %s belongs in the configuration file)",
				key, strings.Join(DeclarativeKeys(), ", "), key)
		}})
	}
	return out
}

// ParseDeclarative decodes a Kong declarative document (a decK file, the
// body of POST /config): the entity kinds of the configuration file and
// its meta keys, by the same rules and with the same errors as Parse;
// the process's own sections (proxy, admin, log, register) are refused,
// and ${VAR} references are not expanded (a document posted to the admin
// API does not read the gateway's environment).
func ParseDeclarative(name string, data []byte) (*File, error) {
	return (&decoder{file: name, entitiesOnly: true}).parse(data)
}

// WithEntities returns a copy of base whose entities are decl's: every
// kind of a declarative document replaces base's (Kong's DB-less
// semantics); the process's sections stay base's.
func WithEntities(base, decl *File) *File {
	out := *base
	for _, k := range declarativeKinds() {
		if k.replace != nil {
			k.replace(&out, decl)
		}
	}
	return &out
}

// LayerKeys are Outrigger's admin-layer entities in a declarative
// document: canaries and rollouts (each naming its service) and weight
// overrides (each naming its upstream), in the admin API's shapes. This
// package only reads them as plain values; the admin API decodes and
// checks them with its own decoders, so they follow its rules exactly.
type LayerKeys struct {
	Canaries, Rollouts, Overrides []LayerItem
}

// LayerItem is one item of a LayerKeys list: where it is, and its value
// as plain values (map[string]any of strings, int64, float64, bool, nil,
// []any, map[string]any).
type LayerItem struct {
	Pos   Pos
	Value map[string]any
}

// layerKinds are the admin-layer keys of a declarative document.
func layerKinds() []string { return []string{"canaries", "rollouts", "overrides"} }

// layerFields decodes the admin-layer keys: in a declarative document
// into f.Layer; in the configuration file they are refused (they live in
// the admin layer, where a document posted to /config puts them).
func (d *decoder) layerFields(f *File) []field {
	var out []field
	for _, key := range layerKinds() {
		out = append(out, field{key, func(v *yaml.Node) {
			if !d.entitiesOnly {
				d.errorf(deref(v), "%s: only in a declarative document posted to /config: canaries, rollouts and overrides belong to the admin layer (or use the admin API)", key)
				return
			}
			if f.Layer == nil {
				f.Layer = &LayerKeys{}
			}
			var items []LayerItem
			d.list(v, key, func(item *yaml.Node) {
				d.checkScalars(item, key, 0)
				m, ok := d.plain(item, 0).(map[string]any)
				if !ok || item.Kind != yaml.MappingNode {
					d.errorf(item, "%s: expected a mapping, got %s", key, describe(item))
					return
				}
				items = append(items, LayerItem{Pos: pos(item), Value: m})
			})
			switch key {
			case "canaries":
				f.Layer.Canaries = items
			case "rollouts":
				f.Layer.Rollouts = items
			case "overrides":
				f.Layer.Overrides = items
			}
		}})
	}
	return out
}

// kongFieldsExcept is kongFields without the meta fields the entity's
// decoder reads itself.
func (d *decoder) kongFieldsExcept(kind string, own ...string) []field {
	var id string
	all := d.kongFields(kind, &id)
	out := all[:0]
	for _, f := range all {
		if !slices.Contains(own, f.key) {
			out = append(out, f)
		}
	}
	return out
}
