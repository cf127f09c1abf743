package state

import (
	"cmp"
	"slices"

	"github.com/outrigger-gw/outrigger/config"
)

// Certificate is an admin-owned certificates entity (Kong's), keyed in
// Doc.Certificates by its id. Its pair is inline PEM; a certificate of the
// file whose pair comes from files keeps those files (CertFile...) when
// the API changes only its SNIs or tags.
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
