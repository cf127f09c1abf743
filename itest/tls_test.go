package itest

// TLS termination on the proxy listeners, through the real binary:
// several listeners in Kong's proxy_listen syntax, certificates chosen by
// SNI, h2 and http/1.1 by ALPN, client certificates, certificates managed
// through the admin API and persisted, and certificate files rotated
// under load.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/outrigger-gw/outrigger/internal/certtest"
)

// indentPEM indents a PEM block for a YAML block scalar.
func indentPEM(pem []byte, n int) string {
	pad := strings.Repeat(" ", n)
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(string(pem), "\n"), "\n") {
		b.WriteString(pad + line + "\n")
	}
	return b.String()
}

// inlineCert is a certificates entry with inline PEM.
func inlineCert(l *certtest.Leaf, snis ...string) string {
	s := "  - cert: |\n" + indentPEM(l.CertPEM, 6) + "    key: |\n" + indentPEM(l.KeyPEM, 6)
	if len(snis) > 0 {
		s += "    snis: [" + strings.Join(snis, ", ") + "]\n"
	}
	return s
}

// echoBackend answers with what the proxy sent: the protocol it arrived
// with downstream (X-Forwarded-Proto) and the client subject header.
func echoBackend(t *testing.T) *backend {
	return startBackend(t, "tls-echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "tls-echo")
		fmt.Fprintf(w, "proto=%s subject=%s", r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Client-Subject"))
	}))
}

func tlsRouteConfig(backendAddr string) string {
	return fmt.Sprintf(`upstreams:
  - name: echo
    targets:
      - target: %s
services:
  - name: echo
    host: echo
    routes:
      - name: echo
        paths: [/]
`, backendAddr)
}

// servedName dials addr with sni and returns the served leaf's common
// name, or the handshake error.
func servedName(addr, sni string, cfg *tls.Config) (string, error) {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg = cfg.Clone()
	cfg.ServerName, cfg.InsecureSkipVerify = sni, true
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

// httpsClient trusts ca, sends sni, and offers protos by ALPN (h2 when
// listed: an HTTP/2 transport), presenting the first of certs when the
// server asks for a client certificate.
func httpsClient(ca *certtest.CA, sni string, h2 bool, certs ...tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: sni}
	if len(certs) > 0 {
		// Sent whatever CAs the server names (Go's client would send
		// none that it cannot match).
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
	}
	if h2 {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{TLSClientConfig: cfg}}
	}
	cfg.NextProtos = []string{"http/1.1"}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: false}}
}

// getProto sends GET url and returns the answer's protocol and body.
func getProto(t *testing.T, c *http.Client, url string, hdr ...string) (string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return resp.Proto, string(body)
}

