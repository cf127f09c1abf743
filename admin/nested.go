package admin

import (
	"net/http"
	"slices"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// child is a collection nested under an entity of a parent kind (an
// upstream's targets, overrides and target health; a certificate's SNIs):
// list and get are written once here, the changes go through under.
// Immutable.
type child[P, PD, V any] struct {
	parent func(*kinds) *kind[P, PD]
	param  string // path parameter naming an item
	// items are the parent's items as the API shows them.
	items   func(a *api, w *world, p *P, pm state.Meta) []V
	pageKey func(V) string
	// find picks the item key names among items.
	find func(items []V, key string) (V, bool)
	show func(V) any
	// tags are an item's tags; nil when items carry none (?tags= is then
	// refused).
	tags func(V) []string
	// perNode: the list is this node's view (health): Kong adds total
	// and node_id.
	perNode bool
}

// viewParent is the world now and the parent the path names (404 when
// there is none).
func viewParent[P, PD any](a *api, r *http.Request, pick func(*kinds) *kind[P, PD]) (*world, *P, state.Meta, error) {
	w := a.view()
	k := pick(w.k)
	p, pm, ok := k.lookup(w, r.PathValue(k.param))
	if !ok {
		return nil, nil, state.Meta{}, notFound()
	}
	return w, p, pm, nil
}

func (c *child[P, PD, V]) list(a *api) func(*http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		pg, err := parsePage(r, c.tags != nil)
		if err != nil {
			return 0, nil, err
		}
		w, p, pm, err := viewParent(a, r, c.parent)
		if err != nil {
			return 0, nil, err
		}
		items := c.items(a, w, p, pm)
		if c.tags != nil {
			items = slices.DeleteFunc(items, func(v V) bool { return !pg.tags.keep(c.tags(v)) })
		}
		total := len(items)
		l := paginate(r, pg, items, c.pageKey)
		if c.perNode {
			l.Total, l.NodeID = &total, a.nodeID
		}
		for i := range l.Data {
			l.Data[i] = c.show(l.Data[i].(V))
		}
		return http.StatusOK, l, nil
	}
}

func (c *child[P, PD, V]) get(a *api) func(*http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		w, p, pm, err := viewParent(a, r, c.parent)
		if err != nil {
			return 0, nil, err
		}
		v, ok := c.find(c.items(a, w, p, pm), r.PathValue(c.param))
		if !ok {
			return 0, nil, notFound()
		}
		return http.StatusOK, c.show(v), nil
	}
}

// The parent kinds.
func upstreams(k *kinds) *kind[config.Upstream, config.Upstream] { return k.upstream }
func services(k *kinds) *kind[config.Service, state.Service]     { return k.service }

// under changes the admin layer under the entity of kind (picked from the
// world's kinds) that the path names, 404 when there is none: fn gets the
// effective entity and its meta.
func under[C, D any](a *api, r *http.Request, pick func(*kinds) *kind[C, D], fn func(w *world, c *C, m state.Meta) error) (*world, error) {
	return a.mutate(r, func(w *world) error {
		k := pick(w.k)
		c, m, ok := k.lookup(w, r.PathValue(k.param))
		if !ok {
			return notFound()
		}
		return fn(w, c, m)
	})
}

func (a *api) underUpstream(r *http.Request, fn func(w *world, u *config.Upstream, um state.Meta) error) (*world, error) {
	return under(a, r, upstreams, fn)
}

func (a *api) underService(r *http.Request, fn func(w *world, s *config.Service, sm state.Meta) error) (*world, error) {
	return under(a, r, services, fn)
}

type upstreamChild[V any] = child[config.Upstream, config.Upstream, V]

func targetsChild() *upstreamChild[targetView] {
	return &upstreamChild[targetView]{
		parent: upstreams, param: "target",
		items: func(a *api, w *world, u *config.Upstream, um state.Meta) []targetView {
			return w.targets(u, um, a.runtimeOf(u.Name))
		},
		pageKey: func(t targetView) string { return t.Target },
		find: func(ts []targetView, key string) (targetView, bool) {
			if t, ok := findTarget(ts, key); ok {
				return *t, true
			}
			return targetView{}, false
		},
		show: func(t targetView) any { return t.targetOut },
		tags: func(t targetView) []string { return t.Tags },
	}
}

func overridesChild() *upstreamChild[overrideOut] {
	return &upstreamChild[overrideOut]{
		parent: upstreams, param: "override",
		items: func(_ *api, w *world, u *config.Upstream, um state.Meta) []overrideOut {
			items := []overrideOut{}
			for _, o := range w.doc.Overrides {
				if o.Upstream == u.Name {
					items = append(items, renderOverride(o, um))
				}
			}
			return items
		},
		pageKey: overrideKey,
		find: func(os []overrideOut, key string) (overrideOut, bool) {
			for _, o := range os {
				if sameID(o.ID, key) {
					return o, true
				}
			}
			return overrideOut{}, false
		},
		show: func(o overrideOut) any { return o },
	}
}

// Kong's nested reads of a related entity.

// routeService answers GET /routes/{route}/service: the route's service.
func (a *api) routeService(r *http.Request) (int, any, error) {
	w := a.view()
	rt, _, ok := w.route(r.PathValue("route"))
	if !ok || rt.Service == "" {
		return 0, nil, notFound()
	}
	return w.k.service.answer(w, rt.Service, http.StatusOK)
}

// serviceRoute answers GET /services/{service}/routes/{route}: the route,
// 404 unless it belongs to that service.
func (a *api) serviceRoute(r *http.Request) (int, any, error) {
	w := a.view()
	s, _, ok := w.service(r.PathValue("service"))
	if !ok {
		return 0, nil, notFound()
	}
	rt, m, ok := w.route(r.PathValue("route"))
	if !ok || rt.Service != s.Name {
		return 0, nil, notFound()
	}
	return http.StatusOK, w.renderRoute(rt, m), nil
}

// targetUpstream answers GET /targets/{target_id}/upstream: the upstream
// of the target of that id (the file's, the API's or a discovered one).
func (a *api) targetUpstream(r *http.Request) (int, any, error) {
	id := r.PathValue("target_id")
	if !config.IsUUID(id) {
		return 0, nil, notFound()
	}
	w := a.view()
	for i := range w.eff.Upstreams {
		u := &w.eff.Upstreams[i]
		um := w.k.upstream.metaOf(w, u.Name)
		for _, t := range w.targets(u, um, a.runtimeOf(u.Name)) {
			if sameID(t.ID, id) {
				return w.k.upstream.answer(w, u.Name, http.StatusOK)
			}
		}
	}
	return 0, nil, notFound()
}
