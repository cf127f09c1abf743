package router

import (
	"fmt"
	"math/rand"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

type req struct {
	method, host, path string
	header             http.Header
}

func TestMatch(t *testing.T) {
	tests := []struct {
		desc      string
		routes    []Route
		req       req
		wantName  string // "" = no match expected
		wantPath  string // checked when a match is expected
		wantIndex int    // checked when >= 0
	}{
		// Hosts.
		{
			desc: "exact host beats leading wildcard host",
			routes: []Route{
				{Name: "wild", Hosts: []string{"*.example.com"}, Paths: []string{"/"}},
				{Name: "exact", Hosts: []string{"api.example.com"}, Paths: []string{"/"}},
			},
			req:      req{"GET", "api.example.com", "/x", nil},
			wantName: "exact", wantPath: "/x", wantIndex: 1,
		},
		{
			desc: "exact host beats trailing wildcard host",
			routes: []Route{
				{Name: "wild", Hosts: []string{"api.*"}},
				{Name: "exact", Hosts: []string{"api.example.com"}},
			},
			req:      req{"GET", "api.example.com", "/x", nil},
			wantName: "exact", wantPath: "/x", wantIndex: 1,
		},
		{
			desc: "exact host beats wildcard even when the wildcard route has a longer prefix and a regex",
			routes: []Route{
				{Name: "wild-re", Hosts: []string{"*.example.com"}, Paths: []string{`~/api/\d+`}},
				{Name: "wild", Hosts: []string{"*.example.com"}, Paths: []string{"/api/v1"}},
				{Name: "exact", Hosts: []string{"api.example.com"}, Paths: []string{"/"}},
			},
			req:      req{"GET", "api.example.com", "/api/1", nil},
			wantName: "exact", wantPath: "/api/1", wantIndex: 2,
		},
		{
			desc: "wildcard host beats catch-all",
			routes: []Route{
				{Name: "any", Paths: []string{"/api/long/prefix"}},
				{Name: "wild", Hosts: []string{"*.example.com"}},
			},
			req:      req{"GET", "www.example.com", "/api/long/prefix", nil},
			wantName: "wild", wantPath: "/api/long/prefix",
		},
		{
			desc:     "leading wildcard matches several labels",
			routes:   []Route{{Name: "wild", Hosts: []string{"*.example.com"}}},
			req:      req{"GET", "a.b.example.com", "/", nil},
			wantName: "wild", wantPath: "/",
		},
		{
			desc:   "leading wildcard does not match the bare domain",
			routes: []Route{{Name: "wild", Hosts: []string{"*.example.com"}}},
			req:    req{"GET", "example.com", "/", nil},
		},
		{
			desc:   "leading wildcard does not match a different suffix",
			routes: []Route{{Name: "wild", Hosts: []string{"*.example.com"}}},
			req:    req{"GET", "a.badexample.com", "/", nil},
		},
		{
			desc:     "trailing wildcard matches any TLD",
			routes:   []Route{{Name: "wild", Hosts: []string{"example.*"}}},
			req:      req{"GET", "example.co.uk", "/", nil},
			wantName: "wild", wantPath: "/",
		},
		{
			desc:   "trailing wildcard does not match a longer leftmost label",
			routes: []Route{{Name: "wild", Hosts: []string{"example.*"}}},
			req:    req{"GET", "www.example.org", "/", nil},
		},
		{
			desc:   "trailing wildcard needs a label after the dot",
			routes: []Route{{Name: "wild", Hosts: []string{"example.*"}}},
			req:    req{"GET", "example.", "/", nil},
		},
		{
			desc: "among wildcard buckets the longest prefix wins",
			routes: []Route{
				{Name: "lead", Hosts: []string{"*.example.com"}, Paths: []string{"/a"}},
				{Name: "trail", Hosts: []string{"api.*"}, Paths: []string{"/a/b"}},
				{Name: "lead2", Hosts: []string{"*.com"}, Paths: []string{"/a/b/c"}},
			},
			req:      req{"GET", "api.example.com", "/a/b/c/d", nil},
			wantName: "lead2", wantPath: "/a/b/c/d",
		},
		{
			desc: "among wildcard buckets a regex beats a prefix",
			routes: []Route{
				{Name: "lead", Hosts: []string{"*.example.com"}, Paths: []string{"/a/b/c"}},
				{Name: "trail", Hosts: []string{"api.*"}, Paths: []string{`~/a`}},
			},
			req:      req{"GET", "api.example.com", "/a/b/c/d", nil},
			wantName: "trail", wantPath: "/a/b/c/d",
		},
		{
			desc: "among wildcard buckets definition order breaks ties",
			routes: []Route{
				{Name: "trail", Hosts: []string{"api.*"}, Paths: []string{"/a"}},
				{Name: "lead", Hosts: []string{"*.example.com"}, Paths: []string{"/a"}},
			},
			req:      req{"GET", "api.example.com", "/a", nil},
			wantName: "trail", wantPath: "/a",
		},
		{
			desc:     "route host with port matches the same port",
			routes:   []Route{{Name: "p", Hosts: []string{"api.example.com:8000"}}},
			req:      req{"GET", "api.example.com:8000", "/", nil},
			wantName: "p", wantPath: "/",
		},
		{
			desc:   "route host with port rejects another port",
			routes: []Route{{Name: "p", Hosts: []string{"api.example.com:8000"}}},
			req:    req{"GET", "api.example.com:9000", "/", nil},
		},
		{
			desc:   "route host with port rejects a Host header without port",
			routes: []Route{{Name: "p", Hosts: []string{"api.example.com:8000"}}},
			req:    req{"GET", "api.example.com", "/", nil},
		},
		{
			desc:     "route host without port matches any port",
			routes:   []Route{{Name: "p", Hosts: []string{"api.example.com"}}},
			req:      req{"GET", "api.example.com:9000", "/", nil},
			wantName: "p", wantPath: "/",
		},
		{
			desc: "port-constrained hosts pick the route for the request port",
			routes: []Route{
				{Name: "8000", Hosts: []string{"api.example.com:8000"}},
				{Name: "9000", Hosts: []string{"api.example.com:9000"}},
			},
			req:      req{"GET", "api.example.com:9000", "/", nil},
			wantName: "9000", wantPath: "/",
		},
		{
			desc:     "wildcard host with port",
			routes:   []Route{{Name: "w", Hosts: []string{"*.example.com:8443"}}},
			req:      req{"GET", "a.example.com:8443", "/", nil},
			wantName: "w", wantPath: "/",
		},
		{
			desc:   "wildcard host with port rejects another port",
			routes: []Route{{Name: "w", Hosts: []string{"*.example.com:8443"}}},
			req:    req{"GET", "a.example.com:443", "/", nil},
		},
		{
			desc:     "IPv6 host with port in request, route without port",
			routes:   []Route{{Name: "v6", Hosts: []string{"[::1]"}}},
			req:      req{"GET", "[::1]:8000", "/", nil},
			wantName: "v6", wantPath: "/",
		},
		{
			desc:     "IPv6 host with port in route and request",
			routes:   []Route{{Name: "v6", Hosts: []string{"[::1]:8000"}}},
			req:      req{"GET", "[::1]:8000", "/", nil},
			wantName: "v6", wantPath: "/",
		},
		{
			desc:   "IPv6 host port mismatch",
			routes: []Route{{Name: "v6", Hosts: []string{"[::1]:8000"}}},
			req:    req{"GET", "[::1]:8001", "/", nil},
		},
		{
			desc:     "unbracketed IPv6 route host is normalised and case-insensitive",
			routes:   []Route{{Name: "v6", Hosts: []string{"FE80::1"}}},
			req:      req{"GET", "[fe80::1]", "/", nil},
			wantName: "v6", wantPath: "/",
		},
		{
			desc:     "IPv4 host with port",
			routes:   []Route{{Name: "v4", Hosts: []string{"10.0.0.1"}}},
			req:      req{"GET", "10.0.0.1:80", "/", nil},
			wantName: "v4", wantPath: "/",
		},
		{
			desc:     "host comparison is case-insensitive (request)",
			routes:   []Route{{Name: "h", Hosts: []string{"api.example.com"}}},
			req:      req{"GET", "API.Example.COM:8000", "/", nil},
			wantName: "h", wantPath: "/",
		},
		{
			desc:     "host comparison is case-insensitive (route, wildcard)",
			routes:   []Route{{Name: "h", Hosts: []string{"*.Example.COM"}}},
			req:      req{"GET", "Www.EXAMPLE.com", "/", nil},
			wantName: "h", wantPath: "/",
		},
		{
			desc:     "trailing dot ignored in request host",
			routes:   []Route{{Name: "h", Hosts: []string{"api.example.com"}}},
			req:      req{"GET", "api.example.com.:8000", "/", nil},
			wantName: "h", wantPath: "/",
		},
		{
			desc:     "trailing dot ignored in route host",
			routes:   []Route{{Name: "h", Hosts: []string{"api.example.com."}}},
			req:      req{"GET", "api.example.com", "/", nil},
			wantName: "h", wantPath: "/",
		},
		{
			desc: "exact host bucket miss on method falls back to catch-all",
			routes: []Route{
				{Name: "host", Hosts: []string{"api.example.com"}, Methods: []string{"POST"}},
				{Name: "any", Paths: []string{"/"}},
			},
			req:      req{"GET", "api.example.com", "/x", nil},
			wantName: "any", wantPath: "/x",
		},
		{
			desc: "route with exact and wildcard hosts competes by the matched host",
			routes: []Route{
				{Name: "exact", Hosts: []string{"a.example.com"}, Paths: []string{"/"}},
				{Name: "mixed", Hosts: []string{"*.example.com", "b.example.com"}, Paths: []string{"/long"}},
			},
			req:      req{"GET", "a.example.com", "/long", nil},
			wantName: "exact", wantPath: "/long",
		},
		{
			desc:     "empty Host header only reaches host-less routes",
			routes:   []Route{{Name: "h", Hosts: []string{"a.com"}}, {Name: "any", Paths: []string{"/"}}},
			req:      req{"GET", "", "/", nil},
			wantName: "any", wantPath: "/",
		},

		// Paths.
		{
			desc: "longest prefix wins regardless of order",
			routes: []Route{
				{Name: "short", Paths: []string{"/api"}},
				{Name: "long", Paths: []string{"/api/v1"}},
				{Name: "mid", Paths: []string{"/api/"}},
			},
			req:      req{"GET", "x", "/api/v1/users", nil},
			wantName: "long", wantPath: "/api/v1/users",
		},
		{
			desc:     "prefix is a plain string prefix",
			routes:   []Route{{Name: "mock", Paths: []string{"/mock"}}},
			req:      req{"GET", "x", "/mockery", nil},
			wantName: "mock", wantPath: "/mockery",
		},
		{
			desc:   "prefix longer than path does not match",
			routes: []Route{{Name: "mock", Paths: []string{"/mock"}}},
			req:    req{"GET", "x", "/moc", nil},
		},
		{
			desc:   "prefix is case-sensitive",
			routes: []Route{{Name: "mock", Paths: []string{"/mock"}}},
			req:    req{"GET", "x", "/MOCK", nil},
		},
		{
			desc: "the best path of a multi-path route counts",
			routes: []Route{
				{Name: "mid", Paths: []string{"/ab"}},
				{Name: "multi", Paths: []string{"/a", "/abc"}},
			},
			req:      req{"GET", "x", "/abcd", nil},
			wantName: "multi", wantPath: "/abcd",
		},
		{
			desc: "regex beats a longer prefix",
			routes: []Route{
				{Name: "prefix", Paths: []string{"/users/123/profile"}},
				{Name: "regex", Paths: []string{`~/users/\d+`}},
			},
			req:      req{"GET", "x", "/users/123/profile", nil},
			wantName: "regex", wantPath: "/users/123/profile",
		},
		{
			desc:     "regex is anchored at the start of the path",
			routes:   []Route{{Name: "regex", Paths: []string{`~/users/\d+$`}}},
			req:      req{"GET", "x", "/api/users/1", nil},
			wantName: "",
		},
		{
			desc:   "regex with $ must match the whole path",
			routes: []Route{{Name: "regex", Paths: []string{`~/users/\d+$`}}},
			req:    req{"GET", "x", "/users/1/x", nil},
		},
		{
			desc:     "regex with alternation is anchored as a whole",
			routes:   []Route{{Name: "regex", Paths: []string{`~/a|/b`}}},
			req:      req{"GET", "x", "/b/x", nil},
			wantName: "regex", wantPath: "/b/x",
		},
		{
			desc:   "regex alternation anchoring rejects mid-path matches",
			routes: []Route{{Name: "regex", Paths: []string{`~/a|/b`}}},
			req:    req{"GET", "x", "/x/b", nil},
		},
		{
			desc: "higher regex_priority wins",
			routes: []Route{
				{Name: "low", Paths: []string{`~/users/\d+`}, RegexPriority: 1},
				{Name: "high", Paths: []string{`~/users/`}, RegexPriority: 5},
			},
			req:      req{"GET", "x", "/users/1", nil},
			wantName: "high", wantPath: "/users/1",
		},
		{
			desc: "equal regex_priority falls back to definition order",
			routes: []Route{
				{Name: "first", Paths: []string{`~/users/`}},
				{Name: "second", Paths: []string{`~/users/\d+`}},
			},
			req:      req{"GET", "x", "/users/1", nil},
			wantName: "first", wantPath: "/users/1",
		},
		{
			desc: "negative regex_priority still beats prefix",
			routes: []Route{
				{Name: "prefix", Paths: []string{"/users/1"}},
				{Name: "regex", Paths: []string{`~/users`}, RegexPriority: -10},
			},
			req:      req{"GET", "x", "/users/1", nil},
			wantName: "regex", wantPath: "/users/1",
		},
		{
			desc: "regex_priority is ignored for prefix routes",
			routes: []Route{
				{Name: "short", Paths: []string{"/a"}, RegexPriority: 100},
				{Name: "long", Paths: []string{"/a/b"}},
			},
			req:      req{"GET", "x", "/a/b", nil},
			wantName: "long", wantPath: "/a/b",
		},
		{
			desc: "many nested regex literal prefixes are merged in priority order",
			routes: []Route{
				{Name: "r1", Paths: []string{`~/a\d`}, RegexPriority: 1},
				{Name: "r2", Paths: []string{`~/a/b/\d`}, RegexPriority: 2},
				{Name: "r3", Paths: []string{`~/a/b/c/\d`}, RegexPriority: 3},
				{Name: "r0", Paths: []string{`~/a/`}, RegexPriority: 0},
				{Name: "r4", Paths: []string{`~/a/b/c/d`}, RegexPriority: 4},
			},
			req:      req{"GET", "x", "/a/b/c/d", nil},
			wantName: "r4", wantPath: "/a/b/c/d",
		},
		{
			desc:     "more nested regex literal prefixes than the merge bound",
			routes:   nestedRegexRoutes(12),
			req:      req{"GET", "x", "/s0/s1/s2/s3/s4/s5/s6/s7/s8/s9/s10/s11/tail", nil},
			wantName: "n5", wantPath: "/s6/s7/s8/s9/s10/s11/tail",
		},
		{
			desc: "regex that fails falls back to prefix",
			routes: []Route{
				{Name: "regex", Paths: []string{`~/users/\d+$`}},
				{Name: "prefix", Paths: []string{"/users"}},
			},
			req:      req{"GET", "x", "/users/abc", nil},
			wantName: "prefix", wantPath: "/users/abc",
		},
		{
			desc: "path-less route is the last resort within its host",
			routes: []Route{
				{Name: "hostonly", Hosts: []string{"a.com"}},
				{Name: "root", Hosts: []string{"a.com"}, Paths: []string{"/"}},
			},
			req:      req{"GET", "a.com", "/x", nil},
			wantName: "root", wantPath: "/x",
		},

		// Methods.
		{
			desc: "method-constrained route beats unconstrained one on the same prefix",
			routes: []Route{
				{Name: "any", Paths: []string{"/api"}},
				{Name: "get", Paths: []string{"/api"}, Methods: []string{"GET"}},
			},
			req:      req{"GET", "x", "/api", nil},
			wantName: "get", wantPath: "/api",
		},
		{
			desc: "method mismatch falls back to the same prefix without methods",
			routes: []Route{
				{Name: "get", Paths: []string{"/api"}, Methods: []string{"GET"}},
				{Name: "any", Paths: []string{"/api"}},
			},
			req:      req{"POST", "x", "/api", nil},
			wantName: "any", wantPath: "/api",
		},
		{
			desc: "method mismatch falls back to a shorter prefix",
			routes: []Route{
				{Name: "root", Paths: []string{"/"}},
				{Name: "get", Paths: []string{"/api/v1"}, Methods: []string{"GET", "HEAD"}},
			},
			req:      req{"DELETE", "x", "/api/v1/x", nil},
			wantName: "root", wantPath: "/api/v1/x",
		},
		{
			desc:     "methods are upper-cased at New",
			routes:   []Route{{Name: "get", Methods: []string{"get"}}},
			req:      req{"GET", "x", "/", nil},
			wantName: "get", wantPath: "/",
		},
		{
			desc:   "method-only route without match",
			routes: []Route{{Name: "get", Methods: []string{"GET"}}},
			req:    req{"PUT", "x", "/", nil},
		},
		{
			desc: "longest prefix beats more constraints",
			routes: []Route{
				{Name: "constrained", Paths: []string{"/a"}, Methods: []string{"GET"}, Headers: map[string][]string{"X-A": {"1"}}},
				{Name: "long", Paths: []string{"/a/b"}},
			},
			req:      req{"GET", "x", "/a/b", http.Header{"X-A": {"1"}}},
			wantName: "long", wantPath: "/a/b",
		},

		// Headers.
		{
			desc:     "header value matches one of several accepted values, case-insensitively",
			routes:   []Route{{Name: "h", Headers: map[string][]string{"x-version": {"v1", "V2"}}}},
			req:      req{"GET", "x", "/", http.Header{"X-Version": {"v2"}}},
			wantName: "h", wantPath: "/",
		},
		{
			desc:     "any of several request header values may match",
			routes:   []Route{{Name: "h", Headers: map[string][]string{"X-Version": {"v2"}}}},
			req:      req{"GET", "x", "/", http.Header{"X-Version": {"v1", "V2"}}},
			wantName: "h", wantPath: "/",
		},
		{
			desc:   "header value mismatch",
			routes: []Route{{Name: "h", Headers: map[string][]string{"X-Version": {"v2"}}}},
			req:    req{"GET", "x", "/", http.Header{"X-Version": {"v3"}}},
		},
		{
			desc:   "header values are not split on commas",
			routes: []Route{{Name: "h", Headers: map[string][]string{"X-Version": {"v2"}}}},
			req:    req{"GET", "x", "/", http.Header{"X-Version": {"v1, v2"}}},
		},
		{
			desc:   "all listed headers must match",
			routes: []Route{{Name: "h", Headers: map[string][]string{"X-A": {"1"}, "X-B": {"2"}}}},
			req:    req{"GET", "x", "/", http.Header{"X-A": {"1"}}},
		},
		{
			desc:   "missing header with nil header map",
			routes: []Route{{Name: "h", Headers: map[string][]string{"X-A": {"1"}}}},
			req:    req{"GET", "x", "/", nil},
		},
		{
			desc: "more headers beat fewer headers",
			routes: []Route{
				{Name: "one", Paths: []string{"/"}, Headers: map[string][]string{"X-A": {"1"}}},
				{Name: "two", Paths: []string{"/"}, Headers: map[string][]string{"X-A": {"1"}, "X-B": {"2"}}},
			},
			req:      req{"GET", "x", "/", http.Header{"X-A": {"1"}, "X-B": {"2"}}},
			wantName: "two", wantPath: "/",
		},
		{
			desc: "headers beat methods",
			routes: []Route{
				{Name: "method", Paths: []string{"/"}, Methods: []string{"GET"}},
				{Name: "header", Paths: []string{"/"}, Headers: map[string][]string{"X-A": {"1"}}},
			},
			req:      req{"GET", "x", "/", http.Header{"X-A": {"1"}}},
			wantName: "header", wantPath: "/",
		},
		{
			desc: "header mismatch falls back",
			routes: []Route{
				{Name: "header", Paths: []string{"/"}, Headers: map[string][]string{"X-A": {"1"}}},
				{Name: "plain", Paths: []string{"/"}},
			},
			req:      req{"GET", "x", "/", http.Header{"X-A": {"2"}}},
			wantName: "plain", wantPath: "/",
		},
		{
			desc: "equal regex_priority: more constraints win before definition order",
			routes: []Route{
				{Name: "plain", Paths: []string{`~/a`}},
				{Name: "header", Paths: []string{`~/a`}, Headers: map[string][]string{"X-A": {"1"}}},
			},
			req:      req{"GET", "x", "/a", http.Header{"X-A": {"1"}}},
			wantName: "header", wantPath: "/a",
		},

		// strip_path.
		{
			desc:     "strip exact prefix gives /",
			routes:   []Route{{Name: "m", Paths: []string{"/mock"}, StripPath: true}},
			req:      req{"GET", "x", "/mock", nil},
			wantName: "m", wantPath: "/",
		},
		{
			desc:     "strip prefix keeps the following slash",
			routes:   []Route{{Name: "m", Paths: []string{"/mock"}, StripPath: true}},
			req:      req{"GET", "x", "/mock/headers", nil},
			wantName: "m", wantPath: "/headers",
		},
		{
			desc:     "strip prefix mid-segment adds a slash",
			routes:   []Route{{Name: "m", Paths: []string{"/mock"}, StripPath: true}},
			req:      req{"GET", "x", "/mockery", nil},
			wantName: "m", wantPath: "/ery",
		},
		{
			desc:     "strip prefix ending in slash",
			routes:   []Route{{Name: "m", Paths: []string{"/mock/"}, StripPath: true}},
			req:      req{"GET", "x", "/mock/x/y", nil},
			wantName: "m", wantPath: "/x/y",
		},
		{
			desc:     "strip root prefix is a no-op",
			routes:   []Route{{Name: "m", Paths: []string{"/"}, StripPath: true}},
			req:      req{"GET", "x", "/a/b", nil},
			wantName: "m", wantPath: "/a/b",
		},
		{
			desc:     "strip regex removes the matched portion",
			routes:   []Route{{Name: "r", Paths: []string{`~/users/\d+`}, StripPath: true}},
			req:      req{"GET", "x", "/users/42/profile", nil},
			wantName: "r", wantPath: "/profile",
		},
		{
			desc:     "strip regex matching the whole path gives /",
			routes:   []Route{{Name: "r", Paths: []string{`~/users/\d+$`}, StripPath: true}},
			req:      req{"GET", "x", "/users/42", nil},
			wantName: "r", wantPath: "/",
		},
		{
			desc:     "strip regex mid-segment adds a slash",
			routes:   []Route{{Name: "r", Paths: []string{`~/v\d`}, StripPath: true}},
			req:      req{"GET", "x", "/v1beta/x", nil},
			wantName: "r", wantPath: "/beta/x",
		},
		{
			desc:     "strip uses the matched path of a multi-path route",
			routes:   []Route{{Name: "m", Paths: []string{"/a", "/a/b"}, StripPath: true}},
			req:      req{"GET", "x", "/a/b/c", nil},
			wantName: "m", wantPath: "/c",
		},
		{
			desc:     "strip on a path-less route leaves the path alone",
			routes:   []Route{{Name: "m", Hosts: []string{"a.com"}, StripPath: true}},
			req:      req{"GET", "a.com", "/a/b", nil},
			wantName: "m", wantPath: "/a/b",
		},
		{
			desc:     "without strip the original path is kept",
			routes:   []Route{{Name: "m", Paths: []string{"/mock"}}},
			req:      req{"GET", "x", "/mock/headers", nil},
			wantName: "m", wantPath: "/mock/headers",
		},

		// No match.
		{
			desc:   "no route for host",
			routes: []Route{{Name: "h", Hosts: []string{"a.com"}, Paths: []string{"/"}}},
			req:    req{"GET", "b.com", "/", nil},
		},
		{
			desc:   "no route for path",
			routes: []Route{{Name: "h", Hosts: []string{"a.com"}, Paths: []string{"/a"}}},
			req:    req{"GET", "a.com", "/b", nil},
		},
		{
			desc:   "empty router",
			routes: nil,
			req:    req{"GET", "a.com", "/b", nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			r, err := New(tt.routes)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			m, ok := r.Match(tt.req.method, tt.req.host, tt.req.path, tt.req.header)
			if tt.wantName == "" {
				if ok {
					t.Fatalf("Match = %q (index %d), want no match", m.Route.Name, m.Index)
				}
				return
			}
			if !ok {
				t.Fatalf("no match, want %q", tt.wantName)
			}
			if m.Route.Name != tt.wantName || m.Path != tt.wantPath {
				t.Fatalf("Match = %q path %q, want %q path %q", m.Route.Name, m.Path, tt.wantName, tt.wantPath)
			}
			if tt.routes[m.Index].Name != tt.wantName {
				t.Fatalf("Index %d names %q, want %q", m.Index, tt.routes[m.Index].Name, tt.wantName)
			}
			if tt.wantIndex > 0 && m.Index != tt.wantIndex {
				t.Fatalf("Index = %d, want %d", m.Index, tt.wantIndex)
			}
		})
	}
}

// With strip_path the match splits the request path where the route's path
// ends, unchanged, as Kong's uri_prefix and uri_postfix: the caller combines
// the postfix with the service path (see the proxy's path handling).
func TestMatchPrefixPostfix(t *testing.T) {
	for _, tc := range []struct {
		desc                 string
		route                Route
		host, path           string
		wantPrefix, wantPost string
	}{
		{desc: "prefix on itself", route: Route{Paths: []string{"/r"}, StripPath: true}, path: "/r", wantPrefix: "/r"},
		{desc: "prefix on a trailing slash", route: Route{Paths: []string{"/r"}, StripPath: true}, path: "/r/", wantPrefix: "/r", wantPost: "/"},
		{desc: "prefix mid-segment", route: Route{Paths: []string{"/r"}, StripPath: true}, path: "/rx", wantPrefix: "/r", wantPost: "x"},
		{desc: "prefix ending in a slash", route: Route{Paths: []string{"/r/"}, StripPath: true}, path: "/r/x", wantPrefix: "/r/", wantPost: "x"},
		{desc: "root prefix", route: Route{Paths: []string{"/"}, StripPath: true}, path: "/x", wantPrefix: "/", wantPost: "x"},
		{desc: "regex match portion", route: Route{Paths: []string{`~/[0]?r`}, StripPath: true}, path: "/r/x/", wantPrefix: "/r", wantPost: "/x/"},
		{desc: "regex anchored at the end", route: Route{Paths: []string{`~/u/\d+$`}, StripPath: true}, path: "/u/42", wantPrefix: "/u/42"},
		{desc: "zero-length regex match keeps the whole path", route: Route{Paths: []string{`~(?:/v1)?`}, StripPath: true}, path: "/x", wantPost: "/x"},
		{desc: "route without paths: no prefix, path without its slash", route: Route{Hosts: []string{"a.com"}, StripPath: true}, host: "a.com", path: "/r/x", wantPost: "r/x"},
		{desc: "route without paths on the root", route: Route{Hosts: []string{"a.com"}, StripPath: true}, host: "a.com", path: "/"},
		{desc: "no strip: neither", route: Route{Paths: []string{"/r"}}, path: "/r/x"},
		{desc: "no strip on a regex: neither", route: Route{Paths: []string{`~/[0]?r`}}, path: "/r/x"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			tc.route.Name = "r"
			r, err := New([]Route{tc.route})
			if err != nil {
				t.Fatal(err)
			}
			host := tc.host
			if host == "" {
				host = "x"
			}
			m, ok := r.Match("GET", host, tc.path, nil)
			if !ok {
				t.Fatal("no match")
			}
			if m.Prefix != tc.wantPrefix || m.Postfix != tc.wantPost {
				t.Fatalf("Prefix %q Postfix %q, want %q %q", m.Prefix, m.Postfix, tc.wantPrefix, tc.wantPost)
			}
		})
	}
}

