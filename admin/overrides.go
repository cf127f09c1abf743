package admin

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// overrideOut is a weight override as the API shows it.
type overrideOut struct {
	ID       string `json:"id"`
	Upstream idRef  `json:"upstream"`
	// Target, or Tags and Meta, select the targets.
	Target *string           `json:"target"`
	Tags   []string          `json:"tags"`
	Meta   map[string]string `json:"meta"`
	// Weight sets each selected target's weight; Share gives them
	// together that percentage of the upstream's traffic.
	Weight    *int     `json:"weight"`
	Share     *float64 `json:"share"`
	CreatedAt int64    `json:"created_at"`
}

func renderOverride(o state.Override, um state.Meta) overrideOut {
	return overrideOut{
		ID: o.ID, Upstream: idRef{ID: um.ID, Name: o.Upstream}, Target: strOrNil(o.Target),
		Tags: o.Tags, Meta: o.Meta, Weight: o.Weight, Share: o.Share, CreatedAt: o.CreatedAt,
	}
}

func overrideKey(o overrideOut) string { return fmt.Sprintf("%020d/%s", o.CreatedAt, o.ID) }

// decodeOverride applies a body to ov. A body that sets one of weight and
// share clears the other; one that sets the target clears tags and meta,
// and the other way round (so a PATCH can switch).
func decodeOverride(o *obj, ov *state.Override) {
	setsValue := func(k string) bool { v, ok := o.m[k]; return ok && v != nil && v != formValue("") }
	if setsValue("share") && !o.has("weight") {
		ov.Weight = nil
	}
	if setsValue("weight") && !o.has("share") {
		ov.Share = nil
	}
	if setsValue("target") && !o.has("tags") && !o.has("meta") {
		ov.Tags, ov.Meta = nil, nil
	}
	if (setsValue("tags") || setsValue("meta")) && !o.has("target") {
		ov.Target = ""
	}
	o.setString("target", &ov.Target, "", normalizeTarget)
	o.setStrings("tags", &ov.Tags, checkTag)
	if v, present := o.get("meta"); present {
		switch m := v.(type) {
		case nil:
			ov.Meta = nil
		case map[string]any:
			out := make(map[string]string, len(m))
			for k, x := range m {
				s, why := asString(x)
				if why != "" || k == "" {
					o.fail("meta", "expected a record of strings (meta.KEY=VALUE in a form)")
					break
				}
				out[k] = s
			}
			ov.Meta = out
		default:
			o.fail("meta", "expected a record of strings (meta.KEY=VALUE in a form)")
		}
	}
	if v, present := o.get("weight"); present {
		ov.Weight = nil
		if v != nil {
			w := 0
			o.setInt("weight", &w, 0, 0, config.MaxWeight)
			ov.Weight = &w
		}
	}
	if v, present := o.get("share"); present {
		ov.Share = nil
		if v != nil {
			s := 0.0
			o.setFloat("share", &s, 0, 0, config.MaxPercent)
			ov.Share = &s
		}
	}
	o.ignore("id", "upstream", "created_at")
	o.unknown()
}

// checkOverride checks an override's selector and value.
func checkOverride(ov *state.Override) error {
	f := fields{}
	switch {
	case ov.Target == "" && len(ov.Tags) == 0 && len(ov.Meta) == 0:
		f.add("@entity", "one of target, tags or meta is required")
	case ov.Target != "" && (len(ov.Tags) > 0 || len(ov.Meta) > 0):
		f.add("@entity", "target and tags/meta are exclusive: select one address, or targets by labels")
	}
	switch {
	case ov.Weight == nil && ov.Share == nil:
		f.add("@entity", "one of weight or share is required")
	case ov.Weight != nil && ov.Share != nil:
		f.add("@entity", "weight and share are exclusive")
	}
	return f.err()
}

// overrideDecoder checks a body's fields in full and returns its
// applier (which also checks the result as a whole).
func overrideDecoder(b *obj) (func(ov *state.Override) error, error) {
	apply := func(ov *state.Override) error {
		o := newObj(b.m, b.form)
		decodeOverride(o, ov)
		if err := o.err(); err != nil {
			return err
		}
		return checkOverride(ov)
	}
	o := newObj(b.m, b.form)
	decodeOverride(o, &state.Override{})
	if err := o.err(); err != nil {
		return nil, err
	}
	return apply, nil
}

