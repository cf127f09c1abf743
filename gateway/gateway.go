// Package gateway assembles a running Outrigger from a configuration: it
// builds upstreams, services, routes and the proxy and admin handlers, swaps
// in new configurations on reload without losing per-target state, and
// serves the two listeners until told to stop.
//
// Contract:
//   - Apply is all or nothing: a configuration that fails to build leaves
//     the running one untouched.
//   - Every change (reload, admin change, adoption of the fleet's layer)
//     is built into one immutable configuration value and committed at
//     once: each upstream receives its whole spec (targets, overrides,
//     marks, balancer) in one call and swaps its snapshot once, or not at
//     all when its part did not change; the router is rebuilt only when
//     services or routes changed; direct-host upstreams keep their
//     identity and stats.
//   - A commit is one configuration generation: the upstreams' snapshots
//     of it are installed first, then the proxy's table (router and canary
//     percents) in one store, and a request resolves everything against
//     the generation of the table it loaded (upstream.SnapshotAt), so no
//     request mixes two generations of what it uses. Upstreams keep one
//     generation back: a request during whose life the table is replaced
//     twice picks from the current snapshots.
//   - Upstreams are kept across reloads by name, so balancer position,
//     in-flight counts and health state survive a reload.
//   - The configuration store (Apply, Mutate, Layer and CompareAndSet,
//     ResetState, adoption) and the runtime (upstreams, watchers,
//     listeners) have a lock each: store I/O runs under the writer lock
//     only, so Ready, Status, the metrics and the proxy never wait for the
//     store. CompareAndSet checks the revision it was handed under the
//     writer lock, which it holds until the commit.
//   - Admin changes are computed on the latest layer the store holds, so
//     no acknowledged change of another sidecar is overwritten: a stored
//     layer that does not build with this file is not applied (the last
//     good configuration stays; admin writes answer 409 until it builds),
//     and a stored layer that vanished is published again, never taken
//     for an empty one (DELETE /state resets on purpose).
//   - In a gateway group (fleet.group) the layer in force is the group's
//     version the group's head asks of this sidecar; admin writes publish
//     a version (auto_publish) or edit the group's draft, which is
//     validated here and applied nowhere until published (fleet.go). The
//     sidecar reports what it runs under a Consul session and takes part
//     in deciding the group's staged publish (fleetstage.go).
//   - Ready is false until every discovery watcher has had its source's
//     first answer or its block's initial_fetch_timeout passed; that
//     condition latches, so later registry outages and watchers added by
//     reloads do not make a ready gateway unready.
//   - Nothing here is package-level: two gateways can run in one process.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/certs"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/discovery/consul"
	kube "github.com/outrigger-gw/outrigger/discovery/kubernetes"
	"github.com/outrigger-gw/outrigger/discovery/nacos"
	"github.com/outrigger-gw/outrigger/proxy"
	"github.com/outrigger-gw/outrigger/proxy/plugins"
	"github.com/outrigger-gw/outrigger/proxy/router"
	"github.com/outrigger-gw/outrigger/state"
	"github.com/outrigger-gw/outrigger/tracing"
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
	// Store, when set, holds the admin layer instead of the store the
	// configuration's admin block names.
	Store state.Store
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
	// adminDone closes (once, adminDoneOnce) when the admin listener
	// starts shutting down: it ends the open stats streams, which would
	// otherwise hold the drain up.
	adminDone     chan struct{}
	adminDoneOnce sync.Once
	env           func(string) (string, bool)
	// zone is the sidecar's zone (proxy.zone, else OUTRIGGER_ZONE);
	// immutable after New.
	zone string
	// registrars announce the local service (none without a register
	// block); set by New, run by Serve. Those that probe the local service
	// (a check's health_url or grpc) are also readiness sources: localHealth.
	registrars       []registrar
	localHealth      []interface{ Healthy() bool }
	nacosPool        *nacos.Pool    // shared SDK clients of every Nacos source
	kubePool         *kube.Pool     // shared API clients and informers of every Kubernetes source
	consulProbes     *consul.Probes // agent reachability probes shared by Consul sources and the registrar
	discoveryMetrics *discoveryMetrics
	tracer           *tracing.Tracer        // nil: tracing off; set by New
	adminToken       atomic.Pointer[string] // the token in force (reloads rotate it)
	certs            *certs.Store           // the ssl listeners' certificates in force
	merges           atomic.Uint64          // state.Merge calls so far (merge): one per configuration change

	// The configuration store and the runtime have one lock each.
	//
	// write serialises every configuration change (Apply, Mutate,
	// CompareAndSet, ResetState, adopting or republishing the fleet's
	// layer) from building to commit, store I/O included. mu guards the
	// fields below and is held only to read them or to commit a built
	// configuration, never over store I/O: Ready, Status and the proxy
	// never wait for the store. The fields up to pending and lost change
	// only with both locks held, so a holder of write may read them
	// without mu.
	write      sync.Mutex
	mu         sync.Mutex
	base       *config.File // the configuration file as loaded
	layerBase  *config.File // what the admin layer's entities are over: base, or a posted declarative document's entities
	cfg        *config.File // effective: base + admin layer
	doc        *state.Doc   // the admin layer in force
	docVersion uint64       // its version in store
	rev        uint64       // increases with every commit: CompareAndSet's check
	store      state.Store  // nil: admin changes live in memory only
	splitters  map[string]*proxy.Splitter
	slots      map[string]int // canary service → index of its percent in the proxy's table
	stats      map[string]*serviceStats
	gen        uint64
	layerGens  admin.LayerGenerations // see countLayersLocked
	upstreams  map[string]*upstreamRT
	direct     map[string]*upstream.Upstream // services' one-target upstreams by host:port
	routing    *routing                      // what the router in force was built from
	router     *router.Router
	plugins    *plugins.Set // the router's compiled plugins
	watchers   []*watcher
	serving    bool            // Serve runs: new checkers and watchers start at once
	ctx        context.Context // Serve's context, for checkers started by Apply

	// Where the store's latest layer stands.
	// pending is that layer while it does not build with base (nil
	// otherwise): doc stays in force and Mutate answers 409. lost: the
	// store's copy vanished after a known version; the last known layer
	// (pending's, else doc) is being published again.
	pending *pendingLayer
	lost    bool

	// fleet is the sidecar's gateway group (nil without fleet.group);
	// immutable after New.
	fleet *fleetRT

	// Guarded by mu alone.
	stepBases map[string]rolloutBase // rollout plan and step baselines by service
	// draftBuilt is the last draft this sidecar saved (draft mode) and
	// its build's merge, for Effective: the next change to that draft
	// looks up in it instead of merging it again.
	draftBuilt draftBuild

	// discoveryReady latches once every watcher has had its first answer
	// (or its initial_fetch_timeout passed): later outages and watchers
	// added by reloads no longer hold readiness back.
	discoveryReady bool

	// commitStep, when set (by tests), runs between the swaps of a
	// commit, with g.write and g.mu held: after each upstream's Apply
	// (table false) and just before the table swap (table true). Nil in
	// production.
	commitStep func(table bool)
}