// TestTLSListeners: four listeners of one gateway (plaintext, ssl+http2,
// ssl, plaintext http2 = h2c); SNI picks the exact certificate, then the
// wildcard, then the default; h2 and http/1.1 by ALPN reach the same
// routes with X-Forwarded-Proto https.
func TestTLSListeners(t *testing.T) {
	ca := certtest.NewCA(t, "itest CA")
	exact := ca.Server(t, "api.tls.test")
	wild := ca.Server(t, "*.tls.test")
	def := ca.Server(t, "default.test")
	be := echoBackend(t)
	dir := t.TempDir()
	wildCert, wildKey := wild.WriteFiles(t, dir, "wild")
	certsYAML := "certificates:\n" + inlineCert(def) + inlineCert(exact, "api.tls.test") +
		fmt.Sprintf("  - cert_file: %s\n    key_file: %s\n    snis: [\"*.tls.test\"]\n", wildCert, wildKey)
	g := startGatewayOpts(t, gatewayOpts{
		ExtraListeners: 3,
		Listen: func(p string, x []string) string {
			return fmt.Sprintf("\n    - %s\n    - %s ssl http2\n    - %s ssl reuseport backlog=1024\n    - %s http2", p, x[0], x[1], x[2])
		},
	}, tlsRouteConfig(be.Addr)+certsYAML)
	h2TLS, h1TLS, h2c := g.Extra[0], g.Extra[1], g.Extra[2]

	for _, tc := range []struct{ desc, sni, want string }{
		{"exact", "api.tls.test", "api.tls.test"},
		{"exact beats the wildcard, any case", "API.TLS.test", "api.tls.test"},
		{"wildcard", "www.tls.test", "*.tls.test"},
		{"wildcard is one label", "a.b.tls.test", "default.test"},
		{"unknown name", "other.test", "default.test"},
		{"no SNI", "", "default.test"},
	} {
		t.Run("sni/"+tc.desc, func(t *testing.T) {
			for _, addr := range []string{h2TLS, h1TLS} {
				got, err := servedName(addr, tc.sni, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Errorf("%s: SNI %q served %q, want %q", addr, tc.sni, got, tc.want)
				}
			}
		})
	}
	t.Run("tls1.1 refused", func(t *testing.T) {
		if _, err := servedName(h2TLS, "api.tls.test", &tls.Config{MaxVersion: tls.VersionTLS11}); err == nil {
			t.Fatal("a TLS 1.1 handshake succeeded")
		}
	})
	t.Run("h2 by ALPN", func(t *testing.T) {
		proto, body := getProto(t, httpsClient(ca, "api.tls.test", true), "https://"+h2TLS+"/x")
		if proto != "HTTP/2.0" || !strings.Contains(body, "proto=https") {
			t.Fatalf("proto %s, body %q", proto, body)
		}
	})
	t.Run("http/1.1 by ALPN", func(t *testing.T) {
		c := httpsClient(ca, "www.tls.test", false)
		for range 3 { // keep-alive over TLS
			proto, body := getProto(t, c, "https://"+h2TLS+"/x")
			if proto != "HTTP/1.1" || !strings.Contains(body, "proto=https") {
				t.Fatalf("proto %s, body %q", proto, body)
			}
		}
	})
	t.Run("ssl listener without http2 refuses h2", func(t *testing.T) {
		c, err := tls.Dial("tcp", h1TLS, &tls.Config{RootCAs: ca.Pool(), ServerName: "api.tls.test", NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
			t.Fatalf("negotiated %q", p)
		}
		proto, body := getProto(t, httpsClient(ca, "api.tls.test", false), "https://"+h1TLS+"/x")
		if proto != "HTTP/1.1" || !strings.Contains(body, "proto=https") {
			t.Fatalf("proto %s, body %q", proto, body)
		}
	})
	t.Run("h2c with prior knowledge", func(t *testing.T) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}}}
		proto, body := getProto(t, c, "http://"+h2c+"/x")
		if proto != "HTTP/2.0" || !strings.Contains(body, "proto=http ") {
			t.Fatalf("proto %s, body %q", proto, body)
		}
	})
	t.Run("plaintext", func(t *testing.T) {
		proto, body := getProto(t, newClient(), g.url("/x"))
		if proto != "HTTP/1.1" || !strings.Contains(body, "proto=http ") {
			t.Fatalf("proto %s, body %q", proto, body)
		}
	})
	t.Run("plaintext to the ssl listener", func(t *testing.T) {
		c := &http.Client{Timeout: 5 * time.Second}
		if resp, err := c.Get("http://" + h2TLS + "/x"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("a plaintext request was served on the ssl listener")
			}
		}
	})
}

// TestTLSNoCertificate: with no certificate serving the name and no
// default, the handshake fails with an alert; the gateway keeps serving.
func TestTLSNoCertificate(t *testing.T) {
	ca := certtest.NewCA(t, "itest CA")
	be := echoBackend(t)
	g := startGatewayOpts(t, gatewayOpts{ExtraListeners: 1,
		Listen: func(p string, x []string) string { return fmt.Sprintf("[%s, \"%s ssl http2\"]", p, x[0]) },
	}, tlsRouteConfig(be.Addr)+"certificates:\n"+inlineCert(ca.Server(t, "only.test"), "only.test"))
	_, err := servedName(g.Extra[0], "other.test", nil)
	if err == nil || !strings.Contains(err.Error(), "remote error: tls") {
		t.Fatalf("handshake for an unknown name: %v; want an alert", err)
	}
	if _, err := servedName(g.Extra[0], "", nil); err == nil {
		t.Fatal("handshake without SNI succeeded")
	}
	if got, err := servedName(g.Extra[0], "only.test", nil); err != nil || got != "only.test" {
		t.Fatalf("only.test: %q, %v", got, err)
	}
}

