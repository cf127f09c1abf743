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
	setNullable(o, "weight", &ov.Weight, func(w *int) { o.setInt("weight", w, 0, 0, config.MaxWeight) })
	setNullable(o, "share", &ov.Share, func(s *float64) { o.setFloat("share", s, 0, 0, config.MaxPercent) })
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
	decode := func(ov *state.Override) error {
		return b.decode(func(o *obj) { decodeOverride(o, ov) })
	}
	if err := decode(&state.Override{}); err != nil {
		return nil, err
	}
	return func(ov *state.Override) error {
		if err := decode(ov); err != nil {
			return err
		}
		return checkOverride(ov)
	}, nil
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

func (a *api) createOverride(r *http.Request) (int, any, error) {
	apply, b, err := readApplier(r, overrideDecoder)
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
	now := a.now().Unix()
	return a.changeOverride(r, http.StatusCreated, func(w *world, u *config.Upstream) (state.Override, error) {
		ov := state.Override{}
		if err := apply(&ov); err != nil {
			return ov, err
		}
		ov.ID, ov.Upstream, ov.CreatedAt = id, u.Name, now
		if ov.ID == "" {
			ov.ID = newID()
		} else if slices.ContainsFunc(w.doc.Overrides, func(o state.Override) bool { return sameID(o.ID, id) }) {
			return ov, primaryKeyViolation(id)
		}
		w.doc.Overrides = append(w.doc.Overrides, ov)
		return ov, nil
	})
}

// changeOverride runs change (which stores the override it returns) under
// the path's upstream, checks the upstream's shares and answers the
// override.
func (a *api) changeOverride(r *http.Request, status int, change func(w *world, u *config.Upstream) (state.Override, error)) (int, any, error) {
	var out overrideOut
	_, err := a.underUpstream(r, func(w *world, u *config.Upstream, um state.Meta) error {
		ov, err := change(w, u)
		if err != nil {
			return err
		}
		if err := w.checkShares(u.Name); err != nil {
			return err
		}
		out = renderOverride(ov, um)
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return status, out, nil
}

func (a *api) patchOverride(r *http.Request) (int, any, error) {
	apply, b, err := readApplier(r, overrideDecoder)
	if err != nil {
		return 0, nil, err
	}
	id, err := bodyID(b)
	if err != nil {
		return 0, nil, err
	}
	okey := r.PathValue("override")
	if id != "" && !sameID(id, okey) {
		return 0, nil, fieldError("id", "cannot be changed")
	}
	return a.changeOverride(r, http.StatusOK, func(w *world, u *config.Upstream) (state.Override, error) {
		i := w.overrideIndex(u.Name, okey)
		if i < 0 {
			return state.Override{}, notFound()
		}
		ov := w.doc.Overrides[i]
		ov.Tags, ov.Meta = slices.Clone(ov.Tags), cloneMap(ov.Meta)
		if err := apply(&ov); err != nil {
			return ov, err
		}
		w.doc.Overrides[i] = ov
		return ov, nil
	})
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
	okey := r.PathValue("override")
	_, err := a.underUpstream(r, func(w *world, u *config.Upstream, _ state.Meta) error {
		i := w.overrideIndex(u.Name, okey)
		if i < 0 {
			return absentError{}
		}
		w.doc.Overrides = slices.Delete(w.doc.Overrides, i, i+1)
		return nil
	})
	return deleted(err)
}
