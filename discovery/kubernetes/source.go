package kubernetes

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/outrigger-gw/outrigger/discovery"
)

// Weight is the weight of an endpoint that gets traffic (Kubernetes has
// no weights; this is the gateway's default target weight).
const Weight = 100

// Metadata keys of the targets.
const (
	MetaZone       = "zone"
	MetaNodeName   = "nodeName"
	MetaForZones   = "hints.forZones"
	MetaForNodes   = "hints.forNodes"
	MetaPod        = "pod"
	MetaCondition  = "condition"
	ConditionReady = "ready"
	// ConditionTerminating is a terminating endpoint that still serves.
	ConditionTerminating = "terminating"
	ConditionNotReady    = "not-ready"
)

// SourceConfig configures a Source.
type SourceConfig struct {
	// Kubeconfig, when set, is the path of a kubeconfig file (its current
	// context is used); otherwise the pod's service account.
	Kubeconfig string
	// Namespace of the service; "" means the credentials' namespace (the
	// pod's, or the kubeconfig context's), then "default".
	Namespace string
	// Service is the Service whose EndpointSlices are watched (required).
	Service string
	// Port is the port's name, or its number (the endpoint port, i.e. the
	// Service's targetPort) (required).
	Port string
	// LabelSelector, when set, further selects the EndpointSlices
	// (Kubernetes label-selector syntax).
	LabelSelector string
}

// Option tunes a Pool.
type Option func(*options)

type options struct {
	lookupEnv         func(string) (string, bool)
	serviceAccountDir string
	requestTimeout    time.Duration
	backoffMin        time.Duration
	backoffMax        time.Duration
	userAgent         string
	watchTimeout      time.Duration
}

func buildOptions(opts []Option) options {
	o := options{
		lookupEnv:         os.LookupEnv,
		serviceAccountDir: DefaultServiceAccountDir,
		requestTimeout:    30 * time.Second,
		backoffMin:        100 * time.Millisecond,
		backoffMax:        5 * time.Second,
		userAgent:         "outrigger",
	}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// WithLookupEnv sets how the in-cluster configuration reads
// KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (default
// os.LookupEnv).
func WithLookupEnv(fn func(string) (string, bool)) Option {
	return func(o *options) {
		if fn != nil {
			o.lookupEnv = fn
		}
	}
}

// WithServiceAccountDir sets where the in-cluster configuration reads
// token, ca.crt and namespace (default DefaultServiceAccountDir).
func WithServiceAccountDir(dir string) Option {
	return func(o *options) {
		if dir != "" {
			o.serviceAccountDir = dir
		}
	}
}

// WithRequestTimeout bounds each list request (default 30s).
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.requestTimeout = d
		}
	}
}

// WithBackoff sets the retry backoff while the API server is unreachable
// or overloaded, and while the credentials cannot be loaded (defaults
// 100ms doubling to 5s, full jitter).
func WithBackoff(lo, hi time.Duration) Option {
	return func(o *options) {
		if lo > 0 && hi >= lo {
			o.backoffMin, o.backoffMax = lo, hi
		}
	}
}

// WithWatchTimeout caps how long the API server keeps one watch open
// before it ends it (and the informer watches again from the last
// resourceVersion); 0, the default, leaves client-go's choice (5 to 10
// minutes).
func WithWatchTimeout(d time.Duration) Option {
	return func(o *options) {
		if d >= time.Second {
			o.watchTimeout = d
		}
	}
}

// WithUserAgent sets the User-Agent of the API requests (default
// "outrigger").
func WithUserAgent(ua string) Option {
	return func(o *options) {
		if ua != "" {
			o.userAgent = ua
		}
	}
}

// Source watches one Kubernetes service's EndpointSlices; it implements
// discovery.Source. Its fields are set by NewSource and never change; each
// Run keeps its own state, so Runs may overlap.
type Source struct {
	pool *Pool
	cfg  SourceConfig
	key  watchKey
	name string
	// portNum is the port number when Port is one, else 0.
	portNum int32
	now     func() time.Time
}

var _ discovery.Source = (*Source)(nil)

