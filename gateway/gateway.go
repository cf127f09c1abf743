// Package gateway assembles a running Outrigger from a configuration: it
// builds upstreams, services, routes and the proxy and admin handlers, swaps
// in new configurations on reload without losing per-target state, and
// serves the two listeners until told to stop.
//
// Contract:
//   - Apply is all or nothing: a configuration that fails to build leaves
//     the running one untouched.
//   - Upstreams are kept across reloads by name, so balancer position,
//     in-flight counts and (later) health state survive a reload.
//   - Nothing here is package-level: two gateways can run in one process.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/discovery/consul"
	"github.com/outrigger-gw/outrigger/proxy"
	"github.com/outrigger-gw/outrigger/proxy/router"
	"github.com/outrigger-gw/outrigger/upstream"
)

// Options configure a Gateway.
type Options struct {
	Log     zerolog.Logger
	Version string
	// LookupEnv reads the environment (tokens named by *_env keys); nil
	// means os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Gateway is one running Outrigger instance.
type Gateway struct {
	log        zerolog.Logger
	version    string
	started    time.Time
	registry   *prometheus.Registry
	metrics    *metrics
	transports *proxy.Transports
	proxy      *proxy.Proxy
	admin      http.Handler
	env        func(string) (string, bool)
	// registrar announces the local service (nil without a register
	// block); set by New, run by Serve.
	registrar        *consul.Registrar
	discoveryMetrics *discoveryMetrics

	// mu serialises Apply and guards the fields below.
	mu        sync.Mutex
	cfg       *config.File
	gen       uint64
	upstreams map[string]*upstreamRT
	watchers  []*watcher
	serving   bool            // Serve runs: new checkers and watchers start at once
	ctx       context.Context // Serve's context, for checkers started by Apply
}

// New builds a gateway from cfg. It does not listen yet (see Serve).
func New(cfg *config.File, o Options) (*Gateway, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	g := &Gateway{
		env:        o.LookupEnv,
		log:        o.Log,
		version:    o.Version,
		started:    time.Now(),
		registry:   reg,
		metrics:    newMetrics(reg),
		transports: proxy.NewTransports(),
		upstreams:  map[string]*upstreamRT{},
	}
	g.proxy = proxy.New(proxy.Options{
		Log:         o.Log.With().Str("log", "access").Logger(),
		AccessLog:   cfg.Log.AccessLog,
		Metrics:     proxy.NewMetrics(reg),
		MaxBodySize: cfg.Proxy.MaxBodySize,
	})
	g.discoveryMetrics = newDiscoveryMetrics(reg)
	g.admin = admin.New(admin.Options{Status: g.Status, Ready: g.Ready, Metrics: reg, Log: o.Log})
	r, err := g.registrarOf(cfg)
	if err != nil {
		return nil, cfg.Errorf(cfg.Register.Pos, "register: %v", err)
	}
	g.registrar = r
	if err := g.Apply(cfg); err != nil {
		return nil, err
	}
	return g, nil
}

// ProxyHandler returns the data-plane handler.
func (g *Gateway) ProxyHandler() http.Handler { return g.proxy }

// AdminHandler returns the admin API handler.
func (g *Gateway) AdminHandler() http.Handler { return g.admin }

// Config returns the configuration in force.
func (g *Gateway) Config() *config.File {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cfg
}

// Upstream returns the named upstream, or nil.
func (g *Gateway) Upstream(name string) *upstream.Upstream {
	g.mu.Lock()
	defer g.mu.Unlock()
	if rt := g.upstreams[name]; rt != nil {
		return rt.u
	}
	return nil
}

// Status is what /status reports.
func (g *Gateway) Status() admin.Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	return admin.Status{
		Version:          g.version,
		StartedAt:        g.started,
		Uptime:           time.Since(g.started),
		ConfigGeneration: g.gen,
		ConfigFile:       g.cfg.Path,
		Upstreams:        len(g.upstreams),
		Routes:           len(g.cfg.Routes),
		Services:         len(g.cfg.Services),
	}
}

