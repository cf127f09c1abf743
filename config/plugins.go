package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Plugin is one of Kong's plugin entities: a bundled plugin with its
// config, global or scoped to a service, a route and/or a consumer.
type Plugin struct {
	Pos Pos
	// ID is the file's id, or one derived from the name and the scope.
	ID string
	// Name is one of PluginNames.
	Name string
	// InstanceName is Kong's optional, unique instance_name.
	InstanceName string
	// Config is checked by the plugin's schema, defaults filled in.
	Config map[string]any
	// Enabled: a disabled plugin is kept but does not run.
	Enabled bool
	// Protocols are the request protocols the plugin runs on (of
	// PluginProtocols).
	Protocols []string
	Tags      []string
	// Service, Route and Consumer scope the plugin ("" when unscoped):
	// a service's and a route's name, a consumer's key (its username, or
	// its id when it has none).
	Service, Route, Consumer string
}

// Consumer is one of Kong's consumers.
type Consumer struct {
	Pos Pos
	// ID is the file's id, or derived from the username (or custom_id).
	ID string
	// Username and CustomID: at least one is set.
	Username, CustomID string
	Tags               []string
}

// Key is what a consumer is known by: its username, or its id.
func (c *Consumer) Key() string {
	if c.Username != "" {
		return c.Username
	}
	return c.ID
}

// KeyAuth is a key-auth credential of a consumer.
type KeyAuth struct {
	Pos Pos
	// ID is the file's id, or derived from the key.
	ID  string
	Key string
	// Consumer is the consumer's key (Consumer.Key).
	Consumer string
	Tags     []string
}

// PluginProtocols are the protocols a plugin may be restricted to (Kong's
// typedefs.protocols_http), and its default.
func PluginProtocols() []string { return []string{"grpc", "grpcs", "http", "https"} }

