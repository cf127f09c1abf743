package admin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"reflect"
	"testing"
	"time"
)

func testCAPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// Services take the upstream protocols and Kong's TLS fields, routes
// keep their protocols; defaults show as Kong shows them (null,
// [http, https]).
func TestServiceProtocolsAndRouteProtocols(t *testing.T) {
	e := newEnv(t, fileRich)
	ca := testCAPEM(t)
	r := e.must(http.StatusCreated, http.MethodPost, "/services", map[string]any{
		"name": "rpc", "url": "grpcs://backend.internal", "tls_verify": true, "tls_verify_depth": 2,
		"ca_certificates": []string{ca}, "grpc_idempotent_methods": []string{"/pkg.Echo/Say"},
	})
	if r.body["protocol"] != "grpcs" || r.body["port"] != float64(443) || r.body["tls_verify"] != true ||
		r.body["tls_verify_depth"] != float64(2) || !reflect.DeepEqual(r.body["ca_certificates"], []any{ca}) ||
		!reflect.DeepEqual(r.body["grpc_idempotent_methods"], []any{"/pkg.Echo/Say"}) || r.body["client_certificate"] != nil {
		t.Errorf("created %s", r.raw)
	}
	r = e.must(http.StatusCreated, http.MethodPost, "/services/rpc/routes", map[string]any{"name": "rpc_route", "paths": []string{"/pkg.Echo/"}, "protocols": []string{"grpc"}})
	if !reflect.DeepEqual(r.body["protocols"], []any{"grpc"}) {
		t.Errorf("route %s", r.raw)
	}
	var doc struct {
		Services map[string]struct {
			TLSVerify *bool `json:"tls_verify"`
		} `json:"services"`
		Routes map[string]struct {
			Protocols []string `json:"protocols"`
		} `json:"routes"`
	}
	if err := json.Unmarshal([]byte(e.fk.docJSON()), &doc); err != nil {
		t.Fatal(err)
	}
	if v := doc.Services["rpc"].TLSVerify; v == nil || !*v || !reflect.DeepEqual(doc.Routes["rpc_route"].Protocols, []string{"grpc"}) {
		t.Errorf("stored %s", e.fk.docJSON())
	}
	r = e.must(http.StatusOK, http.MethodGet, "/services/example_service", nil)
	if r.body["tls_verify"] != nil || r.body["ca_certificates"] != nil {
		t.Errorf("defaults %s", r.raw)
	}
	// PATCH keeps what it does not name; false is not the default (null:
	// verify), so it is shown.
	r = e.must(http.StatusOK, http.MethodPatch, "/services/rpc", map[string]any{"tls_verify": false})
	if r.body["tls_verify"] != false || r.body["tls_verify_depth"] != float64(2) {
		t.Errorf("patched %s", r.raw)
	}
}

// A service's tls_verify and tls_verify_depth, and an override's weight
// and share, take a value or a null that unsets them (an empty form value
// likewise).
func TestNullableFieldsUnset(t *testing.T) {
	e := newEnv(t, fileRich)
	r := e.must(http.StatusCreated, http.MethodPost, "/services", map[string]any{
		"name": "tls", "url": "https://backend.internal", "tls_verify": true, "tls_verify_depth": 2})
	eq(t, "tls_verify", r.body["tls_verify"], true)
	eq(t, "tls_verify_depth", r.body["tls_verify_depth"], 2)
	r = e.must(http.StatusOK, http.MethodPatch, "/services/tls", map[string]any{"tls_verify": nil})
	eq(t, "tls_verify after null", r.body["tls_verify"], nil)
	eq(t, "tls_verify_depth kept", r.body["tls_verify_depth"], 2)
	r = e.must(http.StatusOK, http.MethodPatch, "/services/tls", form{"tls_verify_depth", ""})
	eq(t, "tls_verify_depth after an empty form value", r.body["tls_verify_depth"], nil)

	ov := e.must(http.StatusCreated, http.MethodPost, "/upstreams/example_upstream/overrides", map[string]any{"tags": []string{"v2"}, "weight": 5})
	eq(t, "weight", ov.body["weight"], 5)
	path := "/upstreams/example_upstream/overrides/" + ov.str("id")
	r = e.must(http.StatusOK, http.MethodPatch, path, map[string]any{"weight": nil, "share": 30})
	eq(t, "weight after null", r.body["weight"], nil)
	eq(t, "share", r.body["share"], 30)
	r = e.must(http.StatusOK, http.MethodPatch, path, map[string]any{"share": nil, "weight": 7})
	eq(t, "share after null", r.body["share"], nil)
	eq(t, "weight again", r.body["weight"], 7)
}
