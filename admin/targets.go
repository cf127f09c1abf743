package admin

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/health"
	"github.com/outrigger-gw/outrigger/state"
	"github.com/outrigger-gw/outrigger/upstream"
)

// Target sources as the API shows them: "static" (the file), "admin"
// (added through the API), or the discovery source's name.
const (
	sourceStatic = "static"
	sourceAdmin  = "admin"
)

// idRef refers to another entity.
type idRef struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// targetOut is a target in Kong's shape plus where it comes from and what
// the balancer makes of it.
type targetOut struct {
	ID        string   `json:"id"`
	Target    string   `json:"target"`
	Weight    int      `json:"weight"`
	Upstream  idRef    `json:"upstream"`
	Tags      []string `json:"tags"`
	CreatedAt int64    `json:"created_at"`
	UpdatedAt int64    `json:"updated_at"`
	// Source is static, admin or a discovery source ("consul:web").
	Source string `json:"source"`
	// EffectiveWeight and Healthy are the running upstream's view; null
	// while it does not know the target yet.
	EffectiveWeight *int              `json:"effective_weight"`
	Healthy         *bool             `json:"healthy"`
	Meta            map[string]string `json:"meta,omitempty"`
	// Priority and Backup place the target in a priority level.
	Priority int  `json:"priority"`
	Backup   bool `json:"backup"`
	// Zone is the target's zone (zone-aware routing); "" when unknown.
	Zone string `json:"zone"`
}

// targetView is a target with what handlers need besides its answer.
type targetView struct {
	targetOut
	owned bool                  // the Doc or the file holds it
	rt    *upstream.TargetState // the running upstream's state, nil if unknown
}

// runtime is the running upstream's view of its targets, read before
// Mutate (the Controller is not called back from inside Mutate).
type runtime struct {
	name    string
	targets []upstream.TargetState
	checker *health.Checker
}

func (a *api) runtimeOf(name string) runtime {
	rt := runtime{name: name}
	if u := a.ctl.Upstream(name); u != nil {
		if s := u.Snapshot(); s != nil {
			rt.targets = s.Targets
		}
		rt.checker = u.Health()
	}
	return rt
}

func targetID(upstreamName, addr string) string { return stableID(kindTarget, upstreamName+"/"+addr) }

// exactOverride returns the index of the last override that sets the
// weight of exactly addr, or -1.
func (w *world) exactOverride(name, addr string) int {
	best := -1
	for i, o := range w.doc.Overrides {
		if o.Upstream == name && o.Target == addr && len(o.Tags) == 0 && len(o.Meta) == 0 {
			if best < 0 || o.CreatedAt >= w.doc.Overrides[best].CreatedAt {
				best = i
			}
		}
	}
	return best
}

// targets lists upstream u's targets: the owned ones (the Doc's, or the
// file's with derived ids), then those only discovery knows.
func (w *world) targets(u *config.Upstream, um state.Meta, rt runtime) []targetView {
	if rt.name != u.Name {
		rt = runtime{}
	}
	byAddr := map[string]*upstream.TargetState{}
	for i := range rt.targets {
		byAddr[rt.targets[i].Addr] = &rt.targets[i]
	}
	fileAddrs := map[string]bool{}
	if fu, ok := w.file.Upstream(u.Name); ok {
		for _, t := range fu.Targets {
			fileAddrs[t.Target] = true
		}
	}
	ref := idRef{ID: um.ID, Name: u.Name}
	var owned []config.Target
	if d, ok := w.doc.Upstreams[u.Name]; ok && !d.Deleted {
		owned = d.Targets
	} else {
		for _, t := range u.Targets {
			owned = append(owned, config.Target{Meta: state.Meta{ID: t.ID, CreatedAt: w.started, UpdatedAt: w.started}, Target: t.Target, Weight: t.Weight, Tags: t.Tags, Priority: t.Priority, Backup: t.Backup, Zone: t.Zone})
		}
	}
	out := make([]targetView, 0, len(owned)+len(rt.targets))
	seen := map[string]bool{}
	for _, t := range owned {
		seen[t.Target] = true
		v := targetView{owned: true, rt: byAddr[t.Target]}
		v.targetOut = targetOut{
			ID: t.ID, Target: t.Target, Weight: t.Weight, Upstream: ref, Tags: t.Tags,
			CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, Source: sourceAdmin, Priority: t.Priority, Backup: t.Backup, Zone: t.Zone,
		}
		if v.ID == "" {
			v.ID = targetID(u.Name, t.Target)
		}
		if fileAddrs[t.Target] {
			v.Source = sourceStatic
		}
		out = append(out, v)
	}
	for i := range rt.targets {
		t := &rt.targets[i]
		if seen[t.Addr] || t.Source == upstream.StaticSource {
			continue
		}
		seen[t.Addr] = true
		v := targetView{rt: t}
		v.targetOut = targetOut{
			ID: targetID(u.Name, t.Addr), Target: t.Addr, Weight: t.Weight, Upstream: ref, Tags: t.Tags,
			CreatedAt: w.started, UpdatedAt: w.started, Source: t.Source, Meta: t.Meta,
			Priority: t.Priority, Backup: t.Backup, Zone: t.Meta[upstream.MetaZone],
		}
		if i := w.exactOverride(u.Name, t.Addr); i >= 0 && w.doc.Overrides[i].Weight != nil {
			v.Weight = *w.doc.Overrides[i].Weight
			v.UpdatedAt = w.doc.Overrides[i].CreatedAt
		}
		out = append(out, v)
	}
	for i := range out {
		if s := out[i].rt; s != nil {
			out[i].EffectiveWeight, out[i].Healthy = ptr(s.EffectiveWeight), ptr(s.Healthy)
		}
	}
	return out
}

