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
	"time"

	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/certs"
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
	certs     *certs.Loaded
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
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending != nil {
		// The store's latest layer may build with the new file.
		p, err := g.buildLocked(cfg, g.pending.doc)
		if err == nil {
			g.log.Info().Uint64("version", g.pending.version).Msg("admin state applies to this configuration again")
			g.base, g.docVersion, g.pending = cfg, g.pending.version, nil
			g.commitLocked(p)
			g.layerMetricsLocked()
			return nil
		}
		g.pending.err = err
	}
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
	if p.certs, err = g.prepareCerts(cfg); err != nil {
		return nil, err
	}
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
	g.certs.Commit(p.certs)
	g.metrics.generation.Set(float64(g.gen))
}

// maxMutateRetries bounds compare-and-set retries against a busy store.
const maxMutateRetries = 16

// storeTimeout bounds one store operation made outside an admin request
// (republishing, resetting after a conflict).
const storeTimeout = 10 * time.Second

// pendingLayer is the store's latest layer when it does not build with
// this sidecar's configuration file.
type pendingLayer struct {
	doc     *state.Doc
	version uint64
	err     error
}

// Mutate implements admin.Controller: fn edits a copy of the admin layer;
// the result is built, persisted, then swapped in — or nothing happens.
// fn always edits the latest layer the store holds: while that layer does
// not build here (pending) the change is refused with 409, since writing
// over the older layer in force would discard changes this sidecar never
// saw.
func (g *Gateway) Mutate(ctx context.Context, fn func(*state.Doc) error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for range maxMutateRetries {
		if g.pending != nil {
			return g.refusalLocked()
		}
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
			prev := g.docVersion
			if g.lost {
				prev = 0 // the store lost the layer: recreate it, with this change
			}
			v, err := g.store.Save(ctx, next, prev)
			if errors.Is(err, state.ErrConflict) {
				if err := g.reloadDocLocked(ctx); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("persist admin state: %w", err)
			}
			if g.lost {
				g.log.Warn().Uint64("version", v).Msg("admin state: the store's copy is back (recreated with this admin change)")
			}
			g.docVersion, g.lost = v, false
		}
		g.commitLocked(p)
		g.layerMetricsLocked()
		return nil
	}
	return fmt.Errorf("persist admin state: still conflicting after %d attempts", maxMutateRetries)
}

// refusalLocked is Mutate's answer while the store's latest layer does not
// build here.
func (g *Gateway) refusalLocked() error {
	return &admin.Error{Status: http.StatusConflict, Message: fmt.Sprintf(
		"the fleet's admin layer (version %d) does not build with this sidecar's configuration file (%v); "+
			"this sidecar keeps its last good configuration (admin layer version %d) and refuses admin changes until that layer builds: "+
			"fix the configuration file and reload, change the layer from a sidecar where it builds, or reset it (DELETE /state)",
		g.pending.version, g.pending.err, g.docVersion)}
}