// NewSource validates cfg and returns a Source using pool's informers. It
// does not contact the API server.
func NewSource(pool *Pool, cfg SourceConfig) (*Source, error) {
	if pool == nil {
		return nil, errors.New("kubernetes: source: nil pool")
	}
	if err := CheckConfig(cfg); err != nil {
		return nil, fmt.Errorf("kubernetes: source: %w", err)
	}
	s := &Source{pool: pool, cfg: cfg, now: time.Now,
		key: watchKey{cred: credentials{kubeconfig: cfg.Kubeconfig}, namespace: cfg.Namespace, service: cfg.Service, selector: cfg.LabelSelector}}
	if n, err := strconv.Atoi(cfg.Port); err == nil {
		s.portNum = int32(n)
	}
	s.name = "kubernetes:" + cfg.Service + ":" + cfg.Port
	if cfg.Namespace != "" {
		s.name = "kubernetes:" + cfg.Namespace + "/" + cfg.Service + ":" + cfg.Port
	}
	return s, nil
}

// CheckConfig reports what is wrong with cfg, naming the field.
func CheckConfig(cfg SourceConfig) error {
	if cfg.Service == "" {
		return errors.New("service is required")
	}
	if errs := validation.IsDNS1035Label(cfg.Service); len(errs) > 0 {
		return fmt.Errorf("service %q: %s", cfg.Service, strings.Join(errs, "; "))
	}
	if cfg.Namespace != "" {
		if errs := validation.IsDNS1123Label(cfg.Namespace); len(errs) > 0 {
			return fmt.Errorf("namespace %q: %s", cfg.Namespace, strings.Join(errs, "; "))
		}
	}
	switch n, err := strconv.Atoi(cfg.Port); {
	case cfg.Port == "":
		return errors.New("port is required (its name, or its number)")
	case err == nil:
		if n < 1 || n > 65535 {
			return fmt.Errorf("port %d: want 1..65535", n)
		}
	default:
		if errs := validation.IsValidPortName(cfg.Port); len(errs) > 0 {
			return fmt.Errorf("port %q: %s", cfg.Port, strings.Join(errs, "; "))
		}
	}
	if cfg.LabelSelector != "" {
		if _, err := labels.Parse(cfg.LabelSelector); err != nil {
			return fmt.Errorf("label_selector %q: %w", cfg.LabelSelector, err)
		}
	}
	return nil
}

// Name is "kubernetes:[<namespace>/]<service>:<port>" (the namespace as
// configured).
func (s *Source) Name() string { return s.name }

// runState is what Run remembers between wake-ups.
type runState struct {
	errSeq  uint64 // number of the last failure emitted
	failed  bool   // the last emission was an error
	emitted bool   // a set was emitted
	last    []discovery.Target
}

// Run watches the service until ctx ends; see the package documentation.
func (s *Source) Run(ctx context.Context, fn func(discovery.Update)) {
	var w *sharedWatch
	for attempt := 1; ; attempt++ {
		var err error
		if w, err = s.pool.acquire(s.key); err == nil {
			break
		}
		fn(discovery.Update{Err: fmt.Errorf("%s: %w", s.name, err), At: s.now()})
		d := max(discovery.Backoff(attempt, s.pool.opts.backoffMin, s.pool.opts.backoffMax, discovery.FullJitter), time.Millisecond)
		if !discovery.Sleep(ctx, d) {
			return
		}
	}
	defer s.pool.release(w)
	wake := w.subscribe()
	defer w.unsubscribe(wake)
	var st runState
	for {
		s.step(w, wake, &st, fn)
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
	}
}

// step emits what changed since the last wake-up.
func (s *Source) step(w *sharedWatch, wake chan struct{}, st *runState, fn func(discovery.Update)) {
	// Taken before the state is read: an event arriving after this is
	// either in what is read or wakes the next step.
	observed := w.take(wake)
	if observed.IsZero() {
		observed = s.now()
	}
	err, seq, synced := w.status()
	if err != nil {
		if seq != st.errSeq {
			st.errSeq, st.failed = seq, true
			fn(discovery.Update{Err: fmt.Errorf("%s: %s: %w", s.name, w.key, err), At: s.now(), Observed: observed})
		}
		return
	}
	if !synced {
		return
	}
	ts := s.targets(w.slices())
	if st.failed || !st.emitted || !equalTargets(ts, st.last) {
		st.failed, st.emitted, st.last = false, true, ts
		fn(discovery.Update{Targets: ts, At: s.now(), Observed: observed})
	}
}