// findTarget finds a target by id or address ("host:port"; "host" means
// port 8000).
func findTarget(ts []targetView, key string) (*targetView, bool) {
	addr := key
	if n, err := normalizeTarget(key); err == nil {
		addr = n
	}
	for i := range ts {
		if (config.IsUUID(key) && sameID(ts[i].ID, key)) || ts[i].Target == addr || ts[i].Target == key {
			return &ts[i], true
		}
	}
	return nil, false
}

// checkTag checks a tag: printable ASCII without ',' or '/' (Kong's rule).
func checkTag(s string) (string, error) { return s, config.CheckTag(s) }

// tagsOut is a list of tags as the API shows it: null for none.
func tagsOut(tags []string) []string {
	if len(tags) == 0 {
		return nil
	}
	return tags
}

func decodeTarget(o *obj, t *config.Target) {
	o.setString("target", &t.Target, "", normalizeTarget)
	decodeFields(o, config.TargetSchema(), t, map[string]func(string) (string, error){"zone": checkTag})
	o.kongFields(config.KindTarget)
	o.unknown()
}

// targetDecoder checks a body in full and returns the function applying
// it to a target.
func targetDecoder(b *obj) (func(t *config.Target) error, error) {
	apply := func(t *config.Target) error {
		return b.decode(func(o *obj) { decodeTarget(o, t) })
	}
	scratch := config.Target{Weight: config.DefaultWeight}
	if err := apply(&scratch); err != nil {
		return nil, err
	}
	return apply, nil
}

func targetUnique(um state.Meta, addr string) *Error {
	e := uniqueViolation("target", addr)
	e.Message = fmt.Sprintf("UNIQUE violation detected on '{upstream={id=%q},target=%q}'", um.ID, addr)
	return e
}

// Handlers.

// answerTarget renders target addr of upstream name after a change.
func (a *api) answerTarget(w *world, name, addr string, status int) (int, any, error) {
	u, um, ok := w.k.upstream.byKey(w, name)
	if !ok {
		return 0, nil, notFound()
	}
	t, ok := findTarget(w.targets(u, um, a.runtimeOf(name)), addr)
	if !ok {
		return 0, nil, notFound()
	}
	return status, t.targetOut, nil
}

