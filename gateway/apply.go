package gateway

import (
	"fmt"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/certs"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/health"
	"github.com/outrigger-gw/outrigger/proxy"
	"github.com/outrigger-gw/outrigger/proxy/plugins"
	"github.com/outrigger-gw/outrigger/proxy/router"
	"github.com/outrigger-gw/outrigger/state"
	"github.com/outrigger-gw/outrigger/upstream"
)

// plan is a fully built configuration: one immutable value, ready to be
// committed. Building has no visible effect; committing swaps it in, each
// upstream receiving its whole spec in one call, then the proxy's table
// (router and canary percents) in one store.
type plan struct {
	cfg       *config.File // effective: file + admin layer
	base      *config.File // what the layer's entities are over: the file, or a declarative document's entities
	doc       *state.Doc
	ups       map[string]*upstreamRT
	watchers  []*watcher
	specs     map[string]upstream.Spec
	overrides map[string][]upstream.Override
	marks     map[string]map[string]health.Mark
	splitters map[string]*proxy.Splitter
	slots     map[string]int // canary service → index of its percent in the table (proxy.Canary.Slot)
	stats     map[string]*serviceStats
	direct    map[string]*upstream.Upstream
	routing   *routing
	router    *router.Router
	plugins   *plugins.Set
	certs     *certs.Loaded // nil: the certificates in force stay
}

// routing is what services and routes are built from; when it is the one
// the router in force was built from, the router is kept.
type routing struct {
	file     *config.File // the configuration file (a reload rebuilds: it rereads TLS files)
	services []config.Service
	routes   []config.Route
	proxy    config.Proxy
	canaries map[string]state.Canary // percent left out: the table takes it
	ups      map[string]routedUpstream
	plugins  pluginEntities
}

// pluginEntities are what the plugins are compiled from.
type pluginEntities struct {
	plugins   []config.Plugin
	consumers []config.Consumer
	keyAuths  []config.KeyAuth
}

type routedUpstream struct {
	u    *upstream.Upstream
	hash *proxy.HashSpec
}

func routingOf(file, cfg *config.File, doc *state.Doc, ups map[string]*upstreamRT) *routing {
	r := &routing{file: file, services: withoutMeta(cfg.Services, func(s *config.Service) *config.Meta { return &s.Meta }),
		routes: withoutMeta(cfg.Routes, func(r *config.Route) *config.Meta { return &r.Meta }), proxy: cfg.Proxy,
		canaries: map[string]state.Canary{}, ups: map[string]routedUpstream{},
		plugins: pluginEntities{cfg.Plugins, cfg.Consumers, cfg.KeyAuths}}
	for name, c := range doc.Canaries {
		cp := *c
		cp.Percent, cp.UpdatedAt = 0, 0
		r.canaries[name] = cp
	}
	for name, rt := range ups {
		r.ups[name] = routedUpstream{u: rt.u, hash: rt.hash}
	}
	return r
}

// withoutMeta is a copy of l without the entities' Meta (ids and the admin
// layer's bookkeeping), which the router is not built from.
func withoutMeta[T any](l []T, meta func(*T) *config.Meta) []T {
	out := slices.Clone(l)
	for i := range out {
		*meta(&out[i]) = config.Meta{}
	}
	return out
}

func (r *routing) equal(o *routing) bool {
	if r == nil || o == nil || r.file != o.file || len(r.ups) != len(o.ups) {
		return false
	}
	for name, a := range r.ups {
		b, ok := o.ups[name]
		if !ok || a.u != b.u || !reflect.DeepEqual(a.hash, b.hash) {
			return false
		}
	}
	return reflect.DeepEqual(r.services, o.services) && reflect.DeepEqual(r.routes, o.routes) &&
		reflect.DeepEqual(r.proxy, o.proxy) && reflect.DeepEqual(r.canaries, o.canaries) &&
		reflect.DeepEqual(r.plugins, o.plugins)
}

// serviceStats are a service's rollout counters; they live as long as the
// service's name does.
type serviceStats struct {
	primary, canary proxy.RoleStats
}