// ResetState implements admin.Controller: an empty layer, saved with
// check-and-set over the latest stored version, then applied.
func (g *Gateway) ResetState(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	empty := &state.Doc{}
	p, err := g.buildLocked(g.base, empty)
	if err != nil {
		return fmt.Errorf("the configuration file alone does not build: %w", err)
	}
	if g.store != nil {
		prev := g.latestVersionLocked()
		if g.lost {
			prev = 0
		}
		saved := false
		for range maxMutateRetries {
			v, err := g.store.Save(ctx, empty, prev)
			if errors.Is(err, state.ErrConflict) {
				// Whatever is stored now is discarded too: only its
				// version matters.
				if _, prev, err = g.store.Load(ctx); err != nil {
					return fmt.Errorf("load admin state: %w", err)
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("persist admin state: %w", err)
			}
			g.docVersion, saved = v, true
			break
		}
		if !saved {
			return fmt.Errorf("persist admin state: still conflicting after %d attempts", maxMutateRetries)
		}
	}
	g.pending, g.lost = nil, false
	g.commitLocked(p)
	g.layerMetricsLocked()
	g.log.Warn().Uint64("version", g.docVersion).Msg("admin state reset: every admin change was discarded")
	return nil
}

// latestVersionLocked is the latest store version this sidecar knows of:
// the pending layer's, else the one in force.
func (g *Gateway) latestVersionLocked() uint64 {
	if g.pending != nil {
		return g.pending.version
	}
	return g.docVersion
}

// reloadDocLocked reads the store's current layer (after a conflict) and
// adopts it.
func (g *Gateway) reloadDocLocked(ctx context.Context) error {
	doc, v, err := g.store.Load(ctx)
	if err != nil {
		return fmt.Errorf("load admin state: %w", err)
	}
	g.observeLocked(doc, v)
	return nil
}

// observeLocked takes in a state of the store: a layer someone else wrote
// (another sidecar), or the store's copy missing (version 0). It reports
// whether the layer was applied.
//
// A missing copy after a known version is a loss, not an empty layer (an
// empty layer is only ever written by ResetState): the layer in force
// stays and the caller republishes the last known layer (republishLocked).
// A layer that does not build here becomes pending: the running
// configuration stays, Mutate refuses changes, and the error is logged
// once per version.
func (g *Gateway) observeLocked(doc *state.Doc, v uint64) bool {
	defer g.layerMetricsLocked()
	if v == 0 && g.latestVersionLocked() != 0 {
		if !g.lost {
			g.lost = true
			g.log.Error().Uint64("last_version", g.latestVersionLocked()).
				Msg("admin state: the store no longer holds the admin layer; keeping the last known one and publishing it again")
		}
		return false
	}
	g.lost = false
	if doc == nil {
		doc = &state.Doc{}
	}
	p, err := g.buildLocked(g.base, doc)
	if err != nil {
		if g.pending == nil || g.pending.version != v {
			g.log.Error().Err(err).Uint64("version", v).Uint64("running_version", g.docVersion).
				Msg("admin state does not apply to this configuration; keeping the running one and refusing admin changes until it does")
		}
		g.pending = &pendingLayer{doc: doc, version: v, err: err}
		return false
	}
	if g.pending != nil {
		g.log.Info().Uint64("version", v).Msg("admin state applies to this configuration again")
	}
	g.pending = nil
	g.docVersion = v
	g.commitLocked(p)
	return true
}

// republishLocked writes the last known layer to a store that lost it,
// create-only, so one sidecar of the fleet wins and the others adopt its
// copy. It returns nil when there is nothing more to do; g.lost stays set
// while the store still lacks the layer.
func (g *Gateway) republishLocked(ctx context.Context) error {
	if !g.lost {
		return nil
	}
	last := g.doc
	if g.pending != nil {
		last = g.pending.doc
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	known := g.latestVersionLocked()
	v, err := g.store.Save(ctx, last, 0)
	switch {
	case errors.Is(err, state.ErrConflict):
		// Someone wrote it first (another sidecar republishing): adopt.
		return g.reloadDocLocked(ctx)
	case err != nil:
		return err
	}
	g.lost = false
	if g.pending != nil {
		g.pending.version = v
	} else {
		g.docVersion = v
	}
	g.layerMetricsLocked()
	g.log.Warn().Uint64("last_version", known).Uint64("version", v).Msg("admin state: published the last known layer again")
	return nil
}

// layerMetricsLocked sets the admin layer state gauge.
func (g *Gateway) layerMetricsLocked() {
	g.metrics.setLayerState(g.layerStateLocked())
}

// layerStateLocked is the admin layer's state word.
func (g *Gateway) layerStateLocked() string {
	switch {
	case g.pending != nil:
		return admin.LayerNotApplied
	case g.lost:
		return admin.LayerLost
	}
	return admin.LayerInSync
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
