package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a self-signed certificate and its key as PEM files
// in dir and returns their paths and the certificate's PEM.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile, certPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, []byte(certPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, certPEM
}

// The upstream protocols, Kong's TLS fields, gRPC retries and route
// protocols decode; the TLS material loads from files and inline PEM.
func TestServiceProtocolsAndTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, _, _ := selfSigned(t, dir, "ca")
	_, _, inline := selfSigned(t, dir, "inline")
	cert, key, _ := selfSigned(t, dir, "client")
	indented := "        " + strings.ReplaceAll(strings.TrimSpace(inline), "\n", "\n        ")
	src := `services:
  - name: secure
    url: grpcs://backend.internal
    tls_verify: true
    tls_verify_depth: 2
    ca_certificates:
      - ` + caFile + `
      - |
` + indented + `
    client_certificate: {cert_file: ` + cert + `, key_file: ` + key + `}
    grpc_idempotent_methods: [/pkg.Echo/Say, /pkg.Health/*]
    routes:
      - name: rpc
        paths: [/pkg.Echo/]
        protocols: [GRPC, grpcs]
  - name: plain
    protocol: h2c
    host: h
`
	f := mustParse(t, src, nil)
	s := f.Services[0]
	if s.Protocol != "grpcs" || s.Port != 443 || s.TLSVerify == nil || !*s.TLSVerify || s.VerifyDepth() != 2 || len(s.CACertificates) != 2 ||
		s.ClientCertificate == nil || s.ClientCertificate.CertFile != cert ||
		!reflect.DeepEqual(s.GRPCIdempotentMethods, []string{"/pkg.Echo/Say", "/pkg.Health/*"}) {
		t.Errorf("service %+v", s)
	}
	if p := f.Services[1]; p.Protocol != "h2c" || p.Port != 80 {
		t.Errorf("h2c service %+v", p)
	}
	if got := f.Routes[0].Protocols; !reflect.DeepEqual(got, []string{"grpc", "grpcs"}) {
		t.Errorf("route protocols %v", got)
	}
	m, err := LoadServiceTLS(&s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(m.CA, "BEGIN CERTIFICATE") != 2 || !strings.Contains(m.Cert, "BEGIN CERTIFICATE") || !strings.Contains(m.Key, "PRIVATE KEY") {
		t.Errorf("loaded %+v", m)
	}
	// A file that is not PEM.
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Parse("x.yaml", []byte("services:\n  - name: s\n    protocol: https\n    host: h\n    ca_certificates: ["+bad+"]\n"), envOf(nil))
	if err == nil || !strings.Contains(err.Error(), "x.yaml:5:5: ca_certificates: "+bad+" holds no PEM certificate") {
		t.Errorf("got %v", err)
	}
}
