// Package admin serves Outrigger's admin listener: status, Prometheus
// metrics, an OpenAPI description of itself, and the Kong-compatible admin
// API (upstreams → targets, services → routes, certificates → SNIs, see
// certificates.go) with Outrigger's extensions
// (weight overrides, manual health marks, canaries and automatic rollouts).
//
// Contract:
//   - The admin package reads effective state through its Controller and
//     never touches a picker or an upstream's internals: every change is
//     one Controller.Mutate call, all or nothing. A request body is decoded
//     and checked in full before Mutate is called; the function given to
//     Mutate only looks entities up (against the Doc it is handed, so a
//     compare-and-set retry sees the new state) and applies the change.
//   - Bodies are JSON (unknown keys are refused) or forms
//     (application/x-www-form-urlencoded or multipart/form-data) with
//     Kong's conventions: dotted keys for nested objects
//     (healthchecks.active.http_path=/health, service.id=...), and arrays
//     as paths[]=/a, repeated paths=/a&paths=/b, or indexed paths[1]=/a.
//     In a form an empty value means null (the field's default).
//   - Every error is JSON {"message", "fields"}; unknown entities are 404
//     {"message":"Not found"}; name clashes are 409 in Kong's words.
//   - Entities are addressed by id (a UUID) or name. Entities of the
//     configuration file get ids derived from their names (stable across
//     restarts); entities created through the API get random ones.
//   - With Options.Token set, every endpoint except GET /health and
//     GET /ready requires "Authorization: Bearer TOKEN" or
//     "Kong-Admin-Token: TOKEN".
//   - The routes table in routes.go drives both the mux and GET
//     /openapi.json, so the document lists exactly what is served.
//   - Upstreams, services, routes, certificates, plugins, consumers and
//     key-auth credentials are served by one generic store (store.go:
//     list, get, create, put, patch, delete) over a description of each
//     kind (kinds.go, plugins.go) whose hooks hold only what differs
//     between them. A plugin's config is checked by the schema the file
//     uses (config.CheckPluginConfig).
//   - A panic while serving a request follows internal/guard's rule:
//     logged at error level with its stack, counted in Options.Panics,
//     answered 500 {"message":"An unexpected error occurred"} when nothing
//     was written yet (else the connection is aborted).
//   - GET /portal/ serves the web portal's files (package portal) without
//     the token, as they hold no data; GET / from a browser (Accept names
//     text/html) is redirected there. GET /stats/stream (stream.go) is the
//     portal's live data, readable by any client: server-sent events, one
//     frame of cumulative counters a second, at most Options.MaxStreams
//     clients, ended when Options.Done closes.
//   - Nothing here is package-level mutable state.
//
// Choices where Kong is silent or Outrigger differs:
//   - Targets list the file's and the API's targets (source "static" or
//     "admin") and discovered ones (source "consul:web", ...). PATCH
//     weight on a discovered target writes an override of exactly that
//     address (updated in place on the next PATCH); a discovered target
//     cannot be deleted (400: PATCH weight=0 drains it).
//   - Manual marks: PUT (Kong 2.x and later) or POST (Kong 1.x)
//     /upstreams/{u}/targets/{t}/healthy|unhealthy set a mark, stored in
//     the Doc; DELETE on either path clears the mark, whatever it is.
//   - Every entity Kong tags carries tags (config.CheckTag); lists of
//     tagged items filter with ?tags=a,b (all) or ?tags=a/b (any), and a
//     list refuses any query parameter it does not know (400 invalid
//     option naming it) rather than ignore it. GET /tags lists the
//     targets the file or the layer holds, not discovered ones.
//   - DELETE of an entity that is not there is 204, as in Kong 3 (a
//     missing parent stays 404).
//   - Services and routes may be created without a name, as in Kong; the
//     admin layer keys them by their id, and they show "name": null.
//   - Kong fields Outrigger lacks (request_buffering, use_srv_name,
//     ...) are accepted at Kong's default value and refused
//     otherwise, by the table the configuration file's decoder reads
//     (config.KongFields, config.MetaFields). GET and POST /config
//     (declarative.go) export the effective entities as a declarative
//     document and replace the admin layer with one, as Kong in DB-less
//     mode. Field errors nest under their parents, as Kong's; a route may
//     have no service. Route protocols are kept:
//     http/https (the default) or grpc/grpcs, never both families.
//   - Service TLS fields take PEM instead of Kong's certificate ids:
//     ca_certificates holds file paths or inline PEM, client_certificate
//     {cert_file, key_file}; they are refused on plaintext protocols and
//     the material must load.
//   - A rollout that cannot take an action (pause when not running, ...)
//     answers 409.
//   - DELETE /state resets the whole admin layer (Controller.ResetState):
//     the only way to an empty layer, so a store that lost its copy is
//     never mistaken for an intentional reset.
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/internal/guard"
	"github.com/outrigger-gw/outrigger/portal"
	"github.com/outrigger-gw/outrigger/state"
)

