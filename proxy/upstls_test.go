package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/proxy/router"
	"github.com/outrigger-gw/outrigger/upstream"
)

// testPKI is a CA with certificates it signed, made for one test.
type testPKI struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  string
}

func newPKI(t *testing.T, cn string) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testPKI{caCert: cert, caKey: key, caPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// intermediate returns a CA signed by p.
func (p *testPKI) intermediate(t *testing.T, cn string) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testPKI{caCert: cert, caKey: key, caPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// issue signs a leaf for cn (server: with SANs for 127.0.0.1 and names)
// and returns it as PEM certificate and key.
func (p *testPKI) issue(t *testing.T, cn string, server bool, names ...string) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = names
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

func (p *testPKI) pool() *x509.CertPool {
	cp := x509.NewCertPool()
	cp.AddCert(p.caCert)
	return cp
}

func keyPair(t *testing.T, certPEM, keyPEM string) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// grpcs: the target's certificate is verified against the service's CA
// when tls_verify is set, a target that asks for a client certificate
// gets the service's (mutual TLS), and without tls_verify (Kong's
// default) an unknown CA is accepted.
func TestGRPCSVerifyAndClientCertificate(t *testing.T) {
	pki, other := newPKI(t, "test CA"), newPKI(t, "other CA")
	srvCert, srvKey := pki.issue(t, "echo", true)
	cliCert, cliKey := pki.issue(t, "the-sidecar", false)
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{keyPair(t, srvCert, srvKey)},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.pool()})
	a := startEcho(t, "a", grpc.Creds(creds))
	ctx := testCtx(t)

	for _, tc := range []struct {
		desc string
		tls  TLSOptions
		ok   bool
	}{
		{desc: "verified, with a client certificate", tls: TLSOptions{Verify: true, CA: pki.caPEM, ClientCert: cliCert, ClientKey: cliKey}, ok: true},
		{desc: "verify depth 1 accepts a leaf under the root", tls: TLSOptions{Verify: true, VerifyDepth: 1, CA: pki.caPEM, ClientCert: cliCert, ClientKey: cliKey}, ok: true},
		{desc: "another CA is refused", tls: TLSOptions{Verify: true, CA: other.caPEM, ClientCert: cliCert, ClientKey: cliKey}},
		{desc: "the system roots do not know the test CA", tls: TLSOptions{Verify: true, ClientCert: cliCert, ClientKey: cliKey}},
		{desc: "no verification (Kong's default)", tls: TLSOptions{CA: other.caPEM, ClientCert: cliCert, ClientKey: cliKey}, ok: true},
		{desc: "no client certificate", tls: TLSOptions{Verify: true, CA: pki.caPEM}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := newGRPCFixture(t, grpcSetup{targets: []string{a.addr}, protocol: ProtoGRPCS, tls: tc.tls})
			got, err := f.say(ctx, "hi")
			if tc.ok {
				if err != nil || got != "a:hi" {
					t.Fatalf("got %q %v", got, err)
				}
				if cn, _ := a.peerCN.Load().(string); cn != "the-sidecar" {
					t.Errorf("the target saw client certificate %q", cn)
				}
				return
			}
			if s := status.Convert(err); s.Code() != codes.Unavailable {
				t.Fatalf("got %q %v, want UNAVAILABLE from the proxy", got, err)
			}
		})
	}
}

// tls_verify_depth caps the chain above the leaf: a leaf under an
// intermediate (served with it) passes depth 2 and fails depth 1.
func TestGRPCSVerifyDepth(t *testing.T) {
	root := newPKI(t, "root")
	mid := root.intermediate(t, "intermediate")
	leaf, key := mid.issue(t, "echo", true)
	chain := keyPair(t, leaf+mid.caPEM, key)
	a := startEcho(t, "a", grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{chain}})))
	ctx := testCtx(t)
	for _, tc := range []struct {
		depth int
		ok    bool
	}{{0, true}, {2, true}, {1, false}} {
		f := newGRPCFixture(t, grpcSetup{targets: []string{a.addr}, protocol: ProtoGRPCS, tls: TLSOptions{Verify: true, VerifyDepth: tc.depth, CA: root.caPEM}})
		got, err := f.say(ctx, "hi")
		if tc.ok != (err == nil) {
			t.Errorf("depth %d: %q %v, want ok=%v", tc.depth, got, err, tc.ok)
		}
	}
}

