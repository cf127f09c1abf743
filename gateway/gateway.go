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
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/discovery/consul"
	"github.com/outrigger-gw/outrigger/discovery/nacos"
	"github.com/outrigger-gw/outrigger/proxy"
	"github.com/outrigger-gw/outrigger/state"
	"github.com/outrigger-gw/outrigger/upstream"
)

// Options configure a Gateway.
type Options struct {
	Log     zerolog.Logger
	Version string
	// LookupEnv reads the environment (tokens named by *_env keys); nil
	// means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// LoadState restores the admin layer from the configured store (run);
	// validate leaves it alone.
	LoadState bool
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
	// registrars announce the local service (none without a register
	// block); set by New, run by Serve. consulReg, when set, is also the
	// readiness source (it probes the local service's health_url).
	registrars       []registrar
	consulReg        *consul.Registrar
	nacosPool        *nacos.Pool // shared SDK clients of every Nacos source
	discoveryMetrics *discoveryMetrics
	adminToken       atomic.Pointer[string] // the token in force (reloads rotate it)

	// mu serialises Apply and Mutate and guards the fields below.
	mu         sync.Mutex
	base       *config.File // the configuration file as loaded
	cfg        *config.File // effective: base + admin layer
	doc        *state.Doc   // the admin layer
	docVersion uint64       // its version in store
	store      state.Store  // nil: admin changes live in memory only
	splitters  map[string]*proxy.Splitter
	stats      map[string]*serviceStats
	stepBases  map[string]stepBase // rollout step baselines by service
	gen        uint64
	upstreams  map[string]*upstreamRT
	watchers   []*watcher
	serving    bool            // Serve runs: new checkers and watchers start at once
	ctx        context.Context // Serve's context, for checkers started by Apply
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
		doc:        &state.Doc{},
		stepBases:  map[string]stepBase{},
	}
	g.proxy = proxy.New(proxy.Options{
		Log:         o.Log.With().Str("log", "access").Logger(),
		AccessLog:   cfg.Log.AccessLog,
		Metrics:     proxy.NewMetrics(reg),
		MaxBodySize: cfg.Proxy.MaxBodySize,
	})
	g.discoveryMetrics = newDiscoveryMetrics(reg)
	g.admin = admin.New(admin.Options{Status: g.Status, Ready: g.Ready, Metrics: reg, Log: o.Log, Controller: g,
		TokenFunc: func() string {
			if t := g.adminToken.Load(); t != nil {
				return *t
			}
			return ""
		}})
	g.nacosPool = nacos.NewPool()
	regs, err := g.buildRegistrars(cfg)
	if err != nil {
		return nil, cfg.Errorf(cfg.Register.Pos, "register: %v", err)
	}
	g.registrars = regs
	for _, r := range regs {
		if c, ok := r.(*consul.Registrar); ok {
			g.consulReg = c
		}
	}
	storeErr := func(err error) { g.log.Warn().Err(err).Msg("admin state: watching the fleet store failed; retrying") }
	if g.store, err = state.Open(cfg.Admin, g.env, storeErr); err != nil {
		return nil, cfg.Errorf(cfg.Admin.Pos, "admin: %v", err)
	}
	if g.store != nil && o.LoadState {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		doc, v, err := g.store.Load(ctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("admin state: %w", err)
		}
		g.doc, g.docVersion = doc, v
	}
	if err := g.Apply(cfg); err != nil {
		if g.docVersion > 0 {
			return nil, fmt.Errorf("the configuration with the saved admin state (version %d) does not build: %w", g.docVersion, err)
		}
		return nil, err
	}
	return g, nil
}

// ProxyHandler returns the data-plane handler.
func (g *Gateway) ProxyHandler() http.Handler { return g.proxy }

// AdminHandler returns the admin API handler.
func (g *Gateway) AdminHandler() http.Handler { return g.admin }

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
	case g.consulReg != nil && !g.consulReg.Healthy():
		return false, "the local service is not healthy"
	}
	return true, "ready"
}

// remoteChange adopts an admin layer another sidecar of the fleet wrote.
func (g *Gateway) remoteChange(doc *state.Doc, v uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if v == g.docVersion {
		return // what we hold (versions may go backwards when Consul loses its data)
	}
	_ = g.adoptLocked(doc, v)
	g.log.Info().Uint64("version", v).Msg("admin state changed by another sidecar; applied")
}

// reconcileWatchers keeps running watchers that the new configuration
// still asks for, stops the others (dropping their targets) and starts the
// new ones; the caller holds g.mu.
func (g *Gateway) reconcileWatchers(want []*watcher) {
	var keep []*watcher
	used := make([]bool, len(want))
	var replaced []*watcher
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
			stopWatcher(old, false)
			replaced = append(replaced, old)
		}
	}
	for i, nw := range want {
		if used[i] {
			continue
		}
		// The targets of a replaced watcher of the same upstream stay
		// until the new one has answered (a changed filter must not leave
		// the upstream empty in between); the others go now.
		for j, old := range replaced {
			if old != nil && old.upstream == nw.upstream {
				nw.handover = append(nw.handover, old.src.Name())
				replaced[j] = nil
			}
		}
		if g.serving {
			g.startWatcher(g.ctx, nw)
		}
		keep = append(keep, nw)
	}
	for _, old := range replaced {
		if old != nil {
			old.u.SetTargets(old.src.Name(), nil)
			g.discoveryMetrics.forget(old.upstream, old.src.Name())
		}
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
// ends (the proxy's client connection settings are those of the
// configuration in force when Serve starts), then stops accepting, drains in-flight requests for up to
// drainTimeout and returns. It returns the first server error, if any.
func (g *Gateway) Serve(ctx context.Context, proxyLn, adminLn net.Listener, drainTimeout time.Duration) error {
	// Checkers and watchers outlive ctx until the drain is over: requests
	// still in flight keep being balanced.
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	g.startCheckers(bg)
	defer g.stopCheckers()
	go g.runRollouts(bg)
	if g.store != nil {
		go g.store.Watch(bg, g.remoteChange)
	}
	regDone := make(chan struct{})
	regCtx, stopReg := context.WithCancel(bg)
	defer stopReg()
	go func() {
		defer close(regDone)
		var wg sync.WaitGroup
		for _, r := range g.registrars {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.Run(regCtx); err != nil {
					g.log.Error().Err(err).Msg("registration stopped")
				}
			}()
		}
		wg.Wait()
	}()
	stdLog := zerologStd(g.log)
	g.mu.Lock()
	clients := g.base.Proxy
	g.mu.Unlock()
	ps, proxyLn := proxyListener(clients, g.proxy, proxyLn, stdLog)
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
	for _, s := range []server{ps, as} {
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
	_ = g.nacosPool.Close()
	if first != nil && !errors.Is(first, http.ErrServerClosed) {
		return first
	}
	return nil
}
