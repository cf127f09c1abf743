package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"
)

// TestVerifiedSubject: the forwarded subject is always a valid field value
// (a certificate with a line break in its name cannot add fields).
func TestVerifiedSubject(t *testing.T) {
	cs := &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: "caller\r\nX-Admin: 1", Organization: []string{"Acme"}}}}}}
	got := verifiedSubject(cs)
	if strings.ContainsAny(got, "\r\n") || !strings.Contains(got, "CN=caller??X-Admin: 1") || !strings.Contains(got, "O=Acme") {
		t.Fatalf("subject %q", got)
	}
	if s := verifiedSubject(&tls.ConnectionState{}); s != "" {
		t.Fatalf("no certificate: %q", s)
	}
}
