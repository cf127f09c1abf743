package itest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/outrigger-gw/outrigger/internal/grpctest"
)

// tlsFiles is a test CA and the PEM files of certificates it signed.
type tlsFiles struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
}

func newTLSFiles(t *testing.T) *tlsFiles {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "itest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	f := &tlsFiles{dir: t.TempDir(), ca: ca, caKey: key}
	f.caFile = f.write(t, "ca.pem", "CERTIFICATE", der)
	return f
}

func (f *tlsFiles) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// leaf signs a certificate (server: for 127.0.0.1) and writes it; it
// returns the files and the loaded pair.
func (f *tlsFiles) leaf(t *testing.T, name string, server bool) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.ca, &key.PublicKey, f.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = f.write(t, name+".pem", "CERTIFICATE", der), f.write(t, name+"-key.pem", "EC PRIVATE KEY", kder)
	pair, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pair
}

// grpcs to a target that requires a client certificate, configured by
// files: tls_verify with the test CA and the sidecar's certificate work;
// the same service without the client certificate gets UNAVAILABLE from
// the proxy; a bad CA file is refused with its position in the file.
func TestGRPCSUpstreamMutualTLS(t *testing.T) {
	files := newTLSFiles(t)
	_, _, srvPair := files.leaf(t, "origin", true)
	cliCert, cliKey, _ := files.leaf(t, "sidecar", false)
	pool := x509.NewCertPool()
	pool.AddCert(files.ca)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ForceServerCodec(grpctest.RawCodec{}), grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{srvPair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool})))
	o := &grpcOrigin{name: "secure", addr: ln.Addr().String(), srv: srv}
	registerEcho(o)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	cfg := fmt.Sprintf(`services:
  - name: secure
    url: grpcs://%[1]s
    tls_verify: true
    ca_certificates: [%[2]s]
    client_certificate: {cert_file: %[3]s, key_file: %[4]s}
    routes:
      - name: secure
        paths: [/test.Echo/]
        strip_path: false
  - name: nocert
    url: grpcs://%[1]s
    tls_verify: true
    ca_certificates: [%[2]s]
    routes:
      - name: nocert
        hosts: [nocert.test]
        paths: [/test.Echo/]
        strip_path: false
`, o.addr, files.caFile, cliCert, cliKey)
	g := startGatewayOpts(t, gatewayOpts{Proxy: "  h2c: true\n"}, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if got, err := grpcSay(ctx, grpcClient(t, g.ProxyAddr), "hi"); err != nil || got != "secure:hi" {
		t.Fatalf("mutual TLS: %q %v", got, err)
	}
	_, err = grpcSay(ctx, grpcClient(t, g.ProxyAddr, grpc.WithAuthority("nocert.test")), "hi")
	if status.Code(err) != codes.Unavailable {
		t.Errorf("without a client certificate: %v, want UNAVAILABLE", err)
	}

	bad := filepath.Join(files.dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	badCfg := filepath.Join(files.dir, "bad.yaml")
	if err := os.WriteFile(badCfg, []byte("services:\n  - name: s\n    protocol: grpcs\n    host: h\n    ca_certificates: ["+bad+"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, "validate", "--config", badCfg).CombinedOutput()
	if want := badCfg + ":5:5: ca_certificates: " + bad + " holds no PEM certificate"; err == nil || !strings.Contains(string(out), want) {
		t.Errorf("validate: %v\n%s\nwant %s", err, out, want)
	}
}