// New builds a gateway from cfg. It does not listen yet (see Serve). When
// it fails, what it had started (the tracer's export queue, registry
// clients) is stopped before it returns.
func New(cfg *config.File, o Options) (_ *Gateway, err error) {
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
		direct:     map[string]*upstream.Upstream{},
		doc:        &state.Doc{},
		stepBases:  map[string]rolloutBase{},
		zone:       cfg.Proxy.Zone,
	}
	if g.zone == "" {
		g.zone, _ = o.LookupEnv("OUTRIGGER_ZONE")
	}
	tr, err := newTracer(cfg, g.version, reg)
	if err != nil {
		return nil, err
	}
	g.tracer = tr
	defer func() {
		if err != nil {
			g.release(context.Background())
		}
	}()
	g.proxy = proxy.New(proxy.Options{
		Log:         o.Log.With().Str("log", "access").Logger(),
		AccessLog:   cfg.Log.AccessLog,
		Metrics:     g.metrics.proxy,
		MaxBodySize: cfg.Proxy.MaxBodySize,
		Panics:      g.metrics.requestPanics.WithLabelValues("proxy"),
		Tracer:      tr,

		AccessLogSuccessDrop: 1 - cfg.Log.AccessLogSuccessSampleRatio,
	})
	g.discoveryMetrics = newDiscoveryMetrics(reg)
	g.certs = newCertStore(reg, o.Log)
	storeErr := func(err error) { g.log.Warn().Err(err).Msg("admin state: watching the fleet store failed; retrying") }
	if err := g.openFleet(cfg, o, storeErr); err != nil {
		return nil, err
	}
	if g.fleet != nil {
		o.Store = g.fleet.store
	}
	g.adminDone = make(chan struct{})
	g.admin = admin.New(admin.Options{Merge: g.merge, Status: g.Status, Ready: g.Ready, Metrics: reg, Log: o.Log, Controller: g, Fleet: g.fleetAPI(), Done: g.adminDone,
		Panics: g.metrics.requestPanics.WithLabelValues("admin"),
		TokenFunc: func() string {
			if t := g.adminToken.Load(); t != nil {
				return *t
			}
			return ""
		}})
	g.nacosPool = nacos.NewPool()
	g.kubePool = kube.NewPool(kube.WithLookupEnv(g.env), kube.WithUserAgent("outrigger/"+g.version))
	g.consulProbes = consul.NewProbes()
	regs, err := g.buildRegistrars(cfg)
	if err != nil {
		return nil, cfg.Errorf(cfg.Register.Pos, "register: %v", err)
	}
	g.registrars = regs
	for _, r := range regs {
		if h, ok := r.(interface{ Healthy() bool }); ok {
			g.localHealth = append(g.localHealth, h)
		}
	}
	if g.store = o.Store; g.store == nil {
		if g.store, err = state.Open(cfg.Admin, g.env, storeErr); err != nil {
			return nil, cfg.Errorf(cfg.Admin.Pos, "admin: %v", err)
		}
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
	g.metrics.setLayerState(admin.LayerInSync)
	return g, nil
}

