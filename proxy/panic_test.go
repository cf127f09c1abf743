package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/proxy/router"
	"github.com/outrigger-gw/outrigger/upstream"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the logged JSON lines whose message is msg.
func (s *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		var m map[string]any
		if l == "" {
			continue
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// gathered returns the value of the counter or gauge series of reg named
// name whose labels include want (-1 when there is none).
func gathered(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// roundTripFunc is an http.RoundTripper; the panicking ones stand for a
// defect anywhere below the proxy's handler.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// panicBody panics on its first Read, after the response head is out.
type panicBody struct{}

func (panicBody) Read([]byte) (int, error) { panic("body exploded") }
func (panicBody) Close() error             { return nil }

// A panic while serving a proxied request: logged at error level with its
// stack, counted in outrigger_panics_total{listener="proxy"}, answered 500
// with the JSON error body when nothing was written yet and aborted
// otherwise; the request is still counted, every in-flight count returns
// to zero, and the next request is served. http.ErrAbortHandler aborts
// silently: not logged, not counted.
func TestPanicWhileServing(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer be.Close()
	real := NewTransports().Get(TransportOptions{ConnectTimeout: time.Second, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute})
	for _, tc := range []struct {
		desc    string
		rt      func(*http.Request) (*http.Response, error)
		status  int // 0: the connection is aborted
		panics  float64
		logged  string // the panic value logged, "" for none
		started bool
	}{
		{desc: "panic in the transport", status: 500, panics: 1, logged: "transport exploded",
			rt: func(*http.Request) (*http.Response, error) { panic("transport exploded") }},
		{desc: "panic after the response head", panics: 1, logged: "body exploded", started: true,
			rt: func(r *http.Request) (*http.Response, error) {
				resp, err := real.RoundTrip(r)
				if err == nil {
					resp.Body.Close()
					resp.Body, resp.ContentLength = panicBody{}, -1
					resp.Header.Del("Content-Length")
				}
				return resp, err
			}},
		{desc: "http.ErrAbortHandler", rt: func(*http.Request) (*http.Response, error) { panic(http.ErrAbortHandler) }},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			panics := prometheus.NewCounter(prometheus.CounterOpts{Name: "outrigger_panics_total", ConstLabels: prometheus.Labels{"listener": "proxy"}})
			reg.MustRegister(panics)
			var logs syncBuffer
			mt := NewMetrics(reg)
			p := New(Options{Log: zerolog.New(&logs), Metrics: mt, Panics: panics})
			u := upstream.New(upstream.Options{Name: "u", Balancer: balance.NewRoundRobin()})
			u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: strings.TrimPrefix(be.URL, "http://"), Weight: 1}})
			broken := &Service{Name: "broken", Scheme: "http", Upstream: u, Transport: roundTripFunc(tc.rt)}
			fine := &Service{Name: "fine", Scheme: "http", Upstream: u, Transport: real}
			rtr, err := router.New([]router.Route{
				{Name: "broken", Paths: []string{"/broken"}, Value: &Route{Name: "broken", Service: broken}},
				{Name: "fine", Paths: []string{"/fine"}, Value: &Route{Name: "fine", Service: fine}},
			})
			if err != nil {
				t.Fatal(err)
			}
			p.SetTable(&Table{Router: rtr})
			srv := httptest.NewServer(p)
			defer srv.Close()
			c := &http.Client{Timeout: 10 * time.Second}

			resp, err := c.Get(srv.URL + "/broken")
			switch {
			case tc.status == 0 && err == nil:
				_, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				if rerr == nil {
					t.Fatalf("status %d with a complete body; want the connection aborted", resp.StatusCode)
				}
			case tc.status == 0:
			case err != nil:
				t.Fatal(err)
			default:
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.status || strings.TrimSpace(string(b)) != `{"message":"An unexpected error occurred"}` ||
					!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
					t.Fatalf("answer %d %q (%s), want %d with the JSON error body", resp.StatusCode, b, resp.Header.Get("Content-Type"), tc.status)
				}
			}

			// The process keeps serving.
			resp, err = c.Get(srv.URL + "/fine")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "ok" {
				t.Fatalf("the next request: %d %q", resp.StatusCode, b)
			}

			if got := gathered(t, reg, "outrigger_panics_total", nil); got != tc.panics {
				t.Errorf("outrigger_panics_total = %v, want %v", got, tc.panics)
			}
			lines := logs.lines(t, "panic serving a request")
			if tc.logged == "" {
				if len(lines) != 0 {
					t.Errorf("logged %v; http.ErrAbortHandler must abort silently", lines)
				}
			} else {
				if len(lines) != 1 {
					t.Fatalf("%d panic lines logged, want 1: %v", len(lines), lines)
				}
				l := lines[0]
				stack, _ := l["stack"].(string)
				if l["level"] != "error" || l["panic"] != tc.logged || l["listener"] != "proxy" || l["path"] != "/broken" ||
					l["response_started"] != tc.started || !strings.Contains(stack, "panic_test.go") {
					t.Errorf("panic line %v", l)
				}
			}
			if tc.status != 0 {
				if got := gathered(t, reg, "outrigger_requests_total", map[string]string{"route": "broken", "code": "5xx"}); got != 1 {
					t.Errorf("requests_total{route=broken,code=5xx} = %v, want 1", got)
				}
			}
			waitZero := func(what string, v func() float64) {
				end := time.Now().Add(5 * time.Second)
				for v() != 0 {
					if time.Now().After(end) {
						t.Fatalf("%s = %v, want 0", what, v())
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			waitZero("requests_in_flight", func() float64 { return gathered(t, reg, "outrigger_requests_in_flight", nil) })
			waitZero("the target's in-flight count", func() float64 { return float64(u.Snapshot().Endpoints[0].Stats.InFlight.Load()) })
		})
	}
}

