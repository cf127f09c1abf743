package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// exampleFile is the reference example; it must parse.
const exampleFile = `proxy:
  listen: 127.0.0.1:8000
admin:
  listen: 127.0.0.1:8001
upstreams:
  - name: example_upstream
    algorithm: round-robin
    targets:
      - target: 127.0.0.1:19001
        weight: 300
      - target: 127.0.0.1:19002
        weight: 100
services:
  - name: example_service
    host: example_upstream        # an upstream name, or a real host name / IP
    port: 80
    protocol: http
    path: /
    retries: 5
    connect_timeout: 2000         # milliseconds, as in Kong
    read_timeout: 60000
    write_timeout: 60000
    routes:
      - name: mock
        paths: [/mock]
        strip_path: true
`

// envOf returns a lookup func over m.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func mustParse(t *testing.T, src string, env map[string]string) *File {
	t.Helper()
	f, err := Parse("test.yaml", []byte(src), envOf(env))
	if err != nil {
		t.Fatalf("Parse: unexpected error:\n%v", err)
	}
	return f
}

func TestParseExample(t *testing.T) {
	f := mustParse(t, exampleFile, nil)

	up := defaultUpstream()
	up.Pos = Pos{6, 5}
	up.Name = "example_upstream"
	up.Targets = []Target{
		{Pos: Pos{9, 9}, Target: "127.0.0.1:19001", Weight: 300},
		{Pos: Pos{11, 9}, Target: "127.0.0.1:19002", Weight: 100},
	}
	want := &File{
		Path: "test.yaml",
		Proxy: Proxy{
			Pos:                 Pos{2, 3},
			Listen:              "127.0.0.1:8000",
			Listeners:           []Listener{{Pos: Pos{2, 11}, Address: "127.0.0.1:8000"}},
			DrainTimeout:        30 * time.Second,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
			IdleTimeout:         60 * time.Second,
			HeaderTimeout:       10 * time.Second,
			Engine:              EngineH1,
			SSLVerifyClient:     VerifyClientOff,
			SSLPollInterval:     DefaultSSLPollInterval,

			HTTP2MaxConcurrentStreams: 128,
			HTTP2MaxHeaderListSize:    64 << 10,
		},
		Admin:     Admin{Pos: Pos{4, 3}, Listen: "127.0.0.1:8001", Store: "file", Consul: AdminConsul{Key: DefaultAdminKey}},
		Log:       Log{Level: "info", Format: "auto", AccessLog: true, AccessLogSuccessSampleRatio: 1},
		Upstreams: []Upstream{up},
		Services: []Service{{
			Pos:            Pos{14, 5},
			Name:           "example_service",
			Protocol:       "http",
			Host:           "example_upstream",
			Port:           80,
			Path:           "/",
			Retries:        5,
			ConnectTimeout: Millis(2 * time.Second),
			ReadTimeout:    Millis(60 * time.Second),
			WriteTimeout:   Millis(60 * time.Second),
		}},
		Routes: []Route{{
			Pos:          Pos{24, 9},
			Name:         "mock",
			Service:      "example_service",
			Paths:        []string{"/mock"},
			StripPath:    true,
			PathHandling: "v0", HTTPSRedirectStatusCode: DefaultHTTPSRedirect,
		}},
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("Parse(example) =\n%+v\nwant\n%+v", f, want)
	}
	// Spot checks, in case the expectation above drifts with the defaults.
	if f.Upstreams[0].Algorithm != "round-robin" || f.Upstreams[0].Healthchecks.Active.Enabled {
		t.Errorf("upstream = %+v", f.Upstreams[0])
	}
	if u, ok := f.Upstream("example_upstream"); !ok || len(u.Targets) != 2 {
		t.Errorf("File.Upstream lookup failed")
	}
	if s, ok := f.Service("example_service"); !ok || s.ConnectTimeout.D() != 2*time.Second {
		t.Errorf("File.Service lookup failed")
	}
}

