// Package plugins runs Kong's bundled plugins that Outrigger implements
// (rate-limiting, key-auth, cors, correlation-id, request-transformer,
// response-transformer) on the proxy path.
//
// Contract:
//   - Build compiles the configuration's plugins, consumers and key-auth
//     credentials once per configuration into an immutable Set: one
//     Chain per route holding the plugins that apply to it, resolved with
//     Kong's precedence (consumer+route+service > consumer+route >
//     consumer+service > route+service > consumer > route > service >
//     global; one plugin of a name per scope), in Kong's priority order.
//     A route no plugin applies to has a nil Chain: it costs the proxy
//     one nil check.
//   - A Chain is safe for concurrent use. Running it (Access) reads the
//     request through Request and records what the proxy must do in the
//     request's Exchange: header and query edits upstream, header edits
//     on the response, or an answer of its own (401, 429, a CORS
//     preflight). The proxy applies them on both of its request paths
//     (its HTTP/1.1 engine and net/http).
//   - Plugins do not allocate on the common path: an Exchange is reused
//     by its owner and its slices keep their capacity; generated values
//     (counts, ids) are written into the Exchange's scratch buffer, so
//     the strings an Exchange holds are valid until its Reset.
//   - Rate-limiting counters (local policy) are fixed windows counted
//     with atomics in a lock-free table per plugin; a rebuilt Set keeps
//     the counters of a plugin whose id and periods did not change.
//   - Nothing here is package-level mutable state.
package plugins

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"

	"github.com/outrigger-gw/outrigger/config"
)

// Request is what plugins read of a request, whichever server parsed
// it. Strings returned may alias the request's buffers.
type Request interface {
	// Header is the first value of the field name (ASCII
	// case-insensitive).
	Header(name string) (string, bool)
	// QueryArg is the first value of the query argument name, decoded.
	QueryArg(name string) (string, bool)
	// Repeated reports whether the header (query false) or the query
	// argument (query true) name occurs more than once.
	Repeated(name string, query bool) bool
	Method() string
	// Path is the request path, percent-decoded, without the query.
	Path() string
	// ClientIP is the client's address.
	ClientIP() string
	// Conn is the local address of the connection ("ip", "port"), its
	// serial number and the number of requests it carried so far (0 when
	// unknown), for correlation-id's tracker.
	Conn() (ip, port string, serial uint64, requests int)
}

// Protocol bits of a request, for a plugin's protocols.
const (
	ProtoHTTP uint8 = 1 << iota
	ProtoHTTPS
	ProtoGRPC
	ProtoGRPCS
)

// ProtocolOf is the protocol bit of a request.
func ProtocolOf(tls, grpc bool) uint8 {
	switch {
	case grpc && tls:
		return ProtoGRPCS
	case grpc:
		return ProtoGRPC
	case tls:
		return ProtoHTTPS
	}
	return ProtoHTTP
}

func protocolMask(ps []string) uint8 {
	var m uint8
	for _, p := range ps {
		switch p {
		case "http":
			m |= ProtoHTTP
		case "https":
			m |= ProtoHTTPS
		case "grpc":
			m |= ProtoGRPC
		case "grpcs":
			m |= ProtoGRPCS
		}
	}
	return m
}

// plugin is one compiled plugin instance.
type plugin interface {
	// access runs the plugin on a request; false means it answered the
	// request (x.Status is set).
	access(x *Exchange, r Request) bool
}

// responder is a plugin with Kong's response phase (header_filter) apart
// from its access phase. On a request no route matched Kong's access phase
// never runs and the response phases fall back to the global plugins, so
// a global responder also edits the "no Route matched" answer.
type responder interface {
	respond(x *Exchange, r Request)
}

// instance is a compiled plugin entity.
type instance struct {
	id     string
	name   string
	protos uint8
	run    plugin
}

// step is one plugin name of a chain: the instance that applies without
// a consumer (nil when none) and, when consumer-scoped ones exist, the
// one that applies for each consumer id.
type step struct {
	def        *instance
	byConsumer map[string]*instance
}

// Chain is the plugins of one route, in priority order. Immutable.
type Chain struct {
	steps []step
}

