package admin

import (
	"net/http"
	"slices"
	"strings"

	"github.com/outrigger-gw/outrigger/certs"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// Certificates and SNIs, in Kong's shapes.
//
//   - A certificate is addressed by its id or by one of its SNIs (as in
//     Kong). Its SNIs are a list of names on the certificate ("snis");
//     /snis lists them as SNI objects ({id, name, certificate: {id}}), with
//     ids derived from the name. SNIs are created, changed and removed
//     through their certificate (POST /snis is not served).
//   - A body is checked in full before anything changes: the PEM parses,
//     the key belongs to the certificate (cert_alt/key_alt likewise), each
//     SNI is a host name or a single leading "*." wildcard, and no SNI
//     belongs to another certificate (400 schema violation, as Kong).
//   - GET answers hold the private key, as Kong's do. A certificate of the
//     configuration file read from files shows cert_file and key_file and
//     null cert and key; PATCH may change its snis and tags (the files
//     stay), and a cert and key given replace the files with inline PEM.

const kindCertificate = "certificate"

// certificateOut is a certificate as the API shows it.
type certificateOut struct {
	ID        string   `json:"id"`
	CreatedAt int64    `json:"created_at"`
	UpdatedAt int64    `json:"updated_at"`
	Cert      *string  `json:"cert"`
	Key       *string  `json:"key"`
	CertAlt   *string  `json:"cert_alt"`
	KeyAlt    *string  `json:"key_alt"`
	CertFile  string   `json:"cert_file,omitempty"`
	KeyFile   string   `json:"key_file,omitempty"`
	SNIs      []string `json:"snis"`
	Tags      []string `json:"tags"`
}

// sniOut is an SNI object.
type sniOut struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	CreatedAt   int64    `json:"created_at"`
	UpdatedAt   int64    `json:"updated_at"`
	Tags        []string `json:"tags"`
	Certificate idRef    `json:"certificate"`
}

func renderCertificate(c *config.Certificate, m state.Meta) certificateOut {
	out := certificateOut{ID: c.ID, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
		Cert: strOrNil(c.Cert), Key: strOrNil(c.Key), CertAlt: strOrNil(c.CertAlt), KeyAlt: strOrNil(c.KeyAlt),
		CertFile: c.CertFile, KeyFile: c.KeyFile, SNIs: slices.Clone(c.SNIs)}
	if out.SNIs == nil {
		out.SNIs = []string{}
	}
	if len(c.Tags) > 0 {
		out.Tags = slices.Clone(c.Tags)
	}
	return out
}

func sniID(name string) string { return stableID("sni", name) }

// certificate finds an effective certificate by id or SNI name.
func (w *world) certificate(key string) (*config.Certificate, state.Meta, bool) {
	name := strings.ToLower(key)
	for i := range w.eff.Certificates {
		c := &w.eff.Certificates[i]
		if sameID(c.ID, key) || slices.Contains(c.SNIs, name) {
			return c, w.k.cert.metaOf(w, c.ID), true
		}
	}
	return nil, state.Meta{}, false
}

// sniOwners maps every SNI in force to its certificate's id, but for the
// certificate except.
func (w *world) sniOwners(except string) map[string]string {
	out := map[string]string{}
	for _, c := range w.eff.Certificates {
		if sameID(c.ID, except) {
			continue
		}
		for _, n := range c.SNIs {
			out[n] = c.ID
		}
	}
	return out
}

// editableCertificate returns a copy of the certificate with id as a Doc
// entity (from the Doc, else converted from the file).
func (w *world) editableCertificate(id string) *state.Certificate {
	if e, ok := w.doc.Certificates[id]; ok && !e.Deleted {
		return cloneJSON(e)
	}
	var fc *config.Certificate
	for i := range w.file.Certificates {
		if sameID(w.file.Certificates[i].ID, id) {
			fc = &w.file.Certificates[i]
		}
	}
	return &state.Certificate{Meta: state.Meta{ID: id, CreatedAt: w.started}, Cert: fc.Cert, Key: fc.Key, CertAlt: fc.CertAlt, KeyAlt: fc.KeyAlt,
		CertFile: fc.CertFile, KeyFile: fc.KeyFile, CertAltFile: fc.CertAltFile, KeyAltFile: fc.KeyAltFile,
		SNIs: slices.Clone(fc.SNIs), Tags: slices.Clone(fc.Tags)}
}

// putCertificate stores c (checked) as the Doc's certificate of its id.
func (w *world) putCertificate(c *state.Certificate) error {
	owners := w.sniOwners(c.ID)
	for _, n := range c.SNIs {
		if other, taken := owners[n]; taken {
			return fieldError("snis", "%s already associated with existing certificate '%s'", n, other)
		}
	}
	w.doc.Certificates[c.ID] = c
	return nil
}

