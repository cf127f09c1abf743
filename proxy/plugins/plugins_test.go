package plugins

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/config"
)

// fakeReq is a Request of fixed fields.
type fakeReq struct {
	method, path, ip string
	headers          map[string]string // lower-case names
	query            map[string]string
	repeated         map[string]bool // "h:" or "q:" and the name
}

func (r *fakeReq) Repeated(name string, query bool) bool {
	if query {
		return r.repeated["q:"+name]
	}
	return r.repeated["h:"+strings.ToLower(name)]
}

func (r *fakeReq) Header(name string) (string, bool) {
	for k, v := range r.headers {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}
func (r *fakeReq) QueryArg(name string) (string, bool) { v, ok := r.query[name]; return v, ok }
func (r *fakeReq) Method() string                      { return r.method }
func (r *fakeReq) Path() string                        { return r.path }
func (r *fakeReq) ClientIP() string                    { return r.ip }
func (r *fakeReq) Conn() (string, string, uint64, int) { return "127.0.0.1", "8000", 7, 3 }

func get(h map[string]string) *fakeReq {
	return &fakeReq{method: "GET", path: "/x", ip: "10.0.0.1", headers: h, query: map[string]string{}}
}

// plugin is a checked plugin entity (the tests' configs are valid).
func pl(t testing.TB, name string, cfg map[string]any, scope ...string) config.Plugin {
	t.Helper()
	s, ok := config.PluginSchemaOf(name)
	if !ok {
		t.Fatalf("no plugin %s", name)
	}
	c, errs := config.CheckPluginConfig(s, cfg)
	if errs != nil {
		t.Fatalf("%s: %v", name, errs)
	}
	p := config.Plugin{Name: name, Config: c, Enabled: true, Protocols: config.PluginProtocols()}
	for i := 0; i+1 < len(scope); i += 2 {
		switch scope[i] {
		case "service":
			p.Service = scope[i+1]
		case "route":
			p.Route = scope[i+1]
		case "consumer":
			p.Consumer = scope[i+1]
		}
	}
	p.ID = config.PluginScopeID(p.Name, p.Service, p.Route, p.Consumer)
	return p
}

var testConsumers = []config.Consumer{{ID: "c-alice", Username: "alice"}, {ID: "c-bob", Username: "bob", CustomID: "b7"}}
var testKeys = []config.KeyAuth{{ID: "k-alice", Key: "alice-key", Consumer: "alice"}, {ID: "k-bob", Key: "bob-key", Consumer: "bob"}}

func chainOf(t testing.TB, ps ...config.Plugin) *Chain {
	t.Helper()
	s, err := Build(Input{Plugins: ps, Consumers: testConsumers, KeyAuths: testKeys, Routes: []Route{{Name: "r", Service: "s"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s.Chain("r")
}

func down(x *Exchange) map[string]string {
	f := Fields{}
	Apply(&f, x.Down)
	out := map[string]string{}
	for _, fl := range f {
		out[fl.Name] = fl.Value
	}
	return out
}

func up(x *Exchange, base ...Field) map[string]string {
	f := Fields(base)
	Apply(&f, x.Up)
	out := map[string]string{}
	for _, fl := range f {
		out[fl.Name] = fl.Value
	}
	return out
}

func TestRateLimitMinute(t *testing.T) {
	ch := chainOf(t, pl(t, "rate-limiting", map[string]any{"minute": 3.0, "limit_by": "ip"}))
	now := time.Date(2026, 1, 2, 3, 4, 50, 0, time.UTC)
	ch.steps[0].def.run.(*rateLimit).now = func() time.Time { return now }
	var x Exchange
	for i, want := range []string{"2", "1", "0"} {
		x.Reset()
		if !ch.Access(&x, get(nil), ProtoHTTP, "s") {
			t.Fatalf("request %d refused", i)
		}
		h := down(&x)
		if h["X-RateLimit-Limit-Minute"] != "3" || h["X-RateLimit-Remaining-Minute"] != want || h["RateLimit-Remaining"] != want ||
			h["RateLimit-Limit"] != "3" || h["RateLimit-Reset"] != "10" {
			t.Fatalf("request %d: %v", i, h)
		}
	}
	x.Reset()
	if ch.Access(&x, get(nil), ProtoHTTP, "s") {
		t.Fatal("4th request allowed")
	}
	h := down(&x)
	if x.Status != 429 || x.Body != `{"message":"API rate limit exceeded"}` || h["Retry-After"] != "10" || h["X-RateLimit-Remaining-Minute"] != "0" {
		t.Fatalf("%d %s %v", x.Status, x.Body, h)
	}
	// Another client has its own count; the next window starts afresh.
	x.Reset()
	if !ch.Access(&x, &fakeReq{method: "GET", ip: "10.0.0.2"}, ProtoHTTP, "s") {
		t.Fatal("other IP refused")
	}
	now = now.Add(10 * time.Second)
	x.Reset()
	if !ch.Access(&x, get(nil), ProtoHTTP, "s") || down(&x)["X-RateLimit-Remaining-Minute"] != "2" {
		t.Fatalf("new window: %v", down(&x))
	}
}

// TestRateLimitStopCountsNothing: a request a period refuses is counted
// in no period (Kong's), and RateLimit-* name the tightest period.
func TestRateLimitStopCountsNothing(t *testing.T) {
	ch := chainOf(t, pl(t, "rate-limiting", map[string]any{"second": 1.0, "hour": 10.0, "limit_by": "ip"}))
	now := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	ch.steps[0].def.run.(*rateLimit).now = func() time.Time { return now }
	var x Exchange
	ch.Access(&x, get(nil), ProtoHTTP, "s")
	if h := down(&x); h["RateLimit-Limit"] != "1" || h["RateLimit-Remaining"] != "0" || h["X-RateLimit-Remaining-Hour"] != "9" {
		t.Fatalf("%v", h)
	}
	x.Reset()
	if ch.Access(&x, get(nil), ProtoHTTP, "s") {
		t.Fatal("second request in the same second allowed")
	}
	if h := down(&x); h["X-RateLimit-Remaining-Hour"] != "9" {
		t.Fatalf("refused request counted: %v", h)
	}
	now = now.Add(time.Second)
	x.Reset()
	ch.Access(&x, get(nil), ProtoHTTP, "s")
	if h := down(&x); h["X-RateLimit-Remaining-Hour"] != "8" {
		t.Fatalf("%v", h)
	}
}

func TestRateLimitByHeaderAndConsumer(t *testing.T) {
	ch := chainOf(t, pl(t, "key-auth", nil),
		pl(t, "rate-limiting", map[string]any{"minute": 1.0}),
	)
	var x Exchange
	for _, key := range []string{"alice-key", "bob-key"} {
		x.Reset()
		if !ch.Access(&x, get(map[string]string{"apikey": key}), ProtoHTTP, "s") {
			t.Fatalf("%s: first request refused", key)
		}
	}
	x.Reset()
	if ch.Access(&x, get(map[string]string{"apikey": "alice-key"}), ProtoHTTP, "s") || x.Status != 429 {
		t.Fatal("alice's second request allowed")
	}

	hc := chainOf(t, pl(t, "rate-limiting", map[string]any{"minute": 1.0, "limit_by": "header", "header_name": "X-Tenant"}))
	for _, tenant := range []string{"a", "b"} {
		x.Reset()
		if !hc.Access(&x, get(map[string]string{"x-tenant": tenant}), ProtoHTTP, "s") {
			t.Fatalf("tenant %s refused", tenant)
		}
	}
	x.Reset()
	if hc.Access(&x, get(map[string]string{"x-tenant": "a"}), ProtoHTTP, "s") {
		t.Fatal("tenant a allowed twice")
	}
}

// TestRateLimitByService: a global limit by service counts each
// service's requests together, whichever route they came by.
func TestRateLimitByService(t *testing.T) {
	s, err := Build(Input{Plugins: []config.Plugin{pl(t, "rate-limiting", map[string]any{"hour": 2.0, "limit_by": "service"})},
		Routes: []Route{{Name: "a", Service: "s1"}, {Name: "b", Service: "s1"}, {Name: "c", Service: "s2"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var x Exchange
	for _, c := range []struct {
		route, service string
		ok             bool
	}{{"a", "s1", true}, {"b", "s1", true}, {"c", "s2", true}, {"a", "s1", false}, {"c", "s2", true}} {
		x.Reset()
		if got := s.Chain(c.route).Access(&x, &fakeReq{method: "GET", ip: "10.1.1." + c.route}, ProtoHTTP, c.service); got != c.ok {
			t.Fatalf("%+v: allowed %v", c, got)
		}
	}
}

// TestRateLimitConcurrent: the counters are exact under contention.
func TestRateLimitConcurrent(t *testing.T) {
	ch := chainOf(t, pl(t, "rate-limiting", map[string]any{"hour": 500.0, "limit_by": "ip"}))
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
	)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var x Exchange
			n := 0
			for i := 0; i < 100; i++ {
				x.Reset()
				if ch.Access(&x, get(nil), ProtoHTTP, "s") {
					n++
				}
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if allowed != 500 {
		t.Fatalf("%d allowed, want 500", allowed)
	}
}

// TestRateLimitKeepsCounters: a rebuilt set keeps the counts of a plugin
// whose periods did not change.
func TestRateLimitKeepsCounters(t *testing.T) {
	p := pl(t, "rate-limiting", map[string]any{"hour": 1.0, "limit_by": "ip"})
	in := Input{Plugins: []config.Plugin{p}, Routes: []Route{{Name: "r"}}}
	s1, _ := Build(in, nil)
	var x Exchange
	s1.Chain("r").Access(&x, get(nil), ProtoHTTP, "s")
	p.Config["hour"] = 2.0
	s2, _ := Build(in, s1)
	x.Reset()
	if !s2.Chain("r").Access(&x, get(nil), ProtoHTTP, "s") || down(&x)["X-RateLimit-Remaining-Hour"] != "0" {
		t.Fatalf("%v", down(&x))
	}
}

func TestKeyAuth(t *testing.T) {
	ch := chainOf(t, pl(t, "key-auth", map[string]any{"hide_credentials": true, "key_names": []any{"apikey", "x-key"}}))
	var x Exchange
	ch.Access(&x, get(nil), ProtoHTTP, "s")
	if x.Status != 401 || x.Body != `{"message":"No API key found in request"}` || down(&x)["WWW-Authenticate"] != "Key" {
		t.Fatalf("%d %s %v", x.Status, x.Body, down(&x))
	}
	x.Reset()
	ch.Access(&x, get(map[string]string{"apikey": "nope"}), ProtoHTTP, "s")
	if x.Status != 401 || x.Body != `{"message":"Invalid authentication credentials"}` {
		t.Fatalf("%d %s", x.Status, x.Body)
	}
	x.Reset()
	if !ch.Access(&x, get(map[string]string{"x-key": "bob-key"}), ProtoHTTP, "s") {
		t.Fatalf("refused: %s", x.Body)
	}
	h := up(&x, Field{"x-key", "bob-key"}, Field{"X-Consumer-Username", "spoofed"}, Field{"X-Anonymous-Consumer", "true"})
	if h["X-Consumer-ID"] != "c-bob" || h["X-Consumer-Username"] != "bob" || h["X-Consumer-Custom-ID"] != "b7" ||
		h["X-Credential-Identifier"] != "k-bob" || h["x-key"] != "" || h["X-Anonymous-Consumer"] != "" || len(h) != 4 {
		t.Fatalf("upstream headers %v", h)
	}
	// In the query, hidden from upstream.
	x.Reset()
	r := get(nil)
	r.query["apikey"] = "alice-key"
	if !ch.Access(&x, r, ProtoHTTP, "s") || x.Consumer.Username != "alice" {
		t.Fatal("query key refused")
	}
	if q := string(x.EditQuery(nil, "apikey=alice-key&a=1")); q != "a=1" {
		t.Fatalf("query %q", q)
	}
}

// Kong's key-auth answers 401 "Duplicate API key found" when the name it
// reads carries several values; a header takes precedence over the
// query, and the first name found is the one read.
func TestKeyAuthDuplicateKey(t *testing.T) {
	ch := chainOf(t, pl(t, "key-auth", map[string]any{"key_names": []any{"apikey", "x-key"}}))
	dup := func(h map[string]string, q map[string]string, rep ...string) *fakeReq {
		r := get(h)
		for k, v := range q {
			r.query[k] = v
		}
		r.repeated = map[string]bool{}
		for _, n := range rep {
			r.repeated[n] = true
		}
		return r
	}
	var x Exchange
	for i, r := range []*fakeReq{
		dup(map[string]string{"apikey": "alice-key"}, nil, "h:apikey"),
		dup(nil, map[string]string{"apikey": "alice-key"}, "q:apikey"),
		dup(nil, map[string]string{"x-key": "bob-key"}, "q:x-key"),
	} {
		x.Reset()
		if ch.Access(&x, r, ProtoHTTP, "s") || x.Status != 401 || x.Body != `{"message":"Duplicate API key found"}` {
			t.Fatalf("%d: %d %s", i, x.Status, x.Body)
		}
		if _, ok := down(&x)["WWW-Authenticate"]; ok {
			t.Fatalf("%d: WWW-Authenticate on a duplicate key", i)
		}
	}
	// Not duplicates: the header shadows a repeated query argument, and a
	// repeated later name is not read.
	for i, r := range []*fakeReq{
		dup(map[string]string{"apikey": "alice-key"}, map[string]string{"apikey": "x"}, "q:apikey"),
		dup(map[string]string{"apikey": "alice-key", "x-key": "bob-key"}, nil, "h:x-key"),
		dup(map[string]string{"apikey": "alice-key"}, map[string]string{"apikey": "bob-key"}),
	} {
		x.Reset()
		if !ch.Access(&x, r, ProtoHTTP, "s") || x.Consumer.Username != "alice" {
			t.Fatalf("%d: %d %s", i, x.Status, x.Body)
		}
	}
	// With anonymous, a duplicate key falls back to it, as in Kong.
	anon := chainOf(t, pl(t, "key-auth", map[string]any{"anonymous": "bob"}))
	x.Reset()
	if !anon.Access(&x, dup(map[string]string{"apikey": "alice-key"}, nil, "h:apikey"), ProtoHTTP, "s") || x.Consumer.ID != "c-bob" {
		t.Fatalf("anonymous: %d %s", x.Status, x.Body)
	}
}

func TestKeyAuthAnonymousAndPreflight(t *testing.T) {
	ch := chainOf(t, pl(t, "key-auth", map[string]any{"anonymous": "bob", "run_on_preflight": false}))
	var x Exchange
	if !ch.Access(&x, get(nil), ProtoHTTP, "s") || x.Consumer.ID != "c-bob" || up(&x)["X-Anonymous-Consumer"] != "true" {
		t.Fatalf("anonymous: %v", up(&x))
	}
	x.Reset()
	if !ch.Access(&x, &fakeReq{method: "OPTIONS"}, ProtoHTTP, "s") || x.Consumer != nil {
		t.Fatal("preflight authenticated")
	}
	// An anonymous consumer that does not exist: Kong's 500 when the key
	// is missing, the key still works.
	gone := chainOf(t, pl(t, "key-auth", map[string]any{"anonymous": "nobody"}))
	x.Reset()
	if gone.Access(&x, get(nil), ProtoHTTP, "s") || x.Status != 500 || x.Body != `{"message":"anonymous consumer nobody is configured but doesn't exist"}` {
		t.Fatalf("%d %s", x.Status, x.Body)
	}
	x.Reset()
	if !gone.Access(&x, get(map[string]string{"apikey": "bob-key"}), ProtoHTTP, "s") {
		t.Fatalf("a valid key refused: %s", x.Body)
	}
}

func TestCORS(t *testing.T) {
	ch := chainOf(t, pl(t, "cors", map[string]any{"origins": []any{"http://a.example", `https://.*\.b\.example`},
		"methods": []any{"GET", "POST"}, "headers": []any{"X-One", "X-Two"}, "exposed_headers": []any{"X-Out"}, "max_age": 600.0, "credentials": true}))
	var x Exchange
	pre := &fakeReq{method: "OPTIONS", headers: map[string]string{"origin": "http://a.example:80", "access-control-request-method": "POST"}}
	if ch.Access(&x, pre, ProtoHTTP, "s") || x.Status != 200 || x.Body != "" {
		t.Fatalf("preflight not answered: %d", x.Status)
	}
	h := down(&x)
	want := map[string]string{"Vary": "Origin", "Access-Control-Allow-Origin": "http://a.example", "Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Headers": "X-One,X-Two", "Access-Control-Allow-Methods": "GET,POST", "Access-Control-Max-Age": "600"}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s: %q, want %q (%v)", k, h[k], v, h)
		}
	}
	// A simple request from a regex origin: proxied, with the headers.
	x.Reset()
	if !ch.Access(&x, get(map[string]string{"origin": "https://api.b.example"}), ProtoHTTP, "s") {
		t.Fatal("simple request answered")
	}
	if h := down(&x); h["Access-Control-Allow-Origin"] != "https://api.b.example" || h["Access-Control-Expose-Headers"] != "X-Out" {
		t.Fatalf("%v", h)
	}
	// An origin not allowed gets none.
	x.Reset()
	ch.Access(&x, get(map[string]string{"origin": "http://evil.example"}), ProtoHTTP, "s")
	if _, ok := down(&x)["Access-Control-Allow-Origin"]; ok {
		t.Fatalf("%v", down(&x))
	}
	// Every origin: *.
	all := chainOf(t, pl(t, "cors", nil))
	x.Reset()
	all.Access(&x, pre, ProtoHTTP, "s")
	if h := down(&x); h["Access-Control-Allow-Origin"] != "*" || h["Access-Control-Allow-Methods"] != "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT" {
		t.Fatalf("%v", h)
	}
}

func TestCorrelationID(t *testing.T) {
	ch := chainOf(t, pl(t, "correlation-id", map[string]any{"echo_downstream": true}))
	var x Exchange
	ch.Access(&x, get(nil), ProtoHTTP, "s")
	id := up(&x)["Kong-Request-ID"]
	base, n, ok := strings.Cut(id, "#")
	if !ok || n != "1" || len(base) != 36 || down(&x)["Kong-Request-ID"] != id {
		t.Fatalf("%q %v", id, down(&x))
	}
	x.Reset()
	ch.Access(&x, get(map[string]string{"kong-request-id": "mine"}), ProtoHTTP, "s")
	if len(x.Up) != 0 || down(&x)["Kong-Request-ID"] != "mine" {
		t.Fatalf("%v %v", x.Up, down(&x))
	}
	u := chainOf(t, pl(t, "correlation-id", map[string]any{"generator": "uuid", "header_name": "X-Req"}))
	x.Reset()
	u.Access(&x, get(nil), ProtoHTTP, "s")
	if v := up(&x)["X-Req"]; len(v) != 36 || v[14] != '4' {
		t.Fatalf("%q", v)
	}
	tr := chainOf(t, pl(t, "correlation-id", map[string]any{"generator": "tracker"}))
	x.Reset()
	tr.Access(&x, get(nil), ProtoHTTP, "s")
	if v := up(&x)["Kong-Request-ID"]; !strings.HasPrefix(v, "127.0.0.1-8000-") || !strings.Contains(v, "-7-3-") {
		t.Fatalf("%q", v)
	}
}

func TestTransformers(t *testing.T) {
	ch := chainOf(t,
		pl(t, "request-transformer", map[string]any{
			"remove":  map[string]any{"headers": []any{"x-drop"}, "querystring": []any{"drop"}},
			"rename":  map[string]any{"headers": []any{"x-old:x-new"}},
			"replace": map[string]any{"headers": []any{"x-rep:new"}, "querystring": []any{"q:2"}},
			"add":     map[string]any{"headers": []any{"x-add:1", "x-rep:not-added"}, "querystring": []any{"added:a b"}},
			"append":  map[string]any{"headers": []any{"x-app:2"}},
		}),
		pl(t, "response-transformer", map[string]any{
			"remove": map[string]any{"headers": []any{"server"}},
			"add":    map[string]any{"headers": []any{"x-resp:yes"}},
		}))
	var x Exchange
	ch.Access(&x, get(nil), ProtoHTTP, "s")
	f := Fields{{"x-drop", "1"}, {"x-old", "o"}, {"x-rep", "old"}, {"x-app", "1"}}
	Apply(&f, x.Up)
	got := ""
	for _, fl := range f {
		got += fl.Name + "=" + fl.Value + ";"
	}
	if got != "x-rep=new;x-app=1;x-new=o;x-add=1;x-app=2;" {
		t.Fatalf("upstream headers %s", got)
	}
	if q := string(x.EditQuery(nil, "drop=1&q=1&keep&z=%20")); q != "keep&z=%20&q=2&added=a+b" {
		t.Fatalf("query %q", q)
	}
	r := Fields{{"Server", "origin"}, {"Content-Type", "text/plain"}}
	Apply(&r, x.Down)
	if len(r) != 2 || r[0].Name != "Content-Type" || r[1] != (Field{"x-resp", "yes"}) {
		t.Fatalf("response %v", r)
	}
}

// TestPrecedence: Kong's order of scopes, per plugin name, with consumer
// scopes applying once the consumer is known.
func TestPrecedence(t *testing.T) {
	tag := func(v string) map[string]any {
		return map[string]any{"add": map[string]any{"headers": []any{"x-scope:" + v}}}
	}
	in := Input{Consumers: testConsumers, KeyAuths: testKeys, Routes: []Route{{Name: "r", Service: "s"}, {Name: "r2", Service: "s"}, {Name: "r3", Service: "t"}, {Name: "r4", Service: "s"}}}
	in.Plugins = []config.Plugin{
		pl(t, "key-auth", nil),
		pl(t, "request-transformer", tag("global")),
		pl(t, "request-transformer", tag("service"), "service", "s"),
		pl(t, "request-transformer", tag("route"), "route", "r"),
		pl(t, "request-transformer", tag("consumer"), "consumer", "alice"),
		pl(t, "request-transformer", tag("consumer+service"), "consumer", "bob", "service", "s"),
		pl(t, "request-transformer", tag("route+service"), "route", "r4", "service", "s"),
	}
	s, err := Build(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ route, key, want string }{
		{"r", "bob-key", "consumer+service"}, // beats route
		{"r", "alice-key", "consumer"},       // consumer beats route (below route+service)
		{"r2", "alice-key", "consumer"},      // above service
		{"r2", "bob-key", "consumer+service"},
		{"r3", "bob-key", "global"},
		{"r3", "alice-key", "consumer"},
		{"r4", "alice-key", "route+service"}, // beats consumer alone
		{"r4", "bob-key", "consumer+service"},
	} {
		var x Exchange
		if !s.Chain(c.route).Access(&x, get(map[string]string{"apikey": c.key}), ProtoHTTP, "s") {
			t.Fatalf("%+v: refused", c)
		}
		if got := up(&x)["x-scope"]; got != c.want {
			t.Errorf("%s with %s: %s, want %s", c.route, c.key, got, c.want)
		}
	}
	// Disabled plugins and protocols.
	p := pl(t, "request-transformer", tag("grpc only"))
	p.Protocols = []string{"grpc"}
	off := pl(t, "cors", nil)
	off.Enabled = false
	s, _ = Build(Input{Plugins: []config.Plugin{p, off}, Routes: []Route{{Name: "r"}}}, nil)
	var x Exchange
	s.Chain("r").Access(&x, get(map[string]string{"origin": "http://a"}), ProtoHTTP, "s")
	if len(x.Up)+len(x.Down) != 0 {
		t.Fatalf("%v %v", x.Up, x.Down)
	}
	if s, _ := Build(Input{Routes: []Route{{Name: "r"}}}, nil); s.Chain("r") != nil {
		t.Fatal("a route without plugins has a chain")
	}
}

// TestNoAllocations: the plugins do not allocate on their common path.
func TestNoAllocations(t *testing.T) {
	for name, c := range benchCases(t) {
		var x Exchange
		c.chain.Access(&x, c.req, ProtoHTTP, "s") // warm the exchange
		if n := testing.AllocsPerRun(100, func() {
			x.Reset()
			c.chain.Access(&x, c.req, ProtoHTTP, "s")
		}); n != 0 {
			t.Errorf("%s: %.0f allocations per request", name, n)
		}
	}
}

type benchCase struct {
	chain *Chain
	req   Request
}

func benchCases(t testing.TB) map[string]benchCase {
	return map[string]benchCase{
		"rate-limiting":  {chainOf(t, pl(t, "rate-limiting", map[string]any{"second": 1e9, "hour": 1e9, "limit_by": "ip"})), get(nil)},
		"key-auth":       {chainOf(t, pl(t, "key-auth", map[string]any{"hide_credentials": true})), get(map[string]string{"apikey": "alice-key"})},
		"cors":           {chainOf(t, pl(t, "cors", map[string]any{"origins": []any{"http://a.example", "http://b.example"}})), get(map[string]string{"origin": "http://b.example"})},
		"correlation-id": {chainOf(t, pl(t, "correlation-id", map[string]any{"echo_downstream": true})), get(nil)},
		"request-transformer": {chainOf(t, pl(t, "request-transformer", map[string]any{
			"add": map[string]any{"headers": []any{"x-a:1"}, "querystring": []any{"a:1"}}, "remove": map[string]any{"headers": []any{"x-b"}}})), get(nil)},
		"response-transformer": {chainOf(t, pl(t, "response-transformer", map[string]any{
			"add": map[string]any{"headers": []any{"x-a:1"}}, "remove": map[string]any{"headers": []any{"server"}}})), get(nil)},
	}
}

func benchPlugin(b *testing.B, name string) {
	c := benchCases(b)[name]
	var x Exchange
	b.ReportAllocs()
	for b.Loop() {
		x.Reset()
		c.chain.Access(&x, c.req, ProtoHTTP, "s")
	}
}

func BenchmarkRateLimiting(b *testing.B)       { benchPlugin(b, "rate-limiting") }
func BenchmarkKeyAuth(b *testing.B)            { benchPlugin(b, "key-auth") }
func BenchmarkCORS(b *testing.B)               { benchPlugin(b, "cors") }
func BenchmarkCorrelationID(b *testing.B)      { benchPlugin(b, "correlation-id") }
func BenchmarkRequestTransformer(b *testing.B) { benchPlugin(b, "request-transformer") }
func BenchmarkResponseTransformer(b *testing.B) {
	benchPlugin(b, "response-transformer")
}

// TestCounterTableFullAndReuse: when every probed slot belongs to a live
// identifier the request is let through uncounted (fault tolerant); once
// their windows pass the slots are reused.
func TestCounterTableFullAndReuse(t *testing.T) {
	ch := chainOf(t, pl(t, "rate-limiting", map[string]any{"minute": 1.0, "limit_by": "ip"}))
	rl := ch.steps[0].def.run.(*rateLimit)
	rl.table = newCounterTable(1, 4)
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rl.now = func() time.Time { return now }
	var x Exchange
	for i := 0; i < 4; i++ {
		x.Reset()
		if !ch.Access(&x, &fakeReq{ip: "10.0.0." + string(rune('a'+i))}, ProtoHTTP, "s") || len(x.Down) == 0 {
			t.Fatalf("client %d not counted", i)
		}
	}
	x.Reset()
	if !ch.Access(&x, &fakeReq{ip: "10.0.9.9"}, ProtoHTTP, "s") || len(x.Down) != 0 {
		t.Fatalf("a full table: %v", x.Down)
	}
	strict := chainOf(t, pl(t, "rate-limiting", map[string]any{"minute": 1.0, "limit_by": "ip", "fault_tolerant": false}))
	srl := strict.steps[0].def.run.(*rateLimit)
	srl.table, srl.now = rl.table, rl.now
	x.Reset()
	if strict.Access(&x, &fakeReq{ip: "10.0.9.9"}, ProtoHTTP, "s") || x.Status != 500 {
		t.Fatalf("not fault tolerant: %d", x.Status)
	}
	now = now.Add(time.Minute)
	for i := 0; i < 2; i++ {
		x.Reset()
		allowed := ch.Access(&x, &fakeReq{ip: "10.0.9.9"}, ProtoHTTP, "s")
		if allowed != (i == 0) || len(x.Down) == 0 {
			t.Fatalf("request %d in a reused slot: allowed %v, %v", i, allowed, x.Down)
		}
	}
}

// TestUnmatched: only global plugins with a response phase (cors, a
// response-transformer with header edits) make the chain for requests
// no route matched, in priority order, and it allocates nothing.
func TestUnmatched(t *testing.T) {
	build := func(ps ...config.Plugin) *Set {
		s, err := Build(Input{Plugins: ps, Consumers: testConsumers, KeyAuths: testKeys, Routes: []Route{{Name: "r", Service: "s"}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if u := build(pl(t, "key-auth", nil), pl(t, "rate-limiting", map[string]any{"minute": 5}), pl(t, "correlation-id", nil),
		pl(t, "request-transformer", map[string]any{"add": map[string]any{"headers": []any{"a:b"}}}),
		pl(t, "cors", nil, "route", "r")).Unmatched(); u != nil {
		t.Fatalf("a chain of no response phase: %+v", u)
	}
	u := build(pl(t, "response-transformer", map[string]any{"add": map[string]any{"headers": []any{"x-gw:1"}}}),
		pl(t, "cors", map[string]any{"origins": []any{"http://app.example"}})).Unmatched()
	if u == nil || len(u.steps) != 2 || u.steps[0].def.name != "cors" {
		t.Fatalf("unmatched chain %+v", u)
	}
	var x Exchange
	r := get(map[string]string{"origin": "http://app.example"})
	u.Respond(&x, r, ProtoHTTP)
	if d := down(&x); d["Access-Control-Allow-Origin"] != "http://app.example" || d["x-gw"] != "1" {
		t.Fatalf("edits %v", d)
	}
	if n := testing.AllocsPerRun(100, func() { x.Reset(); u.Respond(&x, r, ProtoHTTP) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