// Counting a finished request to a target resolves its series children
// once per target and (route, service, class): afterwards it allocates
// nothing.
func TestRecordTargetAllocatesNothing(t *testing.T) {
	mt := NewMetrics(prometheus.NewRegistry())
	u := upstream.New(upstream.Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: "127.0.0.1:1", Weight: 1}})
	ep := &u.Snapshot().Endpoints[0]
	mt.record("r", "s", "u", ep, 200, time.Millisecond)
	mt.record("r", "s", "u", ep, 503, time.Millisecond)
	if n := testing.AllocsPerRun(100, func() {
		mt.record("r", "s", "u", ep, 200, time.Millisecond)
		mt.record("r", "s", "u", ep, 503, time.Millisecond)
	}); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}

// panicBuilder builds pickers whose Pick panics with v.
type panicBuilder struct{ v any }

func (b panicBuilder) Build([]balance.Endpoint, balance.Picker) balance.Picker { return panicPicker(b) }

type panicPicker panicBuilder

func (p panicPicker) Pick(*balance.Request) int { panic(p.v) }

// The engine (the proxy listener's HTTP/1.1 server) follows the same rule
// as the net/http path: a panic while serving a request is logged at error
// level with its stack, counted, answered with the JSON 500 when nothing
// was written yet, and the request is still counted; the process keeps
// serving. http.ErrAbortHandler closes the connection silently.
func TestEnginePanicWhileServing(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer be.Close()
	beAddr := strings.TrimPrefix(be.URL, "http://")
	tr := NewTransports().Get(TransportOptions{ConnectTimeout: time.Second, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute})
	for _, tc := range []struct {
		desc   string
		v      any
		status int // 0: the connection is closed without an answer
		panics float64
	}{
		{desc: "panic in the balancer", v: "picker exploded", status: 500, panics: 1},
		{desc: "http.ErrAbortHandler", v: http.ErrAbortHandler},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			panics := prometheus.NewCounter(prometheus.CounterOpts{Name: "outrigger_panics_total", ConstLabels: prometheus.Labels{"listener": "proxy"}})
			reg.MustRegister(panics)
			var logs syncBuffer
			p := New(Options{Log: zerolog.New(&logs), Metrics: NewMetrics(reg), Panics: panics})
			bad := upstream.New(upstream.Options{Name: "bad", Balancer: panicBuilder{tc.v}})
			bad.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: beAddr, Weight: 1}})
			good := upstream.New(upstream.Options{Name: "good", Balancer: balance.NewRoundRobin()})
			good.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: beAddr, Weight: 1}})
			rtr, err := router.New([]router.Route{
				{Name: "broken", Paths: []string{"/broken"}, Value: &Route{Name: "broken", Service: &Service{Name: "broken", Scheme: "http", Upstream: bad, Transport: tr}}},
				{Name: "fine", Paths: []string{"/fine"}, Value: &Route{Name: "fine", Service: &Service{Name: "fine", Scheme: "http", Upstream: good, Transport: tr}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			p.SetTable(&Table{Router: rtr})
			base := serveEngine(t, p, ServerOptions{})
			c := &http.Client{Timeout: 10 * time.Second}

			resp, err := c.Get(base + "/broken")
			switch {
			case tc.status == 0:
				if err == nil {
					resp.Body.Close()
					t.Fatalf("answered %d; want the connection closed", resp.StatusCode)
				}
			case err != nil:
				t.Fatal(err)
			default:
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.status || strings.TrimSpace(string(b)) != `{"message":"An unexpected error occurred"}` {
					t.Fatalf("answer %d %q, want %d with the JSON error body", resp.StatusCode, b, tc.status)
				}
			}

			resp, err = c.Get(base + "/fine")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "ok" {
				t.Fatalf("the next request: %d %q", resp.StatusCode, b)
			}
			if got := gathered(t, reg, "outrigger_panics_total", nil); got != tc.panics {
				t.Errorf("outrigger_panics_total = %v, want %v", got, tc.panics)
			}
			lines := logs.lines(t, "panic serving a request")
			if tc.panics == 0 {
				if len(lines) != 0 {
					t.Errorf("logged %v; http.ErrAbortHandler must abort silently", lines)
				}
			} else {
				if len(lines) != 1 {
					t.Fatalf("%d panic lines logged, want 1: %v", len(lines), lines)
				}
				l := lines[0]
				stack, _ := l["stack"].(string)
				if l["level"] != "error" || l["panic"] != tc.v || l["path"] != "/broken" || l["response_started"] != false ||
					!strings.Contains(stack, "panic_test.go") {
					t.Errorf("panic line %v", l)
				}
			}
			// The answer goes out before the request is counted (and the
			// in-flight gauge drops before the count).
			broken5xx := func() float64 {
				return gathered(t, reg, "outrigger_requests_total", map[string]string{"route": "broken", "code": "5xx"})
			}
			end := time.Now().Add(5 * time.Second)
			for broken5xx() < 1 && time.Now().Before(end) { // -1: not counted yet
				time.Sleep(5 * time.Millisecond)
			}
			if got := broken5xx(); got != 1 {
				t.Errorf("requests_total{route=broken,code=5xx} = %v, want 1", got)
			}
			// The /fine request may still be counting itself.
			for gathered(t, reg, "outrigger_requests_in_flight", nil) != 0 && time.Now().Before(end) {
				time.Sleep(5 * time.Millisecond)
			}
			if got := gathered(t, reg, "outrigger_requests_in_flight", nil); got != 0 {
				t.Errorf("requests_in_flight = %v, want 0", got)
			}
		})
	}
}
