package config

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/outrigger-gw/outrigger/certs"
)

// Listener is one proxy listener: Kong's proxy_listen entry
// "ADDRESS [ssl] [http2] [reuseport] [backlog=N]".
type Listener struct {
	Pos Pos
	// Address is the normalised "host:port".
	Address string
	// SSL terminates TLS (certificates from the certificates entities).
	SSL bool
	// HTTP2 serves HTTP/2: negotiated with ALPN on an SSL listener, with
	// prior knowledge (h2c) on a plaintext one.
	HTTP2 bool
	// ReusePort sets SO_REUSEPORT on the socket.
	ReusePort bool
	// Backlog is Kong's backlog=N, accepted for compatibility: Go listens
	// with the kernel's somaxconn, which caps any backlog anyway.
	Backlog int
}

// String is the listener in Kong's syntax.
func (l Listener) String() string {
	s := l.Address
	if l.SSL {
		s += " ssl"
	}
	if l.HTTP2 {
		s += " http2"
	}
	if l.ReusePort {
		s += " reuseport"
	}
	if l.Backlog > 0 {
		s += " backlog=" + strconv.Itoa(l.Backlog)
	}
	return s
}

// Listeners returns the proxy listeners in force: Listeners, or one built
// from Listen and H2C (a configuration made in code).
func (p Proxy) ListenersOrDefault() []Listener {
	if len(p.Listeners) > 0 {
		return p.Listeners
	}
	return []Listener{{Address: p.Listen, HTTP2: p.H2C}}
}

// HasSSL reports whether a listener terminates TLS.
func (p Proxy) HasSSL() bool {
	for _, l := range p.ListenersOrDefault() {
		if l.SSL {
			return true
		}
	}
	return false
}

// Client certificate verification (proxy.ssl_verify_client, as nginx's).
const (
	VerifyClientOff      = "off"
	VerifyClientOn       = "on"
	VerifyClientOptional = "optional"
)

// DefaultSSLPollInterval is how often certificate files are checked for
// changes.
const DefaultSSLPollInterval = 5 * time.Second

// Certificate is a certificates entity (Kong's): a PEM key pair given
// inline or as files, and the SNIs it serves.
type Certificate struct {
	Pos Pos
	// ID is the entity's UUID: given, or derived from its first SNI, its
	// cert_file or its position (StableID).
	ID string
	// Cert and Key are inline PEM; CertAlt and KeyAlt an optional second
	// pair (another key type).
	Cert, Key, CertAlt, KeyAlt string
	// CertFile and KeyFile (and the alt ones) are paths read at start,
	// when they change, and on SIGHUP.
	CertFile, KeyFile, CertAltFile, KeyAltFile string
	// SNIs are lower-cased names, exact or "*.suffix".
	SNIs []string
	Tags []string
	// Default serves clients whose SNI no certificate names.
	Default bool
}

// SNI is an snis entity (Kong's): a name a certificate serves.
type SNI struct {
	Pos Pos
	// ID is the id given (a UUID), or derived from the name (StableID
	// "sni").
	ID string
	// Name is lower-cased, exact or a wildcard (certs.CheckName).
	Name string
	// Certificate is the id of the certificate serving Name.
	Certificate string
	Tags        []string
}

// FromFiles reports whether the pair is read from files.
func (c *Certificate) FromFiles() bool { return c.CertFile != "" }

// Source converts c for the certificate store.
func (c *Certificate) Source() certs.Source {
	return certs.Source{ID: c.ID, SNIs: append([]string(nil), c.SNIs...), Default: c.Default,
		Cert: []byte(c.Cert), Key: []byte(c.Key), CertAlt: []byte(c.CertAlt), KeyAlt: []byte(c.KeyAlt),
		CertFile: c.CertFile, KeyFile: c.KeyFile, CertAltFile: c.CertAltFile, KeyAltFile: c.KeyAltFile}
}

// idNamespace is the UUID namespace of ids derived from names (UUIDv5).
const idNamespace = "7a1c5d1e-0b8f-4c3e-9f2d-6f7574726967"

