package admin

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// Kong's consumers and their key-auth credentials (the kinds of the
// generic store; their plugins are plugins.go's).

type consumerOut struct {
	ID        string   `json:"id"`
	Username  *string  `json:"username"`
	CustomID  *string  `json:"custom_id"`
	Tags      []string `json:"tags"`
	CreatedAt int64    `json:"created_at"`
	UpdatedAt int64    `json:"updated_at"`
}

func renderConsumer(c *config.Consumer, m state.Meta) consumerOut {
	out := consumerOut{ID: m.ID, Tags: tagsOut(c.Tags), CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
	if c.Username != "" {
		out.Username = ptr(c.Username)
	}
	if c.CustomID != "" {
		out.CustomID = ptr(c.CustomID)
	}
	return out
}

type keyAuthOut struct {
	ID        string   `json:"id"`
	Key       string   `json:"key"`
	Consumer  idRef    `json:"consumer"`
	TTL       *int     `json:"ttl"`
	Tags      []string `json:"tags"`
	CreatedAt int64    `json:"created_at"`
}

func (w *world) renderKeyAuth(k *config.KeyAuth, m state.Meta) keyAuthOut {
	return keyAuthOut{ID: m.ID, Key: k.Key, Consumer: idRef{ID: w.k.consumer.metaOf(w, k.Consumer).ID},
		Tags: tagsOut(k.Tags), CreatedAt: m.CreatedAt}
}

func consumerKey(c *config.Consumer, ok bool) (string, bool) {
	if !ok {
		return "", false
	}
	return c.Key(), true
}

func consumerKind() *kind[config.Consumer, state.Consumer] {
	return &kind[config.Consumer, state.Consumer]{
		name: kindConsumer, param: "consumer", named: true, checkName: checkUsername,
		all:    func(f *config.File) []config.Consumer { return f.Consumers },
		tags:   func(c *config.Consumer) []string { return c.Tags },
		key:    func(c *config.Consumer) string { return c.Key() },
		docs:   func(d *state.Doc) map[string]*state.Consumer { return d.Consumers },
		meta:   func(d *state.Consumer) *state.Meta { return &d.Meta },
		docKey: func(d *state.Consumer) string { return d.Username },
		setKey: func(d *state.Consumer, key string) { d.Username = key },
		fileID: func(_ *world, key string) string { return stableID(kindConsumer, key) },
		find: func(w *world, key string) (*config.Consumer, state.Meta, bool) {
			for i := range w.eff.Consumers {
				c := &w.eff.Consumers[i]
				m := w.k.consumer.metaOf(w, c.Key())
				if sameID(m.ID, key) || c.Key() == key {
					return c, m, true
				}
			}
			return nil, state.Meta{}, false
		},
		render: func(_ *world, c *config.Consumer, m state.Meta) any { return renderConsumer(c, m) },
		decode: func(_ func() *world, _ *http.Request, b *obj, m mode, _ string) (applier[state.Consumer], error) {
			decode := func(c *state.Consumer) error {
				return b.decode(func(o *obj) {
					o.setString("username", &c.Username, "", nil)
					o.setString("custom_id", &c.CustomID, "", nil)
					o.setStrings("tags", &c.Tags, checkTag)
					o.kongFields(config.KindConsumer)
					o.unknown()
				})
			}
			scratch := &state.Consumer{}
			if err := decode(scratch); err != nil {
				return nil, err
			}
			if m == modeCreate && scratch.Username == "" && scratch.CustomID == "" {
				return nil, fieldError("@entity", "at least one of these fields must be non-empty: 'custom_id', 'username'")
			}
			return func(_ *world, c *state.Consumer) error {
				if c.Username == c.ID {
					c.Username = ""
				}
				return decode(c)
			}, nil
		},
		fresh: func() *state.Consumer { return &state.Consumer{} },
		editable: func(w *world, key string) *state.Consumer {
			if d, ok := w.doc.Consumers[key]; ok && !d.Deleted {
				return d.Clone()
			}
			c, m, _ := w.consumer(key)
			return &state.Consumer{Meta: m, Username: c.Key(), CustomID: c.CustomID, Tags: slices.Clone(c.Tags)}
		},
		put: func(w *world, old string, c *state.Consumer, now int64) error { return w.putConsumer(old, c, now) },
		unlink: func(w *world, key string) error {
			w.cascade(func(p *config.Plugin) bool { return p.Consumer == key }, func(k *config.KeyAuth) bool { return k.Consumer == key })
			return nil
		},
	}
}

func checkUsername(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	return nil
}

// putConsumer stores c under its key; a rename is followed by its
// plugins and credentials.
func (w *world) putConsumer(old string, c *state.Consumer, now int64) error {
	c.Deleted = false
	key := c.Username
	for i := range w.eff.Consumers {
		o := &w.eff.Consumers[i]
		if o.Key() == old || sameID(o.ID, c.ID) {
			continue
		}
		if c.CustomID != "" && o.CustomID == c.CustomID {
			return uniqueViolation("custom_id", c.CustomID)
		}
	}
	if old != "" && key != old {
		if w.k.consumer.keyTaken(w, key) {
			return uniqueViolation("username", key)
		}
		w.followRename(func(p *state.Plugin) *string { return &p.Consumer }, func(k *state.KeyAuth) *string { return &k.Consumer }, old, key, now)
		w.k.consumer.remove(w, old, now)
	}
	w.doc.Consumers[key] = c
	return nil
}

func keyAuthKind() *kind[config.KeyAuth, state.KeyAuth] {
	return &kind[config.KeyAuth, state.KeyAuth]{
		name: kindKeyAuth, param: "keyauth", lowerIDs: true,
		all:    func(f *config.File) []config.KeyAuth { return f.KeyAuths },
		tags:   func(c *config.KeyAuth) []string { return c.Tags },
		key:    func(c *config.KeyAuth) string { return c.ID },
		docs:   func(d *state.Doc) map[string]*state.KeyAuth { return d.KeyAuths },
		meta:   func(d *state.KeyAuth) *state.Meta { return &d.Meta },
		docKey: func(d *state.KeyAuth) string { return d.ID },
		setKey: func(d *state.KeyAuth, key string) { d.ID = key },
		fileID: func(_ *world, id string) string { return id },
		// By id or by key, as Kong's.
		find: func(w *world, key string) (*config.KeyAuth, state.Meta, bool) {
			for i := range w.eff.KeyAuths {
				k := &w.eff.KeyAuths[i]
				if sameID(k.ID, key) || k.Key == key {
					return k, w.k.keyAuth.metaOf(w, k.ID), true
				}
			}
			return nil, state.Meta{}, false
		},
		render: func(w *world, c *config.KeyAuth, m state.Meta) any { return w.renderKeyAuth(c, m) },
		scope: func(w *world, r *http.Request) (func(*config.KeyAuth) bool, error) {
			_, _, cons, err := scopeOfPath(w, r)
			if err != nil {
				return nil, err
			}
			return func(k *config.KeyAuth) bool { return cons == "" || k.Consumer == cons }, nil
		},
		decode: func(_ func() *world, r *http.Request, b *obj, m mode, _ string) (applier[state.KeyAuth], error) {
			var ref entityRef
			decode := func(k *state.KeyAuth) error {
				return b.decode(func(o *obj) {
					o.setString("key", &k.Key, "", nonEmpty)
					o.setStrings("tags", &k.Tags, checkTag)
					ref = decodeEntityRef(o, kindConsumer)
					o.kongFields(config.KindKeyAuth)
					o.unknown()
				})
			}
			if err := decode(&state.KeyAuth{}); err != nil {
				return nil, err
			}
			return func(w *world, k *state.KeyAuth) error {
				if err := decode(k); err != nil {
					return err
				}
				_, _, cons, err := scopeOfPath(w, r)
				if err != nil {
					return err
				}
				key, err := ref.resolve(kindConsumer, "consumers", func(s string) (string, bool) { c, _, ok := w.consumer(s); return consumerKey(c, ok) })
				if err != nil {
					return err
				}
				switch {
				case cons != "" && key != "" && key != cons:
					return fieldError("consumer", "must be the consumer in the URL")
				case cons != "":
					k.Consumer = cons
				case key != "":
					k.Consumer = key
				}
				if k.Consumer == "" {
					return fieldError("consumer", "required field missing")
				}
				if k.Key == "" && m != modePatch {
					k.Key = randomKey()
				}
				return nil
			}, nil
		},
		fresh: func() *state.KeyAuth { return &state.KeyAuth{} },
		editable: func(w *world, id string) *state.KeyAuth {
			if d, ok := w.doc.KeyAuths[id]; ok && !d.Deleted {
				return d.Clone()
			}
			k, m, _ := w.k.keyAuth.lookup(w, id)
			return &state.KeyAuth{Meta: m, Key: k.Key, Consumer: k.Consumer, Tags: slices.Clone(k.Tags)}
		},
		put: func(w *world, _ string, k *state.KeyAuth, _ int64) error {
			k.Deleted = false
			for i := range w.eff.KeyAuths {
				o := &w.eff.KeyAuths[i]
				if !sameID(o.ID, k.ID) && o.Key == k.Key {
					return uniqueViolation("key", k.Key)
				}
			}
			w.doc.KeyAuths[k.ID] = k
			return nil
		},
	}
}

// randomKey is a generated key, as Kong's (32 hex characters).
func randomKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