// https: the engine (HTTP/1.1 clients) and the net/http path (HTTP/2
// clients) verify the target by the same rules; with preserve_host the
// name presented and verified is the request's host.
func TestHTTPSVerify(t *testing.T) {
	pki := newPKI(t, "test CA")
	srvCert, srvKey := pki.issue(t, "web", true, "api.internal")
	var mu sync.Mutex
	var snis []string
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "secure "+r.Proto)
	}))
	be.TLS = &tls.Config{Certificates: []tls.Certificate{keyPair(t, srvCert, srvKey)},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			mu.Lock()
			snis = append(snis, h.ServerName)
			mu.Unlock()
			return nil, nil
		}}
	be.EnableHTTP2 = true
	be.StartTLS()
	t.Cleanup(be.Close)
	addr := strings.TrimPrefix(be.URL, "https://")

	for _, tc := range []struct {
		desc     string
		tls      TLSOptions
		preserve bool
		host     string
		want     int
		sni      string
	}{
		{desc: "verified by IP", tls: TLSOptions{Verify: true, CA: pki.caPEM}, want: 200, sni: ""},
		{desc: "unknown CA", tls: TLSOptions{Verify: true}, want: 502},
		{desc: "not verified", tls: TLSOptions{}, want: 200},
		{desc: "preserve_host names the certificate", tls: TLSOptions{Verify: true, CA: pki.caPEM}, preserve: true, host: "api.internal", want: 200, sni: "api.internal"},
		{desc: "preserve_host with a name the certificate lacks", tls: TLSOptions{Verify: true, CA: pki.caPEM}, preserve: true, host: "other.internal", want: 502},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			u := upstream.New(upstream.Options{Name: "web", Balancer: balance.NewRoundRobin()})
			u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: addr, Weight: 1}})
			svc := &Service{Name: "web", Scheme: "https", Protocol: ProtoHTTPS, Upstream: u,
				Transport: NewTransports().Get(TransportOptions{ConnectTimeout: time.Second, Protocol: ProtoHTTPS, TLS: tc.tls})}
			rtr, err := router.New([]router.Route{{Name: "web", Paths: []string{"/"},
				Value: &Route{Name: "web", Service: svc, PreserveHost: tc.preserve}}})
			if err != nil {
				t.Fatal(err)
			}
			p := New(Options{Log: zerolog.Nop()})
			p.SetTable(&Table{Router: rtr})
			base := serveEngine(t, p, ServerOptions{H2C: true})
			for _, h2 := range []bool{false, true} {
				mu.Lock()
				snis = nil
				mu.Unlock()
				c := &http.Client{Timeout: 10 * time.Second}
				if h2 {
					prot := new(http.Protocols)
					prot.SetUnencryptedHTTP2(true)
					c.Transport = &http.Transport{Protocols: prot}
				}
				req, _ := http.NewRequest(http.MethodGet, base+"/x", nil)
				if tc.host != "" {
					req.Host = tc.host
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("h2=%v: %d %q, want %d", h2, resp.StatusCode, body, tc.want)
				}
				// HTTP/2 clients reach the target over HTTP/2 (ALPN h2);
				// the engine speaks HTTP/1.1 to it.
				if wantBody := map[bool]string{false: "secure HTTP/1.1", true: "secure HTTP/2.0"}[h2]; tc.want == 200 && string(body) != wantBody {
					t.Errorf("h2=%v: body %q, want %q", h2, body, wantBody)
				}
				mu.Lock()
				got := append([]string(nil), snis...)
				mu.Unlock()
				if tc.want == 200 && tc.tls.Verify && (len(got) == 0 || got[len(got)-1] != tc.sni) {
					t.Errorf("h2=%v: SNI %q, want %q", h2, got, tc.sni)
				}
			}
		})
	}
}
