package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outrigger-gw/outrigger/proxy"
)

// TestPortalFiles: the portal's files are served without the token (they
// hold no data), with a policy that allows only this origin; the API
// around them still needs it, and only GET and HEAD are public.
func TestPortalFiles(t *testing.T) {
	e := newEnv(t, fileRich, func(o *Options) { o.Token = testToken })
	r := e.do(http.MethodGet, "/portal/", nil)
	if r.status != 200 || !strings.Contains(string(r.raw), `src="app.js"`) || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /portal/: %d %s\n%s", r.status, r.header.Get("Content-Type"), r.raw)
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP: %q", csp)
	}
	for _, p := range []string{"/portal/app.js", "/portal/app.css"} {
		if r := e.do(http.MethodGet, p, nil); r.status != 200 || len(r.raw) < 1000 {
			t.Fatalf("GET %s: %d, %d bytes", p, r.status, len(r.raw))
		}
	}
	if r := e.do(http.MethodGet, "/portal", nil); r.status != http.StatusTemporaryRedirect || r.header.Get("Location") != "/portal/" {
		t.Fatalf("GET /portal: %d %q", r.status, r.header.Get("Location"))
	}
	if r := e.do(http.MethodGet, "/portal/nope.js", nil); r.status != 404 {
		t.Fatalf("a missing file: %d", r.status)
	}
	if r := e.do(http.MethodPost, "/portal/", nil); r.status != 401 {
		t.Fatalf("POST /portal/ without the token: %d", r.status)
	}
	if r := e.do(http.MethodGet, "/stats/stream?frames=1", nil); r.status != 401 {
		t.Fatalf("the stream without the token: %d", r.status)
	}
}

// TestRootForBrowsers: GET / asking for HTML is sent to the portal; an
// API client keeps getting the JSON root.
func TestRootForBrowsers(t *testing.T) {
	e := newEnv(t, fileRich, func(o *Options) { o.Token = testToken })
	r := e.do(http.MethodGet, "/", nil, "Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/portal/" {
		t.Fatalf("browser: %d %q", r.status, r.header.Get("Location"))
	}
	for _, accept := range []string{"", "*/*", "application/json"} {
		if r := e.do(http.MethodGet, "/", nil, "Accept", accept, "Authorization", "Bearer "+testToken); r.status != 200 || r.str("tagline") == "" {
			t.Fatalf("Accept %q: %d %s", accept, r.status, r.raw)
		}
		if r := e.do(http.MethodGet, "/", nil, "Accept", accept); r.status != 401 {
			t.Fatalf("Accept %q without the token: %d", accept, r.status)
		}
	}
}

// streamEnv is an admin API over a registry holding the proxy's metrics.
func streamEnv(t testing.TB, opts ...func(*Options)) (*streamTest, *proxy.Metrics) {
	reg := prometheus.NewRegistry()
	pm := proxy.NewMetrics(reg)
	e := newEnv(t, fileRich, append([]func(*Options){func(o *Options) { o.Metrics = reg }}, opts...)...)
	return &streamTest{env: e, reg: reg}, pm
}

// streamTest is an env with its metrics registry.
type streamTest struct {
	*env
	reg *prometheus.Registry
}

// readFrames parses the "stats" events of an event stream.
func readFrames(t *testing.T, body string) []statsFrame {
	t.Helper()
	var out []statsFrame
	for _, block := range strings.Split(body, "\n\n") {
		if strings.TrimSpace(block) == "" {
			continue
		}
		ev, data, _ := strings.Cut(block, "\n")
		if ev != "event: stats" || !strings.HasPrefix(data, "data: ") {
			t.Fatalf("not a stats event: %q", block)
		}
		var f statsFrame
		if err := json.Unmarshal([]byte(strings.TrimPrefix(data, "data: ")), &f); err != nil {
			t.Fatalf("frame: %v: %s", err, data)
		}
		out = append(out, f)
	}
	return out
}

// TestStatsStreamFrames: each frame holds every upstream with its targets
// and the proxy's counters per target and per (service, upstream).
func TestStatsStreamFrames(t *testing.T) {
	e, pm := streamEnv(t)
	pm.Requests.WithLabelValues("example_route", "example_service", "example_upstream", "10.0.0.1:8080", "2xx").Add(7)
	pm.Requests.WithLabelValues("example_route", "example_service", "example_upstream", "10.0.0.1:8080", "5xx").Add(2)
	pm.Requests.WithLabelValues("example_route", "example_service", "canary_upstream", "10.0.1.1:8080", "2xx").Add(3)
	for _, d := range []float64{0.002, 0.002, 0.3} {
		pm.Latency.WithLabelValues("example_route", "example_service", "example_upstream").Observe(d)
	}
	// The discovery freshness series, as the gateway's collector names them.
	age := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "outrigger_discovery_last_success_age_seconds"}, []string{"upstream", "source"})
	stale := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "outrigger_discovery_staleness_seconds"}, []string{"upstream", "source_kind"})
	e.reg.MustRegister(age, stale)
	age.WithLabelValues("example_upstream", "consul:web").Set(2)
	stale.WithLabelValues("example_upstream", "consul").Set(7)
	r := e.do(http.MethodGet, "/stats/stream?frames=2", nil)
	if r.status != 200 || r.header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s: %s", r.status, r.header.Get("Content-Type"), r.raw)
	}
	frames := readFrames(t, string(r.raw))
	if len(frames) != 2 {
		t.Fatalf("%d frames, want 2", len(frames))
	}
	f := frames[1]
	var up *streamUp
	for i := range f.Upstreams {
		if f.Upstreams[i].Name == "example_upstream" {
			up = &f.Upstreams[i]
		}
	}
	if len(f.Upstreams) != 3 || up == nil || len(up.Targets) != 2 || strings.Join(up.Sources, ",") != "static" {
		t.Fatalf("upstreams: %+v", f.Upstreams)
	}
	if len(up.Discovery) != 1 || up.Discovery[0].Source != "consul:web" || *up.Discovery[0].AgeSeconds != 2 || *up.Discovery[0].StalenessSeconds != 7 {
		t.Fatalf("discovery: %+v", up.Discovery)
	}
	for _, tg := range up.Targets {
		want := [2]uint64{}
		if tg.Target == "10.0.0.1:8080" {
			want = [2]uint64{9, 2}
		}
		if got := [2]uint64{tg.Responses, tg.Errors}; got != want || tg.Weight != 100 || tg.Mark != "none" {
			t.Fatalf("target %s: responses, errors %v, want %v: %+v", tg.Target, got, want, tg)
		}
	}
	var primary *streamTraffic
	for i := range f.Traffic {
		if f.Traffic[i].Upstream == "example_upstream" {
			primary = &f.Traffic[i]
		}
	}
	if len(f.Traffic) != 2 || primary == nil || primary.Requests != 9 || primary.Errors != 2 || primary.Service != "example_service" {
		t.Fatalf("traffic: %+v", f.Traffic)
	}
	// Cumulative buckets: two at 2 ms, one at 300 ms, +Inf last.
	if len(primary.Buckets) != len(f.LatencyBuckets)+1 || primary.Buckets[len(primary.Buckets)-1] != 3 {
		t.Fatalf("buckets %v over %v", primary.Buckets, f.LatencyBuckets)
	}
	for i, le := range f.LatencyBuckets {
		want := uint64(0)
		switch {
		case le >= 0.3:
			want = 3
		case le >= 0.002:
			want = 2
		}
		if primary.Buckets[i] != want {
			t.Fatalf("bucket le=%v: %d, want %d (%v)", le, primary.Buckets[i], want, primary.Buckets)
		}
	}
	if r := e.do(http.MethodGet, "/stats/stream?frames=0", nil); r.status != 400 || r.fields()["frames"] == nil {
		t.Fatalf("frames=0: %d %s", r.status, r.raw)
	}
	if r := e.do(http.MethodGet, "/stats/stream?every=1", nil); r.status != 400 || r.fields()["every"] == nil {
		t.Fatalf("an unknown option: %d %s", r.status, r.raw)
	}
}

