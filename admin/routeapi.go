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
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
	}
	if len(r.Headers) > 0 {
		out.Headers = r.Headers
	}
	if len(out.Protocols) == 0 {
		out.Protocols = []string{"http", "https"}
	}
	if r.Service != "" {
		sm := w.meta(kindService, r.Service)
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

// foreignKey is Kong's 400 for a reference to no entity.
func foreignKey(key, value string) *Error {
	msg := fmt.Sprintf("the foreign key '{%s=%q}' does not reference an existing 'services' entity.", key, value)
	return &Error{Status: http.StatusBadRequest, Code: codeForeignKeyViolation, Name: "foreign key violation", Message: msg,
		Fields: map[string]string{"service": msg}}
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
	o.kongOnly(map[string]string{"tags": "", "https_redirect_status_code": "426", "request_buffering": "true",
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
	apply := func(r *state.Route) (serviceRef, error) {
		o := newObj(b.m, b.form)
		ref := decodeRoute(o, r)
		if err := o.err(); err != nil {
			return ref, err
		}
		return ref, checkRoute(r)
	}
	o := newObj(b.m, b.form)
	scratch := newRoute()
	decodeRoute(o, &scratch)
	if err := o.err(); err != nil {
		return nil, err
	}
	return apply, nil
}

// putRoute stores r under its name, handling a rename from old.
func (w *world) putRoute(old string, r *state.Route, now int64) error {
	r.Deleted = false
	if old != "" && r.Name != old {
		if w.nameTaken(kindRoute, r.Name) {
			return uniqueViolation("name", r.Name)
		}
		w.removeRoute(old, now)
	}
	w.doc.Routes[r.Name] = r
	return nil
}

func (w *world) removeRoute(name string, now int64) {
	if w.inFile(kindRoute, name) {
		m := w.meta(kindRoute, name)
		w.doc.Routes[name] = &state.Route{Meta: state.Meta{ID: m.ID, CreatedAt: m.CreatedAt, UpdatedAt: now, Deleted: true}, Name: name}
	} else {
		delete(w.doc.Routes, name)
	}
}

// Handlers.

func (a *api) listRoutes(r *http.Request) (int, any, error) {
	p, err := parsePage(r)
	if err != nil {
		return 0, nil, err
	}
	w := a.view()
	service := ""
	if key := r.PathValue("service"); key != "" {
		s, _, ok := w.service(key)
		if !ok {
			return 0, nil, notFound()
		}
		service = s.Name
	}
	items := []routeOut{}
	for i := range w.eff.Routes {
		rt := &w.eff.Routes[i]
		if service == "" || rt.Service == service {
			items = append(items, w.renderRoute(rt, w.meta(kindRoute, rt.Name)))
		}
	}
	return http.StatusOK, paginate(r, p, items, func(x routeOut) string { return nameKey(x.Name, x.ID) }), nil
}

func (a *api) getRoute(r *http.Request) (int, any, error) {
	w := a.view()
	rt, m, ok := w.route(r.PathValue("route"))
	if !ok {
		return 0, nil, notFound()
	}
	return http.StatusOK, w.renderRoute(rt, m), nil
}

func (a *api) answerRoute(w *world, name string, status int) (int, any, error) {
	rt, m, ok := w.route(name)
	if !ok {
		return 0, nil, notFound()
	}
	return status, w.renderRoute(rt, m), nil
}

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

func (a *api) createRoute(r *http.Request) (int, any, error) {
	b, err := readBody(r)
	if err != nil {
		return 0, nil, err
	}
	apply, err := routeDecoder(b)
	if err != nil {
		return 0, nil, err
	}
	id, err := bodyID(b)
	if err != nil {
		return 0, nil, err
	}
	scratch := newRoute()
	ref, err := apply(&scratch)
	if err != nil {
		return 0, nil, err
	}
	if r.PathValue("service") == "" && ref.id == "" && ref.name == "" {
		return 0, nil, fieldError("service", "required field missing")
	}
	now := a.now().Unix()
	var name string
	w, err := a.mutate(r, func(w *world) error {
		rt := newRoute()
		ref, err := apply(&rt)
		if err != nil {
			return err
		}
		if rt.Service, err = serviceFromPath(w, r, ref); err != nil {
			return err
		}
		rt.ID = id
		if rt.ID == "" {
			rt.ID = newID()
		} else if w.idTaken(kindRoute, rt.ID) {
			return primaryKeyViolation(rt.ID)
		}
		if rt.Name == "" {
			rt.Name = rt.ID
		}
		if w.nameTaken(kindRoute, rt.Name) {
			return uniqueViolation("name", rt.Name)
		}
		rt.CreatedAt, rt.UpdatedAt = now, now
		w.doc.Routes[rt.Name] = &rt
		name = rt.Name
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return a.answerRoute(w, name, http.StatusCreated)
}

func (a *api) patchRoute(r *http.Request) (int, any, error) {
	b, err := readBody(r)
	if err != nil {
		return 0, nil, err
	}
	apply, err := routeDecoder(b)
	if err != nil {
		return 0, nil, err
	}
	id, err := bodyID(b)
	if err != nil {
		return 0, nil, err
	}
	if v, present := b.m["service"]; present && (v == nil || v == formValue("")) {
		return 0, nil, fieldError("service", "required field missing")
	}
	key, now := r.PathValue("route"), a.now().Unix()
	var name string
	w, err := a.mutate(r, func(w *world) error {
		cur, m, ok := w.route(key)
		if !ok {
			return notFound()
		}
		if id != "" && !sameID(id, m.ID) {
			return fieldError("id", "cannot be changed")
		}
		rt := w.editableRoute(cur.Name)
		ref, err := apply(rt)
		if err != nil {
			return err
		}
		if ref.id != "" || ref.name != "" {
			if rt.Service, err = ref.resolve(w); err != nil {
				return err
			}
		}
		if rt.Name == "" {
			rt.Name = rt.ID
		}
		rt.UpdatedAt = now
		name = rt.Name
		return w.putRoute(cur.Name, rt, now)
	})
	if err != nil {
		return 0, nil, err
	}
	return a.answerRoute(w, name, http.StatusOK)
}

func (a *api) replaceRoute(r *http.Request) (int, any, error) {
	b, err := readBody(r)
	if err != nil {
		return 0, nil, err
	}
	apply, err := routeDecoder(b)
	if err != nil {
		return 0, nil, err
	}
	id, err := bodyID(b)
	if err != nil {
		return 0, nil, err
	}
	key, now := r.PathValue("route"), a.now().Unix()
	byID := config.IsUUID(key)
	if byID && id != "" && !sameID(id, key) {
		return 0, nil, fieldError("id", "must match the id in the URL")
	}
	scratch := newRoute()
	ref, err := apply(&scratch)
	if err != nil {
		return 0, nil, err
	}
	if !byID {
		if scratch.Name != "" && scratch.Name != key {
			return 0, nil, fieldError("name", "must match the name in the URL")
		}
		if err := config.CheckName(key); err != nil {
			return 0, nil, fieldError("name", "%v", err)
		}
	}
	if ref.id == "" && ref.name == "" {
		return 0, nil, fieldError("service", "required field missing")
	}
	status, name := http.StatusOK, ""
	w, err := a.mutate(r, func(w *world) error {
		rt := newRoute()
		ref, err := apply(&rt)
		if err != nil {
			return err
		}
		if rt.Service, err = ref.resolve(w); err != nil {
			return err
		}
		if !byID {
			rt.Name = key
		}
		rt.UpdatedAt = now
		cur, m, found := w.route(key)
		if !found {
			rt.ID = id
			if byID {
				rt.ID = key
			}
			if rt.ID == "" {
				rt.ID = newID()
			}
			if w.idTaken(kindRoute, rt.ID) {
				return primaryKeyViolation(rt.ID)
			}
			if rt.Name == "" {
				rt.Name = rt.ID
			}
			if w.nameTaken(kindRoute, rt.Name) {
				return uniqueViolation("name", rt.Name)
			}
			rt.CreatedAt = now
			status, name = http.StatusCreated, rt.Name
			w.doc.Routes[rt.Name] = &rt
			return nil
		}
		if rt.Name == "" {
			rt.Name = cur.Name
		}
		rt.ID, rt.CreatedAt = m.ID, m.CreatedAt
		name = rt.Name
		return w.putRoute(cur.Name, &rt, now)
	})
	if err != nil {
		return 0, nil, err
	}
	return a.answerRoute(w, name, status)
}

func (a *api) deleteRoute(r *http.Request) (int, any, error) {
	key, now := r.PathValue("route"), a.now().Unix()
	_, err := a.mutate(r, func(w *world) error {
		cur, _, ok := w.route(key)
		if !ok {
			return notFound()
		}
		w.removeRoute(cur.Name, now)
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}
