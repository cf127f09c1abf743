package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/health"
	"github.com/outrigger-gw/outrigger/state"
	"github.com/outrigger-gw/outrigger/upstream"
)

// fake is an in-memory Controller: a file, a Doc, and running upstreams
// built with the real upstream and health packages. Mutate validates the
// merge like the gateway does (references must resolve) and then applies
// static targets and marks to the running upstreams.
type fake struct {
	mu       sync.Mutex
	file     *config.File
	doc      *state.Doc
	ups      map[string]*upstream.Upstream
	checkers map[string]*health.Checker
	found    map[string]map[string][]upstream.Target // upstream → source → discovered targets
	rollout  map[string]RolloutStatus
	mutates  int          // successful Mutate calls
	rev      uint64       // increases with every change
	base     *config.File // file, or the layer's declarative document's entities
	eff      *config.File // the merge of the layer in force (Effective)
	// fileReads counts File calls (each view of the configuration).
	fileReads int
	// copies counts the copies of the admin layer handed out (Layer,
	// View, Doc).
	copies int
}

var _ Controller = (*fake)(nil)

func newFake(t testing.TB, yaml string) *fake {
	t.Helper()
	f, err := config.Parse("test.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatalf("parse fixture: %v", err)
	}
	fk := &fake{file: f, doc: &state.Doc{}, ups: map[string]*upstream.Upstream{}, checkers: map[string]*health.Checker{},
		found: map[string]map[string][]upstream.Target{}, rollout: map[string]RolloutStatus{}}
	if err := fk.applyLocked(fk.doc); err != nil {
		t.Fatalf("apply fixture: %v", err)
	}
	return fk
}

func (f *fake) Mutate(ctx context.Context, fn func(*state.Doc) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	next := f.doc.Clone()
	if err := fn(next); err != nil {
		return err
	}
	if err := f.applyLocked(next); err != nil {
		return err
	}
	f.doc = next
	f.mutates++
	f.rev++
	return nil
}

func (f *fake) Layer() (*state.Doc, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.copies++
	return f.doc.Clone(), f.rev, nil
}

func (f *fake) CompareAndSet(ctx context.Context, rev uint64, doc *state.Doc, _ *Merged) (*config.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if rev != f.rev {
		return nil, state.ErrConflict
	}
	if err := f.applyLocked(doc); err != nil {
		return nil, err
	}
	f.doc = doc.Clone()
	f.mutates++
	f.rev++
	return f.eff, nil
}

func (f *fake) View() (*state.Doc, *config.File) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.copies++
	return f.doc.Clone(), f.eff
}

func (f *fake) Effective(rev uint64) (*config.File, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.eff, rev == f.rev && f.eff != nil
}

func (f *fake) ResetState(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.applyLocked(&state.Doc{}); err != nil {
		return err
	}
	f.doc = &state.Doc{}
	f.mutates++
	f.rev++
	return nil
}

// applyLocked checks the merge and brings the running upstreams in line.
func (f *fake) applyLocked(d *state.Doc) error {
	base, err := state.Base(f.file, d)
	if err != nil {
		return &Error{Status: 400, Message: err.Error()}
	}
	eff := state.Merge(base, d)
	ups := map[string]bool{}
	for _, u := range eff.Upstreams {
		ups[u.Name] = true
	}
	svcs := map[string]bool{}
	for _, s := range eff.Services {
		svcs[s.Name] = true
	}
	for _, r := range eff.Routes {
		if r.Service != "" && !svcs[r.Service] {
			return &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("route %q: service %q not found", r.Name, r.Service)}
		}
	}
	for name, c := range d.Canaries {
		if !svcs[name] || !ups[c.Upstream] {
			return &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("canary of %q: bad reference", name)}
		}
	}
	for _, o := range d.Overrides {
		if !ups[o.Upstream] {
			return &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("override %s: upstream %q does not exist", o.ID, o.Upstream)}
		}
	}
	for name := range f.ups {
		if !ups[name] {
			f.ups[name].Close()
			delete(f.ups, name)
			delete(f.checkers, name)
		}
	}
	for _, cu := range eff.Upstreams {
		u := f.runtimeLocked(cu.Name)
		ts := make([]upstream.Target, 0, len(cu.Targets))
		for _, t := range cu.Targets {
			ts = append(ts, upstream.Target{Addr: t.Target, Weight: t.Weight, Tags: t.Tags})
		}
		u.SetTargets(upstream.StaticSource, ts)
		for src, ts := range f.found[cu.Name] {
			u.SetTargets(src, ts)
		}
		chk := f.checkers[cu.Name]
		for _, s := range chk.States() {
			m, _ := health.ParseMark(d.Marks[cu.Name][s.Addr])
			chk.Mark(s.Addr, m)
		}
	}
	f.base, f.eff = base, eff
	return nil
}

func (f *fake) runtimeLocked(name string) *upstream.Upstream {
	if u := f.ups[name]; u != nil {
		return u
	}
	var u *upstream.Upstream
	chk := health.New(health.Config{}, health.Options{OnChange: func() { u.Rebuild() }})
	u = upstream.New(upstream.Options{Name: name, Balancer: balance.NewRoundRobin(), Health: chk})
	f.ups[name], f.checkers[name] = u, chk
	return u
}

