package router

import (
	"fmt"
	"net/http"
	"testing"
)

// benchRoutes10000 builds exactly 10 000 routes: 950 hosts × 10 paths (900
// exact hosts, 25 leading and 25 trailing wildcards), 450 host-less prefix
// routes and 50 host-less regex routes.
func benchRoutes10000() []Route {
	routes := make([]Route, 0, 10000)
	for h := 0; h < 950; h++ {
		host := fmt.Sprintf("svc%d.example.com", h)
		switch {
		case h >= 925:
			host = fmt.Sprintf("tenant%d.*", h)
		case h >= 900:
			host = fmt.Sprintf("*.zone%d.example.net", h)
		}
		for p := 0; p < 10; p++ {
			rt := Route{
				Name:      fmt.Sprintf("h%d-p%d", h, p),
				Hosts:     []string{host},
				Paths:     []string{fmt.Sprintf("/api/v%d/resource%d", p%3, p)},
				StripPath: true,
			}
			if p == 0 {
				rt.Paths = []string{"/"}
			}
			if p%4 == 1 {
				rt.Methods = []string{"GET", "HEAD"}
			}
			routes = append(routes, rt)
		}
	}
	for i := 0; i < 450; i++ {
		routes = append(routes, Route{
			Name:      fmt.Sprintf("any-p%d", i),
			Paths:     []string{fmt.Sprintf("/shared/team%d/svc", i)},
			StripPath: true,
		})
	}
	for i := 0; i < 50; i++ {
		routes = append(routes, Route{
			Name:          fmt.Sprintf("re%d", i),
			Paths:         []string{fmt.Sprintf(`~/re%d/items/\d+$`, i)},
			RegexPriority: i % 5,
		})
	}
	return routes
}

type benchCase struct {
	name, method, host, path string
	header                   http.Header
	want                     string // route name; "" = miss
}

func runMatchBench(b *testing.B, routes []Route, cases []benchCase) {
	r, err := New(routes)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			m, ok := r.Match(c.method, c.host, c.path, c.header)
			if c.want == "" && ok {
				b.Fatalf("matched %q, want miss", m.Route.Name)
			}
			if c.want != "" && (!ok || m.Route.Name != c.want) {
				b.Fatalf("got %+v %v, want %q", m, ok, c.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				r.Match(c.method, c.host, c.path, c.header)
			}
		})
	}
}

func BenchmarkMatch10000Routes(b *testing.B) {
	routes := benchRoutes10000()
	if len(routes) != 10000 {
		b.Fatalf("%d routes", len(routes))
	}
	hdr := http.Header{"Accept": {"application/json"}, "User-Agent": {"bench"}}
	runMatchBench(b, routes, []benchCase{
		{"prefix_hit", "GET", "unknown.example.org", "/shared/team321/svc/orders/42", hdr, "any-p321"},
		{"host_prefix_hit", "GET", "svc512.example.com:8000", "/api/v2/resource5/items/7", hdr, "h512-p5"},
		{"host_fallback_hit", "POST", "svc512.example.com", "/api/v1/resource1/x", hdr, "h512-p0"},
		{"wildcard_hit", "GET", "eu.zone910.example.net", "/api/v1/resource4", hdr, "h910-p4"},
		{"trailing_wildcard_hit", "GET", "tenant930.example.io", "/api/v0/resource3", hdr, "h930-p3"},
		{"regex_hit", "GET", "unknown.example.org", "/re37/items/12345", hdr, "re37"},
		{"miss", "GET", "unknown.example.org", "/nothing/here", hdr, ""},
	})
}

func BenchmarkMatchSmall(b *testing.B) {
	routes := []Route{
		{Name: "users", Hosts: []string{"api.example.com"}, Paths: []string{"/users"}, StripPath: true},
		{Name: "orders", Hosts: []string{"api.example.com"}, Paths: []string{"/orders"}, Methods: []string{"GET", "POST"}},
		{Name: "admin", Hosts: []string{"admin.example.com"}, Paths: []string{"/"}},
		{Name: "wild", Hosts: []string{"*.example.com"}, Paths: []string{"/static"}},
		{Name: "v2", Paths: []string{"/api"}, Headers: map[string][]string{"X-Version": {"2"}}},
		{Name: "api", Paths: []string{"/api"}, StripPath: true},
		{Name: "user-id", Paths: []string{`~/u/\d+$`}},
		{Name: "health", Paths: []string{"/health"}, Methods: []string{"GET"}},
		{Name: "mock", Paths: []string{"/mock"}, StripPath: true},
		{Name: "root", Hosts: []string{"www.example.com"}},
	}
	hdr := http.Header{"Accept": {"*/*"}}
	runMatchBench(b, routes, []benchCase{
		{"prefix_hit", "GET", "localhost:8000", "/mock/headers", hdr, "mock"},
		{"host_prefix_hit", "GET", "api.example.com", "/users/42", hdr, "users"},
		{"regex_hit", "GET", "localhost", "/u/42", hdr, "user-id"},
		{"miss", "GET", "localhost", "/nothing", hdr, ""},
	})
}