// endpoint states, best last.
const (
	stateNotReady = iota
	stateTerminating
	stateReady
)

type candidate struct {
	t     discovery.Target
	state int
}

// targets merges the service's slices into the target set (see the
// package documentation for the rules).
func (s *Source) targets(sl []*endpointSlice) []discovery.Target {
	slices.SortFunc(sl, func(a, b *endpointSlice) int { return strings.Compare(a.Name, b.Name) })
	best := map[string]candidate{}
	anyReady := false
	for _, es := range sl {
		if es.AddressType != addressTypeIPv4 && es.AddressType != addressTypeIPv6 {
			continue
		}
		port, ok := s.matchPort(es.Ports)
		if !ok {
			continue
		}
		for i := range es.Endpoints {
			ep := &es.Endpoints[i]
			if len(ep.Addresses) == 0 {
				continue
			}
			ip := net.ParseIP(ep.Addresses[0])
			if ip == nil {
				continue
			}
			c := candidate{state: state(ep.Conditions)}
			c.t = discovery.Target{Addr: net.JoinHostPort(ip.String(), strconv.Itoa(int(port))), Meta: meta(ep, c.state)}
			if prev, dup := best[c.t.Addr]; dup && prev.state >= c.state {
				continue
			}
			best[c.t.Addr] = c
			anyReady = anyReady || c.state == stateReady
		}
	}
	ts := make([]discovery.Target, 0, len(best))
	for _, c := range best {
		switch {
		case c.state == stateReady, c.state == stateTerminating && !anyReady:
			c.t.Weight = Weight
		}
		ts = append(ts, c.t)
	}
	slices.SortFunc(ts, func(a, b discovery.Target) int { return cmp.Compare(a.Addr, b.Addr) })
	return ts
}

// state classifies an endpoint as kube-proxy does: ready (nil is true)
// gets traffic; serving (nil is true) and terminating (nil is false) is
// the fallback when nothing is ready; anything else gets none.
func state(c endpointConditions) int {
	ready := c.Ready == nil || *c.Ready
	serving := c.Serving == nil || *c.Serving
	terminating := c.Terminating != nil && *c.Terminating
	switch {
	case ready:
		return stateReady
	case serving && terminating:
		return stateTerminating
	}
	return stateNotReady
}

func meta(ep *endpoint, st int) map[string]string {
	m := map[string]string{MetaCondition: [...]string{ConditionNotReady, ConditionTerminating, ConditionReady}[st]}
	if ep.Zone != nil && *ep.Zone != "" {
		m[MetaZone] = *ep.Zone
	}
	if ep.NodeName != nil && *ep.NodeName != "" {
		m[MetaNodeName] = *ep.NodeName
	}
	if h := ep.Hints; h != nil {
		if len(h.ForZones) > 0 {
			zs := make([]string, len(h.ForZones))
			for i, z := range h.ForZones {
				zs[i] = z.Name
			}
			m[MetaForZones] = strings.Join(zs, ",")
		}
		if len(h.ForNodes) > 0 {
			ns := make([]string, len(h.ForNodes))
			for i, n := range h.ForNodes {
				ns[i] = n.Name
			}
			m[MetaForNodes] = strings.Join(ns, ",")
		}
	}
	if r := ep.TargetRef; r != nil && r.Kind == "Pod" && r.Name != "" {
		m[MetaPod] = r.Name
	}
	return m
}

// matchPort finds the configured TCP port among a slice's ports.
func (s *Source) matchPort(ps []endpointPort) (int32, bool) {
	for _, p := range ps {
		if p.Port == nil || *p.Port < 1 || *p.Port > 65535 {
			continue
		}
		if p.Protocol != nil && *p.Protocol != protocolTCP {
			continue
		}
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		if (s.portNum != 0 && *p.Port == s.portNum) || (s.portNum == 0 && name == s.cfg.Port) {
			return *p.Port, true
		}
	}
	return 0, false
}

func equalTargets(a, b []discovery.Target) bool {
	return slices.EqualFunc(a, b, func(x, y discovery.Target) bool {
		return x.Addr == y.Addr && x.Weight == y.Weight && x.Priority == y.Priority &&
			slices.Equal(x.Tags, y.Tags) && maps.Equal(x.Meta, y.Meta)
	})
}
