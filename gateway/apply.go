package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/health"
	"github.com/outrigger-gw/outrigger/proxy"
	"github.com/outrigger-gw/outrigger/proxy/router"
	"github.com/outrigger-gw/outrigger/state"
	"github.com/outrigger-gw/outrigger/upstream"
)

// plan is a fully built configuration, ready to be committed. Building has
// no visible effect; committing swaps everything in.
type plan struct {
	cfg       *config.File // effective: file + admin layer
	doc       *state.Doc
	ups       map[string]*upstreamRT
	watchers  []*watcher
	targets   map[string][]upstream.Target
	overrides map[string][]upstream.Override
	marks     map[string]map[string]health.Mark
	splitters map[string]*proxy.Splitter
	stats     map[string]*serviceStats
	router    *router.Router
}

// serviceStats are a service's rollout counters; they live as long as the
// service's name does.
type serviceStats struct {
	primary, canary proxy.RoleStats
}

// Apply takes a new configuration file (at start and on SIGHUP), layers
// the admin state over it, and swaps the result in. On error nothing
// changes.
func (g *Gateway) Apply(cfg *config.File) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, err := g.buildLocked(cfg, g.doc)
	if err != nil {
		return err
	}
	g.base = cfg
	g.commitLocked(p)
	return nil
}

