package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The file's plugins and consumers: top-level "plugins" (scoped by the
// names in their service, route and consumer keys) and plugins nested in
// a service or a route (scoped to it), and "consumers" with their nested
// keyauth_credentials, as in Kong's declarative format.

// nestedPlugins is a plugins list written inside a service or a route.
type nestedPlugins struct {
	node *yaml.Node
	// The enclosing entity's name (a consumer's key), read once decoded.
	service, route, consumer *string
}

// pluginEntry is a decoded plugin and the nodes the cross-checks report
// at.
type pluginEntry struct {
	p                      Plugin
	service, route, cons   *yaml.Node
	name, id, instanceName *yaml.Node
}

// pluginsIn records a plugins list nested in a service, a route or a
// consumer, decoded by finishPlugins once every entity is known.
func (d *decoder) pluginsIn(service, route *string) field {
	return d.pluginsUnder(service, route, nil)
}

func (d *decoder) pluginsUnder(service, route, consumer *string) field {
	return field{"plugins", func(v *yaml.Node) {
		d.nested = append(d.nested, nestedPlugins{node: v, service: service, route: route, consumer: consumer})
	}}
}

// decodePlugins decodes the top-level plugins list.
func (d *decoder) decodePlugins(v *yaml.Node) {
	d.list(v, "plugins", func(item *yaml.Node) { d.plugins = append(d.plugins, d.plugin(item, nil)) })
}

func (d *decoder) plugin(n *yaml.Node, parent *nestedPlugins) pluginEntry {
	e := pluginEntry{p: Plugin{Pos: pos(n), Enabled: true}}
	p := &e.p
	var configNode *yaml.Node
	scope := func(dst *string, at **yaml.Node, label string) func(*yaml.Node) {
		return func(v *yaml.Node) {
			if s, ok := d.str(v, label); ok {
				*dst, *at = s, deref(v)
			}
		}
	}
	seen := d.mapping(n, "plugin", "plugin", append([]field{
		{"id", func(v *yaml.Node) {
			if s, ok := d.str(v, "id"); ok {
				if !IsUUID(s) {
					d.errorf(deref(v), "id: expected a UUID, got %s", quote(s))
					return
				}
				p.ID, e.id = strings.ToLower(s), deref(v)
			}
		}},
		{"name", func(v *yaml.Node) {
			if s, ok := d.str(v, "name"); ok {
				if _, known := PluginSchemaOf(s); !known {
					d.errorf(deref(v), "name: %s", UnknownPlugin(s))
					return
				}
				p.Name, e.name = s, deref(v)
			}
		}},
		{"instance_name", func(v *yaml.Node) {
			if s, ok := d.str(v, "instance_name"); ok {
				if err := CheckName(s); err != nil {
					d.errorf(deref(v), "instance_name: %v", err)
					return
				}
				p.InstanceName, e.instanceName = s, deref(v)
			}
		}},
		{"config", func(v *yaml.Node) { configNode = v }},
		{"enabled", d.boolField(&p.Enabled, "enabled")},
		{"protocols", func(v *yaml.Node) {
			p.Protocols = d.routeList(v, "protocols", func(s string) (string, error) {
				s = strings.ToLower(s)
				if !slices.Contains(PluginProtocols(), s) {
					return s, fmt.Errorf("%s is not one of %s", quote(s), strings.Join(PluginProtocols(), ", "))
				}
				return s, nil
			})
		}},
		{"tags", d.tags(&p.Tags)},
		{"service", scope(&p.Service, &e.service, "service")},
		{"route", scope(&p.Route, &e.route, "route")},
		{"consumer", scope(&p.Consumer, &e.cons, "consumer")},
	}, d.kongFieldsExcept(KindPlugin, "id")...))
	if seen == nil {
		return e
	}
	if parent != nil {
		for _, k := range []string{"service", "route", "consumer"} {
			if s, ok := seen[k]; ok {
				d.errorf(s.key, "%s: not allowed in a plugin nested in a service, a route or a consumer", k)
			}
		}
		p.Service, p.Route, p.Consumer, e.service, e.route, e.cons = "", "", "", nil, nil, nil
		if parent.service != nil {
			p.Service = *parent.service
		}
		if parent.route != nil {
			p.Route = *parent.route
		}
		if parent.consumer != nil {
			p.Consumer = *parent.consumer
			if s, ok := PluginSchemaOf(p.Name); ok && s.NoConsumer {
				d.errorAt(p.Pos, "plugin: the %s plugin cannot be scoped to a consumer", p.Name)
			}
		}
	}
	if _, ok := seen["name"]; !ok {
		d.errorAt(p.Pos, "plugin: name is required")
	}
	if p.Protocols == nil {
		p.Protocols = PluginProtocols()
	}
	if s, ok := PluginSchemaOf(p.Name); ok {
		d.pluginConfig(s, configNode, p)
	}
	if p.ID == "" {
		p.ID = PluginScopeID(p.Name, p.Service, p.Route, p.Consumer)
	}
	return e
}

