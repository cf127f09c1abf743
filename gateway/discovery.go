package gateway

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/discovery"
	"github.com/outrigger-gw/outrigger/discovery/consul"
	"github.com/outrigger-gw/outrigger/discovery/dnssrv"
	kube "github.com/outrigger-gw/outrigger/discovery/kubernetes"
	"github.com/outrigger-gw/outrigger/discovery/nacos"
	"github.com/outrigger-gw/outrigger/upstream"
)

// watcher runs one discovery source for one upstream.
type watcher struct {
	upstream string
	spec     any // the config block it was built from
	u        *upstream.Upstream
	src      discovery.Source
	grace    time.Duration
	// handover names sources of replaced watchers whose targets this one
	// takes over: dropped (unless it has the same name) at its first answer.
	handover []string
	// readyTimeout is how long Ready waits for the first answer (0: as
	// long as it takes); reconcileWatchers updates it on kept watchers, under
	// g.mu.
	readyTimeout time.Duration
	cancel       context.CancelFunc
	done         chan struct{}

	// first is written by the watch goroutine and read by Ready.
	first firstAnswer
}

// firstAnswer records whether a watcher's source has answered yet.
//
// Concurrency: mu guards every field.
type firstAnswer struct {
	mu       sync.Mutex
	started  time.Time // when the watcher started; zero before
	answered bool      // a set (even an empty one) came
	lastErr  error     // the last failure since the last answer
}

func (f *firstAnswer) start(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = now
}

func (f *firstAnswer) observe(ev upstream.WatchEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ev.Kind == "error" {
		f.lastErr = ev.Err
		return
	}
	f.answered, f.lastErr = true, nil
}

func (f *firstAnswer) state() (started time.Time, answered bool, lastErr error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.started, f.answered, f.lastErr
}

// waitingFor describes what readiness still waits for from w at now: "" when
// its source has answered or its initial_fetch_timeout has passed (late
// reports that).
func (w *watcher) waitingFor(now time.Time) (waiting string, late bool) {
	started, answered, lastErr := w.first.state()
	if answered || started.IsZero() {
		return "", false
	}
	waited := now.Sub(started)
	if w.readyTimeout > 0 && waited >= w.readyTimeout {
		return "", true
	}
	kind, _, _ := strings.Cut(w.src.Name(), ":")
	msg := fmt.Sprintf("upstream %s: no answer from %s yet", w.upstream, kind)
	if w.readyTimeout > 0 {
		msg += fmt.Sprintf(" (waited %s of initial_fetch_timeout %s)", waited.Round(time.Second), w.readyTimeout)
	}
	if lastErr != nil {
		msg += ": " + lastErr.Error()
	}
	return msg, false
}

// sourcesOf builds the discovery sources an upstream's config asks for.
func (g *Gateway) sourcesOf(cu config.Upstream) ([]*watcher, error) {
	d := cu.Discovery
	if d == nil {
		return nil, nil
	}
	var out []*watcher
	if c := d.Consul; c != nil {
		token := ""
		if c.TokenEnv != "" {
			token, _ = g.env(c.TokenEnv)
		}
		src, err := consul.NewSource(consul.SourceConfig{
			Address: c.Address, Scheme: c.Scheme, Service: c.Service, Tags: c.Tags, Meta: c.Meta,
			Datacenter: c.Datacenter, PassingOnly: c.PassingOnly, Token: token, WeightMetaKey: c.WeightMetaKey, ZoneMetaKey: c.ZoneMetaKey,
		}, consul.WithLookupEnv(g.env), consul.WithProbes(g.consulProbes))
		if err != nil {
			return nil, fmt.Errorf("discovery.consul: %w", err)
		}
		out = append(out, &watcher{upstream: cu.Name, spec: *c, src: src, grace: d.EmptyGrace, readyTimeout: d.InitialFetchTimeout})
	}
	if n := d.Nacos; n != nil {
		user, pass := g.nacosCredentials(n.Nacos)
		src, err := nacos.NewSource(g.nacosPool, nacos.SourceConfig{
			Servers: n.Servers, GRPCPort: n.GRPCPort, Namespace: n.Namespace, Group: n.Group, Service: n.Service,
			Clusters: n.Clusters, Metadata: n.Metadata, Username: user, Password: pass,
		})
		if err != nil {
			return nil, fmt.Errorf("discovery.nacos: %w", err)
		}
		out = append(out, &watcher{upstream: cu.Name, spec: *n, src: src, grace: d.EmptyGrace, readyTimeout: d.InitialFetchTimeout})
	}
	if k := d.Kubernetes; k != nil {
		src, err := kube.NewSource(g.kubePool, kube.SourceConfig{
			Kubeconfig: k.Kubeconfig, Namespace: k.Namespace, Service: k.Service, Port: k.Port, LabelSelector: k.LabelSelector,
		})
		if err != nil {
			return nil, fmt.Errorf("discovery.kubernetes: %w", err)
		}
		out = append(out, &watcher{upstream: cu.Name, spec: *k, src: src, grace: d.EmptyGrace, readyTimeout: d.InitialFetchTimeout})
	}
	if s := d.DNSSRV; s != nil {
		src, err := dnssrv.NewSource(dnssrv.Config{Name: s.Name, Resolver: s.Resolver, MinTTL: s.MinTTL, MaxTTL: s.MaxTTL})
		if err != nil {
			return nil, fmt.Errorf("discovery.dns_srv: %w", err)
		}
		out = append(out, &watcher{upstream: cu.Name, spec: *s, src: src, grace: d.EmptyGrace, readyTimeout: d.InitialFetchTimeout})
	}
	return out, nil
}