// TestStatsStreamBound: clients over MaxStreams are refused while the
// others stream; a slot frees when its client leaves, and closing Done
// ends every stream.
func TestStatsStreamBound(t *testing.T) {
	done := make(chan struct{})
	e, _ := streamEnv(t, func(o *Options) { o.MaxStreams = 1; o.Done = done })
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	open := func() (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/stats/stream", nil)
		return http.DefaultClient.Do(req)
	}
	first, err := open()
	if err != nil || first.StatusCode != 200 {
		t.Fatalf("first stream: %v %v", err, first)
	}
	line, err := bufio.NewReader(first.Body).ReadString('\n')
	if err != nil || line != "event: stats\n" {
		t.Fatalf("first frame: %q %v", line, err)
	}
	second, err := open()
	if err != nil {
		t.Fatal(err)
	}
	second.Body.Close()
	if second.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second stream over the bound: %d", second.StatusCode)
	}
	first.Body.Close()
	// The server sees the client leave at its next frame (within a second).
	var third *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; {
		if third, err = open(); err != nil {
			t.Fatal(err)
		}
		if third.StatusCode == 200 {
			break
		}
		third.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("the slot was not freed: %d", third.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(done)
	ended := make(chan error, 1)
	go func() {
		_, err := bufio.NewReader(third.Body).ReadString(0) // to EOF
		ended <- err
	}()
	select {
	case <-ended:
	case <-ctx.Done():
		t.Fatal("closing Done did not end the stream")
	}
	third.Body.Close()
}

// BenchmarkStatsFrame: one frame of the stats stream (every upstream of
// fileRich, the proxy's series of 100 targets' worth of traffic), against
// GET /upstreams/{u}/debug of one upstream as a baseline.
func BenchmarkStatsFrame(b *testing.B) {
	e, pm := streamEnv(b)
	for i := range 100 {
		pm.Requests.WithLabelValues("example_route", "example_service", "example_upstream", fmt.Sprintf("10.0.0.%d:8080", i), "2xx").Add(3)
	}
	pm.Latency.WithLabelValues("example_route", "example_service", "example_upstream").Observe(0.01)
	api := e.h.(*api)
	b.Run("frame", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(api.statsFrame()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("debug-view", func(b *testing.B) {
		req := httptest.NewRequest(http.MethodGet, "/upstreams/example_upstream/debug", nil)
		for b.Loop() {
			rec := httptest.NewRecorder()
			api.ServeHTTP(rec, req)
		}
	})
}