// nestedRegexRoutes returns n regex routes with nested literal prefixes
// "/s0", "/s0/s1", ...; route i has priority (i*7)%n and strips.
func nestedRegexRoutes(n int) []Route {
	var routes []Route
	prefix := ""
	for i := 0; i < n; i++ {
		prefix += fmt.Sprintf("/s%d", i)
		routes = append(routes, Route{
			Name:          fmt.Sprintf("n%d", i),
			Paths:         []string{"~" + prefix + "(/|$)"},
			RegexPriority: (i * 7) % n,
			StripPath:     true,
		})
	}
	return routes
}

func TestPreserveHostAndValueCarried(t *testing.T) {
	type svc struct{ name string }
	s := &svc{"users"}
	r, err := New([]Route{
		{Name: "a", Paths: []string{"/a"}, PreserveHost: true, Value: s},
		{Name: "b", Paths: []string{"/b"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m, ok := r.Match("GET", "x", "/a", nil)
	if !ok || !m.Route.PreserveHost || m.Route.Value != s {
		t.Fatalf("got %+v, %v", m, ok)
	}
	m, ok = r.Match("GET", "x", "/b", nil)
	if !ok || m.Route.PreserveHost || m.Route.Value != nil {
		t.Fatalf("got %+v, %v", m, ok)
	}
}

func TestRoutesAreCopied(t *testing.T) {
	routes := []Route{{
		Name:    "a",
		Hosts:   []string{"a.com"},
		Paths:   []string{"/a"},
		Methods: []string{"GET"},
		Headers: map[string][]string{"X-A": {"1"}},
	}}
	r, err := New(routes)
	if err != nil {
		t.Fatal(err)
	}
	routes[0].Name = "changed"
	routes[0].Hosts[0] = "b.com"
	routes[0].Paths[0] = "/b"
	routes[0].Methods[0] = "POST"
	routes[0].Headers["X-A"][0] = "2"
	m, ok := r.Match("GET", "a.com", "/a", http.Header{"X-A": {"1"}})
	if !ok || m.Route.Name != "a" || m.Route.Hosts[0] != "a.com" || m.Route.Headers["X-A"][0] != "1" {
		t.Fatalf("router affected by caller mutation: %+v %v", m, ok)
	}
	if r.Len() != 1 {
		t.Fatalf("Len = %d", r.Len())
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		desc  string
		route Route
		want  string // substring of the error
	}{
		{"empty route", Route{Name: "empty", StripPath: true}, "at least one"},
		{"empty slices count as unset", Route{Hosts: []string{}, Paths: []string{}, Headers: map[string][]string{}}, "at least one"},
		{"bad regex", Route{Paths: []string{`~/users/(\d+`}}, "invalid regex"},
		{"regex made valid only by the anchoring wrapper", Route{Paths: []string{`~a)(b`}}, "invalid regex"},
		{"empty regex", Route{Paths: []string{"~"}}, "empty regex"},
		{"path without slash", Route{Paths: []string{"users"}}, "must start"},
		{"empty path", Route{Paths: []string{""}}, "must start"},
		{"empty host", Route{Hosts: []string{""}}, "empty host"},
		{"wildcard in the middle", Route{Hosts: []string{"a.*.com"}}, "wildcard"},
		{"two wildcards", Route{Hosts: []string{"*.example.*"}}, "wildcard"},
		{"lone wildcard", Route{Hosts: []string{"*"}}, "wildcard"},
		{"wildcard without dot", Route{Hosts: []string{"*example.com"}}, "wildcard"},
		{"bad port", Route{Hosts: []string{"a.com:http"}}, "bad port"},
		{"port out of range", Route{Hosts: []string{"a.com:70000"}}, "bad port"},
		{"empty port", Route{Hosts: []string{"a.com:"}}, "empty port"},
		{"unterminated IPv6", Route{Hosts: []string{"[::1"}}, "missing"},
		{"host with path", Route{Hosts: []string{"a.com/x"}}, "invalid host"},
		{"empty method", Route{Methods: []string{""}}, "invalid method"},
		{"header without values", Route{Headers: map[string][]string{"X-A": nil}}, "no accepted values"},
		{"host header", Route{Headers: map[string][]string{"host": {"a.com"}}}, "use hosts"},
		{"duplicate header", Route{Headers: map[string][]string{"x-a": {"1"}, "X-A": {"2"}}}, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			routes := []Route{{Name: "ok", Paths: []string{"/"}}, tt.route}
			r, err := New(routes)
			if err == nil {
				t.Fatalf("New succeeded (%v), want error containing %q", r, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "route 1") {
				t.Fatalf("error %q does not mention %q and route 1", err, tt.want)
			}
		})
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	routes := []Route{
		{Name: "mock", Paths: []string{"/mock"}, StripPath: true},
		{Name: "slash", Paths: []string{"/slash/"}, StripPath: true},
		{Name: "host", Hosts: []string{"api.example.com:8000"}, Paths: []string{"/api/v1"}, StripPath: true},
		{Name: "get", Hosts: []string{"api.example.com"}, Paths: []string{"/api"}, Methods: []string{"GET"}},
		{Name: "hdr", Hosts: []string{"*.example.com"}, Paths: []string{"/h"}, Headers: map[string][]string{"X-Version": {"v1", "v2"}}},
		{Name: "trail", Hosts: []string{"shop.*"}, Paths: []string{"/"}, StripPath: true},
		{Name: "re", Paths: []string{`~/users/\d+$`}},
		{Name: "v6", Hosts: []string{"[::1]"}, Paths: []string{"/"}},
	}
	r, err := New(routes)
	if err != nil {
		t.Fatal(err)
	}
	hdr := http.Header{"X-Version": {"V2"}, "Accept": {"*/*"}}
	cases := []struct {
		method, host, path string
		want, wantPath     string
	}{
		{"GET", "x.org", "/mock/headers", "mock", "/headers"},
		{"GET", "x.org", "/mock", "mock", "/"},
		{"GET", "x.org", "/slash/x", "slash", "/x"},
		{"GET", "api.example.com:8000", "/api/v1/users", "host", "/users"},
		{"POST", "api.example.com", "/api/x", "", ""},
		{"GET", "api.example.com:9000", "/api/v1", "get", "/api/v1"},
		{"PUT", "www.example.com", "/h/x", "hdr", "/h/x"},
		{"GET", "shop.example.org", "/cart", "trail", "/cart"},
		{"GET", "[::1]:8080", "/x", "v6", "/x"},
		{"GET", "nowhere", "/nothing", "", ""},
	}
	for _, c := range cases {
		m, ok := r.Match(c.method, c.host, c.path, hdr)
		if c.want == "" {
			if ok {
				t.Fatalf("%s %s%s: matched %q, want none", c.method, c.host, c.path, m.Route.Name)
			}
		} else if !ok || m.Route.Name != c.want || m.Path != c.wantPath {
			t.Fatalf("%s %s%s: got %+v %v, want %q %q", c.method, c.host, c.path, m, ok, c.want, c.wantPath)
		}
		allocs := testing.AllocsPerRun(200, func() {
			r.Match(c.method, c.host, c.path, hdr)
		})
		if allocs != 0 {
			t.Errorf("%s %s%s: %v allocs per Match, want 0", c.method, c.host, c.path, allocs)
		}
	}
}

func TestConcurrentMatch(t *testing.T) {
	r, err := New([]Route{
		{Name: "a", Hosts: []string{"a.com"}, Paths: []string{"/a"}, StripPath: true},
		{Name: "re", Paths: []string{`~/u/\d+`}, StripPath: true},
		{Name: "root", Paths: []string{"/"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				if m, ok := r.Match("GET", "a.com", "/a/x", nil); !ok || m.Route.Name != "a" || m.Path != "/x" {
					t.Errorf("got %+v %v", m, ok)
					return
				}
				if m, ok := r.Match("GET", "b.com", "/u/"+strconv.Itoa(i)+"/z", nil); !ok || m.Route.Name != "re" || m.Path != "/z" {
					t.Errorf("got %+v %v", m, ok)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// refMatch is a straightforward reference implementation: a linear scan over
// all routes computing the full priority key of every matching (route, host,
// path) combination. It shares no code with the router.
func refMatch(routes []Route, method, host, path string, h http.Header) (int, string, bool) {
	reqURL := &url.URL{Host: host}
	reqHost := strings.TrimSuffix(strings.ToLower(reqURL.Hostname()), ".")
	reqPort := reqURL.Port()

	// key: hostClass, pathKind, -regexPriority, -prefixLen, -headers, -methods, index, pathIdx
	type key [8]int
	less := func(a, b key) bool {
		for i := range a {
			if a[i] != b[i] {
				return a[i] < b[i]
			}
		}
		return false
	}
	var (
		best     key
		bestPath string
		found    bool
	)
	for i, rt := range routes {
		if len(rt.Methods) > 0 {
			ok := false
			for _, m := range rt.Methods {
				ok = ok || strings.ToUpper(m) == method
			}
			if !ok {
				continue
			}
		}
		headersOK := true
		for name, vals := range rt.Headers {
			ok := false
			for _, got := range h.Values(name) {
				for _, v := range vals {
					ok = ok || strings.EqualFold(got, v)
				}
			}
			headersOK = headersOK && ok
		}
		if !headersOK {
			continue
		}
		hostClass := 2
		if len(rt.Hosts) > 0 {
			hostClass = 99
			for _, pat := range rt.Hosts {
				u := &url.URL{Host: pat}
				name := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
				if p := u.Port(); p != "" && p != reqPort {
					continue
				}
				class := 0
				if strings.Contains(name, "*") {
					class = 1
					expr := "^" + strings.ReplaceAll(regexp.QuoteMeta(name), `\*`, ".+") + "$"
					if !regexp.MustCompile(expr).MatchString(reqHost) {
						continue
					}
				} else if name != reqHost {
					continue
				}
				hostClass = min(hostClass, class)
			}
			if hostClass == 99 {
				continue
			}
		}
		type cand struct {
			k   key
			end int
		}
		var cands []cand
		if len(rt.Paths) == 0 {
			cands = append(cands, cand{key{hostClass, 1, 0, 0}, 0})
		}
		for j, p := range rt.Paths {
			if expr, ok := strings.CutPrefix(p, "~"); ok {
				loc := regexp.MustCompile("^(?:" + expr + ")").FindStringIndex(path)
				if loc == nil {
					continue
				}
				cands = append(cands, cand{key{hostClass, 0, -rt.RegexPriority, 0, 0, 0, 0, j}, loc[1]})
			} else if strings.HasPrefix(path, p) {
				cands = append(cands, cand{key{hostClass, 1, 0, -len(p), 0, 0, 0, j}, len(p)})
			}
		}
		for _, c := range cands {
			k := c.k
			k[4] = -len(rt.Headers)
			if len(rt.Methods) > 0 {
				k[5] = -1
			}
			k[6] = i
			if !found || less(k, best) {
				found, best = true, k
				bestPath = path
				if rt.StripPath && c.end > 0 {
					rest := path[c.end:]
					if !strings.HasPrefix(rest, "/") {
						rest = "/" + rest
					}
					bestPath = rest
				}
			}
		}
	}
	if !found {
		return -1, "", false
	}
	return best[6], bestPath, true
}

func TestMatchAgainstReference(t *testing.T) {
	for _, tc := range []struct {
		desc                   string
		seed                   int64
		numRoutes, numRequests int
		hostPct                int // share of routes with hosts
	}{
		{"dense", 20240611, 500, 2000, 70},
		{"sparse", 7, 40, 2000, 97},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			checkAgainstReference(t, tc.seed, tc.numRoutes, tc.numRequests, tc.hostPct)
		})
	}
}

func checkAgainstReference(t *testing.T, seed int64, numRoutes, numRequests, hostPct int) {
	rng := rand.New(rand.NewSource(seed))
	pick := func(s []string) string { return s[rng.Intn(len(s))] }
	routeHosts := []string{
		"a.com", "b.a.com", "c.b.a.com", "x.org", "[::1]", "10.0.0.1", "A.COM.",
		"*.a.com", "*.com", "*.b.a.com", "b.*", "c.*", "x.*",
		"a.com:8000", "*.a.com:8000", "[::1]:8000", "b.*:9000",
	}
	routePaths := []string{
		"/", "/a", "/ab", "/a/", "/a/b", "/a/bc", "/b", "/b/c", "/abc",
		`~/a/\d+`, `~/a/[0-9]+$`, `~/b/.*`, `~/(a|b)/c`, `~/a`, `~/\w+/b`, `~(?i)/A/B`,
	}
	reqHosts := []string{
		"a.com", "b.a.com", "c.b.a.com", "d.c.b.a.com", "x.org", "[::1]", "10.0.0.1",
		"d.a.com", "b.x", "c.org", "x.com", "zz", "", "b.c.d", "x.y.z",
	}
	reqPaths := []string{
		"", "/", "/a", "/a/", "/a/1", "/a/12x", "/ab", "/abc", "/abcd", "/a/b", "/a/bc/d",
		"/b", "/b/", "/b/c", "/b/c/d", "/c", "/x", "/ac", "/a/c", "/A/b/c", "/zz/b",
	}
	methods := []string{"GET", "POST", "PUT", "DELETE"}

	routes := make([]Route, numRoutes)
	for i := range routes {
		rt := Route{
			Name:          fmt.Sprintf("r%d", i),
			StripPath:     rng.Intn(2) == 0,
			RegexPriority: rng.Intn(3),
		}
		if rng.Intn(100) < hostPct {
			for n := 1 + rng.Intn(2); n > 0; n-- {
				rt.Hosts = append(rt.Hosts, pick(routeHosts))
			}
		}
		if rng.Intn(10) < 8 {
			for n := 1 + rng.Intn(2); n > 0; n-- {
				rt.Paths = append(rt.Paths, pick(routePaths))
			}
		}
		if rng.Intn(10) < 3 {
			for _, m := range methods[:3] {
				if rng.Intn(2) == 0 {
					rt.Methods = append(rt.Methods, m)
				}
			}
		}
		if rng.Intn(10) < 2 {
			rt.Headers = map[string][]string{"X-A": {"1", "two"}}
			if rng.Intn(2) == 0 {
				rt.Headers["x-b"] = []string{"Foo"}
			}
		}
		if len(rt.Hosts)+len(rt.Paths)+len(rt.Methods)+len(rt.Headers) == 0 {
			rt.Methods = []string{"GET"}
		}
		routes[i] = rt
	}
	r, err := New(routes)
	if err != nil {
		t.Fatal(err)
	}
	matched := 0
	for i := 0; i < numRequests; i++ {
		host := pick(reqHosts)
		if host != "" && rng.Intn(4) == 0 {
			host = strings.ToUpper(host)
		}
		if host != "" && !strings.HasPrefix(host, "[") && rng.Intn(6) == 0 {
			host += "."
		}
		if host != "" {
			switch rng.Intn(4) {
			case 0:
				host += ":8000"
			case 1:
				host += ":9000"
			}
		}
		path := pick(reqPaths)
		method := pick(methods)
		h := http.Header{}
		if rng.Intn(2) == 0 {
			h["X-A"] = []string{pick([]string{"1", "TWO", "3"})}
			if rng.Intn(3) == 0 {
				h["X-A"] = append(h["X-A"], "1")
			}
		}
		if rng.Intn(2) == 0 {
			h["X-B"] = []string{pick([]string{"foo", "bar"})}
		}
		wantIdx, wantPath, wantOK := refMatch(routes, method, host, path, h)
		m, ok := r.Match(method, host, path, h)
		if ok != wantOK || (ok && (m.Index != wantIdx || m.Path != wantPath || m.Route.Name != routes[wantIdx].Name)) {
			got := "none"
			if ok {
				got = fmt.Sprintf("%d %+v path %q", m.Index, routes[m.Index], m.Path)
			}
			want := "none"
			if wantOK {
				want = fmt.Sprintf("%d %+v path %q", wantIdx, routes[wantIdx], wantPath)
			}
			t.Fatalf("request %d: %s %q %q %v\n got: %s\nwant: %s", i, method, host, path, h, got, want)
		}
		if ok {
			matched++
		}
	}
	if matched < numRequests/10 || matched == numRequests {
		t.Fatalf("%d of %d requests matched; generator too sparse or too dense", matched, numRequests)
	}
	t.Logf("%d of %d requests matched", matched, numRequests)
}