// pluginConfig checks a plugin's config node against its schema.
func (d *decoder) pluginConfig(s *PluginSchema, n *yaml.Node, p *Plugin) {
	at := map[string]*yaml.Node{}
	keys := map[string]*yaml.Node{}
	var raw any
	if n != nil {
		var ok bool
		raw, ok = d.jsonValue(n, "", at, keys)
		if !ok {
			return
		}
		at[""] = deref(n)
	}
	cfg, errs := CheckPluginConfig(s, raw)
	for _, e := range errs {
		node := keys[e.Path]
		if node == nil || e.Msg != "unknown field" {
			path := e.Path
			for node = at[path]; node == nil && path != ""; node = at[path] {
				if i := strings.LastIndexByte(path, '.'); i >= 0 {
					path = path[:i]
				} else {
					path = ""
				}
			}
		}
		label := "config"
		if e.Path != "" {
			label += "." + e.Path
		}
		if node == nil {
			d.errorAt(p.Pos, "%s: %s", label, e.Msg)
		} else {
			d.errorf(node, "%s: %s", label, e.Msg)
		}
	}
	p.Config = cfg
}

// jsonValue converts n to JSON-native data, recording each value's node
// (and each key's) by its dotted path.
func (d *decoder) jsonValue(n *yaml.Node, path string, at, keys map[string]*yaml.Node) (any, bool) {
	n = deref(n)
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch n.Kind {
	case yaml.MappingNode:
		out := map[string]any{}
		ok := true
		for _, p := range d.pairs(n, 0) {
			sub := join(p.key.Value)
			at[sub], keys[sub] = deref(p.val), p.key
			v, vok := d.jsonValue(p.val, sub, at, keys)
			ok = ok && vok
			out[p.key.Value] = v
		}
		return out, ok
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		ok := true
		for i, item := range n.Content {
			sub := join(strconv.Itoa(i + 1))
			at[sub] = deref(item)
			v, vok := d.jsonValue(item, sub, at, keys)
			ok = ok && vok
			out = append(out, v)
		}
		return out, ok
	}
	v, ok := d.scalar(n, "config", "a value")
	if !ok {
		return nil, false
	}
	switch v.tag {
	case tagNull:
		return nil, true
	case tagBool:
		return strings.EqualFold(v.text, "true"), true
	case tagInt:
		i, err := parseInt(v.text)
		if err != nil {
			d.errorf(n, "config: %s is out of range", v.text)
			return nil, false
		}
		return float64(i), true
	case tagFloat:
		f, err := strconv.ParseFloat(strings.ReplaceAll(v.text, "_", ""), 64)
		if err != nil {
			d.errorf(n, "config: expected a finite number, got %s", v.describe())
			return nil, false
		}
		return f, true
	case tagExpanded:
		return Loose(v.text), true
	}
	return v.text, true
}

