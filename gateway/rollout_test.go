package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/config"
)

// serveHandler serves h on a kernel-chosen loopback port until the test
// ends and returns its base URL.
func serveHandler(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: h}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return "http://" + ln.Addr().String()
}

// TestRolloutStepAndTotal: a rollout reports its error rates over the
// current step and over the plan's whole life, under both names; after a
// rollback the step figures are those the reason quotes. step_since is in
// Unix seconds, like updated_at. The rollout clock is driven by hand.
func TestRolloutStepAndTotal(t *testing.T) {
	var canaryFails atomic.Bool
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "primary") }))
	defer primary.Close()
	canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if canaryFails.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
		io.WriteString(w, "canary")
	}))
	defer canary.Close()
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`
upstreams:
  - {name: primary, targets: [{target: %s}]}
  - {name: canary, targets: [{target: %s}]}
services:
  - {name: s, host: primary, routes: [{name: r, paths: [/]}]}
`, strings.TrimPrefix(primary.URL, "http://"), strings.TrimPrefix(canary.URL, "http://"))), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, Options{Log: zerolog.Nop(), LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	defer g.stopCheckers()
	proxyURL, adminURL := serveHandler(t, g.ProxyHandler()), serveHandler(t, g.AdminHandler())

	admin := func(method, path, body string, want int) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, adminURL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %v, want %d", method, path, resp.StatusCode, m, want)
		}
		return m
	}
	// send makes n proxied requests and returns how many the canary got.
	send := func(n int) (toCanary int) {
		t.Helper()
		for i := 0; i < n; i++ {
			resp, err := http.Get(proxyURL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) == "canary" {
				toCanary++
			}
		}
		return toCanary
	}

	ctx := context.Background()
	t0 := time.Now()
	admin(http.MethodPut, "/services/s/canary", `{"upstream": "canary", "percent": 0}`, http.StatusCreated)
	admin(http.MethodPost, "/services/s/rollout", `{"steps": [50, 100], "interval": "1s", "min_requests": 10, "max_p99_ratio": 1000}`, http.StatusCreated)
	g.evaluateRollouts(ctx, t0) // starts counting the plan and its first step
	canary1 := send(40)
	g.evaluateRollouts(ctx, t0.Add(2*time.Second)) // held 2 s, 10+ canary requests: advance
	r := admin(http.MethodGet, "/services/s/rollout", "", http.StatusOK)
	if r["step"] != 1.0 || r["step_since"] != float64(t0.Add(2*time.Second).Unix()) || r["step_since"] != r["updated_at"] {
		t.Errorf("after the advance: step %v, step_since %v, updated_at %v; want step 1 since %d (Unix seconds)",
			r["step"], r["step_since"], r["updated_at"], t0.Add(2*time.Second).Unix())
	}
	g.evaluateRollouts(ctx, t0.Add(2*time.Second)) // starts counting step 2
	canaryFails.Store(true)
	canary2 := send(20) // all to the canary, all failing
	g.evaluateRollouts(ctx, t0.Add(2500*time.Millisecond))
	send(10) // after the rollback: to the primary, not in the figures

	r = admin(http.MethodGet, "/services/s/rollout", "", http.StatusOK)
	st, _ := r["status"].(map[string]any)
	reason, _ := r["reason"].(string)
	if r["state"] != "rolled_back" || st == nil {
		t.Fatalf("rollout %v; want rolled_back with a status", r)
	}
	if canary2 != 20 || canary1 == 0 {
		t.Fatalf("canary got %d then %d requests; want some, then 20", canary1, canary2)
	}
	want := map[string]float64{
		"canary_requests_step": 20, "canary_error_rate_step": 1,
		"canary_requests_total": float64(canary1 + canary2), "canary_error_rate_total": 20 / float64(canary1+canary2),
		"primary_requests_step": 0, "primary_requests_total": float64(40 - canary1),
		"primary_error_rate_step": 0, "primary_error_rate_total": 0,
	}
	for k, v := range want {
		if got, ok := st[k].(float64); !ok || got != v {
			t.Errorf("status.%s = %v, want %v", k, st[k], v)
		}
	}
	if !strings.Contains(reason, "canary error rate 100.00%") {
		t.Errorf("reason %q does not quote the step's canary error rate (100%%)", reason)
	}
}
