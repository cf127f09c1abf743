package admin

import (
	"bytes"
	"crypto/subtle"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
)

const testToken = "s3cret-token-value"

// TestToken: with Options.Token every endpoint but GET /health and GET
// /ready needs the token, as a bearer token or Kong-Admin-Token.
func TestToken(t *testing.T) {
	var logs bytes.Buffer
	e := newEnv(t, fileRich, func(o *Options) {
		o.Token = testToken
		o.Log = zerolog.New(&logs)
	})
	cases := []struct {
		desc    string
		method  string
		path    string
		body    any
		headers []string
		status  int
	}{
		{"liveness needs no token", http.MethodGet, "/health", nil, nil, 200},
		{"readiness needs no token", http.MethodGet, "/ready", nil, nil, 200},
		{"status without a token", http.MethodGet, "/status", nil, nil, 401},
		{"metrics without a token", http.MethodGet, "/metrics", nil, nil, 401},
		{"openapi without a token", http.MethodGet, "/openapi.json", nil, nil, 401},
		{"unknown path without a token", http.MethodGet, "/nope", nil, nil, 401},
		{"POST /health needs the token", http.MethodPost, "/health", nil, nil, 401},
		{"list without a token", http.MethodGet, "/upstreams", nil, nil, 401},
		{"create without a token", http.MethodPost, "/upstreams", form{"name", "x"}, nil, 401},
		{"wrong bearer token", http.MethodGet, "/upstreams", nil, []string{"Authorization", "Bearer wrong"}, 401},
		{"token prefix", http.MethodGet, "/upstreams", nil, []string{"Authorization", "Bearer " + testToken[:5]}, 401},
		{"token with a suffix", http.MethodGet, "/upstreams", nil, []string{"Authorization", "Bearer " + testToken + "x"}, 401},
		{"basic auth", http.MethodGet, "/upstreams", nil, []string{"Authorization", "Basic " + testToken}, 401},
		{"wrong Kong-Admin-Token", http.MethodGet, "/upstreams", nil, []string{"Kong-Admin-Token", "nope"}, 401},
		{"bearer token", http.MethodGet, "/upstreams", nil, []string{"Authorization", "Bearer " + testToken}, 200},
		{"bearer, any case", http.MethodGet, "/status", nil, []string{"Authorization", "bearer " + testToken}, 200},
		{"Kong-Admin-Token", http.MethodGet, "/metrics", nil, []string{"Kong-Admin-Token", testToken}, 200},
		{"create with the token", http.MethodPost, "/upstreams", form{"name", "x"}, []string{"Kong-Admin-Token", testToken}, 201},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			before := e.fk.docJSON()
			r := e.do(c.method, c.path, c.body, c.headers...)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.raw)
			}
			if c.status == 401 {
				eq(t, "message", r.str("message"), "Unauthorized")
				if e.fk.docJSON() != before {
					t.Fatal("the Doc changed")
				}
			}
		})
	}
	if strings.Contains(logs.String(), testToken) {
		t.Fatalf("the token was logged:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "admin request") {
		t.Fatalf("changes are not logged:\n%s", logs.String())
	}
}

// TestTokenComparedInConstantTime: the compare is crypto/subtle's, and it
// is what decides.
func TestTokenComparedInConstantTime(t *testing.T) {
	a := newAPI(Options{Token: testToken, Controller: newFake(t, "")})
	if reflect.ValueOf(a.tokenEqual).Pointer() != reflect.ValueOf(subtle.ConstantTimeCompare).Pointer() {
		t.Fatal("the token is not compared with subtle.ConstantTimeCompare")
	}
	var calls atomic.Int32
	a.tokenEqual = func(x, y []byte) int {
		calls.Add(1)
		if len(x) != len(y) {
			t.Errorf("compared inputs of different lengths (%d, %d): the length would leak", len(x), len(y))
		}
		return subtle.ConstantTimeCompare(x, y)
	}
	for _, tok := range []string{"x", testToken, testToken + testToken} {
		req, _ := http.NewRequest(http.MethodGet, "/upstreams", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if got := a.authorized(req, testToken); got != (tok == testToken) {
			t.Fatalf("authorized(%q) = %v", tok, got)
		}
	}
	if calls.Load() != 3 {
		t.Fatalf("compare called %d times, want 3", calls.Load())
	}
	// Without a token nothing is required.
	open := newEnv(t, "")
	open.must(http.StatusOK, http.MethodGet, "/upstreams", nil)
}