func TestDefault(t *testing.T) {
	tests := []struct {
		desc string
		src  string
	}{
		{desc: "empty file", src: ""},
		{desc: "comments only", src: "# nothing here\n\n# at all\n"},
		{desc: "explicit empty document", src: "---\n"},
		{desc: "null document", src: "~\n"},
		{desc: "empty sections", src: "proxy:\nadmin: {}\nlog:\nupstreams:\nservices: []\nroutes:\n"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			f := mustParse(t, tt.src, nil)
			want := Default()
			want.Path = "test.yaml"
			// Present-but-empty sections record where they are.
			want.Proxy.Pos, want.Admin.Pos, want.Log.Pos = f.Proxy.Pos, f.Admin.Pos, f.Log.Pos
			if !reflect.DeepEqual(f, want) {
				t.Errorf("got %+v\nwant %+v", f, want)
			}
		})
	}
	d := Default()
	if d.Proxy.Listen != "127.0.0.1:8000" || d.Admin.Listen != "127.0.0.1:8001" ||
		d.Proxy.DrainTimeout != 30*time.Second || d.Proxy.MaxIdleConnsPerHost != 64 ||
		d.Proxy.IdleConnTimeout != 90*time.Second || d.Proxy.MaxBodySize != 0 ||
		d.Proxy.IdleTimeout != 60*time.Second || d.Proxy.HeaderTimeout != 10*time.Second || d.Proxy.MaxConnections != 0 ||
		d.Log != (Log{Level: "info", Format: "auto", AccessLog: true, AccessLogSuccessSampleRatio: 1}) {
		t.Errorf("Default() = %+v", d)
	}
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		desc  string
		src   string
		env   map[string]string
		check func(t *testing.T, f *File)
	}{
		{
			desc: "url shorthand fills protocol, host, port and path",
			src: `services:
  - name: a
    url: http://backend.local:8080/base
  - name: b
    url: https://secure.example.com
  - name: c
    url: HTTP://[::1]:9000/x%2Fy
  - name: d
    url: http://10.0.0.1
`,
			check: func(t *testing.T, f *File) {
				want := []struct {
					protocol, host string
					port           int
					path           string
				}{
					{"http", "backend.local", 8080, "/base"},
					{"https", "secure.example.com", 443, ""},
					{"http", "::1", 9000, "/x%2Fy"},
					{"http", "10.0.0.1", 80, ""},
				}
				for i, w := range want {
					s := f.Services[i]
					if s.Protocol != w.protocol || s.Host != w.host || s.Port != w.port || s.Path != w.path {
						t.Errorf("service %s = %s://%s:%d%s, want %+v", s.Name, s.Protocol, s.Host, s.Port, s.Path, w)
					}
				}
			},
		},
		{
			desc: "service defaults and https port",
			src: `services:
  - name: plain
    host: example.com
  - name: tls
    host: "[2001:DB8::1]"
    protocol: https
  - name: explicit
    host: 10.0.0.1
    protocol: https
    port: 8443
`,
			check: func(t *testing.T, f *File) {
				s := f.Services[0]
				if s.Protocol != "http" || s.Port != 80 || s.Path != "" || s.Retries != 5 ||
					s.ConnectTimeout.D() != 60*time.Second || s.ReadTimeout.D() != 60*time.Second || s.WriteTimeout.D() != 60*time.Second {
					t.Errorf("defaults: %+v", s)
				}
				if s := f.Services[1]; s.Port != 443 || s.Host != "2001:db8::1" {
					t.Errorf("https: %+v", s)
				}
				if s := f.Services[2]; s.Port != 8443 {
					t.Errorf("explicit port: %+v", s)
				}
			},
		},
		{
			desc: "top-level routes",
			src: `routes:
  - name: first
    service: svc
    paths: [/first]
    strip_path: false
    preserve_host: true
    regex_priority: -3
    path_handling: v1
services:
  - name: svc
    host: up
    routes:
      - name: nested
        hosts: [Example.COM, "*.example.com", "example.*", "api.example.com:8443", "[::1]:80"]
`,
			check: func(t *testing.T, f *File) {
				if len(f.Routes) != 2 {
					t.Fatalf("routes = %+v", f.Routes)
				}
				r := f.Routes[0]
				if r.Name != "first" || r.Service != "svc" || r.StripPath || !r.PreserveHost || r.RegexPriority != -3 || r.PathHandling != "v1" || r.Pos != (Pos{2, 5}) {
					t.Errorf("first = %+v", r)
				}
				r = f.Routes[1]
				wantHosts := []string{"example.com", "*.example.com", "example.*", "api.example.com:8443", "[::1]:80"}
				if r.Name != "nested" || r.Service != "svc" || !r.StripPath || r.PathHandling != "v0" || !reflect.DeepEqual(r.Hosts, wantHosts) {
					t.Errorf("nested = %+v", r)
				}
			},
		},
		{
			desc: "route matchers are normalised",
			src: `services:
  - name: svc
    host: up
    routes:
      - name: r
        paths: [/a, "~/users/\\d+$", "~^/v[0-9]+/"]
        methods: [get, Post, PATCH]
        headers:
          X-Version: [v1, v2]
          x-single: one
          X-Num: [1, 2.5, true]
`,
			check: func(t *testing.T, f *File) {
				r := f.Routes[0]
				if want := []string{"/a", `~/users/\d+$`, "~^/v[0-9]+/"}; !reflect.DeepEqual(r.Paths, want) {
					t.Errorf("paths = %q, want %q", r.Paths, want)
				}
				if want := []string{"GET", "POST", "PATCH"}; !reflect.DeepEqual(r.Methods, want) {
					t.Errorf("methods = %q", r.Methods)
				}
				want := map[string][]string{"x-version": {"v1", "v2"}, "x-single": {"one"}, "x-num": {"1", "2.5", "true"}}
				if !reflect.DeepEqual(r.Headers, want) {
					t.Errorf("headers = %q", r.Headers)
				}
			},
		},
		{
			desc: "env expansion",
			env:  map[string]string{"UP_HOST": "10.0.0.7", "UP_PORT": "9001", "W": "42", "LEVEL": "debug", "EMPTY": ""},
			src: `proxy:
  listen: ${LISTEN:-0.0.0.0:8080}
  max_idle_conns_per_host: "${CONNS:-16}"
  drain_timeout: ${DRAIN:-5s}
log:
  level: ${LEVEL}
upstreams:
  - name: up
    targets:
      - target: ${UP_HOST}:${UP_PORT}
        weight: ${W}
        tags: ["$${literal}", "cost$$", "${EMPTY:-fallback}", "x${EMPTY}y", "$PATH"]
services:
  - name: svc
    url: http://${UP_HOST}:${SVC_PORT:-8080}/a$$
    routes:
      - name: r
        paths: ["~/price/\\d+$"]
        strip_path: ${STRIP:-false}
`,
			check: func(t *testing.T, f *File) {
				if f.Proxy.Listen != "0.0.0.0:8080" || f.Proxy.MaxIdleConnsPerHost != 16 || f.Proxy.DrainTimeout != 5*time.Second {
					t.Errorf("proxy = %+v", f.Proxy)
				}
				if f.Log.Level != "debug" {
					t.Errorf("log = %+v", f.Log)
				}
				tg := f.Upstreams[0].Targets[0]
				if tg.Target != "10.0.0.7:9001" || tg.Weight != 42 {
					t.Errorf("target = %+v", tg)
				}
				if want := []string{"${literal}", "cost$", "fallback", "xy", "$PATH"}; !reflect.DeepEqual(tg.Tags, want) {
					t.Errorf("tags = %q, want %q", tg.Tags, want)
				}
				if s := f.Services[0]; s.Host != "10.0.0.7" || s.Port != 8080 || s.Path != "/a$" {
					t.Errorf("service = %+v", s)
				}
				if r := f.Routes[0]; r.Paths[0] != `~/price/\d+$` || r.StripPath {
					t.Errorf("route = %+v", r)
				}
			},
		},
		{
			desc: "target priority and backup",
			src: `upstreams:
  - name: up
    targets:
      - target: 10.0.0.1:80
      - {target: 10.0.0.2:80, priority: 2}
      - {target: 10.0.0.3:80, backup: true, zone: eu-west-1a}
proxy:
  zone: eu-west-1b
`,
			check: func(t *testing.T, f *File) {
				ts := f.Upstreams[0].Targets
				if ts[2].Zone != "eu-west-1a" || ts[0].Zone != "" || f.Proxy.Zone != "eu-west-1b" {
					t.Errorf("zones: %+v, proxy %q", ts, f.Proxy.Zone)
				}
				if ts[0].Priority != 0 || ts[0].Backup || ts[1].Priority != 2 || ts[1].Backup || ts[2].Priority != 0 || !ts[2].Backup {
					t.Errorf("targets = %+v", ts)
				}
			},
		},
		{
			desc: "proxy, admin and log sections",
			src: `proxy:
  listen: "[::]:8000"
  max_body_size: 10mb
  drain_timeout: 1m30s
  max_idle_conns_per_host: 0
  idle_conn_timeout: 0
  idle_timeout: 5s
  header_timeout: 2s
  max_connections: 1000
  engine: net/http
  h2c: true
  http2_max_concurrent_streams: 250
  http2_max_header_list_size: 32KB
admin:
  listen: :9000
  token: s3cret
log:
  level: warn
  format: json
  access_log: false
`,
			check: func(t *testing.T, f *File) {
				p := f.Proxy
				if p.Listen != "[::]:8000" || p.MaxBodySize != 10<<20 || p.DrainTimeout != 90*time.Second ||
					p.MaxIdleConnsPerHost != 0 || p.IdleConnTimeout != 0 || p.Pos != (Pos{2, 3}) ||
					p.IdleTimeout != 5*time.Second || p.HeaderTimeout != 2*time.Second || p.MaxConnections != 1000 ||
					p.Engine != EngineNetHTTP || !p.H2C ||
					p.HTTP2MaxConcurrentStreams != 250 || p.HTTP2MaxHeaderListSize != 32<<10 {
					t.Errorf("proxy = %+v", p)
				}
				if f.Admin.Listen != ":9000" {
					t.Errorf("admin = %+v", f.Admin)
				}
				if f.Log != (Log{Pos: Pos{18, 3}, Level: "warn", Format: "json", AccessLog: false, AccessLogSuccessSampleRatio: 1}) {
					t.Errorf("log = %+v", f.Log)
				}
			},
		},
		{
			desc: "upstream with every option",
			src: `upstreams:
  - name: api.internal
    algorithm: consistent-hashing
    hash_on: header
    hash_fallback: cookie
    hash_on_header: X-User
    hash_on_cookie: session
    hash_on_cookie_path: /app
    slots: 65536
    sticky_sessions_cookie: stick
    sticky_sessions_cookie_ttl: 30m
    slow_start: {window: 45s, aggression: 2.5, min_weight_percent: 0}
    panic: {min_healthy_percent: 50, mode: fail-closed}
    targets:
      - target: Backend-1.Local:8080
      - target: "[2001:db8:0::1]:80"
        weight: 0
        tags: [canary, v2]
`,
			check: func(t *testing.T, f *File) {
				u := f.Upstreams[0]
				if u.Algorithm != "consistent-hashing" || u.HashOn != "header" || u.HashFallback != "cookie" ||
					u.HashOnHeader != "X-User" || u.HashOnCookie != "session" || u.HashOnCookiePath != "/app" ||
					u.Slots != 65536 || u.StickyCookie != "stick" || u.StickyLifetime() != 30*time.Minute {
					t.Errorf("upstream = %+v", u)
				}
				if u.SlowStart == nil || *u.SlowStart != (SlowStart{Window: Duration(45 * time.Second), Aggression: 2.5, MinWeightPercent: 0}) {
					t.Errorf("slow_start = %+v", u.SlowStart)
				}
				if *u.Panic != (Panic{MinHealthyPercent: 50, Mode: "fail-closed"}) {
					t.Errorf("panic = %+v", u.Panic)
				}
				want := []Target{
					{Pos: Pos{15, 9}, Target: "backend-1.local:8080", Weight: 100},
					{Pos: Pos{16, 9}, Target: "[2001:db8::1]:80", Weight: 0, Tags: []string{"canary", "v2"}},
				}
				if !reflect.DeepEqual(u.Targets, want) {
					t.Errorf("targets = %+v", u.Targets)
				}
			},
		},
		{
			desc: "upstream defaults",
			src: `upstreams:
  - name: u
    slow_start: {window: 10s}
`,
			check: func(t *testing.T, f *File) {
				u := f.Upstreams[0]
				if u.Algorithm != "round-robin" || u.HashOn != "none" || u.HashFallback != "none" ||
					u.HashOnCookiePath != "/" || u.Slots != 10000 || u.StickyCookie != "outrigger_sticky" ||
					u.StickyLifetime() != time.Hour || *u.Panic != (Panic{Mode: "fail-open"}) || u.Targets != nil {
					t.Errorf("upstream = %+v", u)
				}
				if *u.SlowStart != (SlowStart{Window: Duration(10 * time.Second), Aggression: 1, MinWeightPercent: 10}) {
					t.Errorf("slow_start = %+v", u.SlowStart)
				}
				if *u.CircuitBreakers != (CircuitBreakers{}) || *u.RetryBudget != (RetryBudget{RetryRatio: 0.2, MinRetriesPerSecond: 10, TTL: Seconds(10 * time.Second)}) {
					t.Errorf("circuit_breakers = %+v, retry_budget = %+v", u.CircuitBreakers, u.RetryBudget)
				}
			},
		},
		{
			desc: "circuit breakers and retry budget",
			src: `upstreams:
  - name: u
    circuit_breakers: {max_requests: 100, max_retries: 3, max_connections: 20}
    retry_budget: {retry_ratio: 0.5, ttl: 30s}
`,
			check: func(t *testing.T, f *File) {
				u := f.Upstreams[0]
				if *u.CircuitBreakers != (CircuitBreakers{MaxRequests: 100, MaxRetries: 3, MaxConnections: 20}) {
					t.Errorf("circuit_breakers = %+v", u.CircuitBreakers)
				}
				if *u.RetryBudget != (RetryBudget{RetryRatio: 0.5, MinRetriesPerSecond: 10, TTL: Seconds(30 * time.Second)}) {
					t.Errorf("retry_budget = %+v", u.RetryBudget)
				}
				if u.RetryPolicy != nil || u.Healthchecks.Passive.SuccessRate != nil {
					t.Errorf("retry_policy %+v, success_rate %+v without their blocks", u.RetryPolicy, u.Healthchecks.Passive.SuccessRate)
				}
			},
		},
		{
			desc: "retry policy and success rate",
			src: `upstreams:
  - name: u
    circuit_breakers: {max_connections: 2, max_pending_requests: 8}
    retry_policy:
      retry_on: [connect-failure, 503, gateway-error, unavailable, 503]
      per_try_timeout: 250ms
      timeout: 2s
      retry_backoff: {base_interval: 10ms}
  - name: v
    retry_policy: {}
    healthchecks:
      passive:
        success_rate: {stdev_factor: 1000}
`,
			check: func(t *testing.T, f *File) {
				u, v := f.Upstreams[0], f.Upstreams[1]
				if u.CircuitBreakers.MaxPendingRequests != 8 {
					t.Errorf("circuit_breakers = %+v", u.CircuitBreakers)
				}
				rp := u.RetryPolicy
				if rp == nil || !slices.Equal(rp.RetryOn, []string{"connect-failure", "503", "gateway-error", "unavailable"}) ||
					rp.PerTryTimeout != 250*time.Millisecond || rp.Timeout != 2*time.Second ||
					rp.BackoffBase != 10*time.Millisecond || rp.BackoffMax != 100*time.Millisecond {
					t.Errorf("retry_policy = %+v", rp)
				}
				if d := DefaultRetryPolicy(); v.RetryPolicy == nil || !slices.Equal(v.RetryPolicy.RetryOn, d.RetryOn) ||
					v.RetryPolicy.BackoffBase != 25*time.Millisecond || v.RetryPolicy.BackoffMax != 250*time.Millisecond {
					t.Errorf("empty retry_policy = %+v", v.RetryPolicy)
				}
				sr := v.Healthchecks.Passive.SuccessRate
				if sr == nil || *sr != (SuccessRate{MinimumHosts: 5, RequestVolume: 100, StdevFactor: 1000, Interval: Seconds(10 * time.Second)}) {
					t.Errorf("success_rate = %+v", sr)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			tt.check(t, mustParse(t, tt.src, tt.env))
		})
	}
}