// sameWatcher reports whether a running watcher can stand for a new one.
func sameWatcher(old, nw *watcher) bool {
	return old.upstream == nw.upstream && old.u == nw.u && old.grace == nw.grace && reflect.DeepEqual(old.spec, nw.spec)
}

// startWatcher runs w until its context ends; the caller holds g.mu.
func (g *Gateway) startWatcher(ctx context.Context, w *watcher) {
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})
	log := g.log.With().Str("upstream", w.upstream).Str("source", w.src.Name()).Logger()
	handover := w.handover
	w.handover = nil
	w.first.start(time.Now())
	go func() {
		defer close(w.done)
		w.u.Watch(ctx, w.src, upstream.WatchOptions{EmptyGrace: w.grace, OnEvent: func(ev upstream.WatchEvent) {
			w.first.observe(ev)
			if ev.Kind != "error" && handover != nil {
				for _, name := range handover {
					if name != w.src.Name() {
						w.u.SetTargets(name, nil)
						g.discoveryMetrics.forget(w.upstream, name)
					}
				}
				handover = nil
			}
			g.discoveryMetrics.observe(w.upstream, ev)
			switch ev.Kind {
			case "error":
				log.Warn().Err(ev.Err).Msg("discovery failed; keeping the last known targets")
			case "empty-pending":
				log.Warn().Dur("grace", w.grace).Msg("discovery answered empty; dropping the targets after the grace unless they come back")
			case "empty":
				log.Warn().Msg("discovery: no targets")
			default:
				log.Debug().Int("targets", ev.Targets).Msg("discovery update")
			}
		}})
	}()
}

// stopWatcher stops w and drops its targets when drop is true.
func stopWatcher(w *watcher, drop bool) {
	if w.cancel != nil {
		w.cancel()
		<-w.done
	}
	if drop {
		w.u.SetTargets(w.src.Name(), nil)
	}
}

// discoveryMetrics counts discovery updates per source, times each update
// from the registry change to the live picker, and reports at scrape time
// the age of each source's last good answer and how stale its targets are.
//
// Concurrency: the vectors are safe for concurrent use; mu guards src.
type discoveryMetrics struct {
	updates   *prometheus.CounterVec
	targets   *prometheus.GaugeVec
	apply     *prometheus.HistogramVec
	errors    *prometheus.GaugeVec
	ageDesc   *prometheus.Desc
	staleDesc *prometheus.Desc

	mu  sync.Mutex
	src map[[2]string]*sourceState // by upstream and source name
}

// sourceState is what the scrape-time gauges read of one source.
type sourceState struct {
	kind     string    // the source kind: consul, nacos, kubernetes, dns_srv
	lastGood time.Time // the last good answer (zero before one)
	// failingSince is when the current run of failures began (zero while
	// the last emission was a good answer).
	failingSince time.Time
}