// PluginNames are the bundled plugins Outrigger implements.
func PluginNames() []string {
	names := make([]string, 0, len(pluginSchemas))
	for _, s := range pluginSchemas {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return names
}

// PluginSchemaOf is the schema of the plugin of name.
func PluginSchemaOf(name string) (*PluginSchema, bool) {
	for i := range pluginSchemas {
		if pluginSchemas[i].Name == name {
			return &pluginSchemas[i], true
		}
	}
	return nil, false
}

// UnknownPlugin is the reason a plugin name is refused.
func UnknownPlugin(name string) string {
	return fmt.Sprintf("plugin '%s' is not supported; the supported plugins are: %s", name, strings.Join(PluginNames(), ", "))
}

// PluginScopeID is the derived id of a plugin of name in a scope (names
// of the service, route and consumer): a scope holds one plugin of a name.
func PluginScopeID(name, service, route, consumer string) string {
	return StableID("plugin", name+"\x00"+service+"\x00"+route+"\x00"+consumer)
}

// ScopeKey is what makes a plugin unique: its name and scope.
func (p *Plugin) ScopeKey() string {
	return p.Name + "\x00" + p.Service + "\x00" + p.Route + "\x00" + p.Consumer
}

// CheckHeaderName checks a header name as Kong's typedefs.header_name: a
// token of letters, digits, '-' and '_' (and the other token characters).
func CheckHeaderName(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if err := CheckToken(s); err != nil {
		return fmt.Errorf("'%s' is not a valid header", s)
	}
	return nil
}

// The plugins' schemas, as Kong 3.x states them (kong/plugins/*/schema.lua).
var pluginSchemas = []PluginSchema{
	rateLimitingSchema(),
	keyAuthSchema(),
	corsSchema(),
	correlationIDSchema(),
	requestTransformerSchema(),
	responseTransformerSchema(),
}

// RateLimitPeriods are rate-limiting's periods, shortest first.
func RateLimitPeriods() []string { return []string{"second", "minute", "hour", "day", "month", "year"} }

func rateLimitingSchema() PluginSchema {
	var fields []PluginField
	for _, p := range RateLimitPeriods() {
		fields = append(fields, PluginField{Name: p, Kind: KindNumber, Positive: true})
	}
	anyField := func(name string, def any) PluginField {
		return PluginField{Name: name, Kind: KindAnyJSON, Default: def}
	}
	fields = append(fields,
		PluginField{Name: "limit_by", Kind: KindString, Default: "consumer",
			OneOf: []string{"consumer", "credential", "ip", "service", "header", "path"}},
		PluginField{Name: "header_name", Kind: KindString, Check: CheckHeaderName},
		PluginField{Name: "path", Kind: KindString, Check: checkPath},
		PluginField{Name: "policy", Kind: KindString, Default: "local", OneOf: []string{"local", "cluster", "redis"},
			Unsupported: func(v any) string {
				if v != "local" {
					return fmt.Sprintf("policy %q is not supported by outrigger: only \"local\" (counters kept by each gateway process, in fixed windows)", v)
				}
				return ""
			}},
		PluginField{Name: "fault_tolerant", Kind: KindBool, Default: true, Required: true},
		PluginField{Name: "redis", Kind: KindRecord, Fields: []PluginField{
			anyField("host", nil), anyField("port", 6379.0), anyField("timeout", 2000.0),
			anyField("connect_timeout", 2000.0), anyField("send_timeout", 2000.0), anyField("read_timeout", 2000.0),
			anyField("username", nil), anyField("password", nil), anyField("sentinel_username", nil),
			anyField("sentinel_password", nil), anyField("database", 0.0), anyField("keepalive_pool_size", 256.0),
			anyField("keepalive_backlog", nil), anyField("sentinel_master", nil), anyField("sentinel_role", nil),
			anyField("sentinel_nodes", nil), anyField("cluster_nodes", nil), anyField("ssl", false),
			anyField("ssl_verify", false), anyField("server_name", nil), anyField("cluster_max_redirections", 5.0),
			anyField("connection_is_proxied", false),
		}},
		PluginField{Name: "hide_client_headers", Kind: KindBool, Default: false, Required: true},
		PluginField{Name: "error_code", Kind: KindNumber, Default: 429.0, Positive: true},
		PluginField{Name: "error_message", Kind: KindString, Default: "API rate limit exceeded"},
		PluginField{Name: "sync_rate", Kind: KindNumber, Default: -1.0, Required: true},
	)
	return PluginSchema{Name: "rate-limiting", Config: fields, Check: func(c map[string]any) (string, string) {
		periods := RateLimitPeriods()
		found := false
		for i, lo := range periods {
			v1, ok := c[lo].(float64)
			if !ok {
				continue
			}
			found = true
			for _, hi := range periods[i+1:] {
				if v2, ok := c[hi].(float64); ok && v2 < v1 {
					return "", fmt.Sprintf("The limit for %s(%.1f) cannot be lower than the limit for %s(%.1f)", hi, v2, lo, v1)
				}
			}
		}
		if !found {
			return "", "at least one of these fields must be non-empty: 'config.second', 'config.minute', 'config.hour', 'config.day', 'config.month', 'config.year'"
		}
		if c["sync_rate"] != -1.0 {
			return "sync_rate", "sync_rate can only be used with the redis policy"
		}
		if c["limit_by"] == "header" && c["header_name"] == nil {
			return "header_name", "required field missing"
		}
		if c["limit_by"] == "path" && c["path"] == nil {
			return "path", "required field missing"
		}
		return "", ""
	}}
}

func keyAuthSchema() PluginSchema {
	return PluginSchema{Name: "key-auth", NoConsumer: true, Config: []PluginField{
		{Name: "key_names", Kind: KindStrings, Default: []any{"apikey"}, Required: true, Check: CheckHeaderName},
		{Name: "hide_credentials", Kind: KindBool, Default: false, Required: true},
		{Name: "anonymous", Kind: KindString},
		{Name: "key_in_header", Kind: KindBool, Default: true, Required: true},
		{Name: "key_in_query", Kind: KindBool, Default: true, Required: true},
		{Name: "key_in_body", Kind: KindBool, Default: false, Required: true, Unsupported: func(v any) string {
			if v == true {
				return "reading the key from the request body is not supported by outrigger (only false)"
			}
			return ""
		}},
		{Name: "run_on_preflight", Kind: KindBool, Default: true, Required: true},
		{Name: "realm", Kind: KindString},
	}}
}

// CORSMethods are the methods cors allows by default.
func CORSMethods() []string {
	return []string{"GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
}

func corsSchema() PluginSchema {
	methods := make([]any, 0, 9)
	for _, m := range CORSMethods() {
		methods = append(methods, m)
	}
	return PluginSchema{Name: "cors", NoConsumer: true, Config: []PluginField{
		{Name: "origins", Kind: KindStrings, Check: func(s string) error {
			if s == "*" {
				return nil
			}
			if _, err := regexp.Compile(s); err != nil {
				return fmt.Errorf("'%s' is not a valid regex", s)
			}
			return nil
		}},
		{Name: "headers", Kind: KindStrings},
		{Name: "exposed_headers", Kind: KindStrings},
		{Name: "methods", Kind: KindStrings, Default: methods, OneOf: CORSMethods()},
		{Name: "max_age", Kind: KindNumber},
		{Name: "credentials", Kind: KindBool, Default: false, Required: true},
		{Name: "private_network", Kind: KindBool, Default: false, Required: true},
		{Name: "preflight_continue", Kind: KindBool, Default: false, Required: true},
		{Name: "allow_origin_absent", Kind: KindBool, Default: true, Required: true},
	}}
}

func correlationIDSchema() PluginSchema {
	return PluginSchema{Name: "correlation-id", Config: []PluginField{
		{Name: "header_name", Kind: KindString, Default: "Kong-Request-ID", Check: CheckHeaderName},
		{Name: "generator", Kind: KindString, Default: "uuid#counter", Required: true, OneOf: []string{"uuid", "uuid#counter", "tracker"}},
		{Name: "echo_downstream", Kind: KindBool, Default: false, Required: true},
	}}
}

// notSupported refuses a non-empty list or a non-null value.
func notSupported(what string) func(v any) string {
	return func(v any) string {
		if l, ok := v.([]any); ok && len(l) == 0 || v == nil {
			return ""
		}
		return what + " is not supported by outrigger (leave it empty)"
	}
}

// transformList is a transformer's list of header names (colon false) or
// "name:value" pairs (colon true).
func transformList(name string, colon, headers bool) PluginField {
	return PluginField{Name: name, Kind: KindStrings, Default: []any{}, Required: true, Check: func(s string) error {
		key, value, hasColon := strings.Cut(s, ":")
		if headers {
			if err := CheckHeaderName(key); err != nil {
				return err
			}
		} else if key == "" {
			return fmt.Errorf("'%s' has no name", s)
		}
		if !colon {
			return nil
		}
		if !hasColon || value == "" {
			return fmt.Errorf("key '%s' has no value", key)
		}
		if strings.Contains(value, "$(") {
			return fmt.Errorf("value '%s': templates are not supported by outrigger", value)
		}
		return nil
	}}
}

func requestTransformerSchema() PluginSchema {
	record := func(name string, colon bool, extra ...PluginField) PluginField {
		body := transformList("body", colon, false)
		body.Unsupported = notSupported("transforming the body")
		return PluginField{Name: name, Kind: KindRecord, Fields: append([]PluginField{
			body, transformList("headers", colon, true), transformList("querystring", colon, false),
		}, extra...)}
	}
	return PluginSchema{Name: "request-transformer", Config: []PluginField{
		{Name: "http_method", Kind: KindString, Unsupported: notSupported("changing the method")},
		record("remove", false),
		record("rename", true),
		record("replace", true, PluginField{Name: "uri", Kind: KindString, Unsupported: notSupported("replacing the uri")}),
		record("add", true),
		record("append", true),
	}}
}

func responseTransformerSchema() PluginSchema {
	record := func(name string, colon, types bool) PluginField {
		js := transformList("json", colon, false)
		js.Unsupported = notSupported("transforming the JSON body")
		fs := []PluginField{js, transformList("headers", colon, true)}
		if types {
			fs = append(fs, PluginField{Name: "json_types", Kind: KindStrings, Default: []any{}, Required: true,
				OneOf: []string{"boolean", "number", "string"}, Unsupported: notSupported("json_types")})
		}
		return PluginField{Name: name, Kind: KindRecord, Fields: fs}
	}
	return PluginSchema{Name: "response-transformer", Config: []PluginField{
		record("remove", false, false),
		record("rename", true, false),
		record("replace", true, true),
		record("add", true, true),
		record("append", true, true),
	}}
}