// Apply takes a new configuration file (at start and on SIGHUP), layers
// the admin state over it, and swaps the result in. On error nothing
// changes. A pending layer (the store's latest, which did not build with
// the previous file) is tried first.
func (g *Gateway) Apply(cfg *config.File) error {
	g.write.Lock()
	defer g.write.Unlock()
	if g.pending != nil {
		// The store's latest layer may build with the new file.
		p, err := g.buildLocked(cfg, g.pending.doc)
		if err == nil {
			g.log.Info().Uint64("version", g.pending.version).Msg("admin state applies to this configuration again")
			g.commit(p, func() { g.base, g.docVersion, g.pending = cfg, g.pending.version, nil })
			g.layerMetricsLocked()
			return nil
		}
		g.mu.Lock()
		g.pending.err = err
		g.mu.Unlock()
	}
	p, err := g.buildLocked(cfg, g.doc)
	if err != nil {
		return err
	}
	g.commit(p, func() { g.base = cfg })
	return nil
}

// baseLocked is what doc's entities are over (state.Base): the layer in
// force's when file and the layer's declarative document are those it was
// built from, so that an admin write over a posted document does not
// parse the document again.
func (g *Gateway) baseLocked(file *config.File, doc *state.Doc) (*config.File, error) {
	if cur := g.doc; doc.Config != nil && cur != nil && cur.Config != nil && cur.Config.Text == doc.Config.Text &&
		file == g.base && g.layerBase != nil {
		return g.layerBase, nil
	}
	return state.Base(file, doc)
}

// merge is state.Merge, counted (g.merges): a configuration change
// merges once, when it is built; what the admin API shows of the layer in
// force is that merge's result (Effective, CompareAndSet).
func (g *Gateway) merge(base *config.File, doc *state.Doc) *config.File {
	g.merges.Add(1)
	return state.Merge(base, doc)
}

// buildLocked builds the effective configuration of file + doc; the
// caller holds g.write (what it reads of the running configuration only
// changes under g.write).
func (g *Gateway) buildLocked(file *config.File, doc *state.Doc) (*plan, error) {
	return g.buildMergedLocked(file, doc, nil)
}