// applyBuckets spans a same-host registry (milliseconds) to a slow DNS
// resolver or an overloaded control plane (seconds).
var applyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newDiscoveryMetrics(reg prometheus.Registerer) *discoveryMetrics {
	m := &discoveryMetrics{
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "outrigger", Name: "discovery_updates_total",
			Help: "Discovery source emissions by kind: update, error, empty-pending, empty.",
		}, []string{"upstream", "source", "kind"}),
		targets: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "outrigger", Name: "discovery_targets",
			Help: "Targets in each source's last good answer.",
		}, []string{"upstream", "source"}),
		apply: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "outrigger", Name: "discovery_apply_seconds",
			Help:    "Registry-to-traffic lag: from the source seeing the registry change to the upstream's new picker being live.",
			Buckets: applyBuckets,
		}, []string{"upstream", "source_kind"}),
		errors: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "outrigger", Name: "discovery_consecutive_errors",
			Help: "Failed reads of the source since its last good answer (0 after a good answer).",
		}, []string{"upstream", "source_kind"}),
		ageDesc: prometheus.NewDesc("outrigger_discovery_last_success_age_seconds",
			"Seconds since the source last answered (the age of the targets in use).", []string{"upstream", "source"}, nil),
		staleDesc: prometheus.NewDesc("outrigger_discovery_staleness_seconds",
			"Seconds the source has been failing to confirm its targets: 0 while its watch answers, else the time since the first failure of the current run.",
			[]string{"upstream", "source_kind"}, nil),
		src: map[[2]string]*sourceState{},
	}
	reg.MustRegister(m.updates, m.targets, m.apply, m.errors, m)
	return m
}

// sourceKind is the part of a source name before its first colon.
func sourceKind(source string) string {
	kind, _, _ := strings.Cut(source, ":")
	return kind
}

func (m *discoveryMetrics) observe(up string, ev upstream.WatchEvent) {
	kind := sourceKind(ev.Source)
	m.updates.WithLabelValues(up, ev.Source, ev.Kind).Inc()
	m.mu.Lock()
	defer m.mu.Unlock()
	key := [2]string{up, ev.Source}
	st := m.src[key]
	if st == nil {
		st = &sourceState{kind: kind}
		m.src[key] = st
	}
	if ev.Kind == "error" {
		if st.failingSince.IsZero() {
			st.failingSince = cmpOrTime(ev.Observed, ev.At)
		}
		m.errors.WithLabelValues(up, kind).Inc()
		return
	}
	st.lastGood, st.failingSince = ev.At, time.Time{}
	m.errors.WithLabelValues(up, kind).Set(0)
	if ev.Kind == "update" || ev.Kind == "empty" {
		m.targets.WithLabelValues(up, ev.Source).Set(float64(ev.Targets))
	}
	if !ev.Live.IsZero() && !ev.Observed.IsZero() && ev.Kind == "update" {
		m.apply.WithLabelValues(up, kind).Observe(max(ev.Live.Sub(ev.Observed), 0).Seconds())
	}
}

// cmpOrTime is a unless it is zero, else b.
func cmpOrTime(a, b time.Time) time.Time {
	if a.IsZero() {
		return b
	}
	return a
}