// discover simulates a discovery source listing targets of an upstream.
func (f *fake) discover(name, source string, ts ...upstream.Target) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.found[name] == nil {
		f.found[name] = map[string][]upstream.Target{}
	}
	f.found[name][source] = ts
	if err := f.applyLocked(f.doc); err != nil {
		panic(err)
	}
}

func (f *fake) Doc() *state.Doc {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.copies++
	return f.doc.Clone()
}

func (f *fake) File() *config.File {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fileReads++
	return f.base
}

// generation stands for the gateway's configuration generation: it
// advances with every change.
func (f *fake) generation() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rev
}

func (f *fake) Upstream(name string) *upstream.Upstream {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ups[name]
}

func (f *fake) RolloutStatus(service string) (RolloutStatus, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.rollout[service]
	return s, ok
}

func (f *fake) docJSON() string {
	b, _ := json.Marshal(f.Doc())
	return string(b)
}

// env is a handler over a fake.
type env struct {
	t   testing.TB
	fk  *fake
	h   http.Handler
	now time.Time
}

// Fixtures.

// fileTutorial is the state before Kong's load-balancing tutorial:
// example_service exists (in the file) and points at a real host.
const fileTutorial = `
services:
  - name: example_service
    url: http://httpbun.com
    routes:
      - name: example_route
        paths: [/mock]
`

// fileRich has a file upstream with targets and health checks, a second
// upstream for canaries, a service, a route.
const fileRich = `
upstreams:
  - name: example_upstream
    healthchecks:
      active:
        http_path: /health
        healthy: {interval: 5, successes: 2}
    targets:
      - target: 10.0.0.1:8080
        weight: 100
      - target: 10.0.0.2:8080
        weight: 100
  - name: canary_upstream
    targets:
      - target: 10.0.1.1:8080
  - name: blue_upstream
    targets:
      - target: 10.0.2.1:8080
services:
  - name: example_service
    host: example_upstream
    path: /
    routes:
      - name: example_route
        paths: [/mock]
`

func newEnv(t testing.TB, yaml string, opts ...func(*Options)) *env {
	t.Helper()
	e := &env{t: t, fk: newFake(t, yaml), now: time.Unix(1700000000, 0)}
	o := Options{
		Status:     func() Status { return Status{Version: "test", ConfigGeneration: e.fk.generation()} },
		Metrics:    prometheus.NewRegistry(),
		Controller: e.fk,
		Now:        func() time.Time { return e.now },
	}
	for _, fn := range opts {
		fn(&o)
	}
	e.h = New(o)
	return e
}

// resp is an answer.
type resp struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r *resp) str(key string) string {
	v, _ := r.body[key].(string)
	return v
}

// fields are the answer's field errors, nested ones under their dotted
// name (the answer nests them, as Kong).
func (r *resp) fields() map[string]any {
	f, _ := r.body["fields"].(map[string]any)
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

func (r *resp) data() []map[string]any {
	list, _ := r.body["data"].([]any)
	out := make([]map[string]any, len(list))
	for i, x := range list {
		out[i], _ = x.(map[string]any)
	}
	return out
}

// form builds a form body from key, value pairs (keys may repeat).
type form []string

// raw is a body sent as is.
type raw struct {
	ctype string
	data  string
}

func (e *env) do(method, path string, body any, headers ...string) *resp {
	e.t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case form:
		v := url.Values{}
		for i := 0; i+1 < len(b); i += 2 {
			v.Add(b[i], b[i+1])
		}
		rd, ctype = strings.NewReader(v.Encode()), "application/x-www-form-urlencoded"
	case raw:
		rd, ctype = strings.NewReader(b.data), b.ctype
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd, ctype = bytes.NewReader(data), "application/json"
	}
	req := httptest.NewRequest(method, path, rd)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	out := &resp{status: rec.Code, header: rec.Header(), raw: rec.Body.Bytes()}
	if len(out.raw) > 0 && strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(out.raw, &out.body); err != nil {
			e.t.Fatalf("%s %s: answer is not a JSON object: %v\n%s", method, path, err, out.raw)
		}
	}
	return out
}

// must runs a request and fails unless the status is want.
func (e *env) must(want int, method, path string, body any, headers ...string) *resp {
	e.t.Helper()
	r := e.do(method, path, body, headers...)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d\n%s", method, path, r.status, want, r.raw)
	}
	return r
}

// eq fails unless got equals want (numbers compared as float64).
func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	norm := func(v any) any {
		switch x := v.(type) {
		case int:
			return float64(x)
		case int64:
			return float64(x)
		}
		return v
	}
	if !reflect.DeepEqual(norm(got), norm(want)) {
		t.Fatalf("%s = %#v, want %#v", what, got, want)
	}
}

// upstreamTarget is a discovered target with a version label.
func upstreamTarget(addr string, weight int) upstream.Target {
	return upstream.Target{Addr: addr, Weight: weight, Tags: []string{"v2"}, Meta: map[string]string{"version": "v2"}}
}
