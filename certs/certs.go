// Package certs holds the certificates the proxy listener terminates TLS
// with, and picks one per handshake by the name the client asks for (SNI).
//
// Contract:
//   - A Set is immutable: built once from Entries (NewSet validates every
//     pair and refuses an SNI used twice) and read by any number of
//     handshakes at once.
//   - Selection (Set.Certificate), as Kong's: the exact name first, then a
//     leading wildcard "*.example.com" (which matches exactly one label in
//     front of example.com), then a trailing wildcard "example.*" (which
//     matches exactly one last label after example), then the default
//     certificate, else an error, which
//     makes crypto/tls fail the handshake with an alert. The default is
//     the entry marked Default, else the first entry without SNIs. A
//     client that sends no SNI (it dialled an IP address) gets the
//     default.
//   - An entry may hold several key pairs (Kong's cert and cert_alt, an
//     RSA and an ECDSA one): the first one the client supports is served.
//   - A Store keeps the Set in force behind an atomic pointer: handshakes
//     never wait for a reload and connections are never dropped by one.
//     Entries loaded from files are read again when the files change (a
//     poll of their content hash) and on Reload; a
//     file that does not load keeps the entry's previous pair in force and
//     is reported (error log and a counter).
//   - Nothing here is package-level mutable state.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
)

// ParsePair parses a PEM certificate chain (leaf first) and its PEM
// private key, and checks that the key belongs to the leaf.
func ParsePair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	if len(strings.TrimSpace(string(certPEM))) == 0 {
		return nil, errors.New("no certificate")
	}
	if len(strings.TrimSpace(string(keyPEM))) == 0 {
		return nil, errors.New("no private key")
	}
	if b, _ := pem.Decode(certPEM); b == nil {
		return nil, errors.New("invalid certificate: not PEM")
	}
	if b, _ := pem.Decode(keyPEM); b == nil {
		return nil, errors.New("invalid key: not PEM")
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("invalid certificate/key pair: %s", strings.TrimPrefix(err.Error(), "tls: "))
	}
	if c.Leaf == nil {
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("invalid certificate: %v", err)
		}
		c.Leaf = leaf
	}
	return &c, nil
}

// ParseCAs parses a PEM bundle of CA certificates.
func ParseCAs(bundle []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := bundle; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("invalid CA certificate: %v", err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return pool, nil
}

// CheckName validates an SNI name and returns it lower-cased: a host name
// (dot-separated labels of letters, digits, '-' and '_'), or one with a
// single wildcard label, leftmost ("*.example.com") or rightmost
// ("example.*"), as Kong's wildcard hosts. IP addresses and ports are
// refused (TLS clients send no IP address as SNI).
func CheckName(s string) (string, error) {
	if s == "" {
		return "", errors.New("must not be empty")
	}
	name := strings.ToLower(strings.TrimSuffix(s, "."))
	if net.ParseIP(strings.Trim(name, "[]")) != nil {
		return "", errors.New("must not be an IP address")
	}
	if strings.Contains(name, ":") {
		return "", errors.New("must not have a port")
	}
	if strings.Count(name, "*") > 1 {
		return "", errors.New("invalid wildcard: only one wildcard must be specified")
	}
	host := name
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		host = rest
	} else if rest, ok := strings.CutSuffix(name, ".*"); ok {
		host = rest
	}
	if len(host) > 253 {
		return "", errors.New("too long")
	}
	labels := strings.Split(host, ".")
	for _, l := range labels {
		if l == "" {
			return "", errors.New("invalid name: empty label")
		}
		if strings.Contains(l, "*") {
			return "", errors.New("invalid wildcard: the wildcard must be a whole leftmost or rightmost label ('*.example.com' or 'example.*')")
		}
		if len(l) > 63 {
			return "", errors.New("invalid name: label longer than 63 characters")
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return "", fmt.Errorf("invalid name: character %q", r)
			}
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", errors.New("invalid name: a label starts or ends with '-'")
		}
	}
	if strings.HasPrefix(name, "*.") && len(labels) < 2 {
		return "", errors.New("invalid wildcard: '*.' needs at least two labels after it")
	}
	return name, nil
}