// Access runs the chain on a request of protocol proto (ProtocolOf) to
// the service named service; false means a plugin answered the request:
// x.Status, x.Body and x.Down say how.
func (c *Chain) Access(x *Exchange, r Request, proto uint8, service string) bool {
	x.service = service
	for i := range c.steps {
		st := &c.steps[i]
		in := st.def
		if x.Consumer != nil && st.byConsumer != nil {
			if ci, ok := st.byConsumer[x.Consumer.ID]; ok {
				in = ci
			}
		}
		if in == nil || in.protos&proto == 0 {
			continue
		}
		if !in.run.access(x, r) {
			return false
		}
	}
	return true
}

// Respond runs the response phase of an Unmatched chain on a request no
// route matched: x.Down gets the global responders' edits.
func (c *Chain) Respond(x *Exchange, r Request, proto uint8) {
	for i := range c.steps {
		if in := c.steps[i].def; in.protos&proto != 0 {
			in.run.(responder).respond(x, r)
		}
	}
}

// Consumer is a consumer as plugins see it.
type Consumer struct {
	ID, Username, CustomID string
}

// credential is a key-auth credential.
type credential struct {
	id       string
	consumer *Consumer
}

// priorities are Kong's plugin priorities (higher runs first).
var priorities = map[string]int{
	"correlation-id":       100001,
	"cors":                 2000,
	"key-auth":             1250,
	"rate-limiting":        910,
	"request-transformer":  801,
	"response-transformer": 800,
}

// Route is a route as Build needs it: its name and its service's.
type Route struct {
	Name, Service string
}

// Input is what a Set is built from: the effective configuration's
// entities (ids set).
type Input struct {
	Plugins   []config.Plugin
	Consumers []config.Consumer
	KeyAuths  []config.KeyAuth
	Routes    []Route
}

// Set is the compiled plugins of a configuration. Immutable.
type Set struct {
	chains map[string]*Chain
	// instances by plugin id, for the next Build to keep counters.
	instances map[string]*instance
	// unmatched is the global responders, for requests no route matched.
	unmatched *Chain
}

// Unmatched is the chain to Respond with on a request no route matched,
// nil when no global plugin has a response phase.
func (s *Set) Unmatched() *Chain {
	if s == nil {
		return nil
	}
	return s.unmatched
}

// Chain is the chain of route, nil when no plugin applies to it.
func (s *Set) Chain(route string) *Chain {
	if s == nil {
		return nil
	}
	return s.chains[route]
}