// Status is the body of GET /status.
type Status struct {
	Version          string        `json:"version"`
	StartedAt        time.Time     `json:"-"` // rendered as started_at, Unix seconds
	Uptime           time.Duration `json:"-"`
	ConfigGeneration uint64        `json:"config_generation"`
	ConfigFile       string        `json:"config_file,omitempty"`
	Upstreams        int           `json:"upstreams"`
	Services         int           `json:"services"`
	Routes           int           `json:"routes"`
	AdminLayer       AdminLayer    `json:"admin_layer"`
}

// Admin layer states (AdminLayer.State).
const (
	// LayerInSync: the layer in force is the latest one the store holds.
	LayerInSync = "in_sync"
	// LayerNotApplied: the store holds a newer layer that does not build
	// with this sidecar's configuration file; the last good configuration
	// stays in force and admin changes are refused (409).
	LayerNotApplied = "not_applied"
	// LayerLost: the store's copy vanished after a known version; the
	// last known layer stays in force and is being published again.
	LayerLost = "lost"
)

// AdminLayer is the admin layer's part of GET /status.
type AdminLayer struct {
	Store string `json:"store"` // memory | file | consul
	State string `json:"state"` // in_sync | not_applied | lost
	// Version is the store version of the layer in force; StoreVersion
	// the latest version seen in the store (0 while the store lost it).
	Version      uint64 `json:"version"`
	StoreVersion uint64 `json:"store_version"`
	// Error says why the store's latest layer is not in force.
	Error string `json:"error,omitempty"`
}

// DefaultMaxBodyBytes is the largest request body the admin API reads when
// Options.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 1 << 20

// Options configure the admin handler.
type Options struct {
	// NodeID is this node's id as Kong's node_id (GET / and the health
	// lists); empty means a random one for the API's lifetime.
	NodeID string
	// Status returns the current status; required.
	Status func() Status
	// Ready answers /ready (readiness probes); nil means always ready.
	Ready func() (bool, string)
	// Metrics is gathered for /metrics; required.
	Metrics prometheus.Gatherer
	Log     zerolog.Logger

	// Controller is the gateway the admin API steers. Nil serves only the
	// status endpoints (/status, /ready, /health, /metrics, /,
	// /openapi.json); the entity endpoints then answer 503.
	Controller Controller
	// Token, when non-empty, is required on every endpoint except GET
	// /health and GET /ready, as "Authorization: Bearer TOKEN" or
	// "Kong-Admin-Token: TOKEN". It is never logged.
	Token string
	// TokenFunc, when set, is consulted on every request instead of Token,
	// so a reloaded configuration can rotate the token.
	TokenFunc func() string
	// MaxBodyBytes bounds request bodies (413 above); 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Now is the clock for created_at/updated_at; nil means time.Now.
	Now func() time.Time
	// Panics counts panics recovered while serving a request; nil counts
	// nothing.
	Panics prometheus.Counter
	// Fleet, when set, serves the /fleet endpoints (a sidecar of a
	// gateway group).
	Fleet Fleet
	// MaxStreams bounds the concurrent GET /stats/stream clients (503
	// above); 0 means DefaultMaxStreams.
	MaxStreams int
	// Done, when closed, ends every open stream (the listener is shutting
	// down: an open stream would hold its drain up); nil never closes.
	Done <-chan struct{}
	// Merge layers an admin layer over the file when the API needs the
	// effective configuration and the Controller has none at hand
	// (Effective); nil means state.Merge. The gateway passes its own, so
	// that it counts every merge.
	Merge func(*config.File, *state.Doc) *config.File
}

// New returns the admin handler.
func New(o Options) http.Handler {
	a := newAPI(o)
	return a
}

