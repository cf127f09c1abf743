package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/config"
)

// TestRolloutTick runs the rollout engine in a bubble, on its own ticker
// and the bubble's clock: a step advances on the first tick at which it
// has been held for the plan's interval and seen min_requests canary
// requests, and not a nanosecond earlier; a step without enough requests
// holds however long it runs; the last step completes the rollout; a
// canary out of bounds is rolled back on the next tick. The counters are
// fed directly (no request is proxied: the bubble has no network).
func TestRolloutTick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, err := config.Parse("test.yaml", []byte(`
upstreams:
  - {name: primary, targets: [{target: "127.0.0.1:1"}]}
  - {name: canary, targets: [{target: "127.0.0.1:2"}]}
services:
  - {name: s, host: primary, routes: [{name: r, paths: [/]}]}
  - {name: t, host: primary, routes: [{name: r2, paths: [/t]}]}
`), nil)
		if err != nil {
			t.Fatal(err)
		}
		g, err := New(cfg, Options{Log: zerolog.Nop(), LookupEnv: func(string) (string, bool) { return "", false }})
		if err != nil {
			t.Fatal(err)
		}
		admin := func(method, path, body string, want int) map[string]any {
			t.Helper()
			req := httptest.NewRequest(method, path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			g.AdminHandler().ServeHTTP(rec, req)
			var m map[string]any
			_ = json.Unmarshal(rec.Body.Bytes(), &m)
			if rec.Code != want {
				t.Fatalf("%s %s: %d %v, want %d", method, path, rec.Code, m, want)
			}
			return m
		}
		rollout := func(svc string) (state string, step float64) {
			t.Helper()
			r := admin(http.MethodGet, "/services/"+svc+"/rollout", "", http.StatusOK)
			state, _ = r["state"].(string)
			step, _ = r["step"].(float64)
			return state, step
		}
		record := func(svc string, primary, canary, canaryFailed int) {
			t.Helper()
			g.mu.Lock()
			st := g.stats[svc]
			g.mu.Unlock()
			if st == nil {
				t.Fatalf("no stats for service %s", svc)
			}
			for range primary {
				st.primary.Record(time.Millisecond, false)
			}
			for i := range canary {
				st.canary.Record(time.Millisecond, i < canaryFailed)
			}
		}
		// at sleeps until d after t0 and lets the engine finish its tick.
		var t0 time.Time
		at := func(d time.Duration) {
			time.Sleep(time.Until(t0.Add(d)))
			synctest.Wait()
		}
		want := func(when, svc, state string, step float64) {
			t.Helper()
			if gs, gstep := rollout(svc); gs != state || gstep != step {
				t.Fatalf("%s: %s rollout %s at step %v, want %s at step %v", when, svc, gs, gstep, state, step)
			}
		}

		t0 = time.Now() // whole seconds: step_since (Unix seconds) is exact
		if t0.Nanosecond() != 0 {
			t.Fatalf("bubble clock starts at %v, not on a second", t0)
		}
		for _, svc := range []string{"s", "t"} {
			admin(http.MethodPut, "/services/"+svc+"/canary", `{"upstream": "canary", "percent": 0}`, http.StatusCreated)
			admin(http.MethodPost, "/services/"+svc+"/rollout",
				`{"steps": [10, 50, 100], "interval": "1s", "min_requests": 10, "max_error_rate_increase": 0.05}`, http.StatusCreated)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { g.runRollouts(ctx); close(done) }()
		defer func() { cancel(); <-done }()

		// The first tick (250ms) starts counting step 1: it holds until
		// the tick 1 s later, whatever the requests.
		at(250 * time.Millisecond)
		record("s", 90, 10, 0)
		record("t", 90, 9, 0) // one canary request short
		at(1250*time.Millisecond - time.Nanosecond)
		want("held for less than the interval", "s", "running", 0)
		at(1250 * time.Millisecond)
		want("held for the interval with 10 canary requests", "s", "running", 1)
		want("held for the interval with 9 canary requests", "t", "running", 0)

		// Step 2 (its step_since is second 1) is counted from the next
		// tick, 1.5 s: the canary requests of step 1 do not count.
		at(1500 * time.Millisecond)
		record("s", 50, 10, 0)
		at(2500*time.Millisecond - time.Nanosecond)
		want("step 2 held for less than the interval", "s", "running", 1)
		at(2500 * time.Millisecond)
		want("step 2 held for the interval", "s", "running", 2)

		// The last step completes once held in turn.
		at(2750 * time.Millisecond)
		record("s", 0, 10, 0)
		at(3750 * time.Millisecond)
		want("the last step held for the interval", "s", "completed", 2)

		// t never got its 10th request: still at step 1 a minute on. Its
		// canary failing then rolls it back on the next tick.
		at(time.Minute)
		want("a minute without enough requests", "t", "running", 0)
		record("t", 0, 1, 1)
		at(time.Minute + 250*time.Millisecond - time.Nanosecond)
		want("a failing canary before the next tick", "t", "running", 0)
		at(time.Minute + 250*time.Millisecond)
		want("a failing canary at the next tick", "t", "rolled_back", 0)
	})
}