// StableID returns the version 5 UUID of kind and name: the id of an
// entity of the file that has none, the same at every start.
func StableID(kind, name string) string {
	ns, _ := hex.DecodeString(strings.ReplaceAll(idNamespace, "-", ""))
	h := sha1.New()
	h.Write(ns)
	h.Write([]byte(kind + "\x00" + name))
	var b [16]byte
	copy(b[:], h.Sum(nil))
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

// NewID returns a random (version 4) UUID: the id of an entity created
// without one.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}

func formatUUID(b [16]byte) string {
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// proxyListen decodes proxy.listen: one address, a comma-separated Kong
// proxy_listen string, or a list of entries.
func (d *decoder) proxyListen(p *Proxy, at **yaml.Node) func(*yaml.Node) {
	return func(v *yaml.Node) {
		v = deref(v)
		var out []Listener
		ok := true
		one := func(s string, n *yaml.Node) {
			for _, part := range strings.Split(s, ",") {
				l, err := parseListener(part)
				if err != nil {
					d.errorf(n, "listen: %v", err)
					ok = false
					continue
				}
				l.Pos = pos(n)
				out = append(out, l)
			}
		}
		if v.Kind == yaml.SequenceNode {
			if len(v.Content) == 0 {
				d.errorf(v, "listen: the list is empty")
				return
			}
			d.list(v, "listen", func(item *yaml.Node) {
				if s, good := d.str(item, "listen"); good {
					one(s, item)
				} else {
					ok = false
				}
			})
		} else if s, good := d.str(v, "listen"); good {
			one(s, v)
		} else {
			return
		}
		if !ok || len(out) == 0 {
			return
		}
		seen := map[string]bool{}
		for _, l := range out {
			if seen[l.Address] && !strings.HasSuffix(l.Address, ":0") {
				d.errorAt(l.Pos, "listen: %s is listed twice", l.Address)
				return
			}
			seen[l.Address] = true
		}
		p.Listen, p.Listeners, *at = out[0].Address, out, v
	}
}

// parseListener parses one Kong proxy_listen entry.
func parseListener(s string) (Listener, error) {
	words := strings.Fields(s)
	if len(words) == 0 {
		return Listener{}, fmt.Errorf("empty listen entry")
	}
	addr, err := normalizeHostPort(words[0], 0, true)
	if err != nil {
		return Listener{}, err
	}
	l := Listener{Address: addr}
	for _, w := range words[1:] {
		name, val, hasVal := strings.Cut(w, "=")
		switch {
		case w == "ssl":
			l.SSL = true
		case w == "http2":
			l.HTTP2 = true
		case w == "reuseport":
			l.ReusePort = true
		case name == "backlog" && hasVal:
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 1<<20 {
				return Listener{}, fmt.Errorf("%s: backlog must be an integer between 1 and 1048576", quote(w))
			}
			l.Backlog = n
		case w == "bind":
			// nginx's bind: every listener binds its own socket here.
		case w == "proxy_protocol":
			return Listener{}, fmt.Errorf("%s: the PROXY protocol is not supported", quote(w))
		case w == "deferred", name == "ipv6only", name == "so_keepalive":
			return Listener{}, fmt.Errorf("%s is not supported", quote(w))
		default:
			return Listener{}, fmt.Errorf("unknown flag %s in %s; expected ssl, http2, reuseport, backlog=N or bind", quote(w), quote(strings.TrimSpace(s)))
		}
	}
	return l, nil
}

// finishProxy completes the proxy section once every key was read.
func (d *decoder) finishProxy(p *Proxy, verify *yaml.Node) {
	if len(p.Listeners) == 0 {
		p.Listeners = []Listener{{Address: p.Listen}}
	}
	if p.H2C {
		for i := range p.Listeners {
			if !p.Listeners[i].SSL {
				p.Listeners[i].HTTP2 = true
			}
		}
	}
	if p.Engine == EngineNetHTTP {
		for _, l := range p.Listeners {
			if l.SSL {
				d.errorAt(l.Pos, "listen: %s: ssl needs proxy.engine %s", l.Address, EngineH1)
				break
			}
		}
	}
	if p.SSLVerifyClient != VerifyClientOff && p.SSLClientCertificate == "" && verify != nil {
		d.errorf(verify, "ssl_verify_client: %s needs ssl_client_certificate (a CA bundle)", p.SSLVerifyClient)
	}
}

// checkReadable checks that a file named in the configuration can be read
// now.
func checkReadable(path string) error {
	if path == "" {
		return fmt.Errorf("must not be empty")
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// caBundleField decodes ssl_client_certificate, checking the bundle.
func (d *decoder) caBundleField(dst *string) func(*yaml.Node) {
	return func(v *yaml.Node) {
		s, ok := d.str(v, "ssl_client_certificate")
		if !ok {
			return
		}
		b, err := os.ReadFile(s)
		if err == nil {
			_, err = certs.ParseCAs(b)
		}
		if err != nil {
			d.errorf(deref(v), "ssl_client_certificate: %v", err)
			return
		}
		*dst = s
	}
}

// certificates decodes the top-level certificates list.
func (d *decoder) certificates(n *yaml.Node, f *File, owner map[string]*yaml.Node) {
	ids := map[string]*yaml.Node{}
	var def *yaml.Node
	i := 0
	d.list(n, "certificates", func(item *yaml.Node) {
		c, snis, ok := d.certificate(item, i, owner)
		i++
		if !ok {
			return
		}
		if prev, dup := ids[c.ID]; dup {
			d.errorf(item, "id: duplicate certificate id %s (first at line %d)", c.ID, prev.Line)
			return
		}
		ids[c.ID] = item
		for i := range snis {
			snis[i].Certificate = c.ID
		}
		f.SNIs = append(f.SNIs, snis...)
		if c.Default {
			if def != nil {
				d.errorf(item, "default: only one certificate may be the default (the first is at line %d)", def.Line)
				return
			}
			def = item
		}
		f.Certificates = append(f.Certificates, c)
	})
}

func (d *decoder) certificate(n *yaml.Node, index int, owner map[string]*yaml.Node) (Certificate, []SNI, bool) {
	c := Certificate{Pos: pos(n), SNIs: []string{}, Tags: []string{}}
	var snis []SNI
	before := len(d.errs)
	pem := func(dst *string, label string) func(*yaml.Node) {
		return func(v *yaml.Node) {
			if s, ok := d.str(v, label); ok {
				*dst = s
			}
		}
	}
	path := func(dst *string, label string) func(*yaml.Node) {
		return d.strField(dst, label, checkReadable)
	}
	seen := d.mapping(n, "certificate", "certificate", []field{
		{"id", d.strField(&c.ID, "id", func(s string) error {
			if !IsUUID(s) {
				return fmt.Errorf("expected a UUID")
			}
			return nil
		})},
		{"cert", pem(&c.Cert, "cert")},
		{"key", pem(&c.Key, "key")},
		{"cert_alt", pem(&c.CertAlt, "cert_alt")},
		{"key_alt", pem(&c.KeyAlt, "key_alt")},
		{"cert_file", path(&c.CertFile, "cert_file")},
		{"key_file", path(&c.KeyFile, "key_file")},
		{"cert_alt_file", path(&c.CertAltFile, "cert_alt_file")},
		{"key_alt_file", path(&c.KeyAltFile, "key_alt_file")},
		{"snis", func(v *yaml.Node) {
			d.list(v, "snis", func(item *yaml.Node) {
				sni, ok := d.sni(item, owner, false)
				if ok {
					c.SNIs = append(c.SNIs, sni.Name)
					snis = append(snis, sni)
				}
			})
		}},
		{"tags", d.tags(&c.Tags)},
		{"default", d.boolField(&c.Default, "default")},
	})
	if seen == nil || len(d.errs) > before {
		return c, nil, false
	}
	key := func(k string) *yaml.Node {
		if e, ok := seen[k]; ok {
			return e.key
		}
		return n
	}
	_, inline := seen["cert"]
	_, files := seen["cert_file"]
	switch {
	case inline && files:
		d.errorf(key("cert_file"), "cert_file: give either cert and key (inline PEM) or cert_file and key_file, not both")
		return c, nil, false
	case !inline && !files:
		d.errorf(n, "certificate: cert and key (inline PEM) or cert_file and key_file are required")
		return c, nil, false
	}
	pairs := [][2]string{{"cert", "key"}, {"cert_alt", "key_alt"}, {"cert_file", "key_file"}, {"cert_alt_file", "key_alt_file"}}
	for _, p := range pairs {
		_, a := seen[p[0]]
		_, b := seen[p[1]]
		if a != b {
			missing := p[1]
			if b {
				missing = p[0]
			}
			at := p[0]
			if b {
				at = p[1]
			}
			d.errorf(key(at), "%s: %s and %s go together", missing, p[0], p[1])
			return c, nil, false
		}
	}
	if _, alt := seen["cert_alt"]; alt && files {
		d.errorf(key("cert_alt"), "cert_alt: use cert_alt_file with cert_file")
		return c, nil, false
	}
	if _, alt := seen["cert_alt_file"]; alt && inline {
		d.errorf(key("cert_alt_file"), "cert_alt_file: use cert_alt with inline cert")
		return c, nil, false
	}
	src := c.Source()
	var err error
	if inline {
		_, err = certs.ParsePair(src.Cert, src.Key)
		if err == nil && c.CertAlt != "" {
			if _, err = certs.ParsePair(src.CertAlt, src.KeyAlt); err != nil {
				d.errorf(key("cert_alt"), "cert_alt: %v", err)
				return c, nil, false
			}
		}
		if err != nil {
			d.errorf(key("cert"), "cert: %v", err)
			return c, nil, false
		}
	} else {
		for _, p := range [][2]string{{c.CertFile, c.KeyFile}, {c.CertAltFile, c.KeyAltFile}} {
			if p[0] == "" {
				continue
			}
			cb, err1 := os.ReadFile(p[0])
			kb, err2 := os.ReadFile(p[1])
			if err1 == nil && err2 == nil {
				_, err = certs.ParsePair(cb, kb)
			} else if err1 != nil {
				err = err1
			} else {
				err = err2
			}
			if err != nil {
				d.errorf(key("cert_file"), "cert_file: %v", err)
				return c, nil, false
			}
		}
	}
	if c.ID == "" {
		switch {
		case len(c.SNIs) > 0:
			c.ID = StableID("certificate", c.SNIs[0])
		case c.CertFile != "":
			c.ID = StableID("certificate", "file:"+c.CertFile)
		default:
			c.ID = StableID("certificate", "#"+strconv.Itoa(index))
		}
	}
	c.ID = strings.ToLower(c.ID)
	return c, snis, true
}

// sni decodes one snis entity: a name (in a certificate's snis), or a
// mapping {name, tags} and, at the top level (topLevel), certificate
// (an id or {id: ...}), as Kong's declarative format. owner holds the
// names already taken.
func (d *decoder) sni(n *yaml.Node, owner map[string]*yaml.Node, topLevel bool) (SNI, bool) {
	n = deref(n)
	s := SNI{Pos: pos(n), Tags: []string{}}
	before := len(d.errs)
	nameNode := n
	if n.Kind == yaml.ScalarNode && !topLevel {
		if v, ok := d.text(n, "snis"); ok {
			s.Name = v
		}
	} else {
		fields := []field{
			{"name", func(v *yaml.Node) {
				nameNode = v
				if t, ok := d.text(v, "name"); ok {
					s.Name = t
				}
			}},
			{"tags", d.tags(&s.Tags)},
			{"id", d.strField(&s.ID, "id", func(v string) error {
				if !IsUUID(v) {
					return fmt.Errorf("expected a UUID")
				}
				return nil
			})},
		}
		if topLevel {
			fields = append(fields, field{"certificate", func(v *yaml.Node) {
				v = deref(v)
				if v.Kind == yaml.MappingNode {
					d.mapping(v, "certificate", "certificate", []field{{"id", d.strField(&s.Certificate, "id", nil)}})
				} else if t, ok := d.text(v, "certificate"); ok {
					s.Certificate = t
				}
			}})
		}
		seen := d.mapping(n, "sni", "sni", fields)
		if seen == nil || len(d.errs) > before {
			return s, false
		}
		if _, ok := seen["name"]; !ok {
			d.errorf(n, "name: required field missing")
			return s, false
		}
		if _, ok := seen["certificate"]; topLevel && !ok {
			d.errorf(n, "certificate: required field missing")
			return s, false
		}
	}
	if len(d.errs) > before {
		return s, false
	}
	name, err := certs.CheckName(s.Name)
	if err != nil {
		d.errorf(nameNode, "snis: %s: %v", quote(s.Name), err)
		return s, false
	}
	if prev, dup := owner[name]; dup {
		d.errorf(nameNode, "snis: %s already belongs to the certificate at line %d", name, prev.Line)
		return s, false
	}
	owner[name] = nameNode
	s.Name = name
	if s.ID == "" {
		s.ID = StableID("sni", name)
	}
	s.ID, s.Certificate = strings.ToLower(s.ID), strings.ToLower(s.Certificate)
	return s, true
}

// topLevelSNIs decodes the top-level snis list once the certificates are
// known: each names its certificate by id.
func (d *decoder) topLevelSNIs(n *yaml.Node, f *File, owner map[string]*yaml.Node) {
	d.list(n, "snis", func(item *yaml.Node) {
		s, ok := d.sni(item, owner, true)
		if !ok {
			return
		}
		for i := range f.Certificates {
			if c := &f.Certificates[i]; c.ID == s.Certificate {
				c.SNIs = append(c.SNIs, s.Name)
				f.SNIs = append(f.SNIs, s)
				return
			}
		}
		d.errorf(item, "certificate: no certificate has the id %s", quote(s.Certificate))
	})
}
