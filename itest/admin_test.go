package itest

// The admin API end to end through the real binary: the seed tutorials
// replayed as HTTP requests (form-encoded like curl --data, and JSON),
// canary splits and stickiness, automatic rollouts, blue-green switches
// under load, persistence across SIGTERM and SIGKILL, kill -9 during
// writes, the admin token, and bad input. Fleet mode (two sidecars on one
// Consul KV key) is in fleet_test.go.
//
// Facts the tests rely on:
//   - Every admin change is one Gateway.Mutate (gateway/apply.go): built,
//     persisted, then swapped in before the answer is written, so a
//     request sent after a 2xx answer is routed by the new table.
//   - Round-robin builds an exact cycle (balance/roundrobin.go): equal
//     weights alternate strictly, 3:1 splits any 400 consecutive requests
//     exactly 300/100.
//   - The canary counter split (proxy/canary.go) sends the n-th request to
//     the canary when floor(n·p) grows, so any k consecutive requests hold
//     floor or ceil of k·p canary requests; with sticky_by the user's hash
//     bucket decides, monotone in the percent.
//
// Helpers here are prefixed ad so they cannot collide with other files of
// the package; fleet_test.go uses them too.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// adTimeout bounds one admin request.
const adTimeout = 10 * time.Second

// adResp is one admin API answer.
type adResp struct {
	status int
	raw    []byte
	m      map[string]any // the body, when it is a JSON object
}

func (r adResp) str(k string) string {
	s, _ := r.m[k].(string)
	return s
}

func (r adResp) num(k string) float64 {
	f, _ := r.m[k].(float64)
	return f
}