// release stops what New started besides the listeners: idle upstream
// connections, the Nacos clients and the tracer, whose queued spans go out
// until ctx ends. Serve calls it after the drain, New when it fails.
func (g *Gateway) release(ctx context.Context) {
	g.transports.CloseIdle()
	if g.nacosPool != nil {
		_ = g.nacosPool.Close()
	}
	if g.tracer != nil {
		if err := g.tracer.Shutdown(ctx); err != nil {
			g.log.Warn().Err(err).Msg("tracing: spans still queued at shutdown were dropped")
		}
	}
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
		AdminLayer:       g.adminLayerLocked(),
	}
}

// adminLayerLocked is the admin layer's part of Status.
func (g *Gateway) adminLayerLocked() admin.AdminLayer {
	l := admin.AdminLayer{Store: "memory", State: g.layerStateLocked(), Version: g.docVersion, StoreVersion: g.latestVersionLocked()}
	switch g.store.(type) {
	case *state.ConsulStore, *state.FleetStore:
		l.Store = "consul"
	case *state.FileStore:
		l.Store = "file"
	}
	switch {
	case g.pending != nil:
		l.Error = g.pending.err.Error()
	case g.lost:
		l.StoreVersion = 0
		l.Error = fmt.Sprintf("the store no longer holds the admin layer (last seen at version %d); publishing it again", g.latestVersionLocked())
	}
	return l
}

// Ready reports whether the gateway should receive traffic: it is serving,
// every upstream with a discovery source has had the source's first answer
// (or the block's initial_fetch_timeout passed) since the start, and the
// local service it registers (if any) answers its health check. Once the
// first answers are in, discovery no longer affects readiness: an outage of
// a registry keeps serving the last good targets.
func (g *Gateway) Ready() (bool, string) {
	g.mu.Lock()
	serving := g.serving
	var waiting []string
	if serving {
		waiting = g.discoveryWaitingLocked(time.Now())
	}
	g.mu.Unlock()
	switch {
	case !serving:
		return false, "not serving"
	case len(waiting) > 0:
		return false, "waiting for the first discovery answers: " + strings.Join(waiting, "; ")
	}
	for _, h := range g.localHealth {
		if !h.Healthy() {
			return false, "the local service is not healthy"
		}
	}
	return true, "ready"
}

