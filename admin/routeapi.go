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
	HTTPSRedirect int                 `json:"https_redirect_status_code"`
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
		HTTPSRedirect: r.HTTPSRedirectStatusCode,
		Tags:          tagsOut(r.Tags), CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
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
	r := decodeEntityRef(o, kindService)
	return serviceRef{id: r.id, name: r.name, present: r.present}
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
func foreignKey(key, value string) *Error { return foreignKeyOf(kindService, "services", key, value) }

// foreignKeyOf is Kong's 400 for a reference (field) to no entity of
// entities by key.
func foreignKeyOf(field, entities, key, value string) *Error {
	msg := fmt.Sprintf("the foreign key '{%s=%q}' does not reference an existing '%s' entity.", key, value, entities)
	return &Error{Status: http.StatusBadRequest, Code: codeForeignKeyViolation, Name: "foreign key violation", Message: msg,
		Fields: map[string]string{field: msg}}
}

func decodeRoute(o *obj, r *state.Route) serviceRef {
	decodeFields(o, config.RouteSchema(), r, map[string]func(string) (string, error){
		"paths": checkRoutePath, "protocols": oneOf(config.RouteProtocols()...)})
	o.setHeaders("headers", &r.Headers, true)
	ref := decodeServiceRef(o)
	o.kongFields(config.KindRoute)
	o.unknown()
	return ref
}

// newRoute is a route with the table's defaults but
// https_redirect_status_code, which a layer holds as absent (0) until a
// body sets it (Route.WithDefaults gives it its default).
func newRoute() state.Route {
	r := config.RouteSchema().New()
	r.HTTPSRedirectStatusCode = 0
	return r
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
		return ref, problemsError(r.Validate(), map[string]string{config.NoMatcher: "must set one of 'methods', 'hosts', 'headers', 'paths'"})
	}, nil
}

// putRoute stores r under its name, handling a rename from old.
func (w *world) putRoute(old string, r *state.Route, now int64) error {
	r.Deleted = false
	if old != "" && r.Name != old {
		if w.k.route.keyTaken(w, r.Name) {
			return uniqueViolation("name", r.Name)
		}
		w.pluginsFollow(kindRoute, old, r.Name, now)
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
		if ref.id == "" && ref.name == "" {
			return "", nil // a route without a service
		}
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
