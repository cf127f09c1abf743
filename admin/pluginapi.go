package admin

import (
	"net/http"

	"github.com/outrigger-gw/outrigger/config"
)

// The plugins' endpoints, their OpenAPI components and Kong's plugin
// schema endpoint.

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
		ctl(endpoint{method: http.MethodPut, path: "/consumers/{consumer}/key-auth/{keyauth}", op: "putKeyAuth", tag: "consumers", summary: "Create or replace a key-auth credential by id", in: "KeyAuthInput", out: "KeyAuth", ok: http.StatusOK, upsert: true,
			example: map[string]any{"key": "replaced-key"}, h: ka.inScope(a, ka.replace(a))}),
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
