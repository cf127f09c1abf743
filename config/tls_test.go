package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outrigger-gw/outrigger/internal/certtest"
)

func TestListeners(t *testing.T) {
	for _, tc := range []struct {
		desc, src string
		want      []Listener
		listen    string
	}{
		{desc: "one address", src: "proxy:\n  listen: 127.0.0.1:9000\n",
			want: []Listener{{Address: "127.0.0.1:9000"}}, listen: "127.0.0.1:9000"},
		{desc: "h2c alias", src: "proxy:\n  listen: 127.0.0.1:9000\n  h2c: true\n",
			want: []Listener{{Address: "127.0.0.1:9000", HTTP2: true}}, listen: "127.0.0.1:9000"},
		{desc: "Kong's comma-separated proxy_listen",
			src:    "proxy:\n  listen: 0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 http2 ssl reuseport backlog=16384\n",
			want:   []Listener{{Address: "0.0.0.0:8000", ReusePort: true, Backlog: 16384}, {Address: "0.0.0.0:8443", SSL: true, HTTP2: true, ReusePort: true, Backlog: 16384}},
			listen: "0.0.0.0:8000"},
		{desc: "a list; h2c applies to plaintext listeners",
			src:    "proxy:\n  h2c: true\n  listen:\n    - 127.0.0.1:8000\n    - \"[::]:8443 ssl http2\"\n    - 127.0.0.1:8001 http2 bind\n",
			want:   []Listener{{Address: "127.0.0.1:8000", HTTP2: true}, {Address: "[::]:8443", SSL: true, HTTP2: true}, {Address: "127.0.0.1:8001", HTTP2: true}},
			listen: "127.0.0.1:8000"},
		{desc: "no proxy section", src: "log:\n  level: info\n",
			want: []Listener{{Address: DefaultProxyListen}}, listen: DefaultProxyListen},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := mustParse(t, tc.src, nil)
			got := f.Proxy.Listeners
			for i := range got {
				got[i].Pos = Pos{}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || f.Proxy.Listen != tc.listen {
				t.Errorf("listeners %+v (listen %s), want %+v (listen %s)", got, f.Proxy.Listen, tc.want, tc.listen)
			}
		})
	}
}