// TestTLSClientCertificates: ssl_verify_client on requires a certificate
// from the configured CA and forwards its subject; optional verifies one
// when sent; a subject header sent by a client is never forwarded.
func TestTLSClientCertificates(t *testing.T) {
	ca := certtest.NewCA(t, "itest CA")
	clientCA := certtest.NewCA(t, "client CA")
	otherCA := certtest.NewCA(t, "other CA")
	good := clientCA.Issue(t, certtest.Options{Client: true}, "caller-a").TLS(t)
	stranger := otherCA.Issue(t, certtest.Options{Client: true}, "caller-x").TLS(t)
	be := echoBackend(t)
	caPath := filepath.Join(t.TempDir(), "clients.pem")
	certtest.WriteFile(t, caPath, clientCA.CertPEM)
	start := func(mode string) *gateway {
		return startGatewayOpts(t, gatewayOpts{ExtraListeners: 1,
			Listen: func(p string, x []string) string { return fmt.Sprintf("[%s, \"%s ssl http2\"]", p, x[0]) },
			Proxy:  fmt.Sprintf("  ssl_verify_client: %s\n  ssl_client_certificate: %s\n  ssl_client_subject_header: X-Client-Subject\n", mode, caPath),
		}, tlsRouteConfig(be.Addr)+"certificates:\n"+inlineCert(ca.Server(t, "mtls.test")))
	}
	try := func(c *http.Client, url string) (string, error) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("X-Client-Subject", "CN=forged")
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		return string(b), nil
	}
	t.Run("on", func(t *testing.T) {
		g := start("on")
		url := "https://" + g.Extra[0] + "/x"
		for _, h2 := range []bool{true, false} {
			body, err := try(httpsClient(ca, "mtls.test", h2, good), url)
			if err != nil {
				t.Fatalf("h2=%v with a good certificate: %v", h2, err)
			}
			if !strings.Contains(body, "subject=CN=caller-a,O=Outrigger tests") || strings.Contains(body, "forged") {
				t.Fatalf("h2=%v: body %q", h2, body)
			}
			if _, err := try(httpsClient(ca, "mtls.test", h2), url); err == nil {
				t.Fatalf("h2=%v: served without a client certificate", h2)
			}
			if _, err := try(httpsClient(ca, "mtls.test", h2, stranger), url); err == nil {
				t.Fatalf("h2=%v: served a certificate of another CA", h2)
			}
		}
		// The plaintext listener never forwards a client's own value.
		body, err := try(newClient(), g.url("/x"))
		if err != nil || strings.Contains(body, "forged") {
			t.Fatalf("plaintext: %q, %v", body, err)
		}
	})
	t.Run("optional", func(t *testing.T) {
		g := start("optional")
		url := "https://" + g.Extra[0] + "/x"
		body, err := try(httpsClient(ca, "mtls.test", false), url)
		if err != nil || !strings.HasSuffix(body, "subject=") {
			t.Fatalf("without a certificate: %q, %v", body, err)
		}
		body, err = try(httpsClient(ca, "mtls.test", true, good), url)
		if err != nil || !strings.Contains(body, "subject=CN=caller-a") {
			t.Fatalf("with a certificate: %q, %v", body, err)
		}
		if _, err := try(httpsClient(ca, "mtls.test", false, stranger), url); err == nil {
			t.Fatal("served a certificate of another CA")
		}
	})
	t.Run("off", func(t *testing.T) {
		g := startGatewayOpts(t, gatewayOpts{ExtraListeners: 1,
			Listen: func(p string, x []string) string { return fmt.Sprintf("[%s, \"%s ssl\"]", p, x[0]) },
			Proxy:  "  ssl_client_subject_header: X-Client-Subject\n",
		}, tlsRouteConfig(be.Addr)+"certificates:\n"+inlineCert(ca.Server(t, "mtls.test")))
		body, err := try(httpsClient(ca, "mtls.test", false, stranger), "https://"+g.Extra[0]+"/x")
		if err != nil || !strings.HasSuffix(body, "subject=") {
			t.Fatalf("off: %q, %v", body, err)
		}
	})
}

// metricValue reads one series from the admin /metrics.
func metricValue(t *testing.T, g *gateway, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.AdminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}