// data returns the items of a list answer.
func (r adResp) data() []map[string]any {
	list, _ := r.m["data"].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, it := range list {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// fields are the answer's field errors, a nested field's under its
// dotted name (the answer nests them, as Kong's).
func (r adResp) fields() map[string]any {
	f, _ := r.m["fields"].(map[string]any)
	if f == nil {
		return nil
	}
	out := map[string]any{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			out[prefix+k] = v
		}
	}
	walk("", f)
	return out
}

// adAPI talks to one gateway's admin listener.
type adAPI struct {
	base  string // http://host:port
	token string // sent as Authorization: Bearer when set
	c     *http.Client
}

func adAdmin(g *gateway) *adAPI {
	return &adAPI{base: "http://" + g.AdminAddr, c: &http.Client{Timeout: adTimeout}}
}

// try sends one request; hdr are extra header name/value pairs.
func (a *adAPI) try(method, path, ctype, body string, hdr ...string) (adResp, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		return adResp{}, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := a.c.Do(req)
	if err != nil {
		return adResp{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return adResp{}, err
	}
	r := adResp{status: resp.StatusCode, raw: raw}
	_ = json.Unmarshal(raw, &r.m)
	return r, nil
}

// do sends one request and fails the test unless the status is want (0:
// any status).
func (a *adAPI) do(t testing.TB, want int, method, path, ctype, body string) adResp {
	t.Helper()
	r, err := a.try(method, path, ctype, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if want != 0 && r.status != want {
		t.Fatalf("%s %s %s: status %d, want %d\n%s", method, path, body, r.status, want, r.raw)
	}
	return r
}

const adFormType = "application/x-www-form-urlencoded"

// adForm encodes name/value pairs as curl --data would.
func adForm(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v.Encode()
}

func (a *adAPI) form(t testing.TB, want int, method, path string, kv ...string) adResp {
	t.Helper()
	return a.do(t, want, method, path, adFormType, adForm(kv...))
}

func (a *adAPI) json(t testing.TB, want int, method, path string, v any) adResp {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return a.do(t, want, method, path, "application/json", string(b))
}

func (a *adAPI) get(t testing.TB, want int, path string) adResp {
	t.Helper()
	return a.do(t, want, http.MethodGet, path, "", "")
}

// all lists every item of a paged list, following next.
func (a *adAPI) all(t testing.TB, path string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for i := 0; path != ""; i++ {
		if i > 100 {
			t.Fatalf("GET %s: more than 100 pages", path)
		}
		r := a.get(t, http.StatusOK, path)
		out = append(out, r.data()...)
		path = r.str("next")
	}
	return out
}

// adConfig is a full configuration: listeners, the admin block with
// adminExtra (lines indented by two spaces), JSON debug logs, and body.
func adConfig(proxyAddr, adminAddr, adminExtra, body string) string {
	return fmt.Sprintf("proxy:\n  listen: %s\n  drain_timeout: 10s\nadmin:\n  listen: %s\n%slog:\n  format: json\n  level: debug\n%s",
		proxyAddr, adminAddr, adminExtra, body)
}

// adNode is a gateway that can be started again on the same
// configuration file and addresses (a restart).
type adNode struct {
	t                    *testing.T
	cfgPath              string
	proxyAddr, adminAddr string
}

// adNewNode writes a full configuration on kernel-chosen addresses.
func adNewNode(t *testing.T, adminExtra, body string) *adNode {
	t.Helper()
	addrs := freeAddrs(t, 2)
	n := &adNode{t: t, cfgPath: filepath.Join(t.TempDir(), "outrigger.yaml"), proxyAddr: addrs[0], adminAddr: addrs[1]}
	if err := os.WriteFile(n.cfgPath, []byte(adConfig(n.proxyAddr, n.adminAddr, adminExtra, body)), 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

// start runs the binary on the node's configuration and returns once the
// admin listener answers GET /health (which needs no token).
func (n *adNode) start() *gateway {
	t := n.t
	t.Helper()
	g := &gateway{t: t, ProxyAddr: n.proxyAddr, AdminAddr: n.adminAddr, cfgPath: n.cfgPath, exited: make(chan struct{})}
	g.cmd = exec.Command(binary, "run", "--config", n.cfgPath)
	g.startLogged()
	t.Cleanup(func() {
		select {
		case <-g.exited:
		default:
			_ = g.cmd.Process.Kill()
			<-g.exited
		}
		if t.Failed() {
			t.Logf("gateway %s log:\n%s", g.AdminAddr, g.rawLog())
		}
	})
	c := &http.Client{Timeout: time.Second}
	waitFor(t, 10*time.Second, "admin listener", func() bool {
		select {
		case <-g.exited:
			t.Fatalf("outrigger exited early: %v\n%s", g.exitErr, g.rawLog())
		default:
		}
		resp, err := c.Get("http://" + g.AdminAddr + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return g
}

// adLogsPrefixed returns the log lines whose message starts with prefix.
func adLogsPrefixed(g *gateway, prefix string) []map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []map[string]any
	for _, m := range g.logs {
		if s, _ := m["message"].(string); strings.HasPrefix(s, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// adHit sends one GET to the proxy and returns status and X-Backend;
// safe off the test goroutine.
func adHit(c *http.Client, url string, hdr ...string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Backend"), err
}

// adSeq sends n sequential GETs (bounded by d) and returns who answered
// each; every answer must be a 200.
func adSeq(t testing.TB, c *http.Client, url string, n int, d time.Duration, hdr ...string) []string {
	t.Helper()
	end := time.Now().Add(d)
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		if time.Now().After(end) {
			t.Fatalf("%d sequential requests took more than %s (%d done)", n, d, i)
		}
		status, who, err := adHit(c, url, hdr...)
		if err != nil || status != http.StatusOK {
			t.Fatalf("request %d to %s: status %d, %v", i, url, status, err)
		}
		out = append(out, who)
	}
	return out
}

func adCount(who []string) map[string]int {
	m := map[string]int{}
	for _, w := range who {
		m[w]++
	}
	return m
}

// adResult is one request of a load.
type adResult struct {
	start   time.Time
	end     time.Time
	status  int
	backend string
	err     string
}

// adLoad runs workers sending GETs until Stop, at most maxN requests in
// all and for at most maxD.
type adLoad struct {
	stop chan struct{}
	wg   sync.WaitGroup
	sent atomic.Int64
	mu   sync.Mutex
	res  []adResult
}

func adStartLoad(c *http.Client, url string, workers, maxN int, maxD time.Duration, every time.Duration) *adLoad {
	l := &adLoad{stop: make(chan struct{})}
	end := time.Now().Add(maxD)
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for time.Now().Before(end) && l.sent.Add(1) <= int64(maxN) {
				r := adResult{start: time.Now()}
				status, who, err := adHit(c, url)
				r.end, r.status, r.backend = time.Now(), status, who
				if err != nil {
					r.err = err.Error()
				}
				l.mu.Lock()
				l.res = append(l.res, r)
				l.mu.Unlock()
				if every > 0 {
					select {
					case <-l.stop:
						return
					case <-time.After(every):
					}
				} else {
					select {
					case <-l.stop:
						return
					default:
					}
				}
			}
		}()
	}
	return l
}

// Done returns how many requests have completed.
func (l *adLoad) Done() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.res)
}

// Stop ends the load, waits for the requests in flight and returns every
// result.
func (l *adLoad) Stop() []adResult {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.res
}

// adCanaryConfig: upstreams primary and canary of one target each, and
// service s on primary with route r on /.
func adCanaryConfig(primary, canary string) string {
	return fmt.Sprintf(`
upstreams:
  - {name: primary, targets: [{target: %s}]}
  - {name: canary, targets: [{target: %s}]}
services:
  - {name: s, host: primary, routes: [{name: r, paths: [/]}]}
`, primary, canary)
}

// TestAdminSeed003Tutorial replays Kong's load-balancing tutorial (seed
// 003) with its curl commands as form posts, the two backend hosts being
// local backends: afterwards /mock alternates strictly between them.
func TestAdminSeed003Tutorial(t *testing.T) {
	orig := startBackend(t, "orig", nil)
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	g := startGateway(t, fmt.Sprintf(`
services:
  - name: example_service
    url: http://%s
    routes:
      - {name: mock, paths: [/mock]}
`, orig.Addr))
	api := adAdmin(g)
	c := newClient()
	if _, who, body := get(t, c, g.url("/mock/headers")); who != "orig" || !strings.HasSuffix(body, "GET /headers") {
		t.Fatalf("before the tutorial /mock/headers reached %q (%q), want orig GET /headers", who, body)
	}
	steps := []struct {
		desc, method, path string
		kv                 []string
		want               int
		check              func(t *testing.T, r adResp)
	}{
		{desc: "create an upstream", method: http.MethodPost, path: "/upstreams", kv: []string{"name", "example_upstream"}, want: http.StatusCreated,
			check: func(t *testing.T, r adResp) {
				if r.str("name") != "example_upstream" || r.str("algorithm") != "round-robin" || r.str("id") == "" {
					t.Fatalf("upstream: %s", r.raw)
				}
			}},
		{desc: "first target", method: http.MethodPost, path: "/upstreams/example_upstream/targets", kv: []string{"target", a.Addr}, want: http.StatusCreated,
			check: func(t *testing.T, r adResp) {
				if r.str("target") != a.Addr || r.num("weight") != 100 || r.str("source") != "admin" {
					t.Fatalf("target: %s", r.raw)
				}
			}},
		{desc: "second target", method: http.MethodPost, path: "/upstreams/example_upstream/targets", kv: []string{"target", b.Addr}, want: http.StatusCreated},
		{desc: "point the service at the upstream", method: http.MethodPatch, path: "/services/example_service", kv: []string{"host", "example_upstream"}, want: http.StatusOK,
			check: func(t *testing.T, r adResp) {
				if r.str("host") != "example_upstream" || r.str("name") != "example_service" {
					t.Fatalf("service: %s", r.raw)
				}
			}},
	}
	for _, s := range steps {
		if !t.Run(s.desc, func(t *testing.T) {
			r := api.form(t, s.want, s.method, s.path, s.kv...)
			if s.check != nil {
				s.check(t, r)
			}
		}) {
			t.FailNow()
		}
	}
	t.Run("GET shows the upstream's two targets and the service on it", func(t *testing.T) {
		var got []string
		for _, tg := range api.all(t, "/upstreams/example_upstream/targets") {
			got = append(got, tg["target"].(string))
		}
		sort.Strings(got)
		want := []string{a.Addr, b.Addr}
		sort.Strings(want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("targets %v, want %v", got, want)
		}
		if h := api.get(t, http.StatusOK, "/services/example_service").str("host"); h != "example_upstream" {
			t.Fatalf("service host %q", h)
		}
	})
	t.Run("the proxy alternates strictly between the two targets", func(t *testing.T) {
		origHits := orig.Hits()
		who := make([]string, 0, 20)
		for i := 0; i < 20; i++ {
			status, w, body := get(t, c, g.url("/mock/headers"))
			if status != 200 || !strings.HasSuffix(body, "GET /headers") {
				t.Fatalf("request %d: %d %q", i, status, body)
			}
			who = append(who, w)
		}
		for i := 1; i < len(who); i++ {
			if who[i] == who[i-1] {
				t.Fatalf("not strictly alternating: %v", who)
			}
		}
		if n := adCount(who); n["a"] != 10 || n["b"] != 10 {
			t.Fatalf("20 requests split %v, want a=10 b=10", n)
		}
		if orig.Hits() != origHits {
			t.Fatalf("the old host still got %d requests", orig.Hits()-origHits)
		}
	})
	// Then Kong 3's calls around the same entities, through the binary.
	t.Run("Kong 3: PUT drains a target, targets/all still lists it, the proxy skips it", func(t *testing.T) {
		r := api.form(t, http.StatusOK, http.MethodPut, "/upstreams/example_upstream/targets/"+b.Addr, "weight", "0")
		if r.num("weight") != 0 || r.str("target") != b.Addr {
			t.Fatalf("PUT: %s", r.raw)
		}
		all := api.get(t, http.StatusOK, "/upstreams/example_upstream/targets/all").data()
		if len(all) != 2 {
			t.Fatalf("targets/all lists %d targets, want 2 (weight 0 included)", len(all))
		}
		for i := 0; i < 6; i++ {
			if status, w, _ := get(t, c, g.url("/mock/headers")); status != 200 || w != "a" {
				t.Fatalf("request %d after draining b: %d from %q", i, status, w)
			}
		}
		created := api.form(t, http.StatusCreated, http.MethodPut, "/upstreams/example_upstream/targets/127.0.0.1:9", "weight", "0")
		up := api.get(t, http.StatusOK, "/targets/"+created.str("id")+"/upstream")
		if up.str("name") != "example_upstream" {
			t.Fatalf("target's upstream: %s", up.raw)
		}
		api.form(t, http.StatusConflict, http.MethodPost, "/upstreams/example_upstream/targets", "target", "127.0.0.1:9")
		api.do(t, http.StatusNoContent, http.MethodDelete, "/upstreams/example_upstream/targets/127.0.0.1:9", "", "")
		api.do(t, http.StatusNoContent, http.MethodDelete, "/upstreams/example_upstream/targets/127.0.0.1:9", "", "")
	})
	t.Run("Kong 3: nested reads, DELETE of nothing, a bad offset, the health shape", func(t *testing.T) {
		if n := api.get(t, http.StatusOK, "/routes/mock/service").str("name"); n != "example_service" {
			t.Fatalf("route's service %q", n)
		}
		if n := api.get(t, http.StatusOK, "/services/example_service/routes/mock").str("name"); n != "mock" {
			t.Fatalf("service's route %q", n)
		}
		api.do(t, http.StatusNoContent, http.MethodDelete, "/routes/nope", "", "")
		if r := api.get(t, http.StatusBadRequest, "/upstreams?offset=garbage"); r.num("code") != 7 || r.str("name") != "invalid offset" {
			t.Fatalf("bad offset: %s", r.raw)
		}
		h := api.get(t, http.StatusOK, "/upstreams/example_upstream/health")
		if h.num("total") != 2 || h.str("node_id") == "" || len(h.data()) != 2 {
			t.Fatalf("health: %s", h.raw)
		}
		if root := api.get(t, http.StatusOK, "/"); root.str("node_id") != h.str("node_id") {
			t.Fatalf("root node_id %q, health node_id %q", root.str("node_id"), h.str("node_id"))
		}
		api.do(t, http.StatusNoContent, http.MethodPut, "/upstreams/example_upstream/targets/"+a.Addr+"/"+a.Addr+"/unhealthy", "", "")
		for _, d := range api.get(t, http.StatusOK, "/upstreams/example_upstream/health").data() {
			if d["target"] == a.Addr && d["data"].(map[string]any)["mark"] != "unhealthy" {
				t.Fatalf("per-address mark not shown: %v", d)
			}
		}
	})
}

// TestAdminSeed000Portal replays the IAM portal steps of seed 000: an
// upstream, two weighted targets, a service on the upstream with a path,
// a route by service.id; then Mark Unhealthy and Mark Healthy.
func TestAdminSeed000Portal(t *testing.T) {
	a := startBackend(t, "a", nil)
	b := startBackend(t, "b", nil)
	g := startGateway(t, "")
	api := adAdmin(g)
	c := newClient()

	api.form(t, http.StatusCreated, http.MethodPost, "/upstreams", "name", "myupstream", "slots", "1000")
	ta := api.form(t, http.StatusCreated, http.MethodPost, "/upstreams/myupstream/targets", "target", a.Addr, "weight", "300")
	api.form(t, http.StatusCreated, http.MethodPost, "/upstreams/myupstream/targets", "target", b.Addr, "weight", "100")
	svc := api.form(t, http.StatusCreated, http.MethodPost, "/services", "name", "myservice", "host", "myupstream", "path", "/api/atelier", "protocol", "http")
	api.form(t, http.StatusCreated, http.MethodPost, "/routes", "paths[]", "/api/atelier", "protocols[]", "http", "service.id", svc.str("id"))

	health := func(t *testing.T) map[string]string {
		out := map[string]string{}
		for _, h := range api.all(t, "/upstreams/myupstream/health") {
			d, _ := h["data"].(map[string]any)
			out[h["target"].(string)] = fmt.Sprintf("%v/%v", h["health"], d["mark"])
		}
		return out
	}
	split := func(t *testing.T, n int) map[string]int {
		who := adSeq(t, c, g.url("/api/atelier/x"), n, 20*time.Second)
		return adCount(who)
	}

	t.Run("weights 300 and 100 split 400 requests exactly", func(t *testing.T) {
		_, _, body := get(t, c, g.url("/api/atelier/x"))
		if !strings.HasSuffix(body, "GET /api/atelier/x") {
			t.Fatalf("backend saw %q, want GET /api/atelier/x", body)
		}
		if n := split(t, 400); n["a"] != 300 || n["b"] != 100 {
			t.Fatalf("400 requests split %v, want a=300 b=100", n)
		}
	})
	t.Run("Mark Unhealthy (by id): the target gets no traffic", func(t *testing.T) {
		api.form(t, http.StatusNoContent, http.MethodPut, "/upstreams/myupstream/targets/"+ta.str("id")+"/unhealthy")
		hits := a.Hits()
		if n := split(t, 100); n["b"] != 100 {
			t.Fatalf("100 requests split %v, want all on b", n)
		}
		if a.Hits() != hits {
			t.Fatalf("the unhealthy target got %d requests", a.Hits()-hits)
		}
		want := map[string]string{a.Addr: "UNHEALTHY/unhealthy", b.Addr: "HEALTHCHECKS_OFF/none"}
		if got := health(t); !reflect.DeepEqual(got, want) {
			t.Fatalf("health %v, want %v", got, want)
		}
	})
	t.Run("Mark Healthy (by address): traffic comes back", func(t *testing.T) {
		api.form(t, http.StatusNoContent, http.MethodPut, "/upstreams/myupstream/targets/"+a.Addr+"/healthy")
		if n := split(t, 400); n["a"] != 300 || n["b"] != 100 {
			t.Fatalf("400 requests split %v, want a=300 b=100", n)
		}
		want := map[string]string{a.Addr: "HEALTHY/healthy", b.Addr: "HEALTHCHECKS_OFF/none"}
		if got := health(t); !reflect.DeepEqual(got, want) {
			t.Fatalf("health %v, want %v", got, want)
		}
	})
}

// TestAdminCanarySplitExact: a 5 % canary gets exactly 500 of 10 000
// sequential requests, and 50 of every 1000 consecutive ones.
func TestAdminCanarySplitExact(t *testing.T) {
	const n, window = 10000, 1000
	p := startBackend(t, "primary", nil)
	cb := startBackend(t, "canary", nil)
	g := startGateway(t, adCanaryConfig(p.Addr, cb.Addr))
	api := adAdmin(g)
	r := api.form(t, http.StatusCreated, http.MethodPut, "/services/s/canary", "upstream", "canary", "percent", "5")
	if r.num("percent") != 5 || r.str("upstream") != "canary" || r.str("primary") != "primary" || r.m["sticky_by"] != nil {
		t.Fatalf("canary: %s", r.raw)
	}
	who := adSeq(t, newClient(), g.url("/x"), n, 60*time.Second)
	hit := make([]int, n+1) // prefix sums of canary answers
	for i, w := range who {
		if w != "primary" && w != "canary" {
			t.Fatalf("request %d answered by %q", i, w)
		}
		hit[i+1] = hit[i]
		if w == "canary" {
			hit[i+1]++
		}
	}
	total := hit[n]
	lo, hi := window, 0
	for i := 0; i+window <= n; i++ {
		k := hit[i+window] - hit[i]
		lo, hi = min(lo, k), max(hi, k)
	}
	t.Logf("5%% canary: %d of %d sequential requests; every window of %d consecutive held %d..%d", total, n, window, lo, hi)
	if total < 499 || total > 501 {
		t.Errorf("canary got %d of %d, want 500 ± 1", total, n)
	}
	if lo < 49 || hi > 51 {
		t.Errorf("windows of %d consecutive requests held %d..%d canary answers, want 50 ± 1", window, lo, hi)
	}
	if p.Hits()+cb.Hits() != n {
		t.Errorf("backends saw %d+%d requests, want %d", p.Hits(), cb.Hits(), n)
	}
}

// TestAdminCanaryStickyGrowth: with sticky_by header:X-User every user
// keeps its side, and a user on the canary stays there while the percent
// grows from 5 to 25 to 50.
func TestAdminCanaryStickyGrowth(t *testing.T) {
	const users = 200
	p := startBackend(t, "primary", nil)
	cb := startBackend(t, "canary", nil)
	g := startGateway(t, adCanaryConfig(p.Addr, cb.Addr))
	api := adAdmin(g)
	c := newClient()
	api.form(t, http.StatusCreated, http.MethodPut, "/services/s/canary", "upstream", "canary", "percent", "5", "sticky_by", "header:X-User")

	// onCanary asks for every user twice and returns who is on the canary.
	onCanary := func(t *testing.T) map[string]bool {
		set := map[string]bool{}
		for u := 0; u < users; u++ {
			user := fmt.Sprintf("user-%03d", u)
			first := adSeq(t, c, g.url("/x"), 2, 10*time.Second, "X-User", user)
			if first[0] != first[1] {
				t.Fatalf("%s went to %s then %s at one percent", user, first[0], first[1])
			}
			if first[0] == "canary" {
				set[user] = true
			}
		}
		return set
	}
	prev := onCanary(t)
	t.Logf("5%%: %d of %d users on the canary", len(prev), users)
	if want := users * 5 / 100; len(prev) > want+16 {
		t.Fatalf("5%%: %d users on the canary, want %d ± 16", len(prev), want)
	}
	for _, pct := range []int{25, 50} {
		t.Run(fmt.Sprintf("raise to %d%%", pct), func(t *testing.T) {
			r := api.form(t, http.StatusOK, http.MethodPatch, "/services/s/canary", "percent", strconv.Itoa(pct))
			if r.num("percent") != float64(pct) || r.str("sticky_by") != "header:X-User" {
				t.Fatalf("canary: %s", r.raw)
			}
			cur := onCanary(t)
			t.Logf("%d%%: %d of %d users on the canary", pct, len(cur), users)
			for u := range prev {
				if !cur[u] {
					t.Errorf("%s was on the canary and left it at %d%%", u, pct)
				}
			}
			if want := users * pct / 100; len(cur) < want-16 || len(cur) > want+16 {
				t.Errorf("%d%%: %d users on the canary, want %d ± 16 (±8 points)", pct, len(cur), want)
			}
			prev = cur
		})
	}
	t.Run("requests without the header fall back to the exact split", func(t *testing.T) {
		if n := adCount(adSeq(t, c, g.url("/x"), 100, 10*time.Second)); n["canary"] < 49 || n["canary"] > 51 {
			t.Fatalf("100 requests without X-User at 50%% split %v, want 50 ± 1 on the canary", n)
		}
	})
}

// TestAdminCanaryStickyCookieFirstVisit is issue 11 item 2 replayed: a
// canary sticky by cookie:session, then visitors without the cookie. Each
// one is answered (the counter split decides: 10 % of 20 first visits is
// exactly 2), a visitor with the cookie keeps its side, nothing is logged
// at error level and no panic is counted.
func TestAdminCanaryStickyCookieFirstVisit(t *testing.T) {
	p := startBackend(t, "primary", nil)
	cb := startBackend(t, "canary", nil)
	g := startGateway(t, fmt.Sprintf(`
upstreams:
  - {name: primary, targets: [{target: %s}]}
  - {name: canary, targets: [{target: %s}]}
services:
  - {name: shop, host: primary, routes: [{name: shop, paths: [/shop]}]}
`, p.Addr, cb.Addr))
	api := adAdmin(g)
	api.form(t, http.StatusCreated, http.MethodPut, "/services/shop/canary", "upstream", "canary", "percent", "10", "sticky_by", "cookie:session")
	c := newClient()
	who := adSeq(t, c, g.url("/shop/x"), 20, 10*time.Second)
	if n := adCount(who); n["canary"] != 2 || n["primary"] != 18 {
		t.Fatalf("20 first visits split %v, want 2 on the canary and 18 on the primary", n)
	}
	with := adSeq(t, c, g.url("/shop/x"), 5, 10*time.Second, "Cookie", "session=s-1")
	for i, w := range with {
		if w != with[0] {
			t.Fatalf("a visitor with a session cookie went to %v (request %d moved)", with, i)
		}
	}
	for _, l := range g.logsWhere("panic serving a request") {
		t.Errorf("panic logged: %v", l)
	}
	for _, l := range adLogsLevel(g, "error") {
		t.Errorf("error logged: %v", l)
	}
	m := hcMetrics(t, g)
	series := `outrigger_panics_total{listener="proxy"}`
	if v, ok := m[series]; !ok || v != 0 {
		t.Fatalf("%s = %v (present %v), want 0", series, v, ok)
	}
}

// adLogsLevel returns g's log lines at level.
func adLogsLevel(g *gateway, level string) []map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []map[string]any
	for _, m := range g.logs {
		if m["level"] == level {
			out = append(out, m)
		}
	}
	return out
}

// adRolloutBody is the plan both rollout tests start: steps 10, 50, 100
// held 1s each, judged after 20 canary requests. max_p99_ratio is at its
// maximum, and the primary answers after adPrimaryDelay, so that only the
// error rate can roll back: the canary's p99 over a few dozen requests is
// their maximum, and one scheduling stall of a loopback request must not
// exceed 1000 × the primary's p99.
var adRolloutBody = map[string]any{
	"steps": []any{10, 50, 100}, "interval": "1s", "min_requests": 20,
	"max_error_rate_increase": 0.05, "max_p99_ratio": 1000,
}

// adPrimaryDelay is how long the rollout tests' primary takes to answer.
const adPrimaryDelay = 2 * time.Millisecond

// adSlowBackend answers like startBackend's default handler after d.
func adSlowBackend(t testing.TB, name string, d time.Duration) *backend {
	return startBackend(t, name, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(d)
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "%s %s %s", name, r.Method, r.URL.RequestURI())
	}))
}

// adRolloutStep is one observed state of a rollout.
type adRolloutStep struct {
	at            time.Duration // since the rollout was started
	state         string
	step          int
	canaryPercent float64
}

// adWatchRollout polls GET /services/s/rollout until the state is one of
// final (or d passes) and returns every distinct state seen.
func adWatchRollout(t *testing.T, api *adAPI, t0 time.Time, d time.Duration, final ...string) []adRolloutStep {
	t.Helper()
	var seen []adRolloutStep
	end := time.Now().Add(d)
	for {
		r := api.get(t, http.StatusOK, "/services/s/rollout")
		cp, _ := r.m["canary_percent"].(float64)
		s := adRolloutStep{at: time.Since(t0), state: r.str("state"), step: int(r.num("step")), canaryPercent: cp}
		if len(seen) == 0 || seen[len(seen)-1].state != s.state || seen[len(seen)-1].step != s.step || seen[len(seen)-1].canaryPercent != s.canaryPercent {
			seen = append(seen, s)
		}
		for _, f := range final {
			if s.state == f {
				return seen
			}
		}
		if time.Now().After(end) {
			t.Fatalf("rollout not %v after %s; states seen: %+v\nlast: %s", final, d, seen, r.raw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAdminRolloutRollback: a canary answering 500s is rolled back to 0 %
// with the reason logged, and gets no request afterwards.
func TestAdminRolloutRollback(t *testing.T) {
	p := adSlowBackend(t, "primary", adPrimaryDelay)
	cb := startBackend(t, "canary", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "canary")
		http.Error(w, "broken build", http.StatusInternalServerError)
	}))
	g := startGateway(t, adCanaryConfig(p.Addr, cb.Addr))
	api := adAdmin(g)
	c := newClient()
	api.form(t, http.StatusCreated, http.MethodPut, "/services/s/canary", "upstream", "canary", "percent", "0")
	t0 := time.Now()
	r := api.json(t, http.StatusCreated, http.MethodPost, "/services/s/rollout", adRolloutBody)
	if r.str("state") != "running" || r.num("percent") != 10 || r.m["canary_percent"] != 10.0 {
		t.Fatalf("started rollout: %s", r.raw)
	}
	load := adStartLoad(c, g.url("/x"), 4, 20000, 15*time.Second, time.Millisecond)
	seen := adWatchRollout(t, api, t0, 10*time.Second, "rolled_back", "completed", "aborted")
	res := load.Stop()
	t.Logf("rollout states: %+v; %d requests sent", seen, len(res))

	r = api.get(t, http.StatusOK, "/services/s/rollout")
	reason := r.str("reason")
	if r.str("state") != "rolled_back" || r.m["canary_percent"] != 0.0 || !strings.Contains(reason, "error rate") {
		t.Fatalf("rollout: %s, want rolled_back at 0%% for the error rate", r.raw)
	}
	if pc := api.get(t, http.StatusOK, "/services/s/canary").num("percent"); pc != 0 {
		t.Fatalf("canary percent %v after the rollback, want 0", pc)
	}
	// The status names the step's figures (the reason's) and the plan's.
	st, _ := r.m["status"].(map[string]any)
	if st == nil || st["canary_error_rate_step"] != 1.0 || !strings.Contains(reason, "canary error rate 100.00%") ||
		st["canary_error_rate_total"] != 1.0 || st["canary_requests_total"] == nil || st["primary_error_rate_total"] == nil {
		t.Fatalf("status %v with reason %q: want canary_error_rate_step 1 (as the reason says) and the *_total figures", st, reason)
	}
	waitFor(t, 5*time.Second, "the rollback log line", func() bool { return len(adLogsPrefixed(g, "rollout rolled back: ")) > 0 })
	l := adLogsPrefixed(g, "rollout rolled back: ")[0]
	if l["reason"] != reason || l["service"] != "s" || l["message"] != "rollout rolled back: "+reason {
		t.Fatalf("log line %v, want service s and reason %q", l, reason)
	}
	t.Logf("logged: %s", l["message"])

	hits := cb.Hits()
	if n := adCount(adSeq(t, c, g.url("/x"), 200, 10*time.Second)); n["primary"] != 200 {
		t.Fatalf("200 requests after the rollback split %v, want all on primary", n)
	}
	if cb.Hits() != hits {
		t.Fatalf("the canary got %d requests after the rollback", cb.Hits()-hits)
	}
}

// TestAdminRolloutCompletes: a healthy canary advances through 10, 50 and
// 100 % to completed, each step held for the interval.
func TestAdminRolloutCompletes(t *testing.T) {
	p := adSlowBackend(t, "primary", adPrimaryDelay)
	cb := startBackend(t, "canary", nil)
	g := startGateway(t, adCanaryConfig(p.Addr, cb.Addr))
	api := adAdmin(g)
	c := newClient()
	api.form(t, http.StatusCreated, http.MethodPut, "/services/s/canary", "upstream", "canary", "percent", "0")
	load := adStartLoad(c, g.url("/x"), 4, 40000, 20*time.Second, time.Millisecond)
	// Traffic flows before the rollout starts, so min_requests is the
	// only thing that could hold step 0 besides the interval.
	waitFor(t, 5*time.Second, "load", func() bool { return load.Done() >= 50 })
	t0 := time.Now()
	r := api.json(t, http.StatusCreated, http.MethodPost, "/services/s/rollout", adRolloutBody)
	seen := adWatchRollout(t, api, t0, 15*time.Second, "completed", "rolled_back", "aborted")
	res := load.Stop()
	t.Logf("rollout states (time since POST): %+v; %d requests sent", seen, len(res))
	t.Run("step_since is in Unix seconds, like updated_at", func(t *testing.T) {
		since, _ := r.m["step_since"].(float64)
		updated, _ := r.m["updated_at"].(float64)
		if since < float64(t0.Unix()-1) || since > float64(time.Now().Unix()+1) || since != updated {
			t.Fatalf("step_since %v, updated_at %v; want both the POST's Unix second (%d)", r.m["step_since"], r.m["updated_at"], t0.Unix())
		}
	})

	var failed int
	for _, x := range res {
		if x.err != "" || x.status != 200 {
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d requests failed during the rollout", failed, len(res))
	}
	t.Run("advances through every step to completed at 100%", func(t *testing.T) {
		var pcts []float64
		for _, s := range seen {
			if len(pcts) == 0 || pcts[len(pcts)-1] != s.canaryPercent {
				pcts = append(pcts, s.canaryPercent)
			}
		}
		last := seen[len(seen)-1]
		if last.state != "completed" || last.canaryPercent != 100 || !reflect.DeepEqual(pcts, []float64{10, 50, 100}) {
			t.Fatalf("states %+v, want 10 → 50 → 100 then completed", seen)
		}
		for _, m := range []string{"rollout advanced to step 2: 50%", "rollout advanced to step 3: 100%", "rollout completed at 100%"} {
			waitFor(t, 5*time.Second, "log "+m, func() bool { return len(g.logsWhere(m)) == 1 })
		}
		hits := p.Hits()
		if n := adCount(adSeq(t, c, g.url("/x"), 50, 10*time.Second)); n["canary"] != 50 || p.Hits() != hits {
			t.Fatalf("after completion 50 requests split %v, want all on the canary", n)
		}
	})
	t.Run("every step is held for the interval, step 0 included", func(t *testing.T) {
		// Each hold is measured between observed transitions (the step-0
		// hold from the POST), so polling can shorten it by one poll
		// period: 900 ms is the floor for a 1 s interval.
		prev, prevAt := 10.0, time.Duration(0)
		for _, s := range seen {
			if s.canaryPercent == prev && s.state == "running" {
				continue
			}
			if held := s.at - prevAt; held < 900*time.Millisecond {
				t.Fatalf("the %g%% step was held %s, want >= interval 1s; states %+v", prev, held, seen)
			}
			prev, prevAt = s.canaryPercent, s.at
		}
	})
}

// TestAdminBlueGreen: with 8 workers sending GETs, the service's host is
// switched blue → green → blue … six times: no request fails, and every
// request sent after a switch was acknowledged goes to the new color.
func TestAdminBlueGreen(t *testing.T) {
	const switches, between = 6, 300
	blue := startBackend(t, "blue", nil)
	green := startBackend(t, "green", nil)
	g := startGateway(t, fmt.Sprintf(`
upstreams:
  - {name: blue, targets: [{target: %s}]}
  - {name: green, targets: [{target: %s}]}
services:
  - {name: s, host: blue, routes: [{name: r, paths: [/]}]}
`, blue.Addr, green.Addr))
	api := adAdmin(g)
	load := adStartLoad(newClient(), g.url("/x"), 8, 5000, 20*time.Second, 0)
	type sw struct {
		color      string
		sent, ackd time.Time
	}
	var sws []sw
	waitFor(t, 10*time.Second, "load", func() bool { return load.Done() >= between })
	for i := 0; i < switches; i++ {
		color := []string{"green", "blue"}[i%2]
		s := sw{color: color, sent: time.Now()}
		if h := api.form(t, http.StatusOK, http.MethodPatch, "/services/s", "host", color).str("host"); h != color {
			t.Fatalf("PATCH host=%s answered host %q", color, h)
		}
		s.ackd = time.Now()
		sws = append(sws, s)
		n := load.Done()
		waitFor(t, 10*time.Second, "load after a switch", func() bool { return load.Done() >= n+between })
	}
	res := load.Stop()
	counts := map[string]int{}
	var bad []string
	for _, r := range res {
		if r.err != "" || r.status != 200 {
			bad = append(bad, fmt.Sprintf("%d %s", r.status, r.err))
			continue
		}
		counts[r.backend]++
		// The color in force while the request was under way: a request
		// is routed at some moment between its start and its end, so one
		// that overlaps a switch (from its PATCH to the answer) may go
		// either way.
		want := "blue"
		ambiguous := false
		for _, s := range sws {
			switch {
			case r.start.After(s.ackd):
				want = s.color
			case r.end.Before(s.sent):
			default:
				ambiguous = true
			}
		}
		if !ambiguous && r.backend != want {
			bad = append(bad, fmt.Sprintf("sent at %s went to %s, want %s", r.start.Format("15:04:05.000000"), r.backend, want))
		}
	}
	t.Logf("%d requests during %d switches: %v", len(res), switches, counts)
	if len(bad) > 0 {
		t.Fatalf("%d bad requests, first ones: %v", len(bad), bad[:min(5, len(bad))])
	}
	gh := green.Hits()
	if n := adCount(adSeq(t, newClient(), g.url("/x"), 100, 10*time.Second)); n["blue"] != 100 || green.Hits() != gh {
		t.Fatalf("after the last switch (to blue) 100 requests split %v", n)
	}
}

// adRestartBody: primary (two targets) and canary upstreams, service s on
// primary with route r on /r.
func adRestartBody(p1, p2, cn string) string {
	return fmt.Sprintf(`
upstreams:
  - {name: primary, targets: [{target: %s}, {target: %s}]}
  - {name: canary, targets: [{target: %s}]}
services:
  - {name: s, host: primary, routes: [{name: r, paths: [/r]}]}
`, p1, p2, cn)
}

// TestAdminRestartRestores: changes of every kind (upstream, targets,
// service, route, override, canary, mark, a PATCH of a file service) made
// through the admin API survive SIGTERM and SIGKILL: the new process on
// the same configuration and state file shows them and proxies the same.
func TestAdminRestartRestores(t *testing.T) {
	for _, tc := range []struct {
		desc     string
		sig      syscall.Signal
		wantCode int
	}{
		{desc: "SIGTERM", sig: syscall.SIGTERM, wantCode: 0},
		{desc: "SIGKILL", sig: syscall.SIGKILL, wantCode: -1},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			p1 := startBackend(t, "p1", nil)
			p2 := startBackend(t, "p2", nil)
			cn := startBackend(t, "canary", nil)
			a := startBackend(t, "a", nil)
			b := startBackend(t, "b", nil)
			stateFile := filepath.Join(t.TempDir(), "admin-state.json")
			n := adNewNode(t, fmt.Sprintf("  state_file: %s\n", stateFile), adRestartBody(p1.Addr, p2.Addr, cn.Addr))
			g := n.start()
			api := adAdmin(g)
			c := newClient()

			api.form(t, http.StatusCreated, http.MethodPost, "/upstreams", "name", "api_up")
			api.form(t, http.StatusCreated, http.MethodPost, "/upstreams/api_up/targets", "target", a.Addr)
			api.json(t, http.StatusCreated, http.MethodPost, "/upstreams/api_up/targets", map[string]any{"target": b.Addr, "weight": 100})
			api.form(t, http.StatusCreated, http.MethodPost, "/services", "name", "api_svc", "host", "api_up", "path", "/v1")
			api.form(t, http.StatusCreated, http.MethodPost, "/services/api_svc/routes", "name", "api_route", "paths[]", "/api")
			api.json(t, http.StatusCreated, http.MethodPost, "/upstreams/api_up/overrides", map[string]any{"target": a.Addr, "weight": 300})
			api.form(t, http.StatusOK, http.MethodPatch, "/services/s", "path", "/v2")
			api.form(t, http.StatusCreated, http.MethodPut, "/services/s/canary", "upstream", "canary", "percent", "25")
			api.form(t, http.StatusNoContent, http.MethodPut, "/upstreams/primary/targets/"+p2.Addr+"/unhealthy")

			fileOnly := map[string]bool{"primary": true, "canary": true, "r": true} // not changed through the API
			snapshot := func(t *testing.T) map[string]any {
				out := map[string]any{}
				for _, p := range []string{"/upstreams/api_up", "/services/api_svc", "/routes/api_route", "/services/s", "/services/s/canary"} {
					out[p] = api.get(t, http.StatusOK, p).m
				}
				for _, p := range []string{"/upstreams", "/services", "/routes", "/upstreams/api_up/targets", "/upstreams/api_up/overrides"} {
					items := api.all(t, p)
					for _, it := range items {
						// The file's own entities are stamped with the
						// process start; only their ids are stable.
						if fileOnly[fmt.Sprint(it["name"])] {
							delete(it, "created_at")
							delete(it, "updated_at")
						}
					}
					out[p] = items
				}
				health := map[string]string{}
				for _, h := range api.all(t, "/upstreams/primary/health") {
					d, _ := h["data"].(map[string]any)
					health[h["target"].(string)] = fmt.Sprintf("%v/%v", h["health"], d["mark"])
				}
				out["health"] = health
				return out
			}
			// behaviour checks what the proxy does with the changes.
			behaviour := func(t *testing.T) {
				p1h, p2h := p1.Hits(), p2.Hits()
				who := adSeq(t, c, g.url("/r/x"), 400, 20*time.Second)
				if n := adCount(who); n["canary"] != 100 || n["p1"] != 300 {
					t.Fatalf("/r: 400 requests split %v, want canary=100 (25%%) p1=300 and nothing on the unhealthy p2", n)
				}
				if p1.Hits()-p1h != 300 || p2.Hits() != p2h {
					t.Fatalf("p1 got %d, p2 got %d", p1.Hits()-p1h, p2.Hits()-p2h)
				}
				if _, _, body := get(t, c, g.url("/r/y")); !strings.HasSuffix(body, "GET /v2/y") {
					t.Fatalf("/r/y reached %q, want the patched service path /v2/y", body)
				}
				if n := adCount(adSeq(t, c, g.url("/api/z"), 400, 20*time.Second)); n["a"] != 300 || n["b"] != 100 {
					t.Fatalf("/api: 400 requests split %v, want a=300 (override) b=100", n)
				}
				if _, _, body := get(t, c, g.url("/api/z")); !strings.HasSuffix(body, "GET /v1/z") {
					t.Fatalf("/api/z reached %q, want /v1/z", body)
				}
			}
			before := snapshot(t)
			behaviour(t)

			g.signal(tc.sig)
			if code := g.wait(15 * time.Second); code != tc.wantCode {
				t.Fatalf("exit code %d after %s, want %d", code, tc.desc, tc.wantCode)
			}
			g = n.start()
			api = adAdmin(g)
			after := snapshot(t)
			if !reflect.DeepEqual(before, after) {
				bj, _ := json.MarshalIndent(before, "", " ")
				aj, _ := json.MarshalIndent(after, "", " ")
				t.Fatalf("GET differs after the restart:\nbefore %s\nafter  %s", bj, aj)
			}
			behaviour(t)
		})
	}
}

// TestAdminKillLoopLosesNothing: ten times, the gateway (with a state
// file) takes admin writes from two goroutines — new targets with
// increasing ports, and increasing weights of one target — and is
// SIGKILLed at a random moment; after each restart every acknowledged
// write is there, and nothing that was never sent.
func TestAdminKillLoopLosesNothing(t *testing.T) {
	const iterations = 10
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("OUTRIGGER_ITEST_KILL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = v
	}
	t.Logf("kill moments seeded with %d (OUTRIGGER_ITEST_KILL_SEED)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	const weighted = "127.0.0.1:1"
	stateFile := filepath.Join(t.TempDir(), "admin-state.json")
	n := adNewNode(t, fmt.Sprintf("  state_file: %s\n", stateFile), fmt.Sprintf(`
upstreams:
  - {name: u, targets: [{target: %s, weight: 1}]}
`, weighted))

	acked := map[string]bool{} // targets whose POST was acknowledged
	sent := map[string]bool{}  // targets whose POST was sent
	var ackedWeight, sentWeight int
	nextPort, nextWeight := 20000, 2
	var totalAcked, totalWeights int

	check := func(t *testing.T, api *adAPI, i int) {
		t.Helper()
		present := map[string]bool{}
		weight := -1
		for _, tg := range api.all(t, "/upstreams/u/targets?size=1000") {
			addr := tg["target"].(string)
			present[addr] = true
			if addr == weighted {
				weight = int(tg["weight"].(float64))
			}
		}
		for addr := range acked {
			if !present[addr] {
				t.Fatalf("after kill %d: acknowledged target %s is missing", i, addr)
			}
		}
		for addr := range present {
			if addr != weighted && !sent[addr] {
				t.Fatalf("after kill %d: target %s was never sent", i, addr)
			}
		}
		if weight < ackedWeight || (sentWeight > 0 && weight > sentWeight) || weight < 1 {
			t.Fatalf("after kill %d: weight %d, want between the last acknowledged %d and the last sent %d", i, weight, ackedWeight, sentWeight)
		}
	}

	for i := 0; i < iterations; i++ {
		g := n.start()
		api := adAdmin(g)
		if i > 0 {
			check(t, api, i)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var itAcked, itWeights int
		wg.Add(2)
		go func() { // new targets
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				addr := fmt.Sprintf("127.0.0.1:%d", nextPort)
				nextPort++
				sent[addr] = true
				mu.Unlock()
				r, err := api.try(http.MethodPost, "/upstreams/u/targets", adFormType, adForm("target", addr, "weight", "5"))
				if err != nil {
					return // the process is gone
				}
				mu.Lock()
				if r.status/100 == 2 {
					acked[addr] = true
					itAcked++
				}
				mu.Unlock()
			}
		}()
		go func() { // increasing weights
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				w := nextWeight
				nextWeight++
				sentWeight = w
				mu.Unlock()
				r, err := api.try(http.MethodPatch, "/upstreams/u/targets/"+weighted, adFormType, adForm("weight", strconv.Itoa(w)))
				if err != nil {
					return
				}
				mu.Lock()
				if r.status/100 == 2 {
					ackedWeight = max(ackedWeight, w)
					itWeights++
				}
				mu.Unlock()
			}
		}()
		delay := time.Duration(20+rng.IntN(1000)) * time.Millisecond
		time.Sleep(delay) // the random kill moment (seeded), not a wait for a condition
		g.signal(syscall.SIGKILL)
		code := g.wait(5 * time.Second)
		close(stop)
		wg.Wait()
		if code != -1 {
			t.Fatalf("kill %d: exit code %d, want killed", i, code)
		}
		t.Logf("kill %d after %s: %d targets and %d weights acknowledged", i, delay, itAcked, itWeights)
		totalAcked += itAcked
		totalWeights += itWeights
	}
	g := n.start()
	check(t, adAdmin(g), iterations)
	t.Logf("%d kills: %d acknowledged targets and %d acknowledged weights, all present after the restarts", iterations, totalAcked, totalWeights)
	if totalAcked == 0 || totalWeights == 0 {
		t.Fatalf("no write was acknowledged: the loop proved nothing")
	}
}

// TestAdminSecurity: a non-loopback admin listener needs a token; with
// one, requests need it (either header) and it never reaches the log.
func TestAdminSecurity(t *testing.T) {
	_, port, _ := strings.Cut(freeAddr(t), ":")
	wild := "0.0.0.0:" + port
	for _, tc := range []struct {
		desc             string
		fileListen, flag string // admin.listen in the file; --admin-listen ("" none)
	}{
		{desc: "admin.listen 0.0.0.0 in the file", fileListen: wild},
		{desc: "--admin-listen 0.0.0.0 over a loopback file", fileListen: "127.0.0.1:0", flag: wild},
	} {
		t.Run("no token: refuses to start: "+tc.desc, func(t *testing.T) {
			n := adNewNode(t, "", "")
			if err := os.WriteFile(n.cfgPath, []byte(adConfig(n.proxyAddr, tc.fileListen, "", "")), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"run", "--config", n.cfgPath}
			if tc.flag != "" {
				args = append(args, "--admin-listen", tc.flag)
			}
			cmd := exec.Command(binary, args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			// It must exit; an admin listener answering means it started.
			c := &http.Client{Timeout: time.Second}
			end := time.Now().Add(10 * time.Second)
		wait:
			for {
				select {
				case <-done:
					break wait
				default:
				}
				started := false
				if resp, err := c.Get("http://127.0.0.1:" + port + "/upstreams"); err == nil {
					resp.Body.Close()
					started = true
				}
				if started || time.Now().After(end) {
					_ = cmd.Process.Kill()
					<-done
					t.Fatalf("outrigger started with an unauthenticated admin API on %s (answering: %v):\n%s", wild, started, out.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if code := cmd.ProcessState.ExitCode(); code != 2 {
				t.Fatalf("exit code %d, want 2\n%s", code, out.String())
			}
			msg := out.String()
			if !strings.Contains(msg, "needs admin.token") {
				t.Fatalf("message %q should say the admin API on a non-loopback address needs admin.token", msg)
			}
			if tc.flag == "" && !strings.Contains(msg, n.cfgPath+":5:") {
				t.Fatalf("message %q should name the file and line of admin.listen", msg)
			}
			t.Logf("refused: %s", strings.TrimSpace(msg))
		})
	}

	t.Run("with a token", func(t *testing.T) {
		token := fmt.Sprintf("tok-%016x", rand.Uint64())
		n := adNewNode(t, "", "")
		n.adminAddr = wild
		if err := os.WriteFile(n.cfgPath, []byte(adConfig(n.proxyAddr, wild, "  token: "+token+"\n", "")), 0o600); err != nil {
			t.Fatal(err)
		}
		g := n.start()
		api := &adAPI{base: "http://127.0.0.1:" + port, c: &http.Client{Timeout: adTimeout}}
		for _, tc := range []struct {
			desc, method, path string
			hdr                []string
			want               int
		}{
			{desc: "GET without token", method: http.MethodGet, path: "/upstreams", want: http.StatusUnauthorized},
			{desc: "POST without token", method: http.MethodPost, path: "/upstreams", want: http.StatusUnauthorized},
			{desc: "status without token", method: http.MethodGet, path: "/status", want: http.StatusUnauthorized},
			{desc: "wrong bearer", method: http.MethodGet, path: "/upstreams", hdr: []string{"Authorization", "Bearer " + token + "x"}, want: http.StatusUnauthorized},
			{desc: "wrong Kong-Admin-Token", method: http.MethodPost, path: "/upstreams", hdr: []string{"Kong-Admin-Token", "nope"}, want: http.StatusUnauthorized},
			{desc: "token as Basic", method: http.MethodGet, path: "/upstreams", hdr: []string{"Authorization", "Basic " + token}, want: http.StatusUnauthorized},
			{desc: "health is public", method: http.MethodGet, path: "/health", want: http.StatusOK},
			{desc: "ready is public", method: http.MethodGet, path: "/ready", want: http.StatusOK},
			{desc: "Authorization Bearer", method: http.MethodPost, path: "/upstreams", hdr: []string{"Authorization", "Bearer " + token}, want: http.StatusCreated},
			{desc: "Kong-Admin-Token", method: http.MethodPost, path: "/upstreams", hdr: []string{"Kong-Admin-Token", token}, want: http.StatusCreated},
			{desc: "GET with Bearer", method: http.MethodGet, path: "/upstreams", hdr: []string{"Authorization", "Bearer " + token}, want: http.StatusOK},
		} {
			t.Run(tc.desc, func(t *testing.T) {
				body := ""
				if tc.method == http.MethodPost {
					body = adForm("name", "up_"+strings.NewReplacer(" ", "_", "-", "_").Replace(tc.desc))
				}
				r, err := api.try(tc.method, tc.path, adFormType, body, tc.hdr...)
				if err != nil {
					t.Fatal(err)
				}
				if r.status != tc.want {
					t.Fatalf("status %d, want %d: %s", r.status, tc.want, r.raw)
				}
				if tc.want == http.StatusUnauthorized && r.str("message") != "Unauthorized" {
					t.Fatalf("401 body %s", r.raw)
				}
			})
		}
		api.token = token
		var names []string
		for _, u := range api.all(t, "/upstreams") {
			names = append(names, u["name"].(string))
		}
		sort.Strings(names)
		if want := []string{"up_Authorization_Bearer", "up_Kong_Admin_Token"}; !reflect.DeepEqual(names, want) {
			t.Fatalf("upstreams %v, want only the two authorized creations %v", names, want)
		}
		// Flush the log: a stop writes the last lines.
		g.signal(syscall.SIGTERM)
		g.wait(15 * time.Second)
		logs := g.rawLog()
		if !strings.Contains(logs, "admin request") {
			t.Fatalf("the log has no admin request lines; is it captured?\n%s", logs)
		}
		if strings.Contains(logs, token) {
			t.Fatalf("the token appears in the log:\n%s", logs)
		}
	})

	t.Run("SIGHUP with a new token: the new one works, the old one no longer", func(t *testing.T) {
		n := adNewNode(t, "  token: old-token\n", "")
		g := n.start()
		api := &adAPI{base: "http://" + g.AdminAddr, token: "old-token", c: &http.Client{Timeout: adTimeout}}
		gen := api.get(t, http.StatusOK, "/status").num("config_generation")
		if err := os.WriteFile(n.cfgPath, []byte(adConfig(n.proxyAddr, n.adminAddr, "  token: new-token\n", "")), 0o600); err != nil {
			t.Fatal(err)
		}
		g.signal(syscall.SIGHUP)
		waitFor(t, 10*time.Second, "reload", func() bool { return len(g.logsWhere("configuration reloaded")) > 0 })
		api.token = "new-token"
		if r := api.get(t, 0, "/status"); r.status != http.StatusOK || r.num("config_generation") <= gen {
			t.Fatalf("new token after the reload: %d %s", r.status, r.raw)
		}
		api.token = "old-token"
		if r := api.get(t, 0, "/status"); r.status != http.StatusUnauthorized {
			t.Fatalf("old token after the reload: %d, want 401", r.status)
		}
	})
}

// TestAdminBadInput: representative bad requests through the binary are
// 400 JSON {"message", "fields"}, and nothing changes: GET answers, the
// configuration generation and the state file stay the same.
func TestAdminBadInput(t *testing.T) {
	p := startBackend(t, "primary", nil)
	cb := startBackend(t, "canary", nil)
	stateFile := filepath.Join(t.TempDir(), "admin-state.json")
	n := adNewNode(t, fmt.Sprintf("  state_file: %s\n", stateFile), adCanaryConfig(p.Addr, cb.Addr))
	g := n.start()
	api := adAdmin(g)
	api.form(t, http.StatusCreated, http.MethodPut, "/services/s/canary", "upstream", "canary", "percent", "5")
	api.form(t, http.StatusCreated, http.MethodPost, "/upstreams/primary/targets", "target", "127.0.0.1:9", "weight", "7")

	snapshot := func(t *testing.T) string {
		var b strings.Builder
		for _, path := range []string{"/upstreams", "/upstreams/primary", "/upstreams/primary/targets", "/services", "/services/s", "/services/s/canary", "/routes"} {
			fmt.Fprintf(&b, "%s %s\n", path, api.get(t, http.StatusOK, path).raw)
		}
		fmt.Fprintf(&b, "generation %v\n", g.generation())
		st, err := os.ReadFile(stateFile)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "state file %s\n", st)
		return b.String()
	}
	before := snapshot(t)

	for _, tc := range []struct {
		desc, method, path, ctype, body string
		wantMsg                         string            // prefix of message
		wantFields                      map[string]string // field → reason prefix; nil: none
	}{
		{desc: "weight -1 (form)", method: http.MethodPost, path: "/upstreams/primary/targets", ctype: adFormType, body: adForm("target", "127.0.0.1:10", "weight", "-1"),
			wantMsg: "schema violation", wantFields: map[string]string{"weight": "value should be between 0 and 65535"}},
		{desc: "weight 70000 (JSON)", method: http.MethodPost, path: "/upstreams/primary/targets", ctype: "application/json", body: `{"target": "127.0.0.1:10", "weight": 70000}`,
			wantMsg: "schema violation", wantFields: map[string]string{"weight": "value should be between 0 and 65535"}},
		{desc: "weight 70000 on PATCH (form)", method: http.MethodPatch, path: "/upstreams/primary/targets/127.0.0.1:9", ctype: adFormType, body: adForm("weight", "70000"),
			wantMsg: "schema violation", wantFields: map[string]string{"weight": "value should be between 0 and 65535"}},
		{desc: "unknown algorithm (form)", method: http.MethodPost, path: "/upstreams", ctype: adFormType, body: adForm("name", "u2", "algorithm", "fastest"),
			wantMsg: "schema violation", wantFields: map[string]string{"algorithm": "expected one of: round-robin"}},
		{desc: "unknown algorithm on PATCH (JSON)", method: http.MethodPatch, path: "/upstreams/primary", ctype: "application/json", body: `{"algorithm": "fastest"}`,
			wantMsg: "schema violation", wantFields: map[string]string{"algorithm": "expected one of: round-robin"}},
		{desc: "percent 150 (form PATCH)", method: http.MethodPatch, path: "/services/s/canary", ctype: adFormType, body: adForm("percent", "150"),
			wantMsg: "schema violation", wantFields: map[string]string{"percent": "value should be between 0 and 100"}},
		{desc: "percent 150 (JSON PUT)", method: http.MethodPut, path: "/services/s/canary", ctype: "application/json", body: `{"upstream": "canary", "percent": 150}`,
			wantMsg: "schema violation", wantFields: map[string]string{"percent": "value should be between 0 and 100"}},
		{desc: "malformed JSON (POST upstream)", method: http.MethodPost, path: "/upstreams", ctype: "application/json", body: `{"name": "u2",`,
			wantMsg: "Cannot parse JSON body"},
		{desc: "malformed JSON (PATCH canary)", method: http.MethodPatch, path: "/services/s/canary", ctype: "application/json", body: `{"percent": 50`,
			wantMsg: "Cannot parse JSON body"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := api.do(t, http.StatusBadRequest, tc.method, tc.path, tc.ctype, tc.body)
			if r.m == nil {
				t.Fatalf("the 400 is not a JSON object: %s", r.raw)
			}
			if msg := r.str("message"); !strings.HasPrefix(msg, tc.wantMsg) {
				t.Fatalf("message %q, want %q...", msg, tc.wantMsg)
			}
			got := r.fields()
			if len(got) != len(tc.wantFields) {
				t.Fatalf("fields %v, want %v", got, tc.wantFields)
			}
			for k, want := range tc.wantFields {
				if reason, _ := got[k].(string); !strings.HasPrefix(reason, want) {
					t.Fatalf("fields[%q] = %q, want %q...", k, reason, want)
				}
			}
			if after := snapshot(t); after != before {
				t.Fatalf("something changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}