// Build compiles in; prev (nil at first) is the Set in force, whose
// rate-limiting counters carry over. The input is expected to be checked
// (config and the admin API did); an error reports a plugin that cannot
// be compiled all the same.
func Build(in Input, prev *Set) (*Set, error) {
	s := &Set{chains: map[string]*Chain{}, instances: map[string]*instance{}}
	consumers := make(map[string]*Consumer, len(in.Consumers))
	for i := range in.Consumers {
		c := &in.Consumers[i]
		consumers[c.Key()] = &Consumer{ID: c.ID, Username: c.Username, CustomID: c.CustomID}
	}
	creds := make(map[string]*credential, len(in.KeyAuths))
	for _, k := range in.KeyAuths {
		c := consumers[k.Consumer]
		if c == nil {
			return nil, fmt.Errorf("key-auth credential %s: unknown consumer %q", k.ID, k.Consumer)
		}
		creds[k.Key] = &credential{id: k.ID, consumer: c}
	}
	env := &env{consumers: consumers, creds: creds}
	type scoped struct {
		p  *config.Plugin
		in *instance
	}
	var all []scoped
	for i := range in.Plugins {
		p := &in.Plugins[i]
		if !p.Enabled {
			continue
		}
		var old *instance
		if prev != nil {
			old = prev.instances[p.ID]
		}
		run, err := compile(p, env, old)
		if err != nil {
			return nil, fmt.Errorf("plugin %s (%s): %w", p.Name, p.ID, err)
		}
		inst := &instance{id: p.ID, name: p.Name, protos: protocolMask(p.Protocols), run: run}
		s.instances[p.ID] = inst
		all = append(all, scoped{p, inst})
		if p.Route == "" && p.Service == "" && p.Consumer == "" && responds(run) {
			if s.unmatched == nil {
				s.unmatched = &Chain{}
			}
			s.unmatched.steps = append(s.unmatched.steps, step{def: inst})
		}
	}
	if s.unmatched != nil {
		slices.SortFunc(s.unmatched.steps, func(a, b step) int {
			return cmp.Compare(priorities[b.def.name], priorities[a.def.name])
		})
	}
	if len(all) == 0 {
		return s, nil
	}
	for _, rt := range in.Routes {
		// Per plugin name: the candidates by Kong's precedence.
		type cands struct {
			rs, r, sv, g *instance
			crs, cr, cs  map[string]*instance
			c            map[string]*instance
		}
		by := map[string]*cands{}
		put := func(m *map[string]*instance, id string, in *instance) {
			if *m == nil {
				*m = map[string]*instance{}
			}
			(*m)[id] = in
		}
		for _, a := range all {
			p := a.p
			if p.Route != "" && p.Route != rt.Name || p.Service != "" && p.Service != rt.Service {
				continue
			}
			cd := by[p.Name]
			if cd == nil {
				cd = &cands{}
				by[p.Name] = cd
			}
			if p.Consumer != "" {
				c := consumers[p.Consumer]
				if c == nil {
					return nil, fmt.Errorf("plugin %s (%s): unknown consumer %q", p.Name, p.ID, p.Consumer)
				}
				switch {
				case p.Route != "" && p.Service != "":
					put(&cd.crs, c.ID, a.in)
				case p.Route != "":
					put(&cd.cr, c.ID, a.in)
				case p.Service != "":
					put(&cd.cs, c.ID, a.in)
				default:
					put(&cd.c, c.ID, a.in)
				}
				continue
			}
			switch {
			case p.Route != "" && p.Service != "":
				cd.rs = a.in
			case p.Route != "":
				cd.r = a.in
			case p.Service != "":
				cd.sv = a.in
			default:
				cd.g = a.in
			}
		}
		if len(by) == 0 {
			continue
		}
		ch := &Chain{}
		for name, cd := range by {
			st := step{def: cmp.Or(cd.rs, cd.r, cd.sv, cd.g)}
			ids := map[string]bool{}
			for _, m := range []map[string]*instance{cd.crs, cd.cr, cd.cs, cd.c} {
				for id := range m {
					ids[id] = true
				}
			}
			for id := range ids {
				// consumer+route+service > consumer+route > consumer+service
				// > route+service > consumer > route > service > global.
				best := cmp.Or(cd.crs[id], cd.cr[id], cd.cs[id], cd.rs, cd.c[id], cd.r, cd.sv, cd.g)
				if st.byConsumer == nil {
					st.byConsumer = map[string]*instance{}
				}
				st.byConsumer[id] = best
			}
			_ = name
			ch.steps = append(ch.steps, st)
		}
		slices.SortFunc(ch.steps, func(a, b step) int {
			return cmp.Compare(priorities[stepName(b)], priorities[stepName(a)])
		})
		s.chains[rt.Name] = ch
	}
	return s, nil
}

// responds reports whether run has a response phase that edits
// something.
func responds(run plugin) bool {
	switch r := run.(type) {
	case *transformer:
		return len(r.down) > 0
	case responder:
		return true
	}
	return false
}

func stepName(s step) string {
	if s.def != nil {
		return s.def.name
	}
	for _, in := range s.byConsumer {
		return in.name
	}
	return ""
}

// env is what compiling a plugin may refer to.
type env struct {
	consumers map[string]*Consumer // by key (username or id)
	creds     map[string]*credential
}

func compile(p *config.Plugin, e *env, old *instance) (plugin, error) {
	c := p.Config
	switch p.Name {
	case "rate-limiting":
		var prev *rateLimit
		if old != nil {
			prev, _ = old.run.(*rateLimit)
		}
		return newRateLimit(c, prev)
	case "key-auth":
		return newKeyAuth(c, e)
	case "cors":
		return newCORS(c)
	case "correlation-id":
		return newCorrelationID(c), nil
	case "request-transformer":
		return newRequestTransformer(c), nil
	case "response-transformer":
		return newResponseTransformer(c), nil
	}
	return nil, fmt.Errorf("unknown plugin")
}

// Config accessors over a checked config (JSON-native data).

func str(c map[string]any, k string) string {
	s, _ := c[k].(string)
	return s
}

func boolean(c map[string]any, k string) bool {
	b, _ := c[k].(bool)
	return b
}

func number(c map[string]any, k string) (float64, bool) {
	f, ok := c[k].(float64)
	return f, ok
}

func strs(c map[string]any, k string) []string {
	l, _ := c[k].([]any)
	out := make([]string, 0, len(l))
	for _, v := range l {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func record(c map[string]any, k string) map[string]any {
	m, _ := c[k].(map[string]any)
	return m
}

// canonical is a header name in net/http's canonical form.
func canonical(name string) string { return http.CanonicalHeaderKey(name) }