// decodeConsumers decodes the consumers list and their credentials.
func (d *decoder) decodeConsumers(v *yaml.Node, f *File) {
	d.list(v, "consumers", func(item *yaml.Node) {
		c := Consumer{Pos: pos(item)}
		var creds *yaml.Node
		key := new(string) // the consumer's key, for its nested plugins
		seen := d.mapping(item, "consumer", "consumer", append([]field{
			{"id", d.idField(&c.ID)},
			{"username", d.strField(&c.Username, "username", checkNonEmpty)},
			{"custom_id", d.strField(&c.CustomID, "custom_id", checkNonEmpty)},
			{"tags", d.tags(&c.Tags)},
			{"keyauth_credentials", func(v *yaml.Node) { creds = v }},
			d.pluginsUnder(nil, nil, key),
		}, d.kongFieldsExcept(KindConsumer, "id")...))
		if seen == nil {
			return
		}
		if c.Username == "" && c.CustomID == "" {
			if _, u := seen["username"]; !u {
				if _, ci := seen["custom_id"]; !ci {
					d.errorAt(c.Pos, "consumer: at least one of username or custom_id is required")
				}
			}
		}
		if c.ID == "" {
			if c.Username != "" {
				c.ID = StableID("consumer", c.Username)
			} else {
				c.ID = StableID("consumer", "custom_id:"+c.CustomID)
			}
		}
		for _, prev := range f.Consumers {
			switch {
			case c.Username != "" && prev.Username == c.Username:
				d.errorAt(c.Pos, "consumer: duplicate username %s (first at line %d)", quote(c.Username), prev.Pos.Line)
			case c.CustomID != "" && prev.CustomID == c.CustomID:
				d.errorAt(c.Pos, "consumer: duplicate custom_id %s (first at line %d)", quote(c.CustomID), prev.Pos.Line)
			case prev.ID == c.ID:
				d.errorAt(c.Pos, "consumer: duplicate id %s (first at line %d)", c.ID, prev.Pos.Line)
			}
		}
		*key = c.Key()
		f.Consumers = append(f.Consumers, c)
		if creds == nil {
			return
		}
		i := 0
		d.list(creds, "keyauth_credentials", func(cn *yaml.Node) {
			k := KeyAuth{Pos: pos(cn), Consumer: c.Key()}
			seen := d.mapping(cn, "keyauth_credential", "keyauth_credential", append([]field{
				{"id", d.idField(&k.ID)},
				{"key", d.strField(&k.Key, "key", checkNonEmpty)},
				{"tags", d.tags(&k.Tags)},
			}, d.kongFieldsExcept(KindKeyAuth, "id")...))
			if seen == nil {
				return
			}
			i++
			if _, ok := seen["key"]; !ok {
				d.errorAt(k.Pos, "keyauth_credential: key is required")
			}
			if k.ID == "" {
				k.ID = StableID("keyauth_credential", c.ID+"\x00"+strconv.Itoa(i))
			}
			for _, prev := range f.KeyAuths {
				if prev.Key == k.Key && k.Key != "" {
					d.errorAt(k.Pos, "keyauth_credential: duplicate key (first at line %d)", prev.Pos.Line)
				}
			}
			f.KeyAuths = append(f.KeyAuths, k)
		})
	})
}

// finishPlugins decodes the nested plugins lists and checks every
// plugin's references and uniqueness once the whole file is decoded.
func (d *decoder) finishPlugins(f *File) {
	for i := range d.nested {
		np := &d.nested[i]
		d.list(np.node, "plugins", func(item *yaml.Node) { d.plugins = append(d.plugins, d.plugin(item, np)) })
	}
	services := map[string]bool{}
	for _, s := range f.Services {
		services[s.Name] = true
	}
	routes := map[string]bool{}
	for _, r := range f.Routes {
		routes[r.Name] = true
	}
	consumers := map[string]bool{}
	for _, c := range f.Consumers {
		consumers[c.Key()] = true
	}
	scopes := map[string]Pos{}
	ids := map[string]Pos{}
	instances := map[string]Pos{}
	for _, e := range d.plugins {
		p := e.p
		if e.service != nil && !services[p.Service] {
			d.errorf(e.service, "service: unknown service %s", quote(p.Service))
		}
		if e.route != nil && !routes[p.Route] {
			d.errorf(e.route, "route: unknown route %s", quote(p.Route))
		}
		if e.cons != nil {
			if s, ok := PluginSchemaOf(p.Name); ok && s.NoConsumer {
				d.errorf(e.cons, "consumer: the %s plugin cannot be scoped to a consumer", p.Name)
			} else if !consumers[p.Consumer] {
				d.errorf(e.cons, "consumer: unknown consumer %s", quote(p.Consumer))
			}
		}
		if p.Name != "" {
			if prev, dup := scopes[p.ScopeKey()]; dup {
				d.errorAt(p.Pos, "plugin: a %s plugin is already configured for this scope (at line %d): one per global, service, route or consumer scope", p.Name, prev.Line)
			} else {
				scopes[p.ScopeKey()] = p.Pos
			}
		}
		if prev, dup := ids[p.ID]; dup && e.id != nil {
			d.errorf(e.id, "id: duplicate plugin id %s (first at line %d)", p.ID, prev.Line)
		}
		ids[p.ID] = p.Pos
		if p.InstanceName != "" {
			if prev, dup := instances[p.InstanceName]; dup {
				d.errorf(e.instanceName, "instance_name: duplicate instance_name %s (first at line %d)", quote(p.InstanceName), prev.Line)
			}
			instances[p.InstanceName] = p.Pos
		}
		f.Plugins = append(f.Plugins, p)
	}
}
