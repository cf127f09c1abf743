package admin

import (
	"fmt"
	"net/http"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// routeOut is a route in Kong's shape. Protocols is [http, https] unless
// set (a grpc/grpcs route serves gRPC over HTTP/2 only).
type routeOut struct {
	ID            string              `json:"id"`
	Name          *string             `json:"name"`
	Protocols     []string            `json:"protocols"`
	Methods       []string            `json:"methods"`
	Hosts         []string            `json:"hosts"`
	Paths         []string            `json:"paths"`
	Headers       map[string][]string `json:"headers"`
	StripPath     bool                `json:"strip_path"`
	PreserveHost  bool                `json:"preserve_host"`
	RegexPriority int                 `json:"regex_priority"`
	PathHandling  string              `json:"path_handling"`
	Service       *idRef              `json:"service"`
	Tags          []string            `json:"tags"`
	CreatedAt     int64               `json:"created_at"`
	UpdatedAt     int64               `json:"updated_at"`
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func (w *world) renderRoute(r *config.Route, m state.Meta) routeOut {
	out := routeOut{
		ID: m.ID, Name: shownName(r.Name, m), Protocols: r.Protocols,
		Methods: nilIfEmpty(r.Methods), Hosts: nilIfEmpty(r.Hosts), Paths: nilIfEmpty(r.Paths),
		StripPath: r.StripPath, PreserveHost: r.PreserveHost, RegexPriority: r.RegexPriority, PathHandling: r.PathHandling,
		Tags: tagsOut(r.Tags), CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
	}
	if len(r.Headers) > 0 {
		out.Headers = r.Headers
	}
	if len(out.Protocols) == 0 {
		out.Protocols = []string{"http", "https"}
	}
	if r.Service != "" {
		sm := w.k.service.metaOf(w, r.Service)
		out.Service = &idRef{ID: sm.ID, Name: *shownNameOr(r.Service, sm)}
	}
	return out
}

// shownNameOr is shownName with "" for an entity without a name.
func shownNameOr(name string, m state.Meta) *string {
	if n := shownName(name, m); n != nil {
		return n
	}
	return ptr("")
}

// serviceRef is a route's reference to its service as a body gives it:
// "service": {"id": ...} or {"name": ...} (service.id=... in a form), or
// a plain id or name.
type serviceRef struct {
	id, name string
	present  bool // the body names a service (null included)
}

func decodeServiceRef(o *obj) serviceRef {
	v, present := o.get("service")
	ref := serviceRef{present: present}
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
		o.fail("service", "expected a record ({\"id\": ...} or {\"name\": ...})")
		return ref
	}
	c := &obj{m: m, form: o.form, prefix: o.key("service") + ".", errs: o.errs, used: map[string]bool{}}
	c.setString("id", &ref.id, "", checkID)
	c.setString("name", &ref.name, "", nil)
	c.unknown()
	return ref
}

// resolve finds the service ref names; both id and name must agree.
func (ref serviceRef) resolve(w *world) (string, error) {
	var byID, byName *config.Service
	if ref.id != "" {
		s, _, ok := w.service(ref.id)
		if !ok {
			return "", foreignKey("id", ref.id)
		}
		byID = s
	}
	if ref.name != "" {
		s, ok := w.eff.Service(ref.name)
		if !ok {
			return "", foreignKey("name", ref.name)
		}
		byName = s
	}
	switch {
	case byID != nil && byName != nil && byID.Name != byName.Name:
		return "", fieldError("service", "id and name refer to different services")
	case byID != nil:
		return byID.Name, nil
	case byName != nil:
		return byName.Name, nil
	}
	return "", fieldError("service", "required field missing")
}

// foreignKey is Kong's 400 for a reference to no service.
func foreignKey(key, value string) *Error { return foreignKeyOn("service", "services", key, value) }

// foreignKeyOn is Kong's 400 for a reference (field) to no entity of
// entities.
func foreignKeyOn(field, entities, key, value string) *Error {
	msg := fmt.Sprintf("the foreign key '{%s=%q}' does not reference an existing '%s' entity.", key, value, entities)
	return &Error{Status: http.StatusBadRequest, Code: codeForeignKeyViolation, Name: "foreign key violation", Message: msg,
		Fields: map[string]string{field: msg}}
}

func decodeRoute(o *obj, r *state.Route) serviceRef {
	o.setString("name", &r.Name, "", keep(config.CheckName))
	o.setStrings("paths", &r.Paths, checkRoutePath)
	o.setStrings("hosts", &r.Hosts, config.NormalizeRouteHost)
	o.setStrings("methods", &r.Methods, checkMethod)
	o.setHeaders("headers", &r.Headers, true)
	o.setBool("strip_path", &r.StripPath, true)
	o.setBool("preserve_host", &r.PreserveHost, false)
	o.setInt("regex_priority", &r.RegexPriority, 0, config.MinRegexPriority, config.MaxRegexPriority)
	o.setString("path_handling", &r.PathHandling, config.DefaultPathHandling, oneOf(config.PathHandlings()...))
	o.setStrings("protocols", &r.Protocols, oneOf(config.RouteProtocols()...))
	if err := config.CheckRouteProtocols(r.Protocols); err != nil {
		o.fail("protocols", "%v", err)
	}
	ref := decodeServiceRef(o)
	o.setStrings("tags", &r.Tags, checkTag)
	o.kongOnly(map[string]string{"https_redirect_status_code": "426", "request_buffering": "true",
		"response_buffering": "true", "snis": "", "sources": "", "destinations": ""})
	o.ignore("id", "created_at", "updated_at")
	o.unknown()
	return ref
}

// checkRoute checks a route as a whole.
func checkRoute(r *state.Route) error {
	if len(r.Paths) == 0 && len(r.Hosts) == 0 && len(r.Methods) == 0 && len(r.Headers) == 0 {
		return fieldError("@entity", "must set one of 'methods', 'hosts', 'headers', 'paths'")
	}
	return nil
}

func newRoute() state.Route {
	return state.Route{StripPath: true, PathHandling: config.DefaultPathHandling}
}

// routeDecoder checks a body's fields in full and returns its applier,
// which also checks the route as a whole.
func routeDecoder(b *obj) (func(r *state.Route) (serviceRef, error), error) {
	decode := func(r *state.Route) (ref serviceRef, err error) {
		return ref, b.decode(func(o *obj) { ref = decodeRoute(o, r) })
	}
	scratch := newRoute()
	if _, err := decode(&scratch); err != nil {
		return nil, err
	}
	return func(r *state.Route) (serviceRef, error) {
		ref, err := decode(r)
		if err != nil {
			return ref, err
		}
		return ref, checkRoute(r)
	}, nil
}

// putRoute stores r under its name, handling a rename from old.
func (w *world) putRoute(old string, r *state.Route, now int64) error {
	r.Deleted = false
	if old != "" && r.Name != old {
		if w.k.route.keyTaken(w, r.Name) {
			return uniqueViolation("name", r.Name)
		}
		w.k.route.remove(w, old, now)
	}
	w.doc.Routes[r.Name] = r
	return nil
}

// Handlers.

// serviceFromPath resolves POST /services/{service}/routes's service and
// checks it against the body's.
func serviceFromPath(w *world, r *http.Request, ref serviceRef) (string, error) {
	key := r.PathValue("service")
	if key == "" {
		return ref.resolve(w)
	}
	s, _, ok := w.service(key)
	if !ok {
		return "", notFound()
	}
	if ref.id != "" || ref.name != "" {
		if name, err := ref.resolve(w); err != nil || name != s.Name {
			return "", fieldError("service", "must be the service in the URL")
		}
	}
	return s.Name, nil
}