func TestTLSErrors(t *testing.T) {
	const certID, otherID = "6b2d9e4a-7c1f-4a3b-9d8e-1f2a3b4c5d6e", "0c7a4e1f-9d2b-4b6a-8e3f-5a1d2c3b4e5f"
	ca := certtest.NewCA(t, "config test CA")
	a, b := ca.Server(t, "a.test"), ca.Server(t, "b.test")
	dir := t.TempDir()
	certPath, keyPath := a.WriteFiles(t, dir, "a")
	indent := func(pem []byte) string {
		return "      " + strings.ReplaceAll(strings.TrimSpace(string(pem)), "\n", "\n      ") + "\n"
	}
	inline := func(cert, key []byte) string {
		return "    cert: |\n" + indent(cert) + "    key: |\n" + indent(key)
	}
	good := inline(a.CertPEM, a.KeyPEM)
	for _, tc := range []struct {
		desc, src string
		want      []wantErr
	}{
		{desc: "unknown listen flag", src: "proxy:\n  listen: \"127.0.0.1:8443 ssl quic\"\n",
			want: []wantErr{{2, 11, `unknown flag "quic"`}}},
		{desc: "proxy_protocol refused", src: "proxy:\n  listen:\n    - 127.0.0.1:8000\n    - 127.0.0.1:8001 proxy_protocol\n",
			want: []wantErr{{4, 7, "the PROXY protocol is not supported"}}},
		{desc: "bad backlog", src: "proxy:\n  listen: 127.0.0.1:8000 backlog=x\n",
			want: []wantErr{{2, 11, "backlog must be an integer"}}},
		{desc: "bad address in a list", src: "proxy:\n  listen:\n    - 127.0.0.1:8000\n    - nope ssl\n",
			want: []wantErr{{4, 7, "is not host:port"}}},
		{desc: "a listener twice", src: "proxy:\n  listen: [\"127.0.0.1:8000\", \"127.0.0.1:8000 ssl\"]\n",
			want: []wantErr{{2, 30, "listed twice"}}},
		{desc: "ssl with net/http", src: "proxy:\n  engine: net/http\n  listen: \"127.0.0.1:8443 ssl\"\n",
			want: []wantErr{{3, 11, "ssl needs proxy.engine h1"}}},
		{desc: "verify client without a CA", src: "proxy:\n  ssl_verify_client: on\n",
			want: []wantErr{{2, 22, "needs ssl_client_certificate"}}},
		{desc: "bad verify mode", src: "proxy:\n  ssl_verify_client: maybe\n",
			want: []wantErr{{2, 22, "ssl_verify_client"}}},
		{desc: "CA bundle not PEM", src: "proxy:\n  ssl_client_certificate: " + keyPath + "\n",
			want: []wantErr{{2, 27, "no PEM certificate found"}}},
		{desc: "key of another certificate", src: "certificates:\n  - snis: [a.test]\n" + inline(a.CertPEM, b.KeyPEM),
			want: []wantErr{{3, 5, "private key does not match public key"}}},
		{desc: "cert and key_file mixed", src: "certificates:\n  - cert_file: " + certPath + "\n" + good,
			want: []wantErr{{2, 5, "either cert and key"}}},
		{desc: "no pair", src: "certificates:\n  - snis: [a.test]\n",
			want: []wantErr{{2, 5, "cert and key (inline PEM) or cert_file and key_file are required"}}},
		{desc: "key_file missing", src: "certificates:\n  - cert_file: " + certPath + "\n",
			want: []wantErr{{2, 5, "key_file: cert_file and key_file go together"}}},
		{desc: "file missing", src: "certificates:\n  - cert_file: " + filepath.Join(dir, "nope.crt") + "\n    key_file: " + keyPath + "\n",
			want: []wantErr{{2, 16, "no such file"}}},
		{desc: "bad SNI", src: "certificates:\n  - snis: [\"a.*.test\"]\n" + good,
			want: []wantErr{{2, 12, "invalid wildcard"}}},
		{desc: "SNI twice", src: "certificates:\n  - snis: [a.test]\n" + good + "  - snis: [A.test]\n" + good,
			want: []wantErr{{3 + strings.Count(good, "\n"), 12, "a.test already belongs to the certificate at line 2"}}},
		{desc: "top-level SNI of no certificate", src: "certificates:\n  - id: " + certID + "\n" + good + "snis:\n  - name: b.test\n    certificate: " + otherID + "\n",
			want: []wantErr{{4 + strings.Count(good, "\n"), 5, "certificate: no certificate has the id \"" + otherID + "\""}}},
		{desc: "top-level SNI without certificate", src: "certificates:\n  - id: " + certID + "\n" + good + "snis:\n  - name: b.test\n",
			want: []wantErr{{4 + strings.Count(good, "\n"), 5, "certificate: required field missing"}}},
		{desc: "top-level SNI taken", src: "certificates:\n  - id: " + certID + "\n    snis: [a.test]\n" + good + "snis:\n  - name: A.test\n    certificate: {id: " + certID + "}\n",
			want: []wantErr{{5 + strings.Count(good, "\n"), 11, "a.test already belongs to the certificate at line 3"}}},
		{desc: "top-level SNI bad wildcard", src: "certificates:\n  - id: " + certID + "\n" + good + "snis:\n  - name: \"a.*.b\"\n    certificate: " + certID + "\n",
			want: []wantErr{{4 + strings.Count(good, "\n"), 11, "invalid wildcard"}}},
		{desc: "two defaults", src: "certificates:\n  - default: true\n" + good + "  - default: true\n" + good,
			want: []wantErr{{3 + strings.Count(good, "\n"), 5, "only one certificate may be the default"}}},
		{desc: "bad id", src: "certificates:\n  - id: x\n" + good,
			want: []wantErr{{2, 9, "expected a UUID"}}},
		{desc: "unknown certificate key", src: "certificates:\n  - pem: x\n" + good,
			want: []wantErr{{2, 5, `unknown field "pem"`}}},
	} {
		t.Run(tc.desc, func(t *testing.T) { checkErrors(t, tc.src, nil, tc.want) })
	}
}

