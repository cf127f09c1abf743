package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/proxy/router"
	"github.com/outrigger-gw/outrigger/upstream"
)

// pathCase is one request through a route to a service; v0 and v1 are the
// paths Kong sends upstream under each path_handling. "kong N" in a desc
// names the row of Kong's own table (spec/fixtures/router_path_handling_tests.lua,
// used by spec/01-unit/08-router_spec.lua "#slash handling") that gives the
// same answer with /service, /route and "req" for /s, /r and "x"; rows
// without one follow from the same code (kong/router/utils.lua
// get_upstream_uri_v0 and the v1 branch of kong/router/traditional.lua).
type pathCase struct {
	desc    string
	service string
	route   string // "" = a route on the host only
	strip   bool
	req     string
	v0, v1  string
}

// routePathCases is the full table: service paths /, /s, /s/; routes /r and
// /r/ (each /r row also runs on the regex route ~/[0]?r, as Kong's spec does
// for every row); requests /r, /r/, /r/x, /r/x/; strip on and off.
var routePathCases = []pathCase{
	// Service "/".
	{desc: "kong 6: root service, no strip keeps the path", service: "/", route: "/r", req: "/r", v0: "/r", v1: "/r"},
	{desc: "kong 7: root service, no strip keeps the trailing slash", service: "/", route: "/r", req: "/r/", v0: "/r/", v1: "/r/"},
	{desc: "root service, no strip keeps a sub-path", service: "/", route: "/r", req: "/r/x", v0: "/r/x", v1: "/r/x"},
	{desc: "root service, no strip keeps a sub-path's slash", service: "/", route: "/r", req: "/r/x/", v0: "/r/x/", v1: "/r/x/"},
	{desc: "kong 12: root service, slash route, no strip", service: "/", route: "/r/", req: "/r/", v0: "/r/", v1: "/r/"},
	{desc: "kong 13: root service, slash route, no strip, sub-path", service: "/", route: "/r/", req: "/r/x", v0: "/r/x", v1: "/r/x"},
	{desc: "root service, slash route, no strip, sub-path slash", service: "/", route: "/r/", req: "/r/x/", v0: "/r/x/", v1: "/r/x/"},
	{desc: "kong 9: root service, strip the whole path gives /", service: "/", route: "/r", strip: true, req: "/r", v0: "/", v1: "/"},
	{desc: "kong 10: root service, strip leaves one slash", service: "/", route: "/r", strip: true, req: "/r/", v0: "/", v1: "/"},
	{desc: "root service, strip keeps the sub-path", service: "/", route: "/r", strip: true, req: "/r/x", v0: "/x", v1: "/x"},
	{desc: "root service, strip keeps the sub-path's slash", service: "/", route: "/r", strip: true, req: "/r/x/", v0: "/x/", v1: "/x/"},
	{desc: "kong 14: root service, strip slash route gives /", service: "/", route: "/r/", strip: true, req: "/r/", v0: "/", v1: "/"},
	{desc: "kong 15: root service, strip slash route, sub-path", service: "/", route: "/r/", strip: true, req: "/r/x", v0: "/x", v1: "/x"},
	{desc: "root service, strip slash route, sub-path slash", service: "/", route: "/r/", strip: true, req: "/r/x/", v0: "/x/", v1: "/x/"},

	// Service "/s".
	{desc: "kong 32/33: no strip, v0 adds a slash, v1 glues", service: "/s", route: "/r", req: "/r", v0: "/s/r", v1: "/sr"},
	{desc: "kong 34/35: no strip, trailing slash kept", service: "/s", route: "/r", req: "/r/", v0: "/s/r/", v1: "/sr/"},
	{desc: "no strip, sub-path", service: "/s", route: "/r", req: "/r/x", v0: "/s/r/x", v1: "/sr/x"},
	{desc: "no strip, sub-path slash", service: "/s", route: "/r", req: "/r/x/", v0: "/s/r/x/", v1: "/sr/x/"},
	{desc: "kong 42/43: slash route, no strip", service: "/s", route: "/r/", req: "/r/", v0: "/s/r/", v1: "/sr/"},
	{desc: "kong 44/45: slash route, no strip, sub-path", service: "/s", route: "/r/", req: "/r/x", v0: "/s/r/x", v1: "/sr/x"},
	{desc: "slash route, no strip, sub-path slash", service: "/s", route: "/r/", req: "/r/x/", v0: "/s/r/x/", v1: "/sr/x/"},
	{desc: "kong 38: strip the whole path gives the service path", service: "/s", route: "/r", strip: true, req: "/r", v0: "/s", v1: "/s"},
	{desc: "kong 39: strip keeps the request's trailing slash", service: "/s", route: "/r", strip: true, req: "/r/", v0: "/s/", v1: "/s/"},
	{desc: "strip keeps the sub-path", service: "/s", route: "/r", strip: true, req: "/r/x", v0: "/s/x", v1: "/s/x"},
	{desc: "strip keeps the sub-path's slash", service: "/s", route: "/r", strip: true, req: "/r/x/", v0: "/s/x/", v1: "/s/x/"},
	{desc: "kong 46/47: strip slash route, v0 keeps the trailing slash", service: "/s", route: "/r/", strip: true, req: "/r/", v0: "/s/", v1: "/s"},
	{desc: "kong 48/49: strip slash route, v0 adds a slash, v1 glues", service: "/s", route: "/r/", strip: true, req: "/r/x", v0: "/s/x", v1: "/sx"},
	{desc: "strip slash route, sub-path slash", service: "/s", route: "/r/", strip: true, req: "/r/x/", v0: "/s/x/", v1: "/sx/"},

	// Service "/s/".
	{desc: "kong 56: slash service, no strip", service: "/s/", route: "/r", req: "/r", v0: "/s/r", v1: "/s/r"},
	{desc: "kong 57: slash service, no strip, trailing slash", service: "/s/", route: "/r", req: "/r/", v0: "/s/r/", v1: "/s/r/"},
	{desc: "slash service, no strip, sub-path", service: "/s/", route: "/r", req: "/r/x", v0: "/s/r/x", v1: "/s/r/x"},
	{desc: "slash service, no strip, sub-path slash", service: "/s/", route: "/r", req: "/r/x/", v0: "/s/r/x/", v1: "/s/r/x/"},
	{desc: "kong 63: slash service, slash route, no strip", service: "/s/", route: "/r/", req: "/r/", v0: "/s/r/", v1: "/s/r/"},
	{desc: "kong 64: slash service, slash route, no strip, sub-path", service: "/s/", route: "/r/", req: "/r/x", v0: "/s/r/x", v1: "/s/r/x"},
	{desc: "slash service, slash route, no strip, sub-path slash", service: "/s/", route: "/r/", req: "/r/x/", v0: "/s/r/x/", v1: "/s/r/x/"},
	{desc: "kong 59/60: slash service, strip all, v0 drops the slash, v1 keeps it", service: "/s/", route: "/r", strip: true, req: "/r", v0: "/s", v1: "/s/"},
	{desc: "kong 61: slash service, strip leaves one slash", service: "/s/", route: "/r", strip: true, req: "/r/", v0: "/s/", v1: "/s/"},
	{desc: "slash service, strip, sub-path without a doubled slash", service: "/s/", route: "/r", strip: true, req: "/r/x", v0: "/s/x", v1: "/s/x"},
	{desc: "slash service, strip, sub-path slash", service: "/s/", route: "/r", strip: true, req: "/r/x/", v0: "/s/x/", v1: "/s/x/"},
	{desc: "kong 65: slash service, strip slash route", service: "/s/", route: "/r/", strip: true, req: "/r/", v0: "/s/", v1: "/s/"},
	{desc: "kong 66: slash service, strip slash route, sub-path", service: "/s/", route: "/r/", strip: true, req: "/r/x", v0: "/s/x", v1: "/s/x"},
	{desc: "slash service, strip slash route, sub-path slash", service: "/s/", route: "/r/", strip: true, req: "/r/x/", v0: "/s/x/", v1: "/s/x/"},

	// Kong's other rows: a prefix ending mid-segment, the root route,
	// routes on the host only, and "." / ".." after the prefix (the
	// percent-encoded ones reach the router decoded).
	{desc: "kong 11: root service, strip mid-segment", service: "/", route: "/r", strip: true, req: "/rx", v0: "/x", v1: "/x"},
	{desc: "kong 36/37: no strip mid-segment", service: "/s", route: "/r", req: "/rx", v0: "/s/rx", v1: "/srx"},
	{desc: "kong 40/41: strip mid-segment, v0 adds a slash, v1 glues", service: "/s", route: "/r", strip: true, req: "/rx", v0: "/s/x", v1: "/sx"},
	{desc: "kong 62: slash service, strip mid-segment", service: "/s/", route: "/r", strip: true, req: "/rx", v0: "/s/x", v1: "/s/x"},
	{desc: "kong 2: root service, root route", service: "/", route: "/", strip: true, req: "/x", v0: "/x", v1: "/x"},
	{desc: "kong 23: root route on / gives the service path", service: "/s", route: "/", strip: true, req: "/", v0: "/s", v1: "/s"},
	{desc: "kong 23: root route on /, no strip", service: "/s", route: "/", req: "/", v0: "/s", v1: "/s"},
	{desc: "kong 24/25: root route, strip", service: "/s", route: "/", strip: true, req: "/x", v0: "/s/x", v1: "/sx"},
	{desc: "kong 24/25: root route, no strip", service: "/s", route: "/", req: "/x", v0: "/s/x", v1: "/sx"},
	{desc: "kong 26/27: root route, trailing slash", service: "/s", route: "/", strip: true, req: "/x/", v0: "/s/x/", v1: "/sx/"},
	{desc: "kong 50/51: slash service, root route", service: "/s/", route: "/", strip: true, req: "/x/", v0: "/s/x/", v1: "/s/x/"},
	{desc: "kong 52: slash service, root route on /", service: "/s/", route: "/", strip: true, req: "/", v0: "/s/", v1: "/s/"},
	{desc: "kong 69: host route, root service", service: "/", strip: true, req: "/x/", v0: "/x/", v1: "/x/"},
	{desc: "kong 70: host route on / gives the service path", service: "/s", strip: true, req: "/", v0: "/s", v1: "/s"},
	{desc: "kong 71/72: host route, strip", service: "/s", strip: true, req: "/x", v0: "/s/x", v1: "/sx"},
	{desc: "kong 71/72: host route, no strip", service: "/s", req: "/x", v0: "/s/x", v1: "/sx"},
	{desc: "kong 73/74: host route, trailing slash", service: "/s", strip: true, req: "/x/", v0: "/s/x/", v1: "/sx/"},
	{desc: "kong 75: slash service, host route on /", service: "/s/", strip: true, req: "/", v0: "/s/", v1: "/s/"},
	{desc: "kong 78/79: strip drops a leading ./", service: "/s", route: "/r", strip: true, req: "/r./x", v0: "/s/x", v1: "/sx"},
	{desc: "kong 80: slash service, strip drops a leading ./", service: "/s/", route: "/r", strip: true, req: "/r./x", v0: "/s/x", v1: "/s/x"},
	{desc: "kong 81/82: strip drops a leading encoded ./", service: "/s", route: "/r", strip: true, req: "/r%2E/x", v0: "/s/x", v1: "/sx"},
	{desc: "kong 87/88: strip drops a leading ../", service: "/s", route: "/r", strip: true, req: "/r../x", v0: "/s/x", v1: "/sx"},
	{desc: "kong 96/97: no strip keeps ./", service: "/s", route: "/r", req: "/r./x", v0: "/s/r./x", v1: "/sr./x"},
	{desc: "kong 111/112: no strip keeps an encoded ../ decoded", service: "/s", route: "/r", req: "/r%2e%2E/x", v0: "/s/r../x", v1: "/sr../x"},

	// The query string is never part of the path handling.
	{desc: "query kept after a trailing slash", service: "/s", route: "/r", strip: true, req: "/r/?a=1&b=%20x", v0: "/s/?a=1&b=%20x", v1: "/s/?a=1&b=%20x"},
	{desc: "query kept on a bare strip", service: "/s/", route: "/r", strip: true, req: "/r?a=1", v0: "/s?a=1", v1: "/s/?a=1"},
	{desc: "query kept without strip", service: "/s", route: "/r", req: "/r/x?a=1", v0: "/s/r/x?a=1", v1: "/sr/x?a=1"},
}