// discoveryWaitingLocked lists the watchers readiness still waits for and
// latches discoveryReady when there are none; the caller holds g.mu.
func (g *Gateway) discoveryWaitingLocked(now time.Time) []string {
	if g.discoveryReady {
		return nil
	}
	var waiting, late []string
	for _, w := range g.watchers {
		msg, timedOut := w.waitingFor(now)
		if msg != "" {
			waiting = append(waiting, msg)
		}
		if timedOut {
			late = append(late, w.upstream+" ("+w.src.Name()+")")
		}
	}
	if len(waiting) == 0 {
		g.discoveryReady = true
		if len(late) > 0 {
			g.log.Warn().Strs("upstreams", late).Msg("no first discovery answer within initial_fetch_timeout; reporting ready without it")
		}
	}
	return waiting
}

// reconcileWatchers keeps running watchers that the new configuration
// still asks for, stops the others (dropping their targets) and starts the
// new ones; the caller holds g.mu.
func (g *Gateway) reconcileWatchers(want []*watcher) {
	if g.serving {
		// Latch readiness on the watchers that ran so far before new
		// ones join.
		g.discoveryWaitingLocked(time.Now())
	}
	var keep []*watcher
	used := make([]bool, len(want))
	var replaced []*watcher
	for _, old := range g.watchers {
		kept := false
		for i, nw := range want {
			if !used[i] && sameWatcher(old, nw) {
				used[i], kept = true, true
				old.readyTimeout = nw.readyTimeout
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
// proxyLn is served as the configuration's first proxy listener.
func (g *Gateway) Serve(ctx context.Context, proxyLn, adminLn net.Listener, drainTimeout time.Duration) error {
	return g.ServeListeners(ctx, []net.Listener{proxyLn}, adminLn, drainTimeout)
}

// ServeListeners is Serve with one net.Listener per proxy listener of the
// configuration (proxyLns[i] serves proxy.listen's entry i).
func (g *Gateway) ServeListeners(ctx context.Context, proxyLns []net.Listener, adminLn net.Listener, drainTimeout time.Duration) error {
	g.mu.Lock()
	clients := g.base.Proxy
	g.mu.Unlock()
	ls := clients.ListenersOrDefault()
	if len(proxyLns) == 0 || len(proxyLns) > len(ls) {
		return fmt.Errorf("%d proxy listeners given for %d configured", len(proxyLns), len(ls))
	}
	// Checkers and watchers outlive ctx until the drain is over: requests
	// still in flight keep being balanced.
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	g.startCheckers(bg)
	defer g.stopCheckers()
	go g.runRollouts(bg)
	if g.store != nil {
		go g.store.Watch(bg, func(doc *state.Doc, v uint64) { g.remoteChange(bg, doc, v) })
	}
	if g.fleet != nil {
		// The report is withdrawn (its session ended) before Serve
		// returns.
		fleetDone := make(chan struct{})
		go func() { defer close(fleetDone); g.runFleet(bg) }()
		defer func() { stopBG(); <-fleetDone }()
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
	go g.certs.Run(bg, clients.SSLPollInterval)
	stdLog := zerologStd(g.log)
	ps, serves := g.proxyServers(clients, ls, proxyLns, stdLog)
	as := &http.Server{Handler: g.admin, ReadHeaderTimeout: 10 * time.Second, ErrorLog: stdLog}
	as.RegisterOnShutdown(func() { g.adminDoneOnce.Do(func() { close(g.adminDone) }) })
	errc := make(chan error, len(serves)+1)
	for _, serve := range serves {
		go func() { errc <- serve() }()
	}
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
	// The spans of the drained requests go out, within the drain
	// deadline's length.
	tctx, tcancel := context.WithTimeout(context.Background(), drainTimeout)
	g.release(tctx)
	tcancel()
	if first != nil && !errors.Is(first, http.ErrServerClosed) {
		return first
	}
	return nil
}