// buildMergedLocked is buildLocked over doc's merge when the admin API
// already made it (merged, from CompareAndSet), else over its own.
func (g *Gateway) buildMergedLocked(file *config.File, doc *state.Doc, merged *admin.Merged) (*plan, error) {
	if file.Admin.Token == "" && !config.IsLoopbackListen(file.Admin.Listen) {
		return nil, fmt.Errorf("%s: admin.listen %s: %s", file.Path, file.Admin.Listen, config.AdminTokenRequired)
	}
	var base, cfg *config.File
	if merged != nil {
		base, cfg = merged.Base, merged.Effective
	} else {
		// A layer the admin API did not just check (loaded, adopted from
		// another sidecar, or under a reloaded file) is checked as the
		// admin API checks its entities.
		if err := doc.Validate(); err != nil {
			return nil, err
		}
		var err error
		if base, err = g.baseLocked(file, doc); err != nil {
			return nil, err
		}
		cfg = g.merge(base, doc)
		if err := doc.ValidateUpstreams(cfg); err != nil {
			return nil, err
		}
	}
	p := &plan{cfg: cfg, base: base, doc: doc, ups: map[string]*upstreamRT{}, specs: map[string]upstream.Spec{},
		overrides: map[string][]upstream.Override{}, marks: map[string]map[string]health.Mark{},
		splitters: map[string]*proxy.Splitter{}, slots: map[string]int{}, stats: map[string]*serviceStats{}, direct: map[string]*upstream.Upstream{}}
	sameFile := file == g.base
	for _, cu := range cfg.Upstreams {
		ts := make([]upstream.Target, 0, len(cu.Targets))
		for _, t := range cu.Targets {
			ts = append(ts, upstream.Target{Addr: t.Target, Weight: t.Weight, Tags: t.Tags, Priority: t.Priority, Backup: t.Backup, Meta: zoneMeta(t.Zone)})
		}
		if old := g.upstreams[cu.Name]; sameFile && old != nil && old.settingsOf(cu) {
			// Only its targets (if anything) changed: the upstream, its
			// balancer, checker and watchers stay as they are.
			p.ups[cu.Name] = old
			p.specs[cu.Name] = upstream.Spec{Balancer: old.balancer, Targets: ts}
			for _, w := range g.watchers {
				if w.upstream == cu.Name {
					p.watchers = append(p.watchers, w)
				}
			}
			continue
		}
		rt, err := g.buildUpstream(cu, g.upstreams[cu.Name])
		if err != nil {
			return nil, cfg.Errorf(cu.Pos, "upstream %q: %v", cu.Name, err)
		}
		p.ups[cu.Name] = rt
		p.specs[cu.Name] = upstream.Spec{Balancer: rt.balancer, Targets: ts}
		ws, err := g.sourcesOf(cu)
		if err != nil {
			return nil, cfg.Errorf(cu.Discovery.Pos, "upstream %q: %v", cu.Name, err)
		}
		for _, w := range ws {
			w.u = rt.u
		}
		p.watchers = append(p.watchers, ws...)
	}
	if err := p.adminLayer(); err != nil {
		return nil, err
	}
	for name, sp := range p.specs {
		sp.Overrides, sp.Marks = p.overrides[name], p.marks[name]
		p.specs[name] = sp
	}
	if !sameFile || g.cfg == nil || !reflect.DeepEqual(cfg.Certificates, g.cfg.Certificates) ||
		cfg.Proxy.SSLClientCertificate != g.cfg.Proxy.SSLClientCertificate {
		// (Otherwise the certificates in force stay, with what the store's
		// polling reloaded since.)
		var err error
		if p.certs, err = g.prepareCerts(cfg); err != nil {
			return nil, err
		}
	}
	p.routing = routingOf(file, cfg, doc, p.ups)
	if p.routing.equal(g.routing) {
		// Services and routes are what they were: the router in force
		// stays, with its services, splitters, stats and direct hosts.
		p.router, p.splitters, p.slots, p.stats, p.direct, p.plugins = g.router, g.splitters, g.slots, g.stats, g.direct, g.plugins
		return p, nil
	}
	var err error
	if p.plugins, err = buildPlugins(cfg, g.plugins); err != nil {
		return nil, err
	}

	services := make(map[string]*proxy.Service, len(cfg.Services))
	direct := p.direct
	for _, cs := range cfg.Services {
		to := proxy.TransportOptions{
			ConnectTimeout:      cs.ConnectTimeout.D(),
			ReadTimeout:         cs.ReadTimeout.D(),
			WriteTimeout:        cs.WriteTimeout.D(),
			MaxIdleConnsPerHost: cfg.Proxy.MaxIdleConnsPerHost,
			IdleConnTimeout:     cfg.Proxy.IdleConnTimeout,
			Protocol:            cs.Protocol,
		}
		if config.TLSProtocol(cs.Protocol) {
			m, err := config.LoadServiceTLS(&cs)
			if err != nil {
				return nil, cfg.Errorf(cs.Pos, "service %q: %v", cs.Name, err)
			}
			to.TLS = proxy.TLSOptions{Verify: cs.TLSVerify == nil || *cs.TLSVerify, VerifyDepth: cs.VerifyDepth(), CA: m.CA, ClientCert: m.Cert, ClientKey: m.Key}
			if _, err := to.TLS.Config(); err != nil {
				return nil, cfg.Errorf(cs.Pos, "service %q: %v", cs.Name, err)
			}
		}
		scheme := "http"
		if config.TLSProtocol(cs.Protocol) {
			scheme = "https"
		}
		svc := &proxy.Service{
			Name:           cs.Name,
			Scheme:         scheme,
			Protocol:       cs.Protocol,
			Path:           cs.Path,
			Retries:        cs.Retries,
			GRPCIdempotent: cs.GRPCIdempotentMethods,
			Transport:      g.transports.Get(to),
		}
		if rt, ok := p.ups[cs.Host]; ok {
			svc.Upstream, svc.Hash = rt.u, rt.hash
		} else {
			// A real host: a one-target upstream of its own.
			addr := net.JoinHostPort(cs.Host, strconv.Itoa(cs.Port))
			// It keeps its identity (and stats) while the host is used.
			u := direct[addr]
			if u == nil {
				u = g.direct[addr]
			}
			if u == nil {
				u = upstream.New(upstream.Options{Name: addr, Balancer: balance.NewRoundRobin()})
				u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: addr, Weight: 1}})
			}
			direct[addr] = u
			svc.Upstream = u
		}
		st := g.stats[cs.Name]
		if st == nil {
			st = &serviceStats{}
		}
		p.stats[cs.Name], svc.Stats = st, &st.primary
		if c := doc.Canaries[cs.Name]; c != nil {
			crt, ok := p.ups[c.Upstream]
			if !ok {
				return nil, &admin.Error{Message: fmt.Sprintf("service %q: canary upstream %q does not exist", cs.Name, c.Upstream),
					Fields: map[string]string{"upstream": "no such upstream"}}
			}
			sp := g.splitters[cs.Name]
			if sp == nil {
				sp = &proxy.Splitter{}
			}
			p.splitters[cs.Name], p.slots[cs.Name] = sp, len(p.slots)
			svc.Canary = &proxy.Canary{Upstream: crt.u, Hash: crt.hash, Split: sp, Slot: p.slots[cs.Name], StickyBy: c.StickyBy, Stats: &st.canary}
			for _, f := range c.Force {
				svc.Canary.Force = append(svc.Canary.Force, proxy.ForceRule{Kind: f.Kind, Name: f.Name, Value: f.Value})
			}
		}
		services[cs.Name] = svc
	}
	for name := range doc.Canaries {
		if services[name] == nil {
			return nil, &admin.Error{Message: fmt.Sprintf("canary for unknown service %q", name)}
		}
	}
	routes := make([]router.Route, 0, len(cfg.Routes))
	for _, cr := range cfg.Routes {
		svc := services[cr.Service]
		if svc == nil && cr.Service != "" {
			return nil, cfg.Errorf(cr.Pos, "route %q: service %q not found", cr.Name, cr.Service)
		}
		var res []*regexp.Regexp
		for _, path := range cr.Paths {
			if strings.HasPrefix(path, "~") {
				re, err := regexp.Compile("^(?:" + path[1:] + ")")
				if err != nil {
					return nil, cfg.Errorf(cr.Pos, "route %q: path %q: %v", cr.Name, path, err)
				}
				res = append(res, re)
			}
		}
		routes = append(routes, router.Route{
			Name: cr.Name, Hosts: cr.Hosts, Paths: cr.Paths, Methods: cr.Methods, Headers: cr.Headers,
			StripPath: cr.StripPath, PreserveHost: cr.PreserveHost, RegexPriority: cr.RegexPriority,
			Value: &proxy.Route{Name: cr.Name, Service: svc, StripPath: cr.StripPath, PreserveHost: cr.PreserveHost,
				PathHandling: pathHandling(cr.PathHandling), Regexps: res,
				GRPC:      slices.Contains(cr.Protocols, config.ProtocolGRPC) || slices.Contains(cr.Protocols, config.ProtocolGRPCS),
				GRPCSOnly: slices.Equal(cr.Protocols, []string{config.ProtocolGRPCS}),
				HTTPSOnly: slices.Equal(cr.Protocols, []string{config.ProtocolHTTPS}), HTTPSRedirect: cr.HTTPSRedirectStatusCode,
				Plugins: p.plugins.Chain(cr.Name)},
		})
	}
	rt, err := router.New(routes)
	if err != nil {
		return nil, fmt.Errorf("%s: routes: %w", cfg.Path, err)
	}
	p.router = rt
	return p, nil
}

