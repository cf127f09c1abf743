package certs

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/internal/certtest"
)

func pair(t *testing.T, l *certtest.Leaf) *tls.Certificate {
	t.Helper()
	p, err := ParsePair(l.CertPEM, l.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// handshake dials a real TLS server on loopback serving get, asking for
// sni; it returns the leaf's common name, or the client's error.
func handshake(t *testing.T, get func(*tls.ClientHelloInfo) (*tls.Certificate, error), sni string) (string, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		tc := tls.Server(c, &tls.Config{GetCertificate: get, MinVersion: tls.VersionTLS12})
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		_ = tc.Handshake()
	}()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(),
		&tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func TestSelection(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	exact := ca.Server(t, "api.example.com")
	wild := ca.Server(t, "*.example.com")
	def := ca.Server(t, "default")
	suffix := ca.Server(t, "example.*")
	set, err := NewSet([]Entry{
		{ID: "wild", SNIs: []string{"*.example.com"}, Pairs: []*tls.Certificate{pair(t, wild)}},
		{ID: "exact", SNIs: []string{"API.example.com"}, Pairs: []*tls.Certificate{pair(t, exact)}},
		{ID: "default", Pairs: []*tls.Certificate{pair(t, def)}},
		{ID: "suffix", SNIs: []string{"example.*"}, Pairs: []*tls.Certificate{pair(t, suffix)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	noDefault, err := NewSet([]Entry{{ID: "exact", SNIs: []string{"api.example.com"}, Pairs: []*tls.Certificate{pair(t, exact)}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc, sni, want string
		set             *Set
	}{
		{desc: "exact beats wildcard", sni: "api.example.com", want: "api.example.com", set: set},
		{desc: "exact, any case", sni: "API.Example.COM", want: "api.example.com", set: set},
		{desc: "wildcard matches one label", sni: "www.example.com", want: "*.example.com", set: set},
		{desc: "wildcard does not match two labels", sni: "a.b.example.com", want: "default", set: set},
		{desc: "trailing wildcard matches the last label", sni: "example.org", want: "example.*", set: set},
		{desc: "trailing wildcard matches one label only", sni: "example.co.uk", want: "default", set: set},
		{desc: "leading wildcard beats trailing", sni: "x.example.com", want: "*.example.com", set: set},
		{desc: "no SNI gets the default", sni: "", want: "default", set: set},
		{desc: "unknown name gets the default", sni: "other.test", want: "default", set: set},
		{desc: "no default: handshake fails", sni: "other.test", want: "", set: noDefault},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := handshake(t, tc.set.Certificate, tc.sni)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("handshake succeeded with %q; want an alert", got)
				}
				if !strings.Contains(err.Error(), "remote error: tls:") {
					t.Fatalf("err = %v; want a TLS alert", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("served %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSetRefuses(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	p := pair(t, ca.Server(t, "a.test"))
	for _, tc := range []struct {
		desc    string
		entries []Entry
		want    string
	}{
		{desc: "an SNI twice", entries: []Entry{{ID: "1", SNIs: []string{"a.test"}, Pairs: []*tls.Certificate{p}}, {ID: "2", SNIs: []string{"A.test"}, Pairs: []*tls.Certificate{p}}},
			want: "a.test already associated with existing certificate '1'"},
		{desc: "two defaults", entries: []Entry{{ID: "1", Default: true, Pairs: []*tls.Certificate{p}}, {ID: "2", Default: true, Pairs: []*tls.Certificate{p}}},
			want: "both marked default"},
		{desc: "no pair", entries: []Entry{{ID: "1"}}, want: "no key pair"},
		{desc: "bad name", entries: []Entry{{ID: "1", SNIs: []string{"a.*.test"}, Pairs: []*tls.Certificate{p}}}, want: "wildcard"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := NewSet(tc.entries)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "Example.COM", want: "example.com"},
		{in: "*.example.com", want: "*.example.com"},
		{in: "a_b.example", want: "a_b.example"},
		{in: "", err: "empty"},
		{in: "*", err: "invalid"},
		{in: "*.com", err: "two labels"},
		{in: "a.*.com", err: "wildcard"},
		{in: "*foo.com", err: "wildcard"},
		{in: "Foo.*", want: "foo.*"},
		{in: "*.foo.*", err: "only one wildcard"},
		{in: "foo*.com", err: "wildcard"},
		{in: "10.0.0.1", err: "IP address"},
		{in: "a.test:443", err: "port"},
		{in: "a..test", err: "empty label"},
		{in: "-a.test", err: "'-'"},
		{in: "a b.test", err: "character"},
	} {
		got, err := CheckName(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("CheckName(%q) = %q, %v; want error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CheckName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParsePairRefuses(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	a, b := ca.Server(t, "a.test"), ca.Server(t, "b.test")
	for _, tc := range []struct {
		desc      string
		cert, key []byte
		want      string
	}{
		{desc: "key of another cert", cert: a.CertPEM, key: b.KeyPEM, want: "private key does not match public key"},
		{desc: "not PEM", cert: []byte("hello"), key: a.KeyPEM, want: "not PEM"},
		{desc: "no key", cert: a.CertPEM, key: nil, want: "no private key"},
		{desc: "key as cert", cert: a.KeyPEM, key: a.KeyPEM, want: "invalid certificate/key pair"},
	} {
		if _, err := ParsePair(tc.cert, tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.desc, err, tc.want)
		}
	}
}

// TestAltPair: an entry with an RSA and an ECDSA pair serves the one the
// client supports.
func TestAltPair(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	ec := ca.Issue(t, certtest.Options{}, "ec.test")
	rs := ca.Issue(t, certtest.Options{RSA: true}, "rsa.test")
	set, err := NewSet([]Entry{{ID: "1", Pairs: []*tls.Certificate{pair(t, ec), pair(t, rs)}}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := tls.Server(c, &tls.Config{GetCertificate: set.Certificate})
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			_ = tc.Handshake()
			c.Close()
		}
	}()
	dial := func(cfg *tls.Config) string {
		cfg.InsecureSkipVerify = true
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := dial(&tls.Config{}); got != "ec.test" {
		t.Errorf("default client got %q, want the first pair", got)
	}
	rsaOnly := &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}
	if got := dial(rsaOnly); got != "rsa.test" {
		t.Errorf("RSA-only client got %q, want the alternate pair", got)
	}
}

// TestStoreReload: a changed file is picked up by Poll; a bad one keeps
// the pair in force, is counted, and is not retried until it changes.
func TestStoreReload(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	dir := t.TempDir()
	first := ca.Server(t, "first.test")
	certPath, keyPath := first.WriteFiles(t, dir, "site")
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reloads"}, []string{"result"})
	s := NewStore(StoreOptions{Log: zerolog.Nop(), Reloads: reloads})
	l, err := s.Prepare([]Source{{ID: "site", CertFile: certPath, KeyFile: keyPath}}, "")
	if err != nil {
		t.Fatal(err)
	}
	s.Commit(l)
	served := func() string {
		t.Helper()
		c, err := s.Set().Certificate(&tls.ClientHelloInfo{ServerName: "x"})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.Subject.CommonName
	}
	if got := served(); got != "first.test" {
		t.Fatalf("served %q", got)
	}
	s.Poll()
	if n := value(t, reloads.WithLabelValues("ok")); n != 0 {
		t.Errorf("an unchanged file reloaded (%v)", n)
	}

	second := ca.Server(t, "second.test")
	second.WriteFiles(t, dir, "site")
	s.Poll()
	if got := served(); got != "second.test" {
		t.Fatalf("after the change served %q", got)
	}
	if n := value(t, reloads.WithLabelValues("ok")); n != 1 {
		t.Errorf("ok reloads = %v, want 1", n)
	}

	// A key that does not match: the second pair stays.
	third := ca.Server(t, "third.test")
	certtest.WriteFile(t, keyPath, third.KeyPEM)
	s.Poll()
	if got := served(); got != "second.test" {
		t.Fatalf("after a bad change served %q", got)
	}
	if n := value(t, reloads.WithLabelValues("error")); n != 1 {
		t.Errorf("error reloads = %v, want 1", n)
	}
	s.Poll()
	if n := value(t, reloads.WithLabelValues("error")); n != 1 {
		t.Errorf("an unchanged bad file was retried: error reloads = %v, want 1", n)
	}
	// The matching certificate arrives: in force.
	certtest.WriteFile(t, certPath, third.CertPEM)
	s.Poll()
	if got := served(); got != "third.test" {
		t.Fatalf("after the fix served %q", got)
	}

	// A removed file keeps the pair; Reload (SIGHUP) reads again.
	if err := os.Remove(certPath); err != nil {
		t.Fatal(err)
	}
	s.Poll()
	s.Poll()
	if got := served(); got != "third.test" {
		t.Fatalf("after removal served %q", got)
	}
	if n := value(t, reloads.WithLabelValues("error")); n != 2 {
		t.Errorf("error reloads = %v, want 2 (a missing file is reported once)", n)
	}
	fourth := ca.Server(t, "fourth.test")
	certtest.WriteFile(t, keyPath, fourth.KeyPEM)
	certtest.WriteFile(t, filepath.Join(dir, "site.crt"), fourth.CertPEM)
	s.Reload()
	if got := served(); got != "fourth.test" {
		t.Fatalf("after Reload served %q", got)
	}
}

// TestPrepareStrict: a new certificate whose files do not load fails
// Prepare; one in force keeps its pair.
func TestPrepareStrict(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	dir := t.TempDir()
	certPath, keyPath := ca.Server(t, "a.test").WriteFiles(t, dir, "a")
	s := NewStore(StoreOptions{Log: zerolog.Nop()})
	src := []Source{{ID: "a", CertFile: certPath, KeyFile: keyPath}}
	if _, err := s.Prepare([]Source{{ID: "a", CertFile: certPath, KeyFile: filepath.Join(dir, "nope")}}, ""); err == nil {
		t.Fatal("Prepare with a missing key file succeeded")
	}
	l, err := s.Prepare(src, "")
	if err != nil {
		t.Fatal(err)
	}
	s.Commit(l)
	certtest.WriteFile(t, keyPath, []byte("garbage"))
	if _, err := s.Prepare(src, ""); err != nil {
		t.Fatalf("Prepare of a certificate in force with a bad file: %v; want the last good pair kept", err)
	}
}

func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
