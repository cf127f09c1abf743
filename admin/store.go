package admin

import (
	"net/http"
	"strings"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// The generic store: list (paged, optionally scoped to a parent), get by
// id or key, create, put (upsert), patch and delete, written once for
// every top-level kind (upstreams, services, routes, certificates). A
// kind says where its entities live and supplies hooks only where Kong's
// shapes really differ (decoding, renames, references).
//
// An entity's key is what the Doc is keyed by: its name (upstreams,
// services, routes; a service or route created without a name is keyed
// by its id) or its id (certificates).

// mode is what a request body is decoded for.
type mode int

const (
	modeCreate mode = iota // POST: a new entity
	modePatch              // PATCH: onto the current entity
	modePut                // PUT: a whole new entity (created or replacing)
)

// applier applies a checked body to an entity inside Mutate, against the
// world being changed.
type applier[D any] func(w *world, d *D) error

// kind describes one kind of entity to the generic store. C is the
// effective (configuration) type, D the admin layer's. Immutable.
type kind[C, D any] struct {
	name  string // as used in derived ids ("upstream")
	param string // path parameter naming the entity
	// named: entities have a name (the key), checked by checkName in a
	// PUT's URL; certificates are keyed by id.
	named     bool
	checkName func(string) error
	// nameRequired: an entity needs a name of its own (upstreams); else
	// one created without a name is keyed by its id.
	nameRequired bool
	// lowerIDs: an id taken from the URL is lower-cased.
	lowerIDs bool

	all    func(f *config.File) []C // the entities of a file, in order
	key    func(c *C) string
	docs   func(d *state.Doc) map[string]*D
	meta   func(d *D) *state.Meta
	docKey func(d *D) string
	setKey func(d *D, key string)
	// fileID is the id of a file entity of that key: the file's own, or
	// one derived from the key.
	fileID func(w *world, key string) string
	// find looks an effective entity up by id or key (by name, or what
	// else the kind allows); nil means by id or key.
	find   func(w *world, key string) (*C, state.Meta, bool)
	render func(w *world, c *C, m state.Meta) any
	// tags are an effective entity's tags.
	tags func(c *C) []string
	// scope, when set, narrows a list to the entities under the path's
	// parent (POST/GET /services/{service}/routes); an unknown parent is
	// 404.
	scope func(w *world, r *http.Request) (func(c *C) bool, error)

	// decode checks a body in full for m (and the fields a kind requires)
	// and returns what applies it. view returns the world as it is now (a
	// copy of the admin layer: only a decoder that needs it calls it); key
	// is the URL's key (PATCH and PUT).
	decode   func(view func() *world, r *http.Request, b *obj, m mode, key string) (applier[D], error)
	fresh    func() *D
	editable func(w *world, key string) *D
	// put stores d under its key; old is its key before the change
	// ("" for a new entity): renames are checked and followed here.
	put func(w *world, old string, d *D, now int64) error
	// replaced carries over what a PUT keeps of the entity it replaces
	// (an upstream's targets); nil keeps nothing.
	replaced func(w *world, old string, d *D)
	// putAt adopts the URL's key for a PUT that creates an entity under a
	// key that is not an id; nil refuses nothing and adds nothing.
	putAt func(d *D, key string) error
	// unlink refuses the deletion of an entity in use, or removes what
	// belongs to it (overrides, marks, canaries).
	unlink func(w *world, key string) error
}

// metaOf is the meta shown for the entity of key: the Doc's when it holds
// one, else the file's derived one.
func (k *kind[C, D]) metaOf(w *world, key string) state.Meta {
	if d, ok := k.docs(w.doc)[key]; ok {
		if m := *k.meta(d); !m.Deleted {
			if m.ID == "" {
				m.ID = k.fileID(w, key)
			}
			return m
		}
	}
	return state.Meta{ID: k.fileID(w, key), CreatedAt: w.started, UpdatedAt: w.started}
}

// lookup finds an effective entity by id or key.
func (k *kind[C, D]) lookup(w *world, key string) (*C, state.Meta, bool) {
	if k.find != nil {
		return k.find(w, key)
	}
	return k.byIDOrKey(w, key)
}

func (k *kind[C, D]) byIDOrKey(w *world, key string) (*C, state.Meta, bool) {
	all := k.all(w.eff)
	for i := range all {
		c := &all[i]
		m := k.metaOf(w, k.key(c))
		if k.key(c) == key || (config.IsUUID(key) && sameID(m.ID, key)) {
			return c, m, true
		}
	}
	return nil, state.Meta{}, false
}

// byKey finds an effective entity by its key only.
func (k *kind[C, D]) byKey(w *world, key string) (*C, state.Meta, bool) {
	all := k.all(w.eff)
	for i := range all {
		if k.key(&all[i]) == key {
			return &all[i], k.metaOf(w, key), true
		}
	}
	return nil, state.Meta{}, false
}

// inFile reports whether the file defines the entity of key.
func (k *kind[C, D]) inFile(w *world, key string) bool {
	all := k.all(w.file)
	for i := range all {
		if sameKey(k.key(&all[i]), key) {
			return true
		}
	}
	return false
}

// sameKey compares keys; ids (certificates' keys) ignore case.
func sameKey(a, b string) bool { return a == b || (config.IsUUID(a) && sameID(a, b)) }

// idTaken reports whether an entity of the kind (effective or a
// tombstone) already uses id.
func (k *kind[C, D]) idTaken(w *world, id string) bool {
	for key, d := range k.docs(w.doc) {
		m := *k.meta(d)
		if m.ID == "" {
			m.ID = k.fileID(w, key)
		}
		if sameID(m.ID, id) {
			return true
		}
	}
	all := k.all(w.file)
	for i := range all {
		if sameID(k.fileID(w, k.key(&all[i])), id) {
			return true
		}
	}
	return false
}

// keyTaken reports whether an effective entity has key.
func (k *kind[C, D]) keyTaken(w *world, key string) bool {
	_, _, ok := k.byKey(w, key)
	return ok
}

// remove hides the file's entity of key (tombstone) or drops the Doc's.
func (k *kind[C, D]) remove(w *world, key string, now int64) {
	if !k.inFile(w, key) {
		delete(k.docs(w.doc), key)
		return
	}
	m := k.metaOf(w, key)
	d := k.fresh()
	*k.meta(d) = state.Meta{ID: m.ID, CreatedAt: m.CreatedAt, UpdatedAt: now, Deleted: true}
	k.setKey(d, key)
	k.docs(w.doc)[key] = d
}

// pageKey is the paging key of an entity: its key, or its id when it has
// no name of its own.
func pageKey(key string, m state.Meta) string {
	if sameID(key, m.ID) {
		return m.ID
	}
	return key
}

// keyed is a rendered entity with its paging key.
type keyed struct {
	key string
	out any
}

// answer renders the effective entity of key.
func (k *kind[C, D]) answer(w *world, key string, status int) (int, any, error) {
	c, m, ok := k.byKey(w, key)
	if !ok {
		return 0, nil, notFound()
	}
	return status, k.render(w, c, m), nil
}

// Handlers.

func (k *kind[C, D]) list(a *api) func(*http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		p, err := parsePage(r, tagged)
		if err != nil {
			return 0, nil, err
		}
		w := a.view()
		keep := func(*C) bool { return true }
		if k.scope != nil {
			if keep, err = k.scope(w, r); err != nil {
				return 0, nil, err
			}
		}
		all := k.all(w.eff)
		items := make([]keyed, 0, len(all))
		for i := range all {
			c := &all[i]
			if keep(c) && p.tags.keep(k.tags(c)) {
				m := k.metaOf(w, k.key(c))
				items = append(items, keyed{pageKey(k.key(c), m), k.render(w, c, m)})
			}
		}
		l := paginate(r, p, items, func(it keyed) string { return it.key })
		for i := range l.Data {
			l.Data[i] = l.Data[i].(keyed).out
		}
		return http.StatusOK, l, nil
	}
}