// adminLayer converts the doc's overrides and marks per upstream.
func (p *plan) adminLayer() error {
	ovs := slices.Clone(p.doc.Overrides)
	slices.SortStableFunc(ovs, func(a, b state.Override) int { return int(a.CreatedAt - b.CreatedAt) })
	for _, o := range ovs {
		if _, ok := p.ups[o.Upstream]; !ok {
			return &admin.Error{Message: fmt.Sprintf("override %s: upstream %q does not exist", o.ID, o.Upstream)}
		}
		p.overrides[o.Upstream] = append(p.overrides[o.Upstream], upstream.Override{
			ID: o.ID, Target: o.Target, Tags: o.Tags, Meta: o.Meta, Weight: o.Weight, Share: o.Share,
		})
	}
	for up, m := range p.doc.Marks {
		if _, ok := p.ups[up]; !ok {
			continue // marks of a deleted upstream are inert
		}
		marks := map[string]health.Mark{}
		for addr, word := range m {
			mk, err := health.ParseMark(word)
			if err != nil {
				return &admin.Error{Message: fmt.Sprintf("mark of %s/%s: %v", up, addr, err)}
			}
			marks[addr] = mk
		}
		p.marks[up] = marks
	}
	return nil
}

// commit swaps a built plan in, with set (the layer's bookkeeping)
// applied in the same critical section; the caller holds g.write.
func (g *Gateway) commit(p *plan, set func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	base, doc := g.base, g.doc
	if set != nil {
		set()
	}
	g.countLayersLocked(base, doc, p)
	g.commitLocked(p)
}