func (m *discoveryMetrics) forget(up, source string) {
	kind := sourceKind(source)
	m.targets.DeleteLabelValues(up, source)
	m.apply.DeleteLabelValues(up, kind)
	m.errors.DeleteLabelValues(up, kind)
	m.mu.Lock()
	delete(m.src, [2]string{up, source})
	m.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (m *discoveryMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.ageDesc
	ch <- m.staleDesc
}

// Collect implements prometheus.Collector.
func (m *discoveryMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	// A source being replaced by another of its kind (until the new one's
	// first answer) shares its series: the stalest of the two is reported.
	stale := map[[2]string]float64{}
	for k, st := range m.src {
		if !st.lastGood.IsZero() {
			ch <- prometheus.MustNewConstMetric(m.ageDesc, prometheus.GaugeValue, now.Sub(st.lastGood).Seconds(), k[0], k[1])
		}
		v := 0.0
		if !st.failingSince.IsZero() {
			v = max(now.Sub(st.failingSince), 0).Seconds()
		}
		key := [2]string{k[0], st.kind}
		stale[key] = max(stale[key], v)
	}
	for k, v := range stale {
		ch <- prometheus.MustNewConstMetric(m.staleDesc, prometheus.GaugeValue, v, k[0], k[1])
	}
}

// nacosCredentials reads the username and password a nacos block names.
func (g *Gateway) nacosCredentials(n config.Nacos) (user, pass string) {
	if n.UsernameEnv != "" {
		user, _ = g.env(n.UsernameEnv)
	}
	if n.PasswordEnv != "" {
		pass, _ = g.env(n.PasswordEnv)
	}
	return user, pass
}

// buildRegistrars builds the registrars of the register block: the local
// service announced in Consul, Nacos or both.
func (g *Gateway) buildRegistrars(f *config.File) ([]registrar, error) {
	if f.Register == nil {
		return nil, nil
	}
	var out []registrar
	if f.Register.Consul != nil {
		r, err := g.consulRegistrar(f)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if n := f.Register.Nacos; n != nil {
		user, pass := g.nacosCredentials(n.Nacos)
		r, err := nacos.NewRegistrar(g.nacosPool, nacos.RegistrationConfig{
			Servers: n.Servers, GRPCPort: n.GRPCPort, Namespace: n.Namespace, Username: user, Password: pass,
			Group: n.Group, Service: n.Service, IP: n.IP, Port: n.Port, Weight: n.Weight, Cluster: n.Cluster, Metadata: n.Metadata,
			Check: nacosCheck(n.Check),
		}, nacos.WithOnEvent(func(kind string, err error) {
			ev := g.log.Info()
			if err != nil {
				ev = g.log.Warn().Err(err)
			}
			ev.Str("service", n.Service).Str("event", kind).Msg("nacos registration")
		}))
		if err != nil {
			return nil, fmt.Errorf("nacos: %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}

// nacosCheck maps a Nacos registration's check block.
func nacosCheck(c *config.NacosRegisterCheck) nacos.CheckSpec {
	if c == nil {
		return nacos.CheckSpec{}
	}
	return nacos.CheckSpec{GRPC: c.GRPC, GRPCUseTLS: c.GRPCUseTLS, TLSSkipVerify: c.TLSSkipVerify,
		HealthURL: c.HealthURL, Interval: c.Interval, Timeout: c.Timeout}
}

// registrar runs one registration until its context ends.
type registrar interface {
	Run(ctx context.Context) error
}

// consulRegistrar builds the Consul registrar of the register block.
func (g *Gateway) consulRegistrar(f *config.File) (*consul.Registrar, error) {
	c := f.Register.Consul
	token := ""
	if c.TokenEnv != "" {
		token, _ = g.env(c.TokenEnv)
	}
	s := c.Service
	return consul.NewRegistrar(consul.RegistrationConfig{
		Address: c.Address, Scheme: c.Scheme, Token: token, Datacenter: c.Datacenter,
		Service: consul.ServiceSpec{Name: s.Name, ID: s.ID, Address: s.Address, Port: s.Port, Tags: s.Tags, Meta: s.Meta,
			Weights: consul.Weights{Passing: s.WeightPassing, Warning: s.WeightWarning}},
		Check: consul.CheckSpec{HTTP: c.Check.HTTP, TCP: c.Check.TCP, GRPC: c.Check.GRPC, GRPCUseTLS: c.Check.GRPCUseTLS,
			TLSSkipVerify: c.Check.TLSSkipVerify, TTL: c.Check.TTL, Interval: c.Check.Interval,
			Timeout: c.Check.Timeout, DeregisterCriticalServiceAfter: c.Check.DeregisterCriticalServiceAfter,
			LocalHealthURL: c.Check.HealthURL},
	}, consul.WithLookupEnv(g.env), consul.WithProbes(g.consulProbes), consul.WithVerifyInterval(c.VerifyInterval), consul.WithOnEvent(func(kind string, err error) {
		ev := g.log.Info()
		if err != nil {
			ev = g.log.Warn().Err(err)
		}
		ev.Str("service", s.Name).Str("event", kind).Msg("consul registration")
	}))
}