// pathProxy is a proxy in front of an origin that answers with the
// request URI it received and its X-Forwarded-Prefix.
type pathProxy struct {
	p   *Proxy
	url string
	svc *Service
	c   *http.Client
}

func newPathProxy(t *testing.T) *pathProxy {
	t.Helper()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Got-Prefix", r.Header.Get("X-Forwarded-Prefix"))
		io.WriteString(w, r.RequestURI)
	}))
	t.Cleanup(origin.Close)
	u := upstream.New(upstream.Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: strings.TrimPrefix(origin.URL, "http://"), Weight: 1}})
	svc := &Service{Name: "s", Scheme: "http", Upstream: u,
		Transport: NewTransports().Get(TransportOptions{ConnectTimeout: time.Second, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute})}
	p := New(Options{Log: zerolog.Nop(), Metrics: NewMetrics(prometheus.NewRegistry())})
	return &pathProxy{p: p, url: serveEngine(t, p, ServerOptions{}), svc: svc, c: &http.Client{Timeout: 10 * time.Second}}
}

// route installs one route (a path, or the host a.test when path is "")
// to the service with the given path.
func (pp *pathProxy) route(t *testing.T, servicePath, path string, strip bool, h PathHandling) {
	t.Helper()
	svc := *pp.svc
	svc.Path = servicePath
	rt := router.Route{Name: "r", StripPath: strip,
		Value: &Route{Name: "r", Service: &svc, StripPath: strip, PathHandling: h}}
	if path == "" {
		rt.Hosts = []string{"a.test"}
	} else {
		rt.Paths = []string{path}
	}
	r, err := router.New([]router.Route{rt})
	if err != nil {
		t.Fatal(err)
	}
	pp.p.SetTable(&Table{Router: r})
}

