// Package config reads Outrigger's declarative YAML file: a proxy, admin
// and log section, and Kong-like upstreams (with targets), services and
// routes.
//
// Contract:
//   - Parse (and Load, which reads a file then calls Parse) returns a fully
//     validated *File with every default filled in, or a nil *File and an
//     *ErrorList. The decoder walks the yaml.Node tree itself, so every
//     error carries the file, line and column of the offending node: the
//     key for unknown, duplicate or conflicting keys, the value for a
//     wrong type or an invalid value, the entity (its first key) for a
//     missing required key. All errors are collected, not only the first,
//     and sorted by position; ErrorList.Error renders one per line as
//     "FILE:LINE:COL: reason". YAML syntax errors only know their line
//     and render as "FILE:LINE: reason". Errors reading the file are
//     returned as they are, not as an *ErrorList.
//   - Decoding is strict: unknown keys, duplicate keys, and scalars of the
//     wrong YAML type are errors. A quoted number is a string, so
//     `port: "80"` is refused; only tags and header values, which are free
//     text, take numbers and booleans as written. A null value (`key:`
//     with nothing after it) is an empty mapping or list where one is
//     expected, and an error elsewhere. Anchors, aliases and merge keys
//     (`<<: *base`) are supported; errors inside an aliased node point at
//     the anchored text.
//   - ${VAR} and ${VAR:-default} in scalar values are replaced before type
//     conversion, through the lookup func given to Parse (never the
//     process environment directly); ":-" uses the default when VAR is
//     unset or empty, and an unset VAR without a default is an error at
//     the scalar. "$$" is a literal '$'; a '$' followed by anything else
//     is kept, so `~/x$` needs no escaping. A scalar that held a reference
//     is typed by its field after expansion: `port: "${PORT}"` is an
//     integer. Keys are never expanded.
//   - Names are unique per kind: upstreams, services, and routes (nested
//     and top-level routes share one namespace). Every entity needs a
//     name, but a service or route with an id may go without (it is then
//     keyed by its id, as the admin API keys it). File.Routes holds all
//     routes in file order, nested ones with Service set to their
//     service's name; a top-level route names an existing service (by
//     name, {name: ...} or {id: ...}) or none at all, and a nested one
//     must not name any. Top-level targets name their upstream the same
//     way and join its targets.
//   - The file is also a Kong declarative file (declarative.go): the meta
//     keys (_format_version, _transform, _comment, _workspace, _info),
//     ids (kept, unique per kind), the bookkeeping fields (MetaFields),
//     null for unset optional fields (NullableFields) and Kong's fields
//     Outrigger lacks at their default (KongFields, a table the admin API
//     reads too) load; any other value of a Kong field is an error naming
//     it and why. ParseDeclarative reads a document holding entities only
//     (POST /config); Export writes a file's entities back in that form,
//     so that parsing the export and exporting again gives the same bytes.
//     A new kind of entity is one row of declarativeKinds.
//   - Values are normalised where that is unambiguous: target addresses
//     and route hosts are lower-cased with IPs in canonical form, methods
//     upper-cased, route header names lower-cased, service timeouts
//     converted from milliseconds to Millis (a time.Duration). Names and
//     service hosts are kept as written.
//   - Services and routes are also the admin layer's persisted entities
//     (package state): they embed Meta, and their json tags are that
//     layer's shape, which must stay readable. Their fields are stated
//     once, as data (ServiceSchema, RouteSchema in fields.go): this
//     package's decoder, the admin API's and its OpenAPI document read
//     that table, and each entity's Validate holds its checks across
//     fields, for every decoder and for a stored layer.
//   - Upstreams and their targets are persisted the same way
//     (UpstreamSchema, TargetSchema and their blocks' tables in
//     upstreamfields.go; Upstream.Validate). A stored upstream may leave
//     settings and blocks out to take the file's (nil blocks, empty
//     strings); Upstream.Resolve is the one step that layers it over the
//     file's upstream, and an effective upstream has every block set but
//     SlowStart and RetryPolicy (nil for none). Durations keep their wire
//     units through Duration ("30s") and Seconds (a number of seconds).
//   - Plugins (top-level, or nested in a service, route or consumer), consumers
//     and their keyauth_credentials follow Kong's declarative format; a
//     plugin's config is checked by its schema (pluginschema.go, the one
//     the admin API uses too), defaults filled in, errors at the
//     offending node. Scope references must name entities of the file;
//     a scope holds one plugin of a name.
//   - Nothing here resolves names or touches the network: whether a
//     service's host names an upstream or a real host is for the caller to
//     decide. Callers report their own semantic errors at an entity's Pos
//     with File.Errorf, so that they read like this package's.
//
// Defaults follow Kong unless noted. For health checks, a counter left
// out is 0 (disabled), as in Kong; but a healthy or unhealthy block that
// is present and sets none of its counters and intervals gets APISIX's
// non-zero defaults instead (active healthy: interval 1s, successes 2;
// active unhealthy: interval 1s, http_failures 5, tcp_failures 2,
// timeouts 3; passive healthy: successes 5; passive unhealthy:
// http_failures 5, tcp_failures 2, timeouts 7), since writing the block
// shows the intent to check.
package config
