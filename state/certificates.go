package state

import (
	"cmp"
	"maps"
	"slices"

	"github.com/outrigger-gw/outrigger/config"
)

// Certificate is an admin-owned certificates entity (Kong's), keyed in
// Doc.Certificates by its id. Its pair is inline PEM; a certificate of the
// file whose pair comes from files keeps those files (CertFile...) when
// the API changes only its SNIs or tags. Its names are SNI entities
// (Doc.SNIs); SNIs is only read from layers written before those existed
// (its names become SNIs of the certificate unless an SNI entity has them).
type Certificate struct {
	Meta
	Cert        string   `json:"cert,omitempty"`
	Key         string   `json:"key,omitempty"`
	CertAlt     string   `json:"cert_alt,omitempty"`
	KeyAlt      string   `json:"key_alt,omitempty"`
	CertFile    string   `json:"cert_file,omitempty"`
	KeyFile     string   `json:"key_file,omitempty"`
	CertAltFile string   `json:"cert_alt_file,omitempty"`
	KeyAltFile  string   `json:"key_alt_file,omitempty"`
	SNIs        []string `json:"snis,omitempty"`
	Tags        []string `json:"tags,omitempty"`
}

// mergeCertificates layers the Doc's certificates over the file's, by id:
// a Doc entity replaces the file's of the same id (keeping its default
// mark), a tombstone hides it, the others follow in creation order.
func mergeCertificates(file []config.Certificate, doc map[string]*Certificate) []config.Certificate {
	out := make([]config.Certificate, 0, len(file)+len(doc))
	seen := map[string]bool{}
	for _, fc := range file {
		seen[fc.ID] = true
		e, ok := doc[fc.ID]
		switch {
		case !ok:
			out = append(out, fc)
		case e.Deleted:
		default:
			c := e.toConfig(fc.ID)
			c.Pos, c.Default = fc.Pos, fc.Default
			out = append(out, c)
		}
	}
	var added []*Certificate
	for id, e := range doc {
		if !seen[id] && !e.Deleted {
			if e.ID == "" {
				e.ID = id
			}
			added = append(added, e)
		}
	}
	slices.SortFunc(added, func(a, b *Certificate) int {
		return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	for _, e := range added {
		out = append(out, e.toConfig(e.ID))
	}
	return out
}

func (c *Certificate) toConfig(id string) config.Certificate {
	return config.Certificate{
		ID: id, Cert: c.Cert, Key: c.Key, CertAlt: c.CertAlt, KeyAlt: c.KeyAlt,
		CertFile: c.CertFile, KeyFile: c.KeyFile, CertAltFile: c.CertAltFile, KeyAltFile: c.KeyAltFile,
		SNIs: slices.Clone(c.SNIs), Tags: slices.Clone(c.Tags),
	}
}

// SNI is an admin-owned snis entity (Kong's), keyed in Doc.SNIs by its
// name: a name its certificate (an id) serves.
type SNI struct {
	Meta
	Name        string   `json:"name"`
	Certificate string   `json:"certificate"`
	Tags        []string `json:"tags,omitempty"`
}

func (s *SNI) toConfig() config.SNI {
	return config.SNI{ID: s.ID, Name: s.Name, Certificate: s.Certificate, Tags: slices.Clone(s.Tags)}
}

// mergeSNIs layers the Doc's SNIs over the file's, by name, keeps those
// whose certificate is in force and sets each certificate's SNIs to the
// names it serves, in order.
func mergeSNIs(file []config.SNI, d *Doc, certs []config.Certificate) []config.SNI {
	all := mergeList(file, d.SNIs, func(s config.SNI) string { return s.Name },
		func(e *SNI) (string, Meta) { return e.Name, e.Meta }, func(e *SNI, _ *config.SNI) config.SNI { return e.toConfig() })
	taken := map[string]bool{}
	for _, s := range all {
		taken[s.Name] = true
	}
	for _, id := range slices.Sorted(maps.Keys(d.Certificates)) {
		c := d.Certificates[id]
		for _, n := range c.SNIs {
			if !c.Deleted && !taken[n] {
				taken[n] = true
				all = append(all, config.SNI{ID: config.StableID("sni", n), Name: n, Certificate: id, Tags: []string{}})
			}
		}
	}
	byCert := make(map[string]int, len(certs))
	for i := range certs {
		byCert[certs[i].ID] = i
		certs[i].SNIs = []string{}
	}
	out := all[:0]
	for _, s := range all {
		if i, ok := byCert[s.Certificate]; ok {
			certs[i].SNIs = append(certs[i].SNIs, s.Name)
			out = append(out, s)
		}
	}
	return out
}