// Ready reports whether the gateway should receive traffic: it is serving
// and the local service it registers (if any) answers its health check.
func (g *Gateway) Ready() (bool, string) {
	g.mu.Lock()
	serving := g.serving
	g.mu.Unlock()
	switch {
	case !serving:
		return false, "not serving"
	case g.registrar != nil && !g.registrar.Healthy():
		return false, "the local service is not healthy"
	}
	return true, "ready"
}

// Apply builds everything cfg describes and swaps it in. On error nothing
// changes.
func (g *Gateway) Apply(cfg *config.File) error {
	g.mu.Lock()
	defer g.mu.Unlock()

	// Build phase: nothing visible changes until every piece is ready.
	ups := make(map[string]*upstreamRT, len(cfg.Upstreams))
	for _, cu := range cfg.Upstreams {
		rt, err := g.buildUpstream(cu, g.upstreams[cu.Name])
		if err != nil {
			return cfg.Errorf(cu.Pos, "upstream %q: %v", cu.Name, err)
		}
		ups[cu.Name] = rt
	}
	var watchers []*watcher
	for _, cu := range cfg.Upstreams {
		ws, err := g.sourcesOf(cu)
		if err != nil {
			return cfg.Errorf(cu.Discovery.Pos, "upstream %q: %v", cu.Name, err)
		}
		for _, w := range ws {
			w.u = ups[cu.Name].u
		}
		watchers = append(watchers, ws...)
	}
	targets := make(map[string][]upstream.Target, len(cfg.Upstreams))
	for _, cu := range cfg.Upstreams {
		ts := make([]upstream.Target, 0, len(cu.Targets))
		for _, t := range cu.Targets {
			ts = append(ts, upstream.Target{Addr: t.Target, Weight: t.Weight, Tags: t.Tags})
		}
		targets[cu.Name] = ts
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
		if rt, ok := ups[cs.Host]; ok {
			svc.Upstream = rt.u
			svc.Hash = rt.hash
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
		services[cs.Name] = svc
	}
	routes := make([]router.Route, 0, len(cfg.Routes))
	for _, cr := range cfg.Routes {
		svc := services[cr.Service]
		if svc == nil {
			return cfg.Errorf(cr.Pos, "route %q: service %q not found", cr.Name, cr.Service)
		}
		var res []*regexp.Regexp
		for _, p := range cr.Paths {
			if strings.HasPrefix(p, "~") {
				re, err := regexp.Compile("^(?:" + p[1:] + ")")
				if err != nil {
					return cfg.Errorf(cr.Pos, "route %q: path %q: %v", cr.Name, p, err)
				}
				res = append(res, re)
			}
		}
		routes = append(routes, router.Route{
			Name: cr.Name, Hosts: cr.Hosts, Paths: cr.Paths, Methods: cr.Methods, Headers: cr.Headers,
			StripPath: cr.StripPath, PreserveHost: cr.PreserveHost, RegexPriority: cr.RegexPriority,
			Value: &proxy.Route{Name: cr.Name, Service: svc, StripPath: cr.StripPath, PreserveHost: cr.PreserveHost, Regexps: res},
		})
	}
	rt, err := router.New(routes)
	if err != nil {
		return fmt.Errorf("%s: routes: %w", cfg.Path, err)
	}

	// Commit phase.
	for name, rt := range ups {
		if old := g.upstreams[name]; old != nil && old.u != rt.u {
			g.retire(old)
		}
		rt.u.SetBalancer(rt.balancer)
		rt.u.SetTargets(upstream.StaticSource, targets[name])
		if g.serving && rt.checker != nil {
			rt.checker.Start(g.ctx)
		}
	}
	for name, old := range g.upstreams {
		if _, ok := ups[name]; !ok {
			g.retire(old)
			g.metrics.forget(name)
		}
	}
	g.reconcileWatchers(watchers)
	next := ups
	g.upstreams = next
	g.gen++
	g.cfg = cfg
	g.proxy.SetTable(&proxy.Table{Router: rt, Generation: g.gen})
	g.metrics.generation.Set(float64(g.gen))
	return nil
}

// reconcileWatchers keeps running watchers that the new configuration
// still asks for, stops the others (dropping their targets) and starts the
// new ones; the caller holds g.mu.
func (g *Gateway) reconcileWatchers(want []*watcher) {
	var keep []*watcher
	used := make([]bool, len(want))
	for _, old := range g.watchers {
		kept := false
		for i, nw := range want {
			if !used[i] && sameWatcher(old, nw) {
				used[i], kept = true, true
				keep = append(keep, old)
				break
			}
		}
		if !kept {
			stopWatcher(old, true)
			g.discoveryMetrics.forget(old.upstream, old.src.Name())
		}
	}
	for i, nw := range want {
		if used[i] {
			continue
		}
		if g.serving {
			g.startWatcher(g.ctx, nw)
		}
		keep = append(keep, nw)
	}
	g.watchers = keep
}

// retire stops what an upstream that left the configuration runs.
func (g *Gateway) retire(rt *upstreamRT) {
	if rt.checker != nil {
		rt.checker.Stop()
	}
	rt.u.Close()
}

// startCheckers starts the active health checks (Serve calls it).
func (g *Gateway) startCheckers(ctx context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ctx, g.serving = ctx, true
	for _, rt := range g.upstreams {
		if rt.checker != nil {
			rt.checker.Start(ctx)
		}
	}
	for _, w := range g.watchers {
		g.startWatcher(ctx, w)
	}
}

// stopCheckers stops every health checker and upstream timer.
func (g *Gateway) stopCheckers() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.serving = false
	for _, w := range g.watchers {
		stopWatcher(w, false)
		w.cancel = nil
	}
	for _, rt := range g.upstreams {
		g.retire(rt)
	}
}