// Entry is one certificate entity: its key pairs and the names it serves.
type Entry struct {
	ID      string
	SNIs    []string // checked with CheckName
	Default bool
	// Pairs holds at least one key pair; the first the client supports is
	// served.
	Pairs []*tls.Certificate
}

// Set is an immutable index of entries by name.
type Set struct {
	exact   map[string]*Entry
	wild    map[string]*Entry // by the part after "*."
	suffix  map[string]*Entry // by the part before ".*"
	def     *Entry
	entries []*Entry
}

// DuplicateSNIError is returned by NewSet for a name two entries claim.
type DuplicateSNIError struct {
	Name        string
	First, Then string // the entries' ids
}

func (e *DuplicateSNIError) Error() string {
	return fmt.Sprintf("%s already associated with existing certificate '%s'", e.Name, e.First)
}

// NewSet indexes entries. It refuses an entry without a key pair, an
// invalid name, a name two entries claim and two default entries.
func NewSet(entries []Entry) (*Set, error) {
	s := &Set{exact: map[string]*Entry{}, wild: map[string]*Entry{}, suffix: map[string]*Entry{}}
	owner := map[string]string{}
	var firstBare *Entry
	for i := range entries {
		e := &entries[i]
		if len(e.Pairs) == 0 || e.Pairs[0] == nil {
			return nil, fmt.Errorf("certificate %s: no key pair", e.ID)
		}
		for j, raw := range e.SNIs {
			name, err := CheckName(raw)
			if err != nil {
				return nil, fmt.Errorf("certificate %s: sni %q: %v", e.ID, raw, err)
			}
			e.SNIs[j] = name
			if prev, dup := owner[name]; dup {
				return nil, &DuplicateSNIError{Name: name, First: prev, Then: e.ID}
			}
			owner[name] = e.ID
			if rest, ok := strings.CutPrefix(name, "*."); ok {
				s.wild[rest] = e
			} else if rest, ok := strings.CutSuffix(name, ".*"); ok {
				s.suffix[rest] = e
			} else {
				s.exact[name] = e
			}
		}
		if e.Default {
			if s.def != nil {
				return nil, fmt.Errorf("certificates %s and %s are both marked default", s.def.ID, e.ID)
			}
			s.def = e
		}
		if len(e.SNIs) == 0 && firstBare == nil {
			firstBare = e
		}
		s.entries = append(s.entries, e)
	}
	if s.def == nil {
		s.def = firstBare
	}
	return s, nil
}

// Len is the number of entries.
func (s *Set) Len() int { return len(s.entries) }

// Lookup returns the entry serving name (already lower-cased or not) and
// how it matched: "exact", "wildcard" or "default"; nil when none does.
func (s *Set) Lookup(name string) (*Entry, string) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if name != "" {
		if e := s.exact[name]; e != nil {
			return e, "exact"
		}
		if i := strings.IndexByte(name, '.'); i > 0 {
			if e := s.wild[name[i+1:]]; e != nil {
				return e, "wildcard"
			}
		}
		if i := strings.LastIndexByte(name, '.'); i > 0 {
			if e := s.suffix[name[:i]]; e != nil {
				return e, "wildcard"
			}
		}
	}
	if s.def != nil {
		return s.def, "default"
	}
	return nil, ""
}

// ErrNoCertificate fails a handshake no entry serves.
var ErrNoCertificate = errors.New("no certificate for this server name")

// Certificate is a tls.Config.GetCertificate: the pair to serve for hello.
func (s *Set) Certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	e, _ := s.Lookup(hello.ServerName)
	if e == nil {
		return nil, ErrNoCertificate
	}
	if len(e.Pairs) > 1 {
		for _, p := range e.Pairs {
			if hello.SupportsCertificate(p) == nil {
				return p, nil
			}
		}
	}
	return e.Pairs[0], nil
}