// TestTLSReloadUnderLoad: the certificate files are replaced while a
// bounded load of new TLS connections runs: the new certificate is served
// without a failed request; a bad key file keeps the certificate in force
// (logged at error level, counted); SIGHUP reads the files again.
func TestTLSReloadUnderLoad(t *testing.T) {
	ca := certtest.NewCA(t, "itest CA")
	be := echoBackend(t)
	dir := t.TempDir()
	certPath, keyPath := ca.Server(t, "site.test", "first").WriteFiles(t, dir, "site")
	g := startGatewayOpts(t, gatewayOpts{ExtraListeners: 1,
		Listen: func(p string, x []string) string { return fmt.Sprintf("[%s, \"%s ssl http2\"]", p, x[0]) },
		Proxy:  "  ssl_poll_interval: 100ms\n",
	}, tlsRouteConfig(be.Addr)+fmt.Sprintf("certificates:\n  - cert_file: %s\n    key_file: %s\n    snis: [site.test]\n", certPath, keyPath))
	addr := g.Extra[0]
	served := func() string {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "site.test"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].DNSNames[1]
	}
	if got := served(); got != "first" {
		t.Fatalf("served %q", got)
	}
	// New connections for every request: each one handshakes.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "site.test"}}}
	// And one HTTP/2 connection that stays open across the rotation.
	kept := httpsClient(ca, "site.test", true)
	load := startLoad(client, "https://"+addr+"/x", 5*time.Millisecond, 4000, 60*time.Second)
	keptLoad := startLoad(kept, "https://"+addr+"/y", 5*time.Millisecond, 4000, 60*time.Second)

	waitFor(t, 10*time.Second, "load running", func() bool { return load.Sent() > 20 && keptLoad.Sent() > 20 })
	ca.Server(t, "site.test", "second").WriteFiles(t, dir, "site")
	waitFor(t, 10*time.Second, "the second certificate", func() bool { return served() == "second" })
	errorsBefore := metricValue(t, g, `outrigger_tls_certificate_reloads_total{result="error"}`)

	// A key that belongs to no certificate there: the second one stays.
	certtest.WriteFile(t, keyPath, ca.Server(t, "site.test", "third").KeyPEM)
	waitFor(t, 10*time.Second, "the bad key reported", func() bool {
		return len(g.logsWhere("tls: certificate files do not load; keeping the certificate in force")) > 0
	})
	if got := served(); got != "second" {
		t.Fatalf("after a bad key served %q", got)
	}
	if n := metricValue(t, g, `outrigger_tls_certificate_reloads_total{result="error"}`); n <= errorsBefore {
		t.Errorf("error reloads %v, want more than %v", n, errorsBefore)
	}
	for _, l := range g.logsWhere("tls: certificate files do not load; keeping the certificate in force") {
		if l["level"] != "error" {
			t.Errorf("logged at %v", l["level"])
		}
	}
	// The pair fixed: in force at the next poll (or SIGHUP).
	fourth := ca.Server(t, "site.test", "fourth")
	certtest.WriteFile(t, keyPath, fourth.KeyPEM)
	certtest.WriteFile(t, certPath, fourth.CertPEM)
	g.signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the fourth certificate", func() bool { return served() == "fourth" })

	waitFor(t, 10*time.Second, "more load", func() bool { return load.Sent() > 100 })
	ok, failed, first, _ := load.Stop()
	kok, kfailed, kfirst, _ := keptLoad.Stop()
	t.Logf("new connections: %d ok, %d failed; kept HTTP/2 connection: %d ok, %d failed", ok, failed, kok, kfailed)
	if failed > 0 || kfailed > 0 {
		t.Fatalf("failures during the rotation: %v %v", first, kfirst)
	}
}