// Serve runs the proxy and admin servers on the given listeners until ctx
// ends, then stops accepting, drains in-flight requests for up to
// drainTimeout and returns. It returns the first server error, if any.
func (g *Gateway) Serve(ctx context.Context, proxyLn, adminLn net.Listener, drainTimeout time.Duration) error {
	// Checkers and watchers outlive ctx until the drain is over: requests
	// still in flight keep being balanced.
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	g.startCheckers(bg)
	defer g.stopCheckers()
	regDone := make(chan struct{})
	regCtx, stopReg := context.WithCancel(bg)
	defer stopReg()
	if g.registrar != nil {
		go func() {
			defer close(regDone)
			if err := g.registrar.Run(regCtx); err != nil {
				g.log.Error().Err(err).Msg("consul registration stopped")
			}
		}()
	} else {
		close(regDone)
	}
	stdLog := zerologStd(g.log)
	ps := &http.Server{Handler: g.proxy, ReadHeaderTimeout: 30 * time.Second, ErrorLog: stdLog}
	as := &http.Server{Handler: g.admin, ReadHeaderTimeout: 10 * time.Second, ErrorLog: stdLog}
	errc := make(chan error, 2)
	go func() { errc <- ps.Serve(proxyLn) }()
	go func() { errc <- as.Serve(adminLn) }()
	var first error
	select {
	case <-ctx.Done():
	case err := <-errc:
		first = err
	}
	// Leave the registry first so peers stop sending new requests, then
	// drain what is in flight.
	stopReg()
	<-regDone
	g.log.Info().Dur("drain_timeout", drainTimeout).Msg("shutting down: draining in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range []*http.Server{ps, as} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Shutdown(sctx); err != nil {
				g.log.Warn().Err(err).Msg("drain deadline reached; closing remaining connections")
				_ = s.Close()
			}
		}()
	}
	wg.Wait()
	g.transports.CloseIdle()
	if first != nil && !errors.Is(first, http.ErrServerClosed) {
		return first
	}
	return nil
}
