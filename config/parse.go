package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// Parse decodes and validates the configuration file data. name is the
// file's name in error messages and File.Path. lookupEnv resolves ${VAR}
// references (os.LookupEnv in production); nil means no variable is set.
//
// When the file is invalid, Parse returns a nil *File and an *ErrorList
// holding every problem found.
func Parse(name string, data []byte, lookupEnv func(string) (string, bool)) (*File, error) {
	return (&decoder{file: name, lookup: lookupEnv}).parse(data)
}

// parse decodes data over the defaults with d's rules (Parse,
// ParseDeclarative).
func (d *decoder) parse(data []byte) (*File, error) {
	f := Default()
	f.Path = d.file
	if root := d.parseYAML(data); root != nil && d.checkSize(root) {
		d.decodeFile(root, f)
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// Load reads the file at path and parses it with Parse. An error reading
// the file is returned as is (not as an *ErrorList).
func Load(path string, lookupEnv func(string) (string, bool)) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, lookupEnv)
}

// named is a decoded entity's name and the node it was written at; node is
// nil when the name is missing or invalid.
type named struct {
	name string
	node *yaml.Node
}

// routeEntry is a decoded route and what the cross-checks need.
type routeEntry struct {
	route     Route
	name      named
	service   *yaml.Node // the service: value of a top-level route
	serviceID string     // its {id: ...}
	nested    bool
}

