package admin

import (
	"slices"
	"strings"

	"github.com/outrigger-gw/outrigger/certs"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/state"
)

// Certificates and SNIs, in Kong's shapes.
//
//   - A certificate is addressed by its id or by one of its SNIs (as in
//     Kong). Its SNIs are entities of their own (snis.go); a certificate's
//     "snis" lists their names, and a body's "snis" sets them: names no
//     longer listed are deleted, new ones created (as Kong's).
//   - Deleting a certificate deletes its SNIs (Kong's cascade).
//   - A body is checked in full before anything changes: the PEM parses,
//     the key belongs to the certificate (cert_alt/key_alt likewise), each
//     SNI is a host name or a single leading "*." wildcard, and no SNI
//     belongs to another certificate (400 schema violation, as Kong).
//   - GET answers hold the private key, as Kong's do. A certificate of the
//     configuration file read from files shows cert_file and key_file and
//     null cert and key; PATCH may change its snis and tags (the files
//     stay), and a cert and key given replace the files with inline PEM.

const kindCertificate = "certificate"

// certificateOut is a certificate as the API shows it; its snis sorted,
// as Kong's.
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
		CertFile: c.CertFile, KeyFile: c.KeyFile, SNIs: slices.Sorted(slices.Values(c.SNIs))}
	if out.SNIs == nil {
		out.SNIs = []string{}
	}
	if len(c.Tags) > 0 {
		out.Tags = slices.Clone(c.Tags)
	}
	return out
}

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
// entity (from the Doc, else converted from the file), with the SNIs it
// serves now.
func (w *world) editableCertificate(id string) *state.Certificate {
	var snis []string
	if cur, _, ok := w.k.cert.byKey(w, id); ok {
		snis = slices.Clone(cur.SNIs)
	}
	if e, ok := w.doc.Certificates[id]; ok && !e.Deleted {
		c := e.Clone()
		c.SNIs = snis
		return c
	}
	var fc *config.Certificate
	for i := range w.file.Certificates {
		if sameID(w.file.Certificates[i].ID, id) {
			fc = &w.file.Certificates[i]
		}
	}
	return &state.Certificate{Meta: state.Meta{ID: id, CreatedAt: w.started}, Cert: fc.Cert, Key: fc.Key, CertAlt: fc.CertAlt, KeyAlt: fc.KeyAlt,
		CertFile: fc.CertFile, KeyFile: fc.KeyFile, CertAltFile: fc.CertAltFile, KeyAltFile: fc.KeyAltFile,
		SNIs: snis, Tags: slices.Clone(fc.Tags)}
}

// putCertificate stores c (checked) as the Doc's certificate of its id,
// and makes its SNI entities those c.SNIs names: the others of the
// certificate are deleted, the new ones created at now.
func (w *world) putCertificate(c *state.Certificate, now int64) error {
	owners := w.sniOwners(c.ID)
	for _, n := range c.SNIs {
		if other, taken := owners[n]; taken {
			return fieldError("snis", "%s already associated with existing certificate '%s'", n, other)
		}
	}
	var current []string
	for _, s := range w.eff.SNIs {
		if sameID(s.Certificate, c.ID) {
			current = append(current, s.Name)
		}
	}
	for _, n := range current {
		if !slices.Contains(c.SNIs, n) {
			w.k.sni.remove(w, n, now)
		}
	}
	for _, n := range c.SNIs {
		if !slices.Contains(current, n) {
			w.doc.SNIs[n] = &state.SNI{Meta: state.Meta{ID: newID(), CreatedAt: now, UpdatedAt: now}, Name: n, Certificate: c.ID}
		}
	}
	c.SNIs = nil
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
		scratch = base.Clone()
	}
	if err := apply(scratch); err != nil {
		return nil, err
	}
	return apply, nil
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
