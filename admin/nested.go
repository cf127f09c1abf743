package admin

import (
	"net/http"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// child is a collection nested under an upstream (its targets, its weight
// overrides): list and get are written once here, the changes go through
// underUpstream. Immutable.
type child[V any] struct {
	param string // path parameter naming an item
	// items are the upstream's items as the API shows them.
	items   func(a *api, w *world, u *config.Upstream, um state.Meta) []V
	pageKey func(V) string
	// find picks the item key names among items.
	find func(items []V, key string) (V, bool)
	show func(V) any
}

func (c *child[V]) list(a *api) func(*http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		p, err := parsePage(r)
		if err != nil {
			return 0, nil, err
		}
		w := a.view()
		u, um, ok := w.upstream(r.PathValue("upstream"))
		if !ok {
			return 0, nil, notFound()
		}
		l := paginate(r, p, c.items(a, w, u, um), c.pageKey)
		for i := range l.Data {
			l.Data[i] = c.show(l.Data[i].(V))
		}
		return http.StatusOK, l, nil
	}
}

func (c *child[V]) get(a *api) func(*http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		w := a.view()
		u, um, ok := w.upstream(r.PathValue("upstream"))
		if !ok {
			return 0, nil, notFound()
		}
		v, ok := c.find(c.items(a, w, u, um), r.PathValue(c.param))
		if !ok {
			return 0, nil, notFound()
		}
		return http.StatusOK, c.show(v), nil
	}
}

// underUpstream changes the admin layer under the upstream the path names
// (404 when there is none): fn gets the effective upstream and its meta.
func (a *api) underUpstream(r *http.Request, fn func(w *world, u *config.Upstream, um state.Meta) error) (*world, error) {
	key := r.PathValue("upstream")
	return a.mutate(r, func(w *world) error {
		u, um, ok := w.upstream(key)
		if !ok {
			return notFound()
		}
		return fn(w, u, um)
	})
}

func targetsChild() *child[targetView] {
	return &child[targetView]{
		param: "target",
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
	}
}

func overridesChild() *child[overrideOut] {
	return &child[overrideOut]{
		param: "override",
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