func (d *decoder) decodeFile(n *yaml.Node, f *File) {
	var (
		upstreamNames, serviceNames []named
		routes                      []routeEntry
		targets                     []topTarget
		proxyListen, adminListen    *yaml.Node
		fleetGroup, snis            *yaml.Node
		sniOwner                    = map[string]*yaml.Node{}
	)
	d.mapping(n, "configuration", "the top level", d.onlyEntities(append([]field{
		{"proxy", func(v *yaml.Node) { proxyListen = d.proxy(v, &f.Proxy) }},
		{"admin", func(v *yaml.Node) { adminListen = d.admin(v, &f.Admin) }},
		{"log", func(v *yaml.Node) { d.log(v, &f.Log) }},
		{"upstreams", func(v *yaml.Node) {
			d.list(v, "upstreams", func(item *yaml.Node) {
				u, name := d.upstream(item)
				f.Upstreams = append(f.Upstreams, u)
				upstreamNames = append(upstreamNames, name)
			})
		}},
		{"services", func(v *yaml.Node) {
			d.list(v, "services", func(item *yaml.Node) {
				s, name, nested := d.service(item)
				f.Services = append(f.Services, s)
				serviceNames = append(serviceNames, name)
				routes = append(routes, nested...)
			})
		}},
		{"routes", func(v *yaml.Node) {
			d.list(v, "routes", func(item *yaml.Node) {
				routes = append(routes, d.route(item, nil))
			})
		}},
		{"targets", func(v *yaml.Node) {
			d.list(v, "targets", func(item *yaml.Node) {
				if tt, ok := d.topLevelTarget(item); ok {
					targets = append(targets, tt)
				}
			})
		}},
		{"register", func(v *yaml.Node) { f.Register = d.register(v) }},
		{"tracing", func(v *yaml.Node) { f.Tracing = d.tracing(v) }},
		{"certificates", func(v *yaml.Node) { d.certificates(v, f, sniOwner) }},
		{"snis", func(v *yaml.Node) { snis = v }},
		{"plugins", d.decodePlugins},
		{"consumers", func(v *yaml.Node) { d.decodeConsumers(v, f) }},
		{"fleet", func(v *yaml.Node) { fleetGroup = d.fleet(v, &f.Fleet) }},
	}, append(d.declarative(), d.layerFields(f)...)...)))
	d.attachTargets(f, targets)
	if len(f.Proxy.Listeners) == 0 {
		d.finishProxy(&f.Proxy, nil)
	}
	if snis != nil {
		d.topLevelSNIs(snis, f, sniOwner)
	}

	if proxyListen != nil && adminListen != nil && !strings.HasSuffix(f.Admin.Listen, ":0") {
		for _, l := range f.Proxy.Listeners {
			if l.Address == f.Admin.Listen {
				d.errorf(adminListen, "listen: the admin API cannot listen on the proxy's address %s", l.Address)
				break
			}
		}
	}

	d.checkFleet(f, fleetGroup)
	d.unique("upstream", upstreamNames)
	d.unique("service", serviceNames)
	d.checkIDs(f)

	// Routes share one namespace and are kept in file order.
	sort.SliceStable(routes, func(i, j int) bool {
		a, b := routes[i].route.Pos, routes[j].route.Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	routeNames := make([]named, len(routes))
	services := make(map[string]bool, len(serviceNames))
	for _, s := range serviceNames {
		services[s.name] = s.node != nil
	}
	for i, r := range routes {
		routeNames[i] = r.name
		if r.serviceID != "" {
			d.resolveServiceID(f, &r)
		} else if r.service != nil && r.route.Service != "" && !services[r.route.Service] {
			d.errorf(r.service, "service: unknown service %s", quote(r.route.Service))
		}
		f.Routes = append(f.Routes, r.route)
	}
	d.unique("route", routeNames)
	routeIDs := make([]idAt, len(f.Routes))
	for i, r := range f.Routes {
		routeIDs[i] = idAt{r.ID, r.Pos}
	}
	d.uniqueIDs("route", routeIDs)
	d.finishPlugins(f)
}

// unique reports names used twice, at the second use.
func (d *decoder) unique(kind string, names []named) {
	first := make(map[string]*yaml.Node, len(names))
	for _, n := range names {
		if n.node == nil {
			continue
		}
		if prev, dup := first[n.name]; dup {
			d.errorf(n.node, "name: duplicate %s name %s (first defined at line %d)", kind, quote(n.name), prev.Line)
			continue
		}
		first[n.name] = n.node
	}
}

// listenField decodes a "host:port" listen address (empty host and port 0
// allowed) into dst, recording its node in at.
func (d *decoder) listenField(dst *string, at **yaml.Node) func(*yaml.Node) {
	return func(v *yaml.Node) {
		s, ok := d.str(v, "listen")
		if !ok {
			return
		}
		norm, err := normalizeHostPort(s, 0, true)
		if err != nil {
			d.errorf(deref(v), "listen: %v", err)
			return
		}
		*dst, *at = norm, deref(v)
	}
}

// The bounds of proxy.http2_max_header_list_size.
const (
	minHTTP2HeaderList = 1 << 10
	maxHTTP2HeaderList = 16 << 20
)

func (d *decoder) proxy(n *yaml.Node, p *Proxy) (listen *yaml.Node) {
	p.Pos = pos(deref(n))
	var verify *yaml.Node
	seen := d.mapping(n, "proxy", "proxy", []field{
		{"listen", d.proxyListen(p, &listen)},
		{"max_body_size", func(v *yaml.Node) {
			if i, ok := d.size(v, "max_body_size"); ok {
				p.MaxBodySize = i
			}
		}},
		{"drain_timeout", d.durationField(&p.DrainTimeout, "drain_timeout", false)},
		{"zone", d.strField(&p.Zone, "zone", CheckTag)},
		{"max_idle_conns_per_host", d.intField(&p.MaxIdleConnsPerHost, "max_idle_conns_per_host", 0, MaxIdleConnsPerHost)},
		{"idle_conn_timeout", d.durationField(&p.IdleConnTimeout, "idle_conn_timeout", false)},
		{"idle_timeout", d.durationField(&p.IdleTimeout, "idle_timeout", true)},
		{"header_timeout", d.durationField(&p.HeaderTimeout, "header_timeout", true)},
		{"max_connections", d.intField(&p.MaxConnections, "max_connections", 0, MaxConnections)},
		{"engine", d.enumField(&p.Engine, "engine", EngineH1, EngineNetHTTP)},
		{"h2c", d.boolField(&p.H2C, "h2c")},
		{"http2_max_concurrent_streams", d.intField(&p.HTTP2MaxConcurrentStreams, "http2_max_concurrent_streams", 1, math.MaxInt32)},
		{"http2_max_header_list_size", func(v *yaml.Node) {
			if i, ok := d.size(v, "http2_max_header_list_size"); ok {
				if i < minHTTP2HeaderList || i > maxHTTP2HeaderList {
					d.errorf(deref(v), "http2_max_header_list_size: must be between 1KB and 16MB, got %d bytes", i)
					return
				}
				p.HTTP2MaxHeaderListSize = i
			}
		}},
		{"ssl_verify_client", d.enumField(&p.SSLVerifyClient, "ssl_verify_client", VerifyClientOff, VerifyClientOn, VerifyClientOptional)},
		{"ssl_client_certificate", d.caBundleField(&p.SSLClientCertificate)},
		{"ssl_client_subject_header", d.strField(&p.SSLClientSubjectHeader, "ssl_client_subject_header", CheckToken)},
		{"ssl_poll_interval", d.durationField(&p.SSLPollInterval, "ssl_poll_interval", true)},
	})
	if e, ok := seen["ssl_verify_client"]; ok {
		verify = e.val
	}
	d.finishProxy(p, verify)
	return listen
}

func (d *decoder) admin(n *yaml.Node, a *Admin) (listen *yaml.Node) {
	a.Pos = pos(deref(n))
	d.mapping(n, "admin", "admin", []field{
		{"listen", d.listenField(&a.Listen, &listen)},
		{"token", d.strField(&a.Token, "token", nil)},
		{"state_file", d.strField(&a.StateFile, "state_file", checkNonEmpty)},
		{"store", d.enumField(&a.Store, "store", "file", "consul")},
		{"consul", func(v *yaml.Node) {
			d.mapping(v, "consul", "admin.consul", []field{
				{"address", d.consulAddress(&a.Consul.Address)},
				{"key", d.strField(&a.Consul.Key, "key", checkNonEmpty)},
				{"token_env", d.strField(&a.Consul.TokenEnv, "token_env", checkNonEmpty)},
			})
		}},
	})
	if listen != nil && a.Token == "" && !IsLoopbackListen(a.Listen) {
		d.errorf(listen, "listen: %s", AdminTokenRequired)
	}
	return listen
}

func (d *decoder) log(n *yaml.Node, l *Log) {
	l.Pos = pos(deref(n))
	d.mapping(n, "log", "log", []field{
		{"level", d.enumField(&l.Level, "level", "debug", "info", "warn", "error")},
		{"format", d.enumField(&l.Format, "format", "auto", "json", "console")},
		{"access_log", d.boolField(&l.AccessLog, "access_log")},
		{"access_log_success_sample_ratio", d.numberField(&l.AccessLogSuccessSampleRatio, "access_log_success_sample_ratio", 0, 1)},
	})
}

func (d *decoder) upstream(n *yaml.Node) (Upstream, named) {
	u := defaultUpstream()
	u.Pos = pos(n)
	var name named
	var nested upstreamSeen
	seen := d.mapping(n, "upstream", "upstream", append(schemaFields(d, UpstreamSchema(), &u, map[string]func(*yaml.Node){
		"sticky_sessions_cookie_ttl": d.durationField((*time.Duration)(u.StickyTTL), "sticky_sessions_cookie_ttl", false),
		"slow_start":                 func(v *yaml.Node) { u.SlowStart, nested.slowStart, nested.slowStartAt = d.slowStart(v) },
		"panic":                      func(v *yaml.Node) { d.panicBlock(v, u.Panic) },
		"circuit_breakers": func(v *yaml.Node) {
			d.mapping(v, "circuit_breakers", "circuit_breakers", schemaFields(d, CircuitBreakersSchema(), u.CircuitBreakers, nil))
		},
		"retry_budget": func(v *yaml.Node) { d.retryBudget(v, u.RetryBudget) },
		"retry_policy": func(v *yaml.Node) { u.RetryPolicy, nested.backoff = d.retryPolicy(v) },
		"healthchecks": func(v *yaml.Node) { nested.active, nested.passive = d.healthchecks(v, u.Healthchecks) },
		"discovery":    func(v *yaml.Node) { u.Discovery = d.discovery(v) },
		"targets": func(v *yaml.Node) {
			first := make(map[string]*yaml.Node)
			d.list(v, "targets", func(item *yaml.Node) {
				t, at := d.target(item)
				if at != nil {
					if prev, dup := first[t.Target]; dup {
						d.errorf(at, "target: duplicate target %s in upstream (first at line %d)", t.Target, prev.Line)
						return
					}
					first[t.Target] = at
				}
				u.Targets = append(u.Targets, t)
			})
		},
	}), d.kongFields(KindUpstream, &u.ID)...))
	if seen == nil {
		return u, name
	}
	if e, ok := seen["name"]; !ok {
		d.errorAt(u.Pos, "upstream: name is required")
	} else if e.ok {
		name = named{u.Name, deref(e.val)}
	}
	nested.top = seen
	d.upstreamProblems(u.Validate(), &nested)
	return u, name
}

// upstreamSeen is what an upstream's mappings held, for
// upstreamProblems: the upstream's own, its slow_start's (and where it
// is), its retry_backoff's and its active and passive checkers'.
type upstreamSeen struct {
	top, slowStart, backoff, active, passive map[string]entry
	slowStartAt                              Pos
}

// upstreamProblems reports the problems Upstream.Validate found, each at
// the node of the field it concerns, unless that field's own error was
// reported already (or, for a missing setting, the field was given).
func (d *decoder) upstreamProblems(ps []Problem, s *upstreamSeen) {
	on, onOK := s.top["hash_on"]
	fb, fbOK := s.top["hash_fallback"]
	hashingOK := !(onOK && !on.ok) && !(fbOK && !fb.ok)
	fallbackRefused := false
	for _, p := range ps {
		switch {
		case p.Field == "hash_fallback":
			if hashingOK && fbOK {
				d.errorf(deref(fb.val), "hash_fallback: %s", p.Msg)
				fallbackRefused = true
			}
		case strings.HasPrefix(p.Field, "hash_on_"):
			by := p.Because[0]
			e, ok := s.top[by]
			if _, given := s.top[p.Field]; !hashingOK || !ok || given || (by == "hash_fallback" && fallbackRefused) {
				continue
			}
			d.errorf(deref(e.val), "%s: %s is %s", by, p.Field, p.Msg)
		case p.Field == "slow_start.aggression":
			if e, ok := s.slowStart["aggression"]; ok && e.ok {
				d.errorf(deref(e.val), "aggression: %s", p.Msg)
			}
		case p.Field == "slow_start.window":
			if _, given := s.slowStart["window"]; s.slowStart != nil && !given {
				d.errorAt(s.slowStartAt, "slow_start: window is required")
			}
		case p.Field == "healthchecks.active.grpc_service":
			if e, ok := s.active["grpc_service"]; ok && e.ok && allOK(s.active, "type") {
				d.errorf(deref(e.key), "grpc_service: %s", p.Msg)
			}
		case p.Field == "healthchecks.passive.max_ejection_time":
			if s.passive != nil && allOK(s.passive, "base_ejection_time", "max_ejection_time") {
				e, ok := s.passive["max_ejection_time"]
				if !ok {
					e = s.passive["base_ejection_time"]
				}
				d.errorf(deref(e.val), "%s: max_ejection_time %s", e.key.Value, p.Msg)
			}
		case p.Field == "retry_policy.retry_backoff.max_interval":
			if e, ok := s.backoff["max_interval"]; ok && allOK(s.backoff, "base_interval", "max_interval") {
				d.errorf(deref(e.val), "max_interval: %s", p.Msg)
			}
		}
	}
}

// target decodes one target; at is the node of its valid target address.
func (d *decoder) target(n *yaml.Node) (t Target, at *yaml.Node) { return d.targetWith(n) }

// targetWith decodes one target that may also have the extra fields.
func (d *decoder) targetWith(n *yaml.Node, extra ...field) (t Target, at *yaml.Node) {
	t = TargetSchema().New()
	t.Pos = pos(n)
	seen := d.mapping(n, "target", "target", append(schemaFields(d, TargetSchema(), &t, map[string]func(*yaml.Node){
		"target": func(v *yaml.Node) {
			s, ok := d.str(v, "target")
			if !ok {
				return
			}
			norm, err := normalizeHostPort(s, 1, false)
			if err != nil {
				d.errorf(deref(v), "target: %v", err)
				return
			}
			t.Target, at = norm, deref(v)
		},
	}), append(extra, d.kongFields(KindTarget, &t.ID)...)...))
	if seen != nil {
		if _, ok := seen["target"]; !ok {
			d.errorAt(t.Pos, "target: target (host:port) is required")
		}
	}
	return t, at
}

// slowStart decodes a slow_start block; seen is its mapping (nil if it is
// none), at where it is.
func (d *decoder) slowStart(n *yaml.Node) (s *SlowStart, seen map[string]entry, at Pos) {
	schema := SlowStartSchema()
	s = ptrTo(schema.New())
	seen = d.mapping(n, "slow_start", "slow_start", schemaFields(d, schema, s, map[string]func(*yaml.Node){
		"window": d.durationField((*time.Duration)(&s.Window), "window", true),
	}))
	return s, seen, pos(deref(n))
}

func (d *decoder) retryBudget(n *yaml.Node, b *RetryBudget) {
	d.mapping(n, "retry_budget", "retry_budget", schemaFields(d, RetryBudgetSchema(), b, nil))
}

// retryPolicy decodes a retry_policy block over DefaultRetryPolicy;
// backoff is its retry_backoff's mapping.
func (d *decoder) retryPolicy(n *yaml.Node) (_ *RetryPolicy, backoff map[string]entry) {
	rp := DefaultRetryPolicy()
	seen := d.mapping(n, "retry_policy", "retry_policy", schemaFields(d, RetryPolicySchema(), &rp, map[string]func(*yaml.Node){
		"retry_on": func(v *yaml.Node) {
			on := []string{}
			d.list(v, "retry_on", func(item *yaml.Node) {
				if s, ok := d.scalar(item, "retry_on", "a condition"); ok {
					if err := CheckRetryOn(s.text); err != nil {
						d.errorf(s.node, "retry_on: %v", err)
						return
					}
					if !slices.Contains(on, s.text) {
						on = append(on, s.text)
					}
				}
			})
			rp.RetryOn = on
		},
		"retry_backoff": func(v *yaml.Node) {
			backoff = d.mapping(v, "retry_backoff", "retry_policy.retry_backoff", schemaFields(d, RetryBackoffSchema(), &rp, nil))
			if _, ok := backoff["max_interval"]; !ok && allOK(backoff, "base_interval") {
				rp.BackoffMax = 10 * rp.BackoffBase // Envoy's default
			}
		},
	}))
	if seen == nil {
		return nil, nil
	}
	return &rp, backoff
}

func (d *decoder) panicBlock(n *yaml.Node, p *Panic) {
	d.mapping(n, "panic", "panic", schemaFields(d, PanicSchema(), p, nil))
}

// CheckGRPCService reports a gRPC health service name that cannot be sent:
// longer than 255 bytes, or holding spaces or control characters.
func CheckGRPCService(s string) error {
	if len(s) > MaxGRPCServiceLen {
		return fmt.Errorf("longer than %d bytes", MaxGRPCServiceLen)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || !unicode.IsPrint(r) {
			return fmt.Errorf("%s: no spaces or control characters", quote(s))
		}
	}
	return nil
}

// healthchecks decodes a healthchecks block; active and passive are its
// checkers' mappings.
func (d *decoder) healthchecks(n *yaml.Node, h *Healthchecks) (active, passive map[string]entry) {
	d.mapping(n, "healthchecks", "healthchecks", schemaFields(d, HealthchecksSchema(), h, map[string]func(*yaml.Node){
		"active": func(v *yaml.Node) {
			h.Active.Enabled = true
			active = d.active(v, &h.Active)
		},
		"passive": func(v *yaml.Node) {
			h.Passive.Enabled = true
			passive = d.passive(v, &h.Passive)
		},
	}))
	return active, passive
}

func (d *decoder) active(n *yaml.Node, a *Active) map[string]entry {
	const ctx = "healthchecks.active"
	seen := d.mapping(n, "active", ctx, schemaFields(d, ActiveSchema(), a, map[string]func(*yaml.Node){
		"headers":   func(v *yaml.Node) { a.Headers = d.headers(v, false) },
		"healthy":   func(v *yaml.Node) { block(d, v, ActiveHealthySchema(), &a.Healthy, ctx+".healthy", nil) },
		"unhealthy": func(v *yaml.Node) { block(d, v, ActiveUnhealthySchema(), &a.Unhealthy, ctx+".unhealthy", nil) },
	}))
	if e, ok := seen["grpc_service"]; ok && e.ok && a.GRPCService == "" && allOK(seen, "type") && !GRPCType(a.Type) {
		// The file refuses even an empty grpc_service on such a check
		// (Validate, seeing no name, has nothing to say).
		d.errorf(deref(e.key), "grpc_service: %s", grpcServiceWhy(a.Type))
	}
	return seen
}

// GRPCType reports whether an active check type speaks gRPC.
func GRPCType(typ string) bool { return typ == "grpc" || typ == "grpcs" }

func (d *decoder) passive(n *yaml.Node, p *Passive) map[string]entry {
	const ctx = "healthchecks.passive"
	return d.mapping(n, "passive", ctx, schemaFields(d, PassiveSchema(), p, map[string]func(*yaml.Node){
		"healthy":   func(v *yaml.Node) { block(d, v, PassiveHealthySchema(), &p.Healthy, ctx+".healthy", nil) },
		"unhealthy": func(v *yaml.Node) { block(d, v, PassiveUnhealthySchema(), &p.Unhealthy, ctx+".unhealthy", nil) },
		"success_rate": func(v *yaml.Node) {
			sr := DefaultSuccessRate()
			if d.mapping(v, "success_rate", ctx+".success_rate", schemaFields(d, SuccessRateSchema(), &sr, nil)) != nil {
				p.SuccessRate = &sr
			}
		},
	}))
}

// headers decodes a map of header name to values (a list, or a single
// string). Names are unique case-insensitively. For a route, names are
// lower-cased and Host is refused (hosts matches it).
func (d *decoder) headers(n *yaml.Node, route bool) map[string][]string {
	n = deref(n)
	out := map[string][]string{}
	if isNull(n) {
		return out
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "headers: expected a mapping of header name to values, got %s", describe(n))
		return out
	}
	first := make(map[string]*yaml.Node)
	for _, p := range d.pairs(n, 0) {
		name := p.key.Value
		if err := CheckToken(name); err != nil {
			d.errorf(p.key, "headers: invalid header name: %v", err)
			continue
		}
		folded := strings.ToLower(name)
		if prev, dup := first[folded]; dup {
			d.errorf(p.key, "headers: duplicate header %s (first at line %d)", quote(name), prev.Line)
			continue
		}
		first[folded] = p.key
		if route {
			if folded == "host" {
				d.errorf(p.key, "headers: use hosts to match the Host header")
				continue
			}
			name = folded
		}
		values := []string{}
		d.stringList(p.val, name, true, func(s string, _ *yaml.Node) {
			values = append(values, s)
		})
		if v := deref(p.val); len(values) == 0 && (v.Kind == yaml.SequenceNode || isNull(v)) {
			d.errorf(v, "%s: at least one value is required", name)
			continue
		}
		out[name] = values
	}
	return out
}

// service decodes a service and its nested routes.
func (d *decoder) service(n *yaml.Node) (Service, named, []routeEntry) {
	s := defaultService()
	s.Pos = pos(n)
	var (
		name       named
		routes     []routeEntry
		routesNode *yaml.Node
		parsed     *ServiceURL
	)
	schema := ServiceSchema()
	seen := d.mapping(n, "service", "service", append(append(schemaFields(d, schema, &s, map[string]func(*yaml.Node){
		"client_certificate": func(v *yaml.Node) {
			cc := &ClientCertificate{}
			seen := d.mapping(v, "client_certificate", "client_certificate", schemaFields(d, ClientCertificateSchema(), cc, nil))
			if seen == nil {
				return
			}
			_, c := seen["cert_file"]
			_, k := seen["key_file"]
			if !c || !k {
				d.errorf(deref(v), "client_certificate: cert_file and key_file are both required")
				return
			}
			s.ClientCertificate = cc
		},
		"url": func(v *yaml.Node) {
			str, ok := d.str(v, "url")
			if !ok {
				return
			}
			u, err := ParseServiceURL(str)
			var bad *URLError
			switch {
			case errors.As(err, &bad):
				d.errorf(deref(v), "url: %v", err)
				return
			case err != nil:
				d.errorf(deref(v), "url: %s: %v", quote(str), err)
				return
			}
			parsed = &u
		},
	}), field{"routes", func(v *yaml.Node) { routesNode = v }}, d.pluginsIn(&s.Name, nil)),
		d.kongFields(KindService, &s.ID)...))
	if seen == nil {
		return s, name, nil
	}
	if e, ok := seen["name"]; ok && e.ok {
		name = named{s.Name, deref(e.val)}
	} else if !ok {
		if s.ID == "" {
			d.errorAt(s.Pos, "service: name (or id) is required")
		} else {
			// Kong's unnamed service: keyed by its id, as the admin API does.
			s.Name, name = s.ID, named{s.ID, n}
		}
	}
	_, hasURL := seen["url"]
	_, hasHost := seen["host"]
	switch {
	case hasURL:
		for _, k := range []string{"protocol", "host", "port", "path"} {
			if e, ok := seen[k]; ok {
				d.errorf(e.key, "%s: url conflicts with %s (set either url or protocol, host, port and path)", k, k)
			}
		}
		if parsed != nil {
			s.Protocol, s.Host, s.Port, s.Path = parsed.Protocol, parsed.Host, parsed.Port, parsed.Path
		}
	case !hasHost:
		d.errorAt(s.Pos, "service: host or url is required")
	}
	if _, ok := seen["port"]; !ok && !hasURL {
		s.Port = DefaultPort(s.Protocol)
	}
	d.problems("service", asWritten(schema, s, seen).Validate(), seen, s.Pos)
	if routesNode != nil {
		d.list(routesNode, "routes", func(item *yaml.Node) {
			routes = append(routes, d.route(item, &s))
		})
	}
	return s, name, routes
}

// route decodes a route; parent is its service when nested, nil when at
// the top level.
func (d *decoder) route(n *yaml.Node, parent *Service) routeEntry {
	r := defaultRoute()
	r.Pos = pos(n)
	e := routeEntry{nested: parent != nil}
	seen := d.mapping(n, "route", "route", append(append(schemaFields(d, RouteSchema(), &r, map[string]func(*yaml.Node){
		"service": func(v *yaml.Node) {
			if isNull(deref(v)) {
				return // Kong's service: null, no service
			}
			if name, id, ok := d.entityRef(v, "service"); ok {
				r.Service, e.serviceID, e.service = name, id, deref(v)
			}
		},
		"headers": func(v *yaml.Node) { r.Headers = d.headers(v, true) },
	}), d.pluginsIn(nil, &r.Name)), d.kongFields(KindRoute, &r.ID)...))
	if parent != nil {
		r.Service = parent.Name
		e.service, e.serviceID = nil, ""
	}
	e.route = r
	if seen == nil {
		return e
	}
	if k, ok := seen["name"]; ok && k.ok {
		e.name = named{r.Name, deref(k.val)}
	} else if !ok {
		if r.ID == "" {
			d.errorAt(r.Pos, "route: name (or id) is required")
		} else {
			e.route.Name, e.name = r.ID, named{r.ID, n}
		}
	}
	if k, ok := seen["service"]; ok && parent != nil {
		d.errorf(k.key, "service: not allowed in a route nested in a service (it belongs to service %s)", quote(parent.Name))
	}
	d.problems("route", r.Validate(), seen, r.Pos)
	return e
}

// allOK reports whether every one of keys present in seen decoded without
// error.
func allOK(seen map[string]entry, keys ...string) bool {
	for _, k := range keys {
		if e, ok := seen[k]; ok && !e.ok {
			return false
		}
	}
	return true
}

// routeList decodes a route's list of strings, normalising and checking
// each with check and refusing duplicates.
func (d *decoder) routeList(n *yaml.Node, label string, check func(string) (string, error)) []string {
	out := []string{}
	first := make(map[string]*yaml.Node)
	d.list(n, label, func(item *yaml.Node) {
		s, ok := d.str(item, label)
		if !ok {
			return
		}
		norm, err := check(s)
		if err != nil {
			d.errorf(item, "%s: %v", label, err)
			return
		}
		if prev, dup := first[norm]; dup {
			d.errorf(item, "%s: duplicate %s (first at line %d)", label, quote(norm), prev.Line)
			return
		}
		first[norm] = item
		out = append(out, norm)
	})
	return out
}
