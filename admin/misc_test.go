package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// TestStatusEndpoints: the listener's original endpoints, with and
// without a Controller.
func TestStatusEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "outrigger_test_total", Help: "test"}))
	ready := false
	h := New(Options{
		Status:  func() Status { return Status{Version: "1.2.3", Upstreams: 2, StartedAt: time.Unix(1700000000, 5e8)} },
		Ready:   func() (bool, string) { return ready, "warming up" },
		Metrics: reg,
	})
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	cases := []struct {
		path   string
		status int
		has    string
	}{
		{"/", 200, `"tagline": "Welcome to outrigger"`},
		{"/status", 200, `"version": "1.2.3"`},
		{"/status", 200, `"uptime_seconds"`},
		{"/status", 200, `"started_at": 1700000000,`}, // Unix seconds, as every timestamp
		{"/ready", 503, `"message": "warming up"`},
		{"/health", 200, `"message": "alive"`},
		{"/metrics", 200, "outrigger_test_total 0"},
		{"/openapi.json", 200, `"openapi": "3.0.3"`},
		{"/upstreams", 503, "no controller"},
		{"/nope", 404, `"message": "Not found"`},
	}
	for _, c := range cases {
		rec := get(c.path)
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.has) {
			t.Errorf("GET %s: %d %s, want %d containing %s", c.path, rec.Code, rec.Body, c.status, c.has)
		}
	}
	ready = true
	if rec := get("/ready"); rec.Code != 200 {
		t.Errorf("/ready: %d", rec.Code)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPatch, "/upstreams", nil))
	if rec.Code != 405 || rec.Header().Get("Allow") != "GET, POST" {
		t.Errorf("PATCH /upstreams: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
}

// TestConcurrentChanges: parallel requests each land exactly once.
func TestConcurrentChanges(t *testing.T) {
	e := newEnv(t, fileRich)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := httptest.NewRecorder()
			body := fmt.Sprintf("target=10.3.0.%d:80&weight=%d", i, i)
			req := httptest.NewRequest(http.MethodPost, "/upstreams/example_upstream/targets", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			e.h.ServeHTTP(rec, req)
			if rec.Code != http.StatusCreated {
				errs <- rec.Body.String()
			}
			rec = httptest.NewRecorder()
			e.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/upstreams/example_upstream/health", nil))
			if rec.Code != http.StatusOK {
				errs <- rec.Body.String()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Error(s)
	}
	r := e.must(http.StatusOK, http.MethodGet, "/upstreams/example_upstream/targets", nil)
	if n := len(r.data()); n != 34 {
		t.Fatalf("%d targets, want 34", n)
	}
}

// TestPanicAnswered500: a panic in an admin handler is answered 500 with
// the admin API's JSON error body, logged at error level with its stack
// and counted; the handler keeps serving.
func TestPanicAnswered500(t *testing.T) {
	reg := prometheus.NewRegistry()
	panics := prometheus.NewCounter(prometheus.CounterOpts{Name: "outrigger_panics_total", Help: "test"})
	reg.MustRegister(panics)
	var logs strings.Builder
	var boom atomic.Bool // the handler runs on the server's goroutines
	boom.Store(true)
	h := New(Options{
		Status: func() Status {
			if boom.Load() {
				panic("status exploded")
			}
			return Status{Version: "1.2.3"}
		},
		Metrics: reg,
		Log:     zerolog.New(&logs),
		Panics:  panics,
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e map[string]any
	if resp.StatusCode != 500 || json.Unmarshal(b, &e) != nil || e["message"] != "An unexpected error occurred" {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	mfs, err := reg.Gather()
	if err != nil || mfs[0].GetMetric()[0].GetCounter().GetValue() != 1 {
		t.Fatalf("panics counted: %v %v", mfs, err)
	}
	var l map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &l); err != nil {
		t.Fatalf("log %q: %v", logs.String(), err)
	}
	if st, _ := l["stack"].(string); l["level"] != "error" || l["listener"] != "admin" || l["panic"] != "status exploded" || !strings.Contains(st, "misc_test.go") {
		t.Fatalf("log line %v", l)
	}
	boom.Store(false)
	resp, err = http.Get(srv.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("next request: %d", resp.StatusCode)
	}
}