func checkCertSNI(s string) (string, error) { return certs.CheckName(s) }

// decodeCertificate applies a body to c. With files, the certificate's
// pair comes from files (a file certificate): a cert or key given replaces
// them with inline PEM.
func decodeCertificate(o *obj, c *state.Certificate) {
	var inline bool
	for _, k := range []string{"cert", "key", "cert_alt", "key_alt"} {
		if o.has(k) {
			inline = true
		}
	}
	o.setString("cert", &c.Cert, "", nil)
	o.setString("key", &c.Key, "", nil)
	o.setString("cert_alt", &c.CertAlt, "", nil)
	o.setString("key_alt", &c.KeyAlt, "", nil)
	o.setStrings("snis", &c.SNIs, checkCertSNI)
	o.setStrings("tags", &c.Tags, checkTag)
	o.ignore("id", "created_at", "updated_at")
	o.unknown()
	if inline && c.CertFile != "" {
		c.CertFile, c.KeyFile, c.CertAltFile, c.KeyAltFile = "", "", "", ""
	}
	if len(o.errs) > 0 || c.CertFile != "" {
		return
	}
	checkPair(o, "cert", "key", c.Cert, c.Key, true)
	if c.CertAlt != "" || c.KeyAlt != "" {
		checkPair(o, "cert_alt", "key_alt", c.CertAlt, c.KeyAlt, false)
	}
}

// checkPair records why a PEM pair does not load, on the field to blame.
func checkPair(o *obj, certKey, keyKey, cert, key string, required bool) {
	switch {
	case cert == "" && (required || key != ""):
		o.fail(certKey, "required field missing")
		return
	case key == "":
		o.fail(keyKey, "required field missing")
		return
	}
	if _, err := certs.ParsePair([]byte(cert), []byte(key)); err != nil {
		msg := err.Error()
		if strings.Contains(msg, "key") && !strings.Contains(msg, "certificate:") {
			o.fail(keyKey, "%s", msg)
		} else {
			o.fail(certKey, "%s", msg)
		}
	}
}

// certificateDecoder checks a body in full (on a scratch certificate, or
// on base for a PATCH, which may be nil) and returns its applier.
func certificateDecoder(b *obj, base *state.Certificate) (func(c *state.Certificate) error, error) {
	apply := func(c *state.Certificate) error {
		return b.decode(func(o *obj) { decodeCertificate(o, c) })
	}
	scratch := &state.Certificate{}
	if base != nil {
		scratch = cloneJSON(base)
	}
	if err := apply(scratch); err != nil {
		return nil, err
	}
	return apply, nil
}

// snisOf lists the SNI objects of the certificates that keep returns true
// for.
func (w *world) snisOf(keep func(*config.Certificate) bool) []sniOut {
	var out []sniOut
	for i := range w.eff.Certificates {
		c := &w.eff.Certificates[i]
		if !keep(c) {
			continue
		}
		m := w.k.cert.metaOf(w, c.ID)
		for _, n := range c.SNIs {
			out = append(out, sniOut{ID: sniID(n), Name: n, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, Certificate: idRef{ID: c.ID}})
		}
	}
	return out
}

func (a *api) listSNIs(r *http.Request) (int, any, error) {
	p, err := parsePage(r, untagged)
	if err != nil {
		return 0, nil, err
	}
	items := a.view().snisOf(func(*config.Certificate) bool { return true })
	return http.StatusOK, paginate(r, p, items, func(s sniOut) string { return s.Name }), nil
}

// certificateSNIs lists a certificate's SNIs.
func certificateSNIs() *child[config.Certificate, state.Certificate, sniOut] {
	return &child[config.Certificate, state.Certificate, sniOut]{
		parent: func(k *kinds) *kind[config.Certificate, state.Certificate] { return k.cert },
		items: func(_ *api, w *world, cur *config.Certificate, _ state.Meta) []sniOut {
			if items := w.snisOf(func(c *config.Certificate) bool { return c.ID == cur.ID }); items != nil {
				return items
			}
			return []sniOut{}
		},
		pageKey: func(s sniOut) string { return s.Name },
		show:    func(s sniOut) any { return s },
	}
}

func (a *api) getSNI(r *http.Request) (int, any, error) {
	key := r.PathValue("sni")
	name := strings.ToLower(key)
	for _, s := range a.view().snisOf(func(*config.Certificate) bool { return true }) {
		if s.Name == name || sameID(s.ID, key) {
			return http.StatusOK, s, nil
		}
	}
	return 0, nil, notFound()
}

// certificateExample is the shape of a certificate body in the document
// (the PEM blocks abridged: the example is refused as it stands).
func certificateExample() map[string]any {
	return map[string]any{
		"cert": "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
		"key":  "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n",
		"snis": []any{"example.com", "*.example.com"},
		"tags": []any{"edge"},
	}
}