// TestTLSAdminCertificates: certificates created through the admin API
// serve the next handshake, bad ones are refused with fields, and they
// persist across a restart (the state file).
func TestTLSAdminCertificates(t *testing.T) {
	ca := certtest.NewCA(t, "itest CA")
	be := echoBackend(t)
	opts := gatewayOpts{ExtraListeners: 1,
		Listen: func(p string, x []string) string { return fmt.Sprintf("[%s, \"%s ssl http2\"]", p, x[0]) },
	}
	g := startGatewayOpts(t, opts, tlsRouteConfig(be.Addr))
	admin := func(g *gateway, method, path string, v any) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if v != nil {
			b, _ := json.Marshal(v)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, "http://"+g.AdminAddr+path, rd)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	leaf := ca.Server(t, "admin.test")
	if _, err := servedName(g.Extra[0], "admin.test", nil); err == nil {
		t.Fatal("a handshake succeeded before any certificate exists")
	}
	status, out := admin(g, http.MethodPost, "/certificates", map[string]any{"cert": string(leaf.CertPEM), "key": "nope", "snis": []string{"admin.test"}})
	if status != http.StatusBadRequest || out["fields"].(map[string]any)["key"] == nil {
		t.Fatalf("bad key: %d %v", status, out)
	}
	status, out = admin(g, http.MethodPost, "/certificates", map[string]any{"cert": string(leaf.CertPEM), "key": string(leaf.KeyPEM), "snis": []string{"admin.test"}})
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, out)
	}
	id := out["id"].(string)
	if got, err := servedName(g.Extra[0], "admin.test", nil); err != nil || got != "admin.test" {
		t.Fatalf("after create: %q, %v", got, err)
	}
	proto, _ := getProto(t, httpsClient(ca, "admin.test", true), "https://"+g.Extra[0]+"/x")
	if proto != "HTTP/2.0" {
		t.Fatalf("proto %s", proto)
	}
	status, out = admin(g, http.MethodPost, "/certificates", map[string]any{"cert": string(leaf.CertPEM), "key": string(leaf.KeyPEM), "snis": []string{"admin.test"}})
	if status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["fields"]), "already associated with existing certificate '"+id+"'") {
		t.Fatalf("duplicate SNI: %d %v", status, out)
	}
	if status, out = admin(g, http.MethodGet, "/snis/admin.test", nil); status != http.StatusOK || out["certificate"].(map[string]any)["id"] != id {
		t.Fatalf("GET /snis/admin.test: %d %v", status, out)
	}
	// Deleted: the handshake fails again.
	if status, _ = admin(g, http.MethodDelete, "/certificates/"+id, nil); status != http.StatusNoContent {
		t.Fatalf("delete: %d", status)
	}
	if _, err := servedName(g.Extra[0], "admin.test", nil); err == nil {
		t.Fatal("a handshake succeeded after the delete")
	}
}

// TestTLSReloadOnSIGHUP: with a poll interval far away, SIGHUP reads the
// certificate files again.
func TestTLSReloadOnSIGHUP(t *testing.T) {
	ca := certtest.NewCA(t, "itest CA")
	be := echoBackend(t)
	dir := t.TempDir()
	certPath, keyPath := ca.Server(t, "hup.test", "first").WriteFiles(t, dir, "hup")
	g := startGatewayOpts(t, gatewayOpts{ExtraListeners: 1,
		Listen: func(p string, x []string) string { return fmt.Sprintf("[%s, \"%s ssl\"]", p, x[0]) },
		Proxy:  "  ssl_poll_interval: 1h\n",
	}, tlsRouteConfig(be.Addr)+fmt.Sprintf("certificates:\n  - cert_file: %s\n    key_file: %s\n", certPath, keyPath))
	served := func() string {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", g.Extra[0], &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].DNSNames[1]
	}
	ca.Server(t, "hup.test", "second").WriteFiles(t, dir, "hup")
	if got := served(); got != "first" {
		t.Fatalf("before SIGHUP served %q (the poll is an hour away)", got)
	}
	gen := g.generation()
	g.signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the reload", func() bool { return g.generation() > gen })
	if got := served(); got != "second" {
		t.Fatalf("after SIGHUP served %q", got)
	}
}

// TestTLSAdminCertificatesPersist: a certificate created through the
// admin API is in the state file and serves handshakes after a restart.
func TestTLSAdminCertificatesPersist(t *testing.T) {
	ca := certtest.NewCA(t, "itest CA")
	be := echoBackend(t)
	stateFile := filepath.Join(t.TempDir(), "state.json")
	opts := gatewayOpts{ExtraListeners: 1,
		Listen: func(p string, x []string) string { return fmt.Sprintf("[%s, \"%s ssl\"]", p, x[0]) },
		Admin:  fmt.Sprintf("  state_file: %s\n", stateFile),
	}
	g := startGatewayOpts(t, opts, tlsRouteConfig(be.Addr))
	leaf := ca.Server(t, "kept.test")
	b, _ := json.Marshal(map[string]any{"cert": string(leaf.CertPEM), "key": string(leaf.KeyPEM), "snis": []string{"kept.test"}, "tags": []string{"t1"}})
	resp, err := http.Post("http://"+g.AdminAddr+"/certificates", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var created map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %v", resp.StatusCode, created)
	}
	data, err := os.ReadFile(stateFile)
	if err != nil || !bytes.Contains(data, []byte(created["id"].(string))) {
		t.Fatalf("state file: %v %s", err, data)
	}
	g.signal(syscall.SIGTERM)
	if code := g.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}

	g2 := startGatewayOpts(t, opts, tlsRouteConfig(be.Addr))
	if got, err := servedName(g2.Extra[0], "kept.test", nil); err != nil || got != "kept.test" {
		t.Fatalf("after the restart: %q, %v", got, err)
	}
	var after map[string]any
	getJSON(t, "http://"+g2.AdminAddr+"/certificates/kept.test", &after)
	for _, k := range []string{"id", "created_at", "cert", "key", "tags"} {
		if fmt.Sprint(after[k]) != fmt.Sprint(created[k]) {
			t.Errorf("%s: %v after the restart, %v before", k, after[k], created[k])
		}
	}
	proto, _ := getProto(t, httpsClient(ca, "kept.test", false), "https://"+g2.Extra[0]+"/x")
	if proto != "HTTP/1.1" {
		t.Fatalf("proto %s", proto)
	}
}

