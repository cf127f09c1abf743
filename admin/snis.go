package admin

import (
	"net/http"
	"slices"
	"strings"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// SNIs, Kong's snis entity: {id, name, certificate: {id}, tags,
// created_at, updated_at}, served by the generic store at /snis and
// under a certificate at /certificates/{certificate}/snis.
//
//   - An SNI is keyed by its name (exact, or one leading "*." or trailing
//     ".*" wildcard label, as Kong's wildcard hosts); a name is unique
//     across certificates: a second one is Kong's 409 unique violation.
//   - Its certificate is given as {"id": ...} (or a plain id, or the
//     path's certificate); one that does not exist is Kong's 400 foreign
//     key violation.
//   - A change takes effect on the TLS listeners with the next handshake:
//     the certificate set is swapped, open connections are kept.
//   - The file's SNIs (a certificate's snis, the top-level snis) have ids
//     derived from their names; a PATCH or DELETE of one is kept in the
//     admin layer like any file entity's.

const kindSNI = "sni"

func renderSNI(c *config.SNI, m state.Meta) sniOut {
	out := sniOut{ID: m.ID, Name: c.Name, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, Certificate: idRef{ID: c.Certificate}}
	if len(c.Tags) > 0 {
		out.Tags = slices.Clone(c.Tags)
	}
	return out
}

func sniKind() *kind[config.SNI, state.SNI] {
	k := &kind[config.SNI, state.SNI]{
		name: kindSNI, param: "sni", named: true, nameRequired: true,
		checkName: func(s string) error { _, err := checkCertSNI(s); return err },
		all:       func(f *config.File) []config.SNI { return f.SNIs },
		tags:      func(c *config.SNI) []string { return c.Tags },
		key:       func(c *config.SNI) string { return c.Name },
		docs:      func(d *state.Doc) map[string]*state.SNI { return d.SNIs },
		meta:      func(d *state.SNI) *state.Meta { return &d.Meta },
		docKey:    func(d *state.SNI) string { return d.Name },
		setKey:    func(d *state.SNI, key string) { d.Name = strings.ToLower(key) },
		fileID: fileIDOf(kindSNI, func(f *config.File, key string) string {
			for i := range f.SNIs {
				if f.SNIs[i].Name == key {
					return f.SNIs[i].ID
				}
			}
			return ""
		}),
		render: func(_ *world, c *config.SNI, m state.Meta) any { return renderSNI(c, m) },
		// POST/GET /certificates/{certificate}/snis.
		scope: func(w *world, r *http.Request) (func(*config.SNI) bool, error) {
			key := r.PathValue("certificate")
			if key == "" {
				return func(*config.SNI) bool { return true }, nil
			}
			c, _, ok := w.certificate(key)
			if !ok {
				return nil, notFound()
			}
			return func(s *config.SNI) bool { return sameID(s.Certificate, c.ID) }, nil
		},
		decode:   decodeSNIBody,
		fresh:    func() *state.SNI { return &state.SNI{} },
		editable: func(w *world, name string) *state.SNI { return w.editableSNI(name) },
		put: func(w *world, old string, d *state.SNI, now int64) error {
			d.Deleted = false
			if old != "" && old != d.Name {
				if w.k.sni.keyTaken(w, d.Name) {
					return uniqueViolation("name", d.Name)
				}
				w.k.sni.remove(w, old, now)
			}
			w.doc.SNIs[d.Name] = d
			return nil
		},
	}
	// Names are looked up lower-cased, ids in any case.
	k.find = func(w *world, key string) (*config.SNI, state.Meta, bool) {
		return k.byIDOrKey(w, strings.ToLower(key))
	}
	return k
}

// editableSNI returns a copy of the SNI of name as a Doc entity.
func (w *world) editableSNI(name string) *state.SNI {
	if e, ok := w.doc.SNIs[name]; ok && !e.Deleted {
		return e.Clone()
	}
	c, m, _ := w.k.sni.byKey(w, name)
	return &state.SNI{Meta: state.Meta{ID: m.ID, CreatedAt: m.CreatedAt}, Name: c.Name, Certificate: c.Certificate, Tags: slices.Clone(c.Tags)}
}

// certificateRef is an SNI's reference to its certificate as a body gives
// it: {"id": ...} (certificate.id=... in a form) or a plain id.
type certificateRef struct {
	id      string
	present bool // the body names a certificate (null included)
}

func decodeCertificateRef(o *obj) certificateRef {
	v, present := o.get("certificate")
	ref := certificateRef{present: present}
	if !present || v == nil {
		return ref
	}
	if s, why := asString(v); why == "" {
		if _, err := checkID(s); err != nil {
			o.fail("certificate", "%v", err)
		}
		ref.id = s
		return ref
	}
	m, ok := v.(map[string]any)
	if !ok {
		o.fail("certificate", "expected a record ({\"id\": ...})")
		return ref
	}
	c := &obj{m: m, form: o.form, prefix: o.key("certificate") + ".", errs: o.errs, used: map[string]bool{}}
	c.setString("id", &ref.id, "", checkID)
	c.unknown()
	return ref
}

// decodeSNIBody checks an SNI body and returns its applier, which
// resolves the certificate: the body's, else (POST under a certificate)
// the path's.
func decodeSNIBody(_ func() *world, r *http.Request, b *obj, m mode, _ string) (applier[state.SNI], error) {
	var ref certificateRef
	apply := func(s *state.SNI) error {
		return b.decode(func(o *obj) {
			o.setString("name", &s.Name, "", checkCertSNI)
			ref = decodeCertificateRef(o)
			o.setStrings("tags", &s.Tags, checkTag)
			o.ignore("id", "created_at", "updated_at")
			o.unknown()
		})
	}
	scratch := &state.SNI{}
	if err := apply(scratch); err != nil {
		return nil, err
	}
	parent := r.PathValue("certificate")
	switch {
	case m == modeCreate && scratch.Name == "":
		return nil, fieldError("name", "required field missing")
	case ref.present && ref.id == "", m != modePatch && ref.id == "" && parent == "":
		return nil, fieldError("certificate", "required field missing")
	}
	return func(w *world, s *state.SNI) error {
		if err := apply(s); err != nil {
			return err
		}
		switch {
		case parent != "":
			c, _, ok := w.certificate(parent)
			if !ok {
				return notFound()
			}
			s.Certificate = c.ID
		case ref.id != "":
			c, _, ok := w.k.cert.byKey(w, strings.ToLower(ref.id))
			if !ok {
				return foreignKeyOf("certificate", "certificates", "id", ref.id)
			}
			s.Certificate = c.ID
		}
		return nil
	}, nil
}

// sniExample is the shape of an SNI body in the document.
func sniExample() map[string]any {
	return map[string]any{"name": "www.example.com", "certificate": map[string]any{"id": exCert}, "tags": []any{"edge"}}
}