// checkShares refuses an upstream whose overrides' shares sum above 100.
func (w *world) checkShares(name string) error {
	sum := 0.0
	for _, o := range w.doc.Overrides {
		if o.Upstream == name && o.Share != nil {
			sum += *o.Share
		}
	}
	if sum > 100+1e-9 {
		return fieldError("share", "the shares of upstream '%s' would sum to %s%% (at most 100)", name, fmtNum(sum))
	}
	return nil
}

func (w *world) overrideIndex(name, id string) int {
	return slices.IndexFunc(w.doc.Overrides, func(o state.Override) bool { return o.Upstream == name && sameID(o.ID, id) })
}

// Handlers.

func (a *api) listOverrides(r *http.Request) (int, any, error) {
	p, err := parsePage(r)
	if err != nil {
		return 0, nil, err
	}
	w := a.view()
	u, um, ok := w.upstream(r.PathValue("upstream"))
	if !ok {
		return 0, nil, notFound()
	}
	items := []overrideOut{}
	for _, o := range w.doc.Overrides {
		if o.Upstream == u.Name {
			items = append(items, renderOverride(o, um))
		}
	}
	return http.StatusOK, paginate(r, p, items, overrideKey), nil
}

func (a *api) getOverride(r *http.Request) (int, any, error) {
	w := a.view()
	u, um, ok := w.upstream(r.PathValue("upstream"))
	if !ok {
		return 0, nil, notFound()
	}
	i := w.overrideIndex(u.Name, r.PathValue("override"))
	if i < 0 {
		return 0, nil, notFound()
	}
	return http.StatusOK, renderOverride(w.doc.Overrides[i], um), nil
}

func (a *api) createOverride(r *http.Request) (int, any, error) {
	b, err := readBody(r)
	if err != nil {
		return 0, nil, err
	}
	apply, err := overrideDecoder(b)
	if err != nil {
		return 0, nil, err
	}
	if err := apply(&state.Override{}); err != nil {
		return 0, nil, err
	}
	id, err := bodyID(b)
	if err != nil {
		return 0, nil, err
	}
	key, now := r.PathValue("upstream"), a.now().Unix()
	var out overrideOut
	_, err = a.mutate(r, func(w *world) error {
		u, um, ok := w.upstream(key)
		if !ok {
			return notFound()
		}
		ov := state.Override{}
		if err := apply(&ov); err != nil {
			return err
		}
		ov.ID, ov.Upstream, ov.CreatedAt = id, u.Name, now
		if ov.ID == "" {
			ov.ID = newID()
		} else if slices.ContainsFunc(w.doc.Overrides, func(o state.Override) bool { return sameID(o.ID, id) }) {
			return primaryKeyViolation(id)
		}
		w.doc.Overrides = append(w.doc.Overrides, ov)
		if err := w.checkShares(u.Name); err != nil {
			return err
		}
		out = renderOverride(ov, um)
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, out, nil
}

func (a *api) patchOverride(r *http.Request) (int, any, error) {
	b, err := readBody(r)
	if err != nil {
		return 0, nil, err
	}
	apply, err := overrideDecoder(b)
	if err != nil {
		return 0, nil, err
	}
	id, err := bodyID(b)
	if err != nil {
		return 0, nil, err
	}
	key, okey := r.PathValue("upstream"), r.PathValue("override")
	if id != "" && !sameID(id, okey) {
		return 0, nil, fieldError("id", "cannot be changed")
	}
	var out overrideOut
	_, err = a.mutate(r, func(w *world) error {
		u, um, ok := w.upstream(key)
		if !ok {
			return notFound()
		}
		i := w.overrideIndex(u.Name, okey)
		if i < 0 {
			return notFound()
		}
		ov := w.doc.Overrides[i]
		ov.Tags, ov.Meta = slices.Clone(ov.Tags), cloneMap(ov.Meta)
		if err := apply(&ov); err != nil {
			return err
		}
		w.doc.Overrides[i] = ov
		if err := w.checkShares(u.Name); err != nil {
			return err
		}
		out = renderOverride(ov, um)
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, out, nil
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (a *api) deleteOverride(r *http.Request) (int, any, error) {
	key, okey := r.PathValue("upstream"), r.PathValue("override")
	_, err := a.mutate(r, func(w *world) error {
		u, _, ok := w.upstream(key)
		if !ok {
			return notFound()
		}
		i := w.overrideIndex(u.Name, okey)
		if i < 0 {
			return notFound()
		}
		w.doc.Overrides = slices.Delete(w.doc.Overrides, i, i+1)
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}