func (k *kind[C, D]) get(a *api) func(*http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		w := a.view()
		c, m, ok := k.lookup(w, r.PathValue(k.param))
		if !ok {
			return 0, nil, notFound()
		}
		return http.StatusOK, k.render(w, c, m), nil
	}
}

// body reads and checks a request body and its optional id.
func (k *kind[C, D]) body(a *api, r *http.Request, m mode) (applier[D], string, error) {
	apply, b, err := readApplier(r, func(b *obj) (applier[D], error) {
		return k.decode(a.view, r, b, m, r.PathValue(k.param))
	})
	if err != nil {
		return nil, "", err
	}
	id, err := bodyID(b)
	if err != nil {
		return nil, "", err
	}
	return apply, id, nil
}

// adopt gives a new entity its id (the body's, or a random one) and, for
// a kind with names, the id as its key when it has no name; the id and
// the key must be free (a required name is checked first, as Kong).
func (k *kind[C, D]) adopt(w *world, d *D, id string) error {
	if k.nameRequired && k.keyTaken(w, k.docKey(d)) {
		return uniqueViolation("name", k.docKey(d))
	}
	m := k.meta(d)
	m.ID = id
	if m.ID == "" {
		m.ID = newID()
	}
	if k.idTaken(w, m.ID) {
		return primaryKeyViolation(m.ID)
	}
	if k.docKey(d) == "" {
		k.setKey(d, m.ID)
	}
	if k.named && k.keyTaken(w, k.docKey(d)) {
		return uniqueViolation("name", k.docKey(d))
	}
	return nil
}