func (a *api) createTarget(r *http.Request) (int, any, error) {
	apply, b, err := readApplier(r, targetDecoder)
	if err != nil {
		return 0, nil, err
	}
	id, err := bodyID(b)
	if err != nil {
		return 0, nil, err
	}
	scratch := config.Target{Weight: config.DefaultWeight}
	_ = apply(&scratch)
	if scratch.Target == "" {
		return 0, nil, fieldError("target", "required field missing")
	}
	now := a.now().Unix()
	var name string
	w, err := a.underUpstream(r, func(w *world, eff *config.Upstream, um state.Meta) error {
		u := w.editableUpstream(eff.Name)
		t := config.Target{Weight: config.DefaultWeight}
		if err := apply(&t); err != nil {
			return err
		}
		for _, x := range u.Targets {
			if x.Target == t.Target {
				return targetUnique(um, t.Target)
			}
			if id != "" && sameID(x.ID, id) {
				return primaryKeyViolation(id)
			}
		}
		t.ID = id
		if t.ID == "" {
			t.ID = newID()
		}
		t.CreatedAt, t.UpdatedAt = now, now
		u.Targets = append(u.Targets, t)
		name = eff.Name
		w.doc.Upstreams[name] = u
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return a.answerTarget(w, name, scratch.Target, http.StatusCreated)
}

func (a *api) patchTarget(r *http.Request) (int, any, error) {
	apply, b, err := readApplier(r, targetDecoder)
	if err != nil {
		return 0, nil, err
	}
	tkey, now := r.PathValue("target"), a.now().Unix()
	var name, addr string
	w, err := a.underUpstream(r, func(w *world, eff *config.Upstream, um state.Meta) error {
		rt := a.runtimeOf(eff.Name)
		cur, ok := findTarget(w.targets(eff, um, rt), tkey)
		if !ok {
			return notFound()
		}
		name, addr = eff.Name, cur.Target
		if !cur.owned {
			return w.overrideDiscovered(b, eff.Name, cur, now)
		}
		u := w.editableUpstream(eff.Name)
		i := slices.IndexFunc(u.Targets, func(t config.Target) bool { return t.Target == cur.Target })
		if i < 0 {
			return notFound()
		}
		t := u.Targets[i]
		if err := apply(&t); err != nil {
			return err
		}
		if t.Target != cur.Target {
			if slices.ContainsFunc(u.Targets, func(x config.Target) bool { return x.Target == t.Target }) {
				return targetUnique(um, t.Target)
			}
			w.moveMark(eff.Name, cur.Target, t.Target)
		}
		t.UpdatedAt = now
		u.Targets[i] = t
		addr = t.Target
		w.doc.Upstreams[eff.Name] = u
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return a.answerTarget(w, name, addr, http.StatusOK)
}

// overrideDiscovered applies a PATCH to a discovered target: its weight
// becomes (or updates) an override of exactly that address, which the
// gateway layers over every discovery update.
func (w *world) overrideDiscovered(b *obj, name string, cur *targetView, now int64) error {
	o := newObj(b.m, b.form)
	weight := -1
	o.setInt("weight", &weight, -1, 0, config.MaxWeight)
	for _, k := range []string{"target", "tags"} {
		if o.has(k) {
			o.used[k] = true
			o.fail(k, "cannot be changed on a target discovered by %s (only weight can)", cur.Source)
		}
	}
	o.kongFields(config.KindTarget)
	o.unknown()
	if err := o.err(); err != nil {
		return err
	}
	if weight < 0 {
		return fieldError("weight", "required field missing")
	}
	if i := w.exactOverride(name, cur.Target); i >= 0 {
		// Updated, it becomes the latest override, so it wins over label
		// overrides that also select the target; the id is kept.
		ov := w.doc.Overrides[i]
		ov.Weight, ov.Share, ov.CreatedAt = ptr(weight), nil, now
		w.doc.Overrides = append(slices.Delete(w.doc.Overrides, i, i+1), ov)
		return nil
	}
	w.doc.Overrides = append(w.doc.Overrides, state.Override{
		ID: newID(), Upstream: name, Target: cur.Target, Weight: ptr(weight), CreatedAt: now,
	})
	return nil
}

func (w *world) moveMark(name, from, to string) {
	if m := w.doc.Marks[name]; m != nil {
		if v, ok := m[from]; ok {
			delete(m, from)
			m[to] = v
		}
	}
}

func (a *api) deleteTarget(r *http.Request) (int, any, error) {
	tkey, now := r.PathValue("target"), a.now().Unix()
	_, err := a.underUpstream(r, func(w *world, eff *config.Upstream, um state.Meta) error {
		rt := a.runtimeOf(eff.Name)
		cur, ok := findTarget(w.targets(eff, um, rt), tkey)
		if !ok {
			return absentError{}
		}
		if !cur.owned {
			return badRequest("target %s is discovered by %s and cannot be deleted: PATCH weight=0 drains it", cur.Target, cur.Source)
		}
		u := w.editableUpstream(eff.Name)
		u.Targets = slices.DeleteFunc(u.Targets, func(t config.Target) bool { return t.Target == cur.Target })
		u.UpdatedAt = now
		w.doc.Upstreams[eff.Name] = u
		// The mark goes with the target unless discovery lists it too.
		discovered := false
		if rt.name == eff.Name {
			for _, t := range rt.targets {
				discovered = discovered || (t.Addr == cur.Target && t.Source != upstream.StaticSource)
			}
		}
		if m := w.doc.Marks[eff.Name]; m != nil && !discovered {
			delete(m, cur.Target)
			if len(m) == 0 {
				delete(w.doc.Marks, eff.Name)
			}
		}
		return nil
	})
	return deleted(err)
}

// Health.

// healthOut is one target of GET /upstreams/{u}/health (Kong's shape).
type healthOut struct {
	ID        string     `json:"id"`
	Target    string     `json:"target"`
	Weight    int        `json:"weight"`
	Upstream  idRef      `json:"upstream"`
	Tags      []string   `json:"tags"`
	CreatedAt int64      `json:"created_at"`
	Health    string     `json:"health"` // HEALTHY | UNHEALTHY | HEALTHCHECKS_OFF
	Data      healthData `json:"data"`
}

// healthData details a target's health: where it comes from, the
// persisted manual mark, and the checker's counters.
type healthData struct {
	Source          string `json:"source"`
	EffectiveWeight *int   `json:"effective_weight"`
	// Mark is the manual mark stored in the admin layer: none, healthy or
	// unhealthy.
	Mark string `json:"mark"`
	// ChecksHealthy is the checks' own verdict (the mark aside); Cause and
	// Since say why and when it last changed.
	ChecksHealthy *bool            `json:"checks_healthy"`
	Cause         string           `json:"cause,omitempty"`
	Since         *time.Time       `json:"since,omitempty"`
	Active        *health.Counters `json:"active,omitempty"`
	Passive       *health.Counters `json:"passive,omitempty"`
	// Addresses are the target's addresses as Kong lists them: one here,
	// the target itself.
	Addresses    []addressHealth `json:"addresses"`
	Ejected      bool            `json:"ejected"`
	Ejections    int             `json:"ejections"`
	EjectedUntil *time.Time      `json:"ejected_until,omitempty"`
	// SuccessRate is the last success-rate sample (success-rate
	// ejection); Cause "success-rate" says it ejected the target.
	SuccessRate *health.RateSample `json:"success_rate,omitempty"`
}

// addressHealth is one address of a target in Kong's health shape.
type addressHealth struct {
	IP     string `json:"ip"`
	Port   int    `json:"port"`
	Health string `json:"health"`
	Weight int    `json:"weight"`
}

// healthChild lists the health of an upstream's targets.
func healthChild() *upstreamChild[healthOut] {
	return &upstreamChild[healthOut]{
		parent:  upstreams,
		items:   (*api).targetsHealth,
		pageKey: func(h healthOut) string { return h.Target },
		show:    func(h healthOut) any { return h },
		tags:    func(h healthOut) []string { return h.Tags },
		perNode: true,
	}
}

func (a *api) targetsHealth(w *world, u *config.Upstream, um state.Meta) []healthOut {
	rt := a.runtimeOf(u.Name)
	states := map[string]health.TargetState{}
	if rt.checker != nil {
		for _, s := range rt.checker.States() {
			states[s.Addr] = s
		}
	}
	on := checksOn(u)
	marks := w.doc.Marks[u.Name]
	var items []healthOut
	for _, t := range w.targets(u, um, rt) {
		h := healthOut{ID: t.ID, Target: t.Target, Weight: t.Weight, Upstream: t.Upstream, Tags: t.Tags, CreatedAt: t.CreatedAt}
		h.Data = healthData{Source: t.Source, EffectiveWeight: t.EffectiveWeight, Mark: "none"}
		if m := marks[t.Target]; m != "" {
			h.Data.Mark = m
		}
		healthy := true
		if t.Healthy != nil {
			healthy = *t.Healthy
		}
		if s, ok := states[t.Target]; ok {
			healthy = s.Healthy
			h.Data.ChecksHealthy, h.Data.Cause = ptr(s.Checks), s.Cause.String()
			h.Data.Active, h.Data.Passive = ptr(s.Active), ptr(s.Passive)
			h.Data.Ejected, h.Data.Ejections, h.Data.SuccessRate = s.Ejected, s.Ejections, s.SuccessRate
			if !s.Since.IsZero() {
				h.Data.Since = ptr(s.Since)
			}
			if !s.EjectedUntil.IsZero() {
				h.Data.EjectedUntil = ptr(s.EjectedUntil)
			}
		} else if h.Data.Mark != "none" {
			healthy = h.Data.Mark == "healthy"
		}
		switch {
		case !on && h.Data.Mark == "none":
			h.Health = "HEALTHCHECKS_OFF"
		case healthy:
			h.Health = "HEALTHY"
		default:
			h.Health = "UNHEALTHY"
		}
		ad := addressHealth{IP: t.Target, Health: h.Health, Weight: t.Weight}
		if host, port, err := net.SplitHostPort(t.Target); err == nil {
			ad.IP = host
			ad.Port, _ = strconv.Atoi(port)
		}
		h.Data.Addresses = []addressHealth{ad}
		items = append(items, h)
	}
	return items
}

// sameAddress tells whether addr ("ip:port"; a bare ip means port 8000
// as in a target) is the address target.
func sameAddress(addr, target string) bool {
	if n, err := normalizeTarget(addr); err == nil {
		addr = n
	}
	return addr == target
}

// markTarget returns the handler storing a manual mark ("healthy",
// "unhealthy") or clearing it ("none") in the admin layer; the gateway
// applies the Doc's marks to the checkers.
func (a *api) markTarget(mark string) func(*http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		if _, err := HealthMark(mark); err != nil {
			return 0, nil, err
		}
		if b, err := readBody(r); err != nil {
			return 0, nil, err
		} else if len(b.m) > 0 {
			o := newObj(b.m, b.form)
			o.unknown()
			return 0, nil, o.err()
		}
		tkey := r.PathValue("target")
		_, err := a.underUpstream(r, func(w *world, eff *config.Upstream, um state.Meta) error {
			rt := a.runtimeOf(eff.Name)
			t, ok := findTarget(w.targets(eff, um, rt), tkey)
			if !ok {
				return notFound()
			}
			// Kong's per-address form names one address of the target;
			// every target here is one address (discovery and SRV list
			// each resolved address as its own target).
			if addr := r.PathValue("address"); addr != "" && !sameAddress(addr, t.Target) {
				return notFound()
			}
			m := w.doc.Marks[eff.Name]
			if mark == "none" {
				if m != nil {
					delete(m, t.Target)
					if len(m) == 0 {
						delete(w.doc.Marks, eff.Name)
					}
				}
				return nil
			}
			if m == nil {
				m = map[string]string{}
				w.doc.Marks[eff.Name] = m
			}
			m[t.Target] = mark
			return nil
		})
		if err != nil {
			return 0, nil, err
		}
		return http.StatusNoContent, nil, nil
	}
}

// putTarget creates or replaces the target the path names (an address, or
// the id of a new one whose body gives the address), as Kong 3's PUT:
// fields the body leaves out take their defaults, the id and created_at
// are kept. 200 when it replaced, 201 when it created. On a discovered
// target only weight can be set (an override, as PATCH).
func (a *api) putTarget(r *http.Request) (int, any, error) {
	apply, b, err := readApplier(r, targetDecoder)
	if err != nil {
		return 0, nil, err
	}
	tkey, now := r.PathValue("target"), a.now().Unix()
	status := http.StatusOK
	var name, addr string
	w, err := a.underUpstream(r, func(w *world, eff *config.Upstream, um state.Meta) error {
		rt := a.runtimeOf(eff.Name)
		name = eff.Name
		cur, found := findTarget(w.targets(eff, um, rt), tkey)
		if found && !cur.owned {
			addr = cur.Target
			return w.overrideDiscovered(b, eff.Name, cur, now)
		}
		u := w.editableUpstream(eff.Name)
		t := config.Target{Weight: config.DefaultWeight}
		i := -1
		if found {
			i = slices.IndexFunc(u.Targets, func(x config.Target) bool { return x.Target == cur.Target })
		}
		if i >= 0 {
			old := u.Targets[i]
			t.ID, t.CreatedAt, t.Target = old.ID, old.CreatedAt, old.Target
		} else {
			status = http.StatusCreated
			t.CreatedAt = now
			if config.IsUUID(tkey) {
				t.ID = tkey
			} else if n, err := normalizeTarget(tkey); err == nil {
				t.Target = n
			} else {
				return fieldError("target", "%v", err)
			}
		}
		if err := apply(&t); err != nil {
			return err
		}
		if t.Target == "" {
			return fieldError("target", "required field missing")
		}
		for j, x := range u.Targets {
			if j != i && x.Target == t.Target {
				return targetUnique(um, t.Target)
			}
		}
		if i >= 0 && t.Target != u.Targets[i].Target {
			w.moveMark(eff.Name, u.Targets[i].Target, t.Target)
		}
		if t.ID == "" {
			t.ID = newID()
		}
		t.UpdatedAt = now
		if i >= 0 {
			u.Targets[i] = t
		} else {
			u.Targets = append(u.Targets, t)
		}
		addr = t.Target
		w.doc.Upstreams[eff.Name] = u
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return a.answerTarget(w, name, addr, status)
}