// get sends reqURI through the proxy and returns what the origin received
// and the X-Forwarded-Prefix it saw.
func (pp *pathProxy) get(t *testing.T, reqURI string) (got, prefix string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, pp.url+reqURI, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "a.test"
	resp, err := pp.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", reqURI, resp.StatusCode, b)
	}
	return string(b), resp.Header.Get("X-Got-Prefix")
}

// TestPathHandlingKong sends every row of the table through a real proxy to
// a real origin, under both path_handling values, and on the regex route
// too for the /r rows.
func TestPathHandlingKong(t *testing.T) {
	pp := newPathProxy(t)
	for _, tc := range routePathCases {
		paths := []string{tc.route}
		if tc.route == "/r" {
			paths = append(paths, "~/[0]?r")
		}
		for _, path := range paths {
			for _, h := range []PathHandling{PathV0, PathV1} {
				want := tc.v0
				if h == PathV1 {
					want = tc.v1
				}
				name := tc.desc + " " + h.String()
				if path != tc.route {
					name += " regex"
				}
				t.Run(name, func(t *testing.T) {
					pp.route(t, tc.service, path, tc.strip, h)
					if got, _ := pp.get(t, tc.req); got != want {
						t.Errorf("service %q route %q strip %v %s: %s went upstream as %q, want %q",
							tc.service, path, tc.strip, h, tc.req, got, want)
					}
				})
			}
		}
	}
}

// TestForwardedPrefix: X-Forwarded-Prefix is the part of the request path
// the route's path matched (Kong's uri_prefix), sent only with strip_path
// and never as a bare "/".
func TestForwardedPrefix(t *testing.T) {
	pp := newPathProxy(t)
	for _, tc := range []struct {
		desc, route string
		strip       bool
		req, want   string
	}{
		{desc: "prefix", route: "/r", strip: true, req: "/r/x", want: "/r"},
		{desc: "prefix ending mid-segment", route: "/r", strip: true, req: "/rx", want: "/r"},
		{desc: "regex match", route: `~/u/\d+`, strip: true, req: "/u/42/x", want: "/u/42"},
		{desc: "root route", route: "/", strip: true, req: "/x", want: ""},
		{desc: "host route", route: "", strip: true, req: "/x", want: ""},
		{desc: "no strip", route: "/r", req: "/r/x", want: ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			pp.route(t, "/", tc.route, tc.strip, PathV0)
			if _, got := pp.get(t, tc.req); got != tc.want {
				t.Errorf("X-Forwarded-Prefix %q, want %q", got, tc.want)
			}
		})
	}
}