// TestTLSAdminSNIs: SNIs added through /snis (exact, leading and trailing
// wildcards) choose the certificate of the next handshake; a name taken is
// Kong's 409; deleting one falls back to the default certificate; a
// keep-alive connection opened before the changes is still served after
// them.
func TestTLSAdminSNIs(t *testing.T) {
	ca := certtest.NewCA(t, "itest CA")
	be := echoBackend(t)
	def, other := ca.Server(t, "default.test"), ca.Server(t, "other.test")
	const otherID = "6b2d9e4a-7c1f-4a3b-9d8e-1f2a3b4c5d6e"
	opts := gatewayOpts{ExtraListeners: 1,
		Listen: func(p string, x []string) string { return fmt.Sprintf("[%s, \"%s ssl http2\"]", p, x[0]) },
	}
	g := startGatewayOpts(t, opts, tlsRouteConfig(be.Addr)+"certificates:\n"+inlineCert(def)+"    default: true\n"+
		inlineCert(other, "other.test")+"    id: "+otherID+"\n")
	admin := func(method, path string, v any) (int, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(v)
		req, _ := http.NewRequest(method, "http://"+g.AdminAddr+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	served := func(sni, want string) {
		t.Helper()
		if got, err := servedName(g.Extra[0], sni, nil); err != nil || got != want {
			t.Fatalf("SNI %s: served %q, %v; want %q", sni, got, err, want)
		}
	}
	// One keep-alive connection (HTTP/1.1, SNI new.test) across the changes.
	var conns int
	keep := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{ServerName: "new.test", InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}},
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conns++
			d := tls.Dialer{Config: &tls.Config{ServerName: "new.test", InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}
			return d.DialContext(ctx, network, addr)
		},
	}}
	getProto(t, keep, "https://"+g.Extra[0]+"/before")
	served("new.test", "default.test")

	status, out := admin(http.MethodPost, "/snis", map[string]any{"name": "New.test", "certificate": map[string]any{"id": otherID}, "tags": []string{"it"}})
	if status != http.StatusCreated || out["name"] != "new.test" {
		t.Fatalf("POST /snis: %d %v", status, out)
	}
	served("new.test", "other.test")
	if status, out = admin(http.MethodPost, "/certificates/"+otherID+"/snis", map[string]any{"name": "*.wild.test"}); status != http.StatusCreated {
		t.Fatalf("POST /certificates/{id}/snis: %d %v", status, out)
	}
	if status, out = admin(http.MethodPost, "/snis", map[string]any{"name": "suffix.*", "certificate": map[string]any{"id": otherID}}); status != http.StatusCreated {
		t.Fatalf("POST /snis suffix.*: %d %v", status, out)
	}
	served("a.wild.test", "other.test")
	served("a.b.wild.test", "default.test")
	served("suffix.org", "other.test")
	served("suffix.co.uk", "default.test")

	status, out = admin(http.MethodPost, "/snis", map[string]any{"name": "new.test", "certificate": map[string]any{"id": otherID}})
	if status != http.StatusConflict || out["message"] != `UNIQUE violation detected on '{name="new.test"}'` {
		t.Fatalf("duplicate name: %d %v", status, out)
	}
	if status, out = admin(http.MethodGet, "/certificates/"+otherID, nil); status != http.StatusOK ||
		fmt.Sprint(out["snis"]) != "[*.wild.test new.test other.test suffix.*]" {
		t.Fatalf("certificate: %d %v", status, out["snis"])
	}
	if status, _ = admin(http.MethodDelete, "/snis/new.test", nil); status != http.StatusNoContent {
		t.Fatalf("DELETE: %d", status)
	}
	served("new.test", "default.test")

	getProto(t, keep, "https://"+g.Extra[0]+"/after")
	if conns != 1 {
		t.Fatalf("the keep-alive connection was not reused across the changes: %d connections", conns)
	}
}