func TestCertificates(t *testing.T) {
	ca := certtest.NewCA(t, "config test CA")
	a := ca.Server(t, "a.test")
	dir := t.TempDir()
	certPath, keyPath := a.WriteFiles(t, dir, "a")
	src := "certificates:\n  - cert_file: " + certPath + "\n    key_file: " + keyPath + "\n    snis: [A.test, \"*.a.test\"]\n    tags: [x]\n" +
		"  - id: 5F1E0C9A-3B7D-4E2A-8C61-0D9F4B2A7E13\n    cert_file: " + certPath + "\n    key_file: " + keyPath + "\n    default: true\n"
	f := mustParse(t, src, nil)
	if len(f.Certificates) != 2 {
		t.Fatalf("certificates = %+v", f.Certificates)
	}
	c0, c1 := f.Certificates[0], f.Certificates[1]
	if c0.ID != StableID("certificate", "a.test") || fmt.Sprint(c0.SNIs) != "[a.test *.a.test]" || !c0.FromFiles() || c0.Default {
		t.Errorf("first = %+v", c0)
	}
	if c1.ID != "5f1e0c9a-3b7d-4e2a-8c61-0d9f4b2a7e13" || !c1.Default {
		t.Errorf("second = %+v", c1)
	}
	// The derived id is stable across parses.
	if again := mustParse(t, src, nil); again.Certificates[0].ID != c0.ID {
		t.Errorf("id changed: %s, %s", again.Certificates[0].ID, c0.ID)
	}
}

// TestSNIEntities: a certificate's snis (names or {name, tags}) and the
// top-level snis (Kong's declarative entities) become File.SNIs, and each
// certificate's SNIs lists its names.
func TestSNIEntities(t *testing.T) {
	ca := certtest.NewCA(t, "config test CA")
	certPath, keyPath := ca.Server(t, "a.test").WriteFiles(t, t.TempDir(), "a")
	const id = "5f1e0c9a-3b7d-4e2a-8c61-0d9f4b2a7e13"
	src := "snis:\n  - name: b.*\n    certificate: {id: " + id + "}\n  - name: c.test\n    certificate: " + id + "\n    tags: [top]\n" +
		"certificates:\n  - id: " + id + "\n    cert_file: " + certPath + "\n    key_file: " + keyPath + "\n    snis: [A.test, {name: \"*.a.test\", tags: [w]}]\n"
	f := mustParse(t, src, nil)
	if got := fmt.Sprint(f.Certificates[0].SNIs); got != "[a.test *.a.test b.* c.test]" {
		t.Errorf("certificate snis = %s", got)
	}
	var got []string
	for _, s := range f.SNIs {
		if s.Certificate != id || s.ID != StableID("sni", s.Name) {
			t.Errorf("sni %+v", s)
		}
		got = append(got, s.Name+fmt.Sprint(s.Tags))
	}
	if fmt.Sprint(got) != "[a.test[] *.a.test[w] b.*[] c.test[top]]" {
		t.Errorf("snis = %v", got)
	}
}

// TestSNIsDeclarative: a declarative document takes SNIs nested under a
// certificate and at the top level, with ids and tags; its export nests
// them under their certificate (decK's layout), a name alone when id and
// tags are the defaults, and reads back to the same SNIs.
func TestSNIsDeclarative(t *testing.T) {
	ca := certtest.NewCA(t, "config test CA")
	certPath, keyPath := ca.Server(t, "a.test").WriteFiles(t, t.TempDir(), "a")
	const id, sniID = "5f1e0c9a-3b7d-4e2a-8c61-0d9f4b2a7e13", "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
	src := "_format_version: \"3.0\"\nsnis:\n  - name: c.test\n    id: " + strings.ToUpper(sniID) + "\n    certificate: {id: " + id + "}\n    tags: [top]\n" +
		"certificates:\n  - id: " + id + "\n    cert_file: " + certPath + "\n    key_file: " + keyPath + "\n    snis: [a.test, {name: b.test, tags: [w]}]\n"
	d, err := ParseDeclarative("config", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	f := WithEntities(&File{}, d)
	if len(f.SNIs) != 3 || f.SNIs[2].ID != sniID || fmt.Sprint(f.SNIs[2].Tags) != "[top]" {
		t.Fatalf("snis %+v", f.SNIs)
	}
	out, err := Export(f)
	if err != nil {
		t.Fatal(err)
	}
	want := "    snis:\n      - a.test\n      - name: b.test\n        tags:\n          - w\n      - name: c.test\n        id: " + sniID + "\n        tags:\n          - top\n"
	if !strings.Contains(string(out), want) {
		t.Fatalf("export:\n%s\nwant snis:\n%s", out, want)
	}
	d2, err := ParseDeclarative("config", out)
	if err != nil {
		t.Fatal(err)
	}
	noPos := func(l []SNI) string {
		for i := range l {
			l[i].Pos = Pos{}
		}
		return fmt.Sprint(l)
	}
	if a, b := noPos(WithEntities(&File{}, d2).SNIs), noPos(f.SNIs); a != b {
		t.Fatalf("read back %s, want %s", a, b)
	}
}