func TestDiscoveryInitialFetchTimeout(t *testing.T) {
	f, err := Parse("t.yaml", []byte(`upstreams:
  - name: dflt
    discovery:
      consul: {service: a}
  - name: set
    discovery:
      dns_srv: {name: _b._tcp.example}
      initial_fetch_timeout: 2m
  - name: forever
    discovery:
      consul: {service: c}
      initial_fetch_timeout: 0s
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{DefaultInitialFetchTimeout, 2 * time.Minute, 0}
	for i, u := range f.Upstreams {
		if got := u.Discovery.InitialFetchTimeout; got != want[i] {
			t.Errorf("upstream %s: initial_fetch_timeout = %s, want %s", u.Name, got, want[i])
		}
	}
	if DefaultInitialFetchTimeout != 15*time.Second {
		t.Errorf("default initial_fetch_timeout = %s, want Envoy's 15s", DefaultInitialFetchTimeout)
	}
}

func TestMergeKeys(t *testing.T) {
	src := `services:
  - &base
    name: a
    host: a.local
    retries: 2
    connect_timeout: 500
  - <<: *base
    name: b
    retries: 7
  - <<: [{retries: 1}, *base]
    name: c
upstreams:
  - name: u1
    healthchecks: &hc
      active: {healthy: {interval: 5}}
  - name: u2
    healthchecks: *hc
`
	f := mustParse(t, src, nil)
	got := make(map[string]Service)
	for _, s := range f.Services {
		got[s.Name] = s
	}
	if s := got["b"]; s.Host != "a.local" || s.Retries != 7 || s.ConnectTimeout.D() != 500*time.Millisecond {
		t.Errorf("b = %+v", s)
	}
	if s := got["c"]; s.Retries != 1 || s.Host != "a.local" {
		t.Errorf("c = %+v (earlier merge sources win)", s)
	}
	for _, u := range f.Upstreams {
		if a := u.Healthchecks.Active; !a.Enabled || a.Healthy.Interval != Seconds(5*time.Second) {
			t.Errorf("%s active = %+v", u.Name, a)
		}
	}
}

func TestHealthcheckDefaults(t *testing.T) {
	kongActive := defaultHealthchecks().Active
	kongPassive := defaultHealthchecks().Passive
	tests := []struct {
		desc    string
		block   string
		active  func(a *Active)
		passive func(p *Passive)
	}{
		{
			desc:  "absent",
			block: "",
		},
		{
			desc:  "empty healthchecks",
			block: "    healthchecks: {}\n",
		},
		{
			desc:    "empty active and passive blocks are enabled with Kong defaults",
			block:   "    healthchecks:\n      active: {}\n      passive:\n",
			active:  func(a *Active) { a.Enabled = true },
			passive: func(p *Passive) { p.Enabled = true },
		},
		{
			desc: "empty healthy and unhealthy blocks get APISIX defaults",
			block: `    healthchecks:
      active:
        healthy: {}
        unhealthy:
      passive:
        healthy: {}
        unhealthy: {}
`,
			active: func(a *Active) {
				a.Enabled = true
				a.Healthy.Interval, a.Healthy.Successes = Seconds(time.Second), 2
				a.Unhealthy.Interval, a.Unhealthy.HTTPFailures, a.Unhealthy.TCPFailures, a.Unhealthy.Timeouts = Seconds(time.Second), 5, 2, 3
			},
			passive: func(p *Passive) {
				p.Enabled = true
				p.Healthy.Successes = 5
				p.Unhealthy.HTTPFailures, p.Unhealthy.TCPFailures, p.Unhealthy.Timeouts = 5, 2, 7
			},
		},
		{
			desc: "blocks with only statuses still get APISIX defaults",
			block: `    healthchecks:
      active:
        healthy: {http_statuses: [200]}
      passive:
        unhealthy: {http_statuses: [500]}
`,
			active: func(a *Active) {
				a.Enabled = true
				a.Healthy.Interval, a.Healthy.Successes, a.Healthy.HTTPStatuses = Seconds(time.Second), 2, []int{200}
			},
			passive: func(p *Passive) {
				p.Enabled = true
				p.Unhealthy.HTTPFailures, p.Unhealthy.TCPFailures, p.Unhealthy.Timeouts, p.Unhealthy.HTTPStatuses = 5, 2, 7, []int{500}
			},
		},
		{
			desc: "explicit zeros stay zero",
			block: `    healthchecks:
      active:
        healthy: {interval: 0, successes: 0}
        unhealthy: {interval: 0, http_failures: 0, tcp_failures: 0, timeouts: 0}
      passive:
        healthy: {successes: 0}
        unhealthy: {http_failures: 0, tcp_failures: 0, timeouts: 0}
`,
			active:  func(a *Active) { a.Enabled = true },
			passive: func(p *Passive) { p.Enabled = true },
		},
		{
			desc: "one number given leaves the others at Kong's zero",
			block: `    healthchecks:
      active:
        unhealthy: {tcp_failures: 4}
      passive:
        unhealthy: {timeouts: 1}
`,
			active: func(a *Active) {
				a.Enabled = true
				a.Unhealthy.TCPFailures = 4
			},
			passive: func(p *Passive) {
				p.Enabled = true
				p.Unhealthy.Timeouts = 1
			},
		},
		{
			desc: "every field set",
			block: `    healthchecks:
      threshold: 25
      active:
        type: https
        http_path: /healthz
        timeout: 0.5
        concurrency: 3
        https_verify_certificate: false
        https_sni: api.example.com
        headers: {X-Probe: [yes], Host: probe.local}
        healthy: {interval: 2.5, successes: 3, http_statuses: [200, 204]}
        unhealthy: {interval: 1, http_failures: 2, tcp_failures: 1, timeouts: 4, http_statuses: [503]}
      passive:
        type: tcp
        healthy: {successes: 10, http_statuses: []}
        unhealthy: {http_failures: 3, tcp_failures: 3, timeouts: 3, http_statuses: [500, 502], grpc_statuses: [14]}
        max_ejection_percent: 33.3
        base_ejection_time: 10s
        max_ejection_time: 1m
`,
			active: func(a *Active) {
				*a = Active{
					Enabled: true, Type: "https", HTTPPath: "/healthz", Timeout: Seconds(500 * time.Millisecond),
					Concurrency: 3, HTTPSVerifyCertificate: false, HTTPSSNI: "api.example.com",
					Headers:   map[string][]string{"X-Probe": {"yes"}, "Host": {"probe.local"}},
					Healthy:   ActiveHealthy{Interval: Seconds(2500 * time.Millisecond), Successes: 3, HTTPStatuses: []int{200, 204}},
					Unhealthy: ActiveUnhealthy{Interval: Seconds(time.Second), HTTPFailures: 2, TCPFailures: 1, Timeouts: 4, HTTPStatuses: []int{503}},
				}
			},
			passive: func(p *Passive) {
				*p = Passive{
					Enabled: true, Type: "tcp",
					Healthy:            PassiveHealthy{Successes: 10, HTTPStatuses: []int{}},
					Unhealthy:          PassiveUnhealthy{HTTPFailures: 3, TCPFailures: 3, Timeouts: 3, HTTPStatuses: []int{500, 502}, GRPCStatuses: []int{14}},
					MaxEjectionPercent: 33.3, BaseEjectionTime: 10 * time.Second, MaxEjectionTime: time.Minute,
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			f := mustParse(t, "upstreams:\n  - name: u\n"+tt.block, nil)
			hc := f.Upstreams[0].Healthchecks
			wantA, wantP := kongActive, kongPassive
			// Fresh copies: the funcs may write into slices.
			wantA.Healthy.HTTPStatuses = append([]int(nil), wantA.Healthy.HTTPStatuses...)
			wantP.Unhealthy.HTTPStatuses = append([]int(nil), wantP.Unhealthy.HTTPStatuses...)
			if tt.active != nil {
				tt.active(&wantA)
			}
			if tt.passive != nil {
				tt.passive(&wantP)
			}
			if !reflect.DeepEqual(hc.Active, wantA) {
				t.Errorf("active =\n%+v\nwant\n%+v", hc.Active, wantA)
			}
			if !reflect.DeepEqual(hc.Passive, wantP) {
				t.Errorf("passive =\n%+v\nwant\n%+v", hc.Passive, wantP)
			}
		})
	}
	// Kong's defaults themselves.
	if a := kongActive; a.Type != "http" || a.HTTPPath != "/" || a.Timeout != Seconds(time.Second) || a.Concurrency != 10 ||
		!a.HTTPSVerifyCertificate || a.Healthy.Interval != 0 || a.Healthy.Successes != 0 ||
		!reflect.DeepEqual(a.Healthy.HTTPStatuses, []int{200, 302}) ||
		!reflect.DeepEqual(a.Unhealthy.HTTPStatuses, []int{429, 404, 500, 501, 502, 503, 504, 505}) {
		t.Errorf("Kong active defaults = %+v", a)
	}
	if p := kongPassive; p.Type != "http" || p.MaxEjectionPercent != 100 || p.BaseEjectionTime != 30*time.Second ||
		p.MaxEjectionTime != 300*time.Second ||
		!reflect.DeepEqual(p.Healthy.HTTPStatuses, []int{200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308}) ||
		!reflect.DeepEqual(p.Unhealthy.HTTPStatuses, []int{429, 500, 503}) {
		t.Errorf("Kong passive defaults = %+v", p)
	}
}

func TestParseDoesNotReadEnvironment(t *testing.T) {
	t.Setenv("OUTRIGGER_TEST_LISTEN", "127.0.0.1:9999")
	_, err := Parse("t.yaml", []byte("proxy:\n  listen: ${OUTRIGGER_TEST_LISTEN}\n"), nil)
	if err == nil {
		t.Fatal("Parse with a nil lookup resolved a variable from the process environment")
	}
	f, err := Parse("t.yaml", []byte("proxy:\n  listen: ${OUTRIGGER_TEST_LISTEN}\n"), os.LookupEnv)
	if err != nil || f.Proxy.Listen != "127.0.0.1:9999" {
		t.Fatalf("with os.LookupEnv: %+v, %v", f, err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "outrigger.yaml")
	if err := os.WriteFile(path, []byte(exampleFile), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != path || len(f.Routes) != 1 {
		t.Errorf("Load = %+v", f)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("proxy:\n  listen: nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad, nil)
	var list *ErrorList
	if !errors.As(err, &list) || !strings.HasPrefix(err.Error(), bad+":2:11: listen: ") {
		t.Errorf("Load(bad) error = %v", err)
	}

	_, err = Load(filepath.Join(dir, "missing.yaml"), nil)
	if err == nil || errors.As(err, &list) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error = %#v, want a plain not-exist error", err)
	}
}

// TestGRPCChecks parses the gRPC forms of the health checks: an active
// grpc(s) check with a service name, a Consul grpc check, and a Nacos
// registration gated on a gRPC probe.
func TestGRPCChecks(t *testing.T) {
	f := mustParse(t, `upstreams:
  - name: u
    healthchecks:
      active:
        type: grpcs
        grpc_service: pkg.Echo
        https_sni: api.example.com
        https_verify_certificate: false
  - name: v
    healthchecks:
      active: {type: grpc}
register:
  consul:
    service: {name: web, port: 8080}
    check: {grpc: "127.0.0.1:9090/pkg.Echo", grpc_use_tls: true, tls_skip_verify: true, interval: 2s}
  nacos:
    servers: [127.0.0.1:8848]
    service: web
    ip: 127.0.0.1
    port: 8080
    check: {grpc: "127.0.0.1:9090", interval: 3s}
`, nil)
	a := f.Upstreams[0].Healthchecks.Active
	if !a.Enabled || a.Type != "grpcs" || a.GRPCService != "pkg.Echo" || a.HTTPSSNI != "api.example.com" || a.HTTPSVerifyCertificate {
		t.Errorf("active grpcs = %+v", a)
	}
	if b := f.Upstreams[1].Healthchecks.Active; b.Type != "grpc" || b.GRPCService != "" {
		t.Errorf("active grpc = %+v", b)
	}
	c := f.Register.Consul.Check
	if c.GRPC != "127.0.0.1:9090/pkg.Echo" || !c.GRPCUseTLS || !c.TLSSkipVerify || c.Interval != 2*time.Second {
		t.Errorf("consul check = %+v", c)
	}
	n := f.Register.Nacos.Check
	if n == nil || n.GRPC != "127.0.0.1:9090" || n.GRPCUseTLS || n.HealthURL != "" || n.Interval != 3*time.Second || n.Timeout != 5*time.Second {
		t.Errorf("nacos check = %+v", n)
	}
	if f.Register.Nacos.Check.Pos.Line != 21 {
		t.Errorf("nacos check at line %d, want 21", f.Register.Nacos.Check.Pos.Line)
	}
}

func TestConsulZoneMetaKey(t *testing.T) {
	f, err := Parse("t.yaml", []byte(`upstreams:
  - name: a
    discovery:
      consul: {service: a, zone_meta_key: az}
  - name: b
    discovery:
      consul: {service: b}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if k := f.Upstreams[0].Discovery.Consul.ZoneMetaKey; k != "az" {
		t.Errorf("zone_meta_key = %q", k)
	}
	if k := f.Upstreams[1].Discovery.Consul.ZoneMetaKey; k != "" {
		t.Errorf("default zone_meta_key = %q, want empty (zone)", k)
	}
	_, err = Parse("t.yaml", []byte(`upstreams:
  - name: a
    discovery:
      consul: {service: a, zone_meta_key: ""}
`), nil)
	if err == nil || !strings.Contains(err.Error(), "t.yaml:4:") || !strings.Contains(err.Error(), "zone_meta_key") {
		t.Errorf("empty zone_meta_key: %v", err)
	}
}