func (k *kind[C, D]) create(a *api) func(*http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		apply, id, err := k.body(a, r, modeCreate)
		if err != nil {
			return 0, nil, err
		}
		now := a.now().Unix()
		var key string
		w, err := a.mutate(r, func(w *world) error {
			d := k.fresh()
			if err := apply(w, d); err != nil {
				return err
			}
			if err := k.adopt(w, d, id); err != nil {
				return err
			}
			m := k.meta(d)
			m.CreatedAt, m.UpdatedAt = now, now
			key = k.docKey(d)
			return k.put(w, "", d, now)
		})
		if err != nil {
			return 0, nil, err
		}
		return k.answer(w, key, http.StatusCreated)
	}
}

func (k *kind[C, D]) patch(a *api) func(*http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		apply, id, err := k.body(a, r, modePatch)
		if err != nil {
			return 0, nil, err
		}
		urlKey, now := r.PathValue(k.param), a.now().Unix()
		var key string
		w, err := a.mutate(r, func(w *world) error {
			cur, m, ok := k.lookup(w, urlKey)
			if !ok {
				return notFound()
			}
			if id != "" && !sameID(id, m.ID) {
				return fieldError("id", "cannot be changed")
			}
			old := k.key(cur)
			d := k.editable(w, old)
			if err := apply(w, d); err != nil {
				return err
			}
			if k.docKey(d) == "" && !k.nameRequired {
				k.setKey(d, k.meta(d).ID)
			}
			dm := k.meta(d)
			dm.ID, dm.UpdatedAt, dm.Deleted = m.ID, now, false
			key = k.docKey(d)
			return k.put(w, old, d, now)
		})
		if err != nil {
			return 0, nil, err
		}
		return k.answer(w, key, http.StatusOK)
	}
}

func (k *kind[C, D]) replace(a *api) func(*http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		urlKey := r.PathValue(k.param)
		byID := config.IsUUID(urlKey)
		apply, id, err := k.body(a, r, modePut)
		if err != nil {
			return 0, nil, err
		}
		if byID && id != "" && !sameID(id, urlKey) {
			return 0, nil, fieldError("id", "must match the id in the URL")
		}
		if k.named && !byID {
			if err := k.checkName(urlKey); err != nil {
				return 0, nil, fieldError("name", "%v", err)
			}
		}
		now := a.now().Unix()
		status, key := http.StatusOK, ""
		w, err := a.mutate(r, func(w *world) error {
			d := k.fresh()
			if err := apply(w, d); err != nil {
				return err
			}
			if k.named && !byID {
				if n := k.docKey(d); n != "" && n != urlKey {
					return fieldError("name", "must match the name in the URL")
				}
				k.setKey(d, urlKey)
			}
			m := k.meta(d)
			m.UpdatedAt = now
			cur, cm, found := k.lookup(w, urlKey)
			if found {
				old := k.key(cur)
				if k.docKey(d) == "" {
					k.setKey(d, old)
				}
				m.ID, m.CreatedAt = cm.ID, cm.CreatedAt
				if k.replaced != nil {
					k.replaced(w, old, d)
				}
				key = k.docKey(d)
				return k.put(w, old, d, now)
			}
			if k.nameRequired && k.docKey(d) == "" {
				return fieldError("name", "required field missing")
			}
			switch {
			case byID && k.lowerIDs:
				id = strings.ToLower(urlKey)
			case byID:
				id = urlKey
			case id != "":
			case k.putAt != nil:
				if err := k.putAt(d, urlKey); err != nil {
					return err
				}
			}
			if err := k.adopt(w, d, id); err != nil {
				return err
			}
			m.CreatedAt = now
			status, key = http.StatusCreated, k.docKey(d)
			return k.put(w, "", d, now)
		})
		if err != nil {
			return 0, nil, err
		}
		return k.answer(w, key, status)
	}
}

func (k *kind[C, D]) del(a *api) func(*http.Request) (int, any, error) {
	return func(r *http.Request) (int, any, error) {
		urlKey, now := r.PathValue(k.param), a.now().Unix()
		_, err := a.mutate(r, func(w *world) error {
			cur, _, ok := k.lookup(w, urlKey)
			if !ok {
				return absentError{}
			}
			key := k.key(cur)
			if k.unlink != nil {
				if err := k.unlink(w, key); err != nil {
					return err
				}
			}
			k.remove(w, key, now)
			return nil
		})
		return deleted(err)
	}
}
