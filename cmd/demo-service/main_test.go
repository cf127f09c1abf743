package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func do(t *testing.T, h http.Handler, method, target string) (*http.Response, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	resp := rec.Result()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v", method, target, err)
	}
	return resp, body
}

func TestEchoNamesServiceAndInstance(t *testing.T) {
	s := newService("web", "web-1")
	resp, body := do(t, s, http.MethodGet, "/some/path?x=1")
	if resp.StatusCode != 200 || body["service"] != "web" || body["instance"] != "web-1" ||
		body["path"] != "/some/path" || body["query"] != "x=1" || body["method"] != "GET" {
		t.Fatalf("got %d %v", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Instance"); got != "web-1" {
		t.Fatalf("X-Instance = %q", got)
	}
}

// The echo answers once the request body has ended, with its length: a
// request whose body is still streaming stays in flight.
func TestEchoReadsTheBody(t *testing.T) {
	srv := httptest.NewServer(newService("web", "web-1"))
	defer srv.Close()
	pr, pw := io.Pipe()
	got := make(chan map[string]any, 1)
	go func() {
		var body map[string]any
		resp, err := http.Post(srv.URL+"/upload", "application/octet-stream", pr)
		if err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
		}
		got <- body
	}()
	if _, err := pw.Write([]byte("hello ")); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		t.Fatalf("answered before the body ended: %v", b)
	default:
	}
	if _, err := pw.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if b := <-got; b["body_bytes"] != 11.0 || b["method"] != "POST" {
		t.Fatalf("reply %v, want body_bytes 11", b)
	}
}

func TestHealthFlip(t *testing.T) {
	s := newService("web", "web-1")
	if resp, _ := do(t, s, http.MethodGet, "/health"); resp.StatusCode != 200 {
		t.Fatalf("initial /health = %d", resp.StatusCode)
	}
	if resp, body := do(t, s, http.MethodPost, "/admin/health?status=500"); resp.StatusCode != 200 || body["health_status"] != 500.0 {
		t.Fatalf("flip: %d %v", resp.StatusCode, body)
	}
	if resp, body := do(t, s, http.MethodGet, "/health"); resp.StatusCode != 500 || body["status"] != "failing" {
		t.Fatalf("/health after flip = %d %v", resp.StatusCode, body)
	}
	// Other requests are still served while /health fails.
	if resp, _ := do(t, s, http.MethodGet, "/x"); resp.StatusCode != 200 {
		t.Fatalf("echo while unhealthy = %d", resp.StatusCode)
	}
	do(t, s, http.MethodPost, "/admin/health?status=200")
	if resp, _ := do(t, s, http.MethodGet, "/health"); resp.StatusCode != 200 {
		t.Fatalf("/health after restore = %d", resp.StatusCode)
	}
}

func TestHealthFlipRejectsBadInput(t *testing.T) {
	s := newService("web", "web-1")
	for _, q := range []string{"", "?status=abc", "?status=99", "?status=600", "?status=199"} {
		if resp, _ := do(t, s, http.MethodPost, "/admin/health"+q); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST /admin/health%s = %d, want 400", q, resp.StatusCode)
		}
	}
	if resp, _ := do(t, s, http.MethodGet, "/admin/health?status=500"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /admin/health = %d, want 405", resp.StatusCode)
	}
	if resp, _ := do(t, s, http.MethodGet, "/health"); resp.StatusCode != 200 {
		t.Errorf("/health changed by rejected requests: %d", resp.StatusCode)
	}
}

func TestParseFlagsAndEnv(t *testing.T) {
	env := map[string]string{"DEMO_NAME": "web", "DEMO_INSTANCE": "w1", "DEMO_LISTEN": "127.0.0.1:9100", "DEMO_SHUTDOWN_DELAY": "3s"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	o, err := parse(nil, lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := options{name: "web", instance: "w1", listen: "127.0.0.1:9100", shutdownDelay: 3 * time.Second}
	if o != want {
		t.Fatalf("from env: %+v, want %+v", o, want)
	}
	o, err = parse([]string{"--name", "api", "--shutdown-delay", "0s"}, lookup, io.Discard)
	if err != nil || o.name != "api" || o.shutdownDelay != 0 || o.instance != "w1" {
		t.Fatalf("flags over env: %+v %v", o, err)
	}
	for _, args := range [][]string{{"--shutdown-delay", "-1s"}, {"extra"}, {"--nope"}} {
		if _, err := parse(args, lookup, io.Discard); err == nil {
			t.Errorf("parse(%q) accepted", args)
		}
	}
	env["DEMO_SHUTDOWN_DELAY"] = "soon"
	if _, err := parse(nil, lookup, io.Discard); err == nil || !strings.Contains(err.Error(), "DEMO_SHUTDOWN_DELAY") {
		t.Errorf("bad DEMO_SHUTDOWN_DELAY: %v", err)
	}
}

// TestLameDuck checks the shutdown sequence on a real listener: /health
// fails at once, other requests are served during the delay, then the
// listener closes and serve returns.
func TestLameDuck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const delay = 1500 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, newService("web", "w1"), delay, io.Discard) }()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	status := func(path string) int {
		resp, err := c.Get(addr + path)
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status("/health"); s != 200 {
		t.Fatalf("/health before shutdown = %d", s)
	}
	stopped := time.Now()
	cancel()
	deadline := stopped.Add(delay / 2)
	for status("/health") != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("/health did not turn 503 after the shutdown signal")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := status("/work"); s != 200 {
		t.Fatalf("request during lame duck = %d, want 200", s)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
		if took := time.Since(stopped); took < delay {
			t.Fatalf("serve returned after %s, before the %s lame-duck delay", took, delay)
		}
	case <-time.After(delay + drainTimeout):
		t.Fatal("serve did not return")
	}
	if s := status("/health"); s != -1 {
		t.Fatalf("listener still answers after shutdown: %d", s)
	}
}