// buildLocked builds the effective configuration of file + doc.
func (g *Gateway) buildLocked(file *config.File, doc *state.Doc) (*plan, error) {
	if file.Admin.Token == "" && !config.IsLoopbackListen(file.Admin.Listen) {
		return nil, fmt.Errorf("%s: admin.listen %s: %s", file.Path, file.Admin.Listen, config.AdminTokenRequired)
	}
	cfg := state.Merge(file, doc)
	p := &plan{cfg: cfg, doc: doc, ups: map[string]*upstreamRT{}, targets: map[string][]upstream.Target{},
		overrides: map[string][]upstream.Override{}, marks: map[string]map[string]health.Mark{},
		splitters: map[string]*proxy.Splitter{}, stats: map[string]*serviceStats{}}
	for _, cu := range cfg.Upstreams {
		rt, err := g.buildUpstream(cu, g.upstreams[cu.Name])
		if err != nil {
			return nil, cfg.Errorf(cu.Pos, "upstream %q: %v", cu.Name, err)
		}
		p.ups[cu.Name] = rt
		ts := make([]upstream.Target, 0, len(cu.Targets))
		for _, t := range cu.Targets {
			ts = append(ts, upstream.Target{Addr: t.Target, Weight: t.Weight, Tags: t.Tags})
		}
		p.targets[cu.Name] = ts
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

	services := make(map[string]*proxy.Service, len(cfg.Services))
	direct := map[string]*upstream.Upstream{}
	for _, cs := range cfg.Services {
		svc := &proxy.Service{
			Name:    cs.Name,
			Scheme:  cs.Protocol,
			Path:    cs.Path,
			Retries: cs.Retries,
			Transport: g.transports.Get(proxy.TransportOptions{
				ConnectTimeout:      cs.ConnectTimeout,
				ReadTimeout:         cs.ReadTimeout,
				WriteTimeout:        cs.WriteTimeout,
				MaxIdleConnsPerHost: cfg.Proxy.MaxIdleConnsPerHost,
				IdleConnTimeout:     cfg.Proxy.IdleConnTimeout,
			}),
		}
		if rt, ok := p.ups[cs.Host]; ok {
			svc.Upstream, svc.Hash = rt.u, rt.hash
		} else {
			// A real host: a one-target upstream of its own.
			addr := net.JoinHostPort(cs.Host, strconv.Itoa(cs.Port))
			u := direct[addr]
			if u == nil {
				u = upstream.New(upstream.Options{Name: addr, Balancer: balance.NewRoundRobin()})
				u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: addr, Weight: 1}})
				direct[addr] = u
			}
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
			p.splitters[cs.Name] = sp
			svc.Canary = &proxy.Canary{Upstream: crt.u, Hash: crt.hash, Split: sp, StickyBy: c.StickyBy, Stats: &st.canary}
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
		if svc == nil {
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
				PathHandling: pathHandling(cr.PathHandling), Regexps: res},
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

// commitLocked swaps a built plan in.
func (g *Gateway) commitLocked(p *plan) {
	for name, rt := range p.ups {
		if old := g.upstreams[name]; old != nil && old.u != rt.u {
			// A rebuilt upstream starts with the discovered targets the
			// old one had; its watchers take over from there.
			for src, ts := range old.u.SourceTargets() {
				rt.u.SetTargets(src, ts)
			}
			g.retire(old)
		}
		rt.u.SetBalancer(rt.balancer)
		rt.u.SetOverrides(p.overrides[name])
		rt.u.SetTargets(upstream.StaticSource, p.targets[name])
		rt.u.SetMarks(p.marks[name])
		if g.serving && rt.checker != nil {
			rt.checker.Start(g.ctx)
		}
	}
	for name, old := range g.upstreams {
		if _, ok := p.ups[name]; !ok {
			g.retire(old)
			g.metrics.forget(name)
		}
	}
	g.reconcileWatchers(p.watchers)
	for name, c := range p.doc.Canaries {
		p.splitters[name].SetPercent(c.Percent)
	}
	g.upstreams, g.splitters, g.stats = p.ups, p.splitters, p.stats
	g.doc = p.doc
	g.adminToken.Store(&p.cfg.Admin.Token)
	g.gen++
	g.cfg = p.cfg
	g.proxy.SetTable(&proxy.Table{Router: p.router, Generation: g.gen})
	g.metrics.generation.Set(float64(g.gen))
}

// maxMutateRetries bounds compare-and-set retries against a busy store.
const maxMutateRetries = 16

// Mutate implements admin.Controller: fn edits a copy of the admin layer;
// the result is built, persisted, then swapped in — or nothing happens.
func (g *Gateway) Mutate(ctx context.Context, fn func(*state.Doc) error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for range maxMutateRetries {
		next := g.doc.Clone()
		if err := fn(next); err != nil {
			return err
		}
		p, err := g.buildLocked(g.base, next)
		if err != nil {
			var ae *admin.Error
			if errors.As(err, &ae) {
				return err
			}
			return &admin.Error{Status: http.StatusBadRequest, Message: err.Error()}
		}
		if g.store != nil {
			v, err := g.store.Save(ctx, next, g.docVersion)
			if errors.Is(err, state.ErrConflict) {
				if err := g.reloadDocLocked(ctx); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("persist admin state: %w", err)
			}
			g.docVersion = v
		}
		g.commitLocked(p)
		return nil
	}
	return fmt.Errorf("persist admin state: still conflicting after %d attempts", maxMutateRetries)
}

// reloadDocLocked reads the store's current layer (after a conflict) and
// applies it.
func (g *Gateway) reloadDocLocked(ctx context.Context) error {
	doc, v, err := g.store.Load(ctx)
	if err != nil {
		return fmt.Errorf("load admin state: %w", err)
	}
	return g.adoptLocked(doc, v)
}

// adoptLocked applies a layer someone else wrote (another sidecar, or the
// store at start). A layer that does not build here is logged and
// skipped, keeping the running configuration.
func (g *Gateway) adoptLocked(doc *state.Doc, v uint64) error {
	if doc == nil {
		doc = &state.Doc{}
	}
	p, err := g.buildLocked(g.base, doc)
	if err != nil {
		g.log.Error().Err(err).Uint64("version", v).Msg("admin state does not apply to this configuration; keeping the running one")
		g.docVersion = v
		return nil
	}
	g.docVersion = v
	g.commitLocked(p)
	return nil
}

// Doc implements admin.Controller.
func (g *Gateway) Doc() *state.Doc {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.doc.Clone()
}

// File implements admin.Controller: the file's own entities.
func (g *Gateway) File() *config.File {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.base
}

// The gateway is what the admin API steers.
var _ admin.Controller = (*Gateway)(nil)

// pathHandling maps a route's path_handling (checked by config) to the
// proxy's.
func pathHandling(s string) proxy.PathHandling {
	if s == "v1" {
		return proxy.PathV1
	}
	return proxy.PathV0
}