// api is the admin handler. Immutable after newAPI.
type api struct {
	o       Options
	ctl     Controller
	log     zerolog.Logger
	now     func() time.Time
	merge   func(*config.File, *state.Doc) *config.File // Options.Merge
	started int64                                       // created_at of the file's entities (Unix seconds)
	nodeID  string                                      // Kong's node_id: Options.NodeID, or random per API
	maxBody int64
	mux     *http.ServeMux
	guarded http.Handler // serve under internal/guard's panic rule
	table   []endpoint
	spec    func() []byte // GET /openapi.json, rendered once on first use
	// hash caches GET /status's configuration_hash for one configuration
	// generation; mu guards the rest.
	hash struct {
		mu    sync.Mutex
		gen   uint64
		value string
		ok    bool
	}
	tokenOf func() string
	// tokenEqual compares token digests; subtle.ConstantTimeCompare.
	tokenEqual func(x, y []byte) int
	// streams holds a slot per open GET /stats/stream (its capacity is
	// the bound); safe for concurrent use.
	streams chan struct{}
}

func newAPI(o Options) *api {
	a := &api{
		o:          o,
		ctl:        o.Controller,
		log:        o.Log,
		now:        o.Now,
		maxBody:    o.MaxBodyBytes,
		mux:        http.NewServeMux(),
		tokenEqual: subtle.ConstantTimeCompare,
	}
	if a.merge = o.Merge; a.merge == nil {
		a.merge = state.Merge
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.maxBody <= 0 {
		a.maxBody = DefaultMaxBodyBytes
	}
	maxStreams := o.MaxStreams
	if maxStreams <= 0 {
		maxStreams = DefaultMaxStreams
	}
	a.streams = make(chan struct{}, maxStreams)
	a.started = a.now().Unix()
	a.nodeID = o.NodeID
	if a.nodeID == "" {
		a.nodeID = newID()
	}
	g := &guard.Guard{Listener: "admin", Log: o.Log, Panics: o.Panics,
		Answer: func(w http.ResponseWriter) {
			writeJSON(w, http.StatusInternalServerError, &Error{Message: "An unexpected error occurred"})
		}}
	a.guarded = g.Wrap(http.HandlerFunc(a.serve))
	a.tokenOf = o.TokenFunc
	if a.tokenOf == nil {
		a.tokenOf = func() string { return o.Token }
	}
	a.table = append(a.routes(), a.fleetRoutes()...)
	for i := range a.table {
		e := &a.table[i]
		pattern := e.path
		if pattern == "/" {
			pattern = "/{$}" // the root only, not every path
		}
		a.mux.Handle(e.method+" "+pattern, a.wrap(e))
	}
	a.mux.Handle("GET "+portal.Prefix, portal.Handler())
	a.mux.HandleFunc("/", a.fallback)
	// The document is rendered on its first request: building it allocates
	// about 2.4 MB at start-up, which an idle sidecar would otherwise keep
	// resident as heap it never needs again.
	a.spec = sync.OnceValue(func() []byte {
		spec, err := json.MarshalIndent(a.openAPI(), "", "  ")
		if err != nil {
			panic("admin: openapi: " + err.Error()) // plain data cannot fail
		}
		return spec
	})
	return a
}

// ServeHTTP checks the token, then serves the route.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.guarded.ServeHTTP(w, r) }

func (a *api) serve(w http.ResponseWriter, r *http.Request) {
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	if get && r.URL.Path == "/" && wantsHTML(r) {
		// A browser opening the admin address gets the portal; API
		// clients (Accept: application/json, */* or none) the JSON root.
		http.Redirect(w, r, portal.Prefix, http.StatusSeeOther)
		return
	}
	// The portal's files are public (they hold no data, and every read
	// and write they make carries the token); the probes too.
	public := (r.Method == http.MethodGet && (r.URL.Path == "/health" || r.URL.Path == "/ready")) ||
		(get && (strings.HasPrefix(r.URL.Path, portal.Prefix) || r.URL.Path+"/" == portal.Prefix))
	if token := a.tokenOf(); token != "" && !public && !a.authorized(r, token) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="outrigger-admin"`)
		writeJSON(w, http.StatusUnauthorized, &Error{Message: "Unauthorized"})
		return
	}
	a.mux.ServeHTTP(w, r)
}

// wantsHTML reports whether r's Accept header names text/html (what a
// browser's navigation sends).
func wantsHTML(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(part, ";")
		if strings.EqualFold(strings.TrimSpace(mt), "text/html") {
			return true
		}
	}
	return false
}

// authorized reports whether r carries the token. Digests are compared in
// constant time, so neither the token's bytes nor its length leak.
func (a *api) authorized(r *http.Request, token string) bool {
	given, ok := "", false
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, rest, found := strings.Cut(h, " "); found && strings.EqualFold(scheme, "Bearer") {
			given, ok = strings.TrimSpace(rest), true
		}
	}
	if !ok {
		if h := r.Header.Get("Kong-Admin-Token"); h != "" {
			given, ok = h, true
		}
	}
	if !ok {
		return false
	}
	sum, want := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(token))
	return a.tokenEqual(sum[:], want[:]) == 1
}

// wrap turns an endpoint into an http.Handler: body limit, JSON answer or
// error, logging of changes (method, path and status only).
func (a *api) wrap(e *endpoint) http.Handler {
	if e.raw != nil {
		return e.raw
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.needsController && a.ctl == nil {
			writeJSON(w, http.StatusServiceUnavailable, &Error{Message: "the admin API has no controller"})
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, a.maxBody)
		}
		if r.Method != http.MethodGet {
			r = r.WithContext(withChange(r))
		}
		status, body, err := e.h(r)
		if err != nil {
			status = a.fail(w, r, err)
		} else if status == http.StatusNoContent || body == nil {
			w.WriteHeader(status)
		} else {
			writeJSON(w, status, body)
		}
		if r.Method != http.MethodGet {
			a.log.Info().Str("method", r.Method).Str("path", r.URL.Path).Int("status", status).Msg("admin request")
		}
	})
}

// fail answers err and returns the status sent.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) int {
	var e *Error
	if errors.As(err, &e) {
		status := e.Status
		if status == 0 {
			status = http.StatusBadRequest
		}
		writeJSON(w, status, e)
		return status
	}
	a.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("admin request failed")
	writeJSON(w, http.StatusInternalServerError, &Error{Message: "An unexpected error occurred"})
	return http.StatusInternalServerError
}

// fallback answers paths no route serves: 405 with Allow when the path is
// served for other methods, 404 otherwise.
func (a *api) fallback(w http.ResponseWriter, r *http.Request) {
	if allow := a.allowed(r); len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, &Error{Message: "Method not allowed"})
		return
	}
	writeJSON(w, http.StatusNotFound, notFound())
}

// allowed lists the methods the mux serves r's path with.
func (a *api) allowed(r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := a.mux.Handler(probe); pattern != "" && pattern != "/" {
			out = append(out, m)
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// Error is a client error answered as JSON {"message", "fields"} with
// Status (400 when zero).
type Error struct {
	Status int `json:"-"`
	// Code and Name are Kong's error code and name (2 "schema violation",
	// 4 "foreign key violation", 5 "unique constraint violation", ...);
	// zero and empty when Kong has none for the case.
	Code    int    `json:"code,omitempty"`
	Name    string `json:"name,omitempty"`
	Message string `json:"message"`
	// Fields are the offending fields: field name → reason, a nested
	// field's under its parents' ({"healthchecks": {"active":
	// {"http_path": reason}}}), as Kong answers them.
	Fields map[string]string `json:"-"`
	// Extra is added to the answer as is (POST /config's
	// flattened_errors).
	Extra map[string]any `json:"-"`
}

// MarshalJSON writes e in Kong's shape, Fields nested.
func (e *Error) MarshalJSON() ([]byte, error) {
	type plain Error
	out := map[string]any{}
	b, err := json.Marshal((*plain)(e))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	if len(e.Fields) > 0 {
		out["fields"] = nestFields(e.Fields)
	}
	for k, v := range e.Extra {
		out[k] = v
	}
	return json.Marshal(out)
}

// parentOf returns the object under root that holds the last of parts
// (a dotted name split), making the objects on the way; false when one of
// them is already a value.
func parentOf(root map[string]any, parts []string) (map[string]any, bool) {
	m := root
	for _, p := range parts[:len(parts)-1] {
		switch next := m[p].(type) {
		case nil:
			child := map[string]any{}
			m[p] = child
			m = child
		case map[string]any:
			m = next
		default:
			return m, false
		}
	}
	return m, true
}

// nestFields turns dotted field names into nested objects; a name that
// is both a field and a parent of others stays dotted.
func nestFields(f map[string]string) map[string]any {
	out := map[string]any{}
	keys := sortedKeys(f)
	for _, k := range keys {
		parts := strings.Split(k, ".")
		m, ok := parentOf(out, parts)
		last := parts[len(parts)-1]
		if _, taken := m[last]; !ok || taken || slices.Contains(parts, "") {
			out[k] = f[k]
			continue
		}
		m[last] = f[k]
	}
	return out
}

func (e *Error) Error() string { return e.Message }