// commitLocked swaps a built plan in as configuration generation g.gen+1:
// each upstream gets its whole spec of that generation in one Apply (one
// snapshot swap, none when its part did not change), then the proxy's table
// of that generation — router and canary percents — is stored at once.
// Until then a request resolves the table before, and the upstreams give
// it their snapshots of that table's generation (upstream.SnapshotAt): no
// request mixes two generations, whichever upstreams, routes and canaries
// the change touches. The caller holds g.write and g.mu.
func (g *Gateway) commitLocked(p *plan) {
	gen := g.gen + 1
	for name, rt := range p.ups {
		old := g.upstreams[name]
		if old != nil && old.u != rt.u {
			// A rebuilt upstream starts with the discovered targets the
			// old one had; its watchers take over from there.
			for src, ts := range old.u.SourceTargets() {
				rt.u.SetTargets(src, ts)
			}
			g.retire(old)
		}
		spec := p.specs[name]
		spec.Generation = gen
		if rt.u.Apply(spec) || old == nil || old.u != rt.u {
			rt.layers = g.layerGens
		} else {
			rt.layers = old.layers
		}
		setBreakers(rt.u, rt.conf)
		g.metrics.proxy.TrackUpstream(rt.u)
		if g.serving && rt.checker != nil {
			rt.checker.Start(g.ctx)
		}
		if g.commitStep != nil {
			g.commitStep(false)
		}
	}
	for name, old := range g.upstreams {
		if _, ok := p.ups[name]; !ok {
			g.retire(old)
			g.metrics.forget(name)
		}
	}
	g.reconcileWatchers(p.watchers)
	percents := make([]uint64, len(p.slots))
	for name, c := range p.doc.Canaries {
		if i, ok := p.slots[name]; ok {
			percents[i] = proxy.ScalePercent(c.Percent)
		}
	}
	g.upstreams, g.splitters, g.slots, g.stats, g.direct = p.ups, p.splitters, p.slots, p.stats, p.direct
	g.doc = p.doc
	g.rev++
	g.adminToken.Store(&p.cfg.Admin.Token)
	g.gen = gen
	g.cfg, g.layerBase = p.cfg, p.base
	g.routing, g.router, g.plugins = p.routing, p.router, p.plugins
	if g.commitStep != nil {
		g.commitStep(true)
	}
	g.proxy.SetTable(&proxy.Table{Router: p.router, Generation: gen, Percents: percents, Unmatched: p.plugins.Unmatched()})
	if p.certs != nil {
		g.certs.Commit(p.certs)
	}
	g.metrics.generation.Set(float64(g.gen))
}

// pathHandling maps a route's path_handling (checked by config) to the
// proxy's.
func pathHandling(s string) proxy.PathHandling {
	if s == "v1" {
		return proxy.PathV1
	}
	return proxy.PathV0
}

// zoneMeta is the metadata of a static target in zone z (nil for none).
func zoneMeta(z string) map[string]string {
	if z == "" {
		return nil
	}
	return map[string]string{upstream.MetaZone: z}
}
