package nacos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/outrigger-gw/outrigger/discovery"
)

// ErrDisconnected is the cause of the Update{Err} a Source emits when its
// SDK client lost the connection to the servers.
var ErrDisconnected = errors.New("nacos: connection to the server lost")

// ErrEmptyAfterReconnect is the cause of the Update{Err} a Source emits
// while it holds back an empty answer that came right after a reconnect.
var ErrEmptyAfterReconnect = errors.New("nacos: empty answer right after reconnecting; holding the last set")

// MaxWeight is the largest target weight.
const MaxWeight = 65535

// SourceConfig configures a Source.
type SourceConfig struct {
	// Servers are "host:port" of the servers' HTTP port (default port
	// 8848). The gRPC port is port+1000 unless GRPCPort is set.
	Servers []string
	// GRPCPort, when set, is the gRPC port of every server.
	GRPCPort int
	// Namespace is the namespace id; "" means "public".
	Namespace string
	// Group defaults to DEFAULT_GROUP.
	Group string
	// Service is the watched service (required).
	Service string
	// Clusters, when set, keep instances of these clusters only (filtered
	// client-side: one subscription serves every filter).
	Clusters []string
	// Metadata entries must all be present with these exact values
	// (client-side).
	Metadata map[string]string
	// Username and Password, when set, authenticate (resolved by the
	// caller, e.g. from username_env/password_env).
	Username, Password string
}

// Option tunes a Source or a Registrar. Options that do not apply to the
// value being built are ignored.
type Option func(*options)

type options struct {
	reconnectGrace time.Duration
	backoffMin     time.Duration
	backoffMax     time.Duration
	onEvent        func(kind string, err error)
}

func buildOptions(opts []Option) options {
	o := options{
		reconnectGrace: 10 * time.Second,
		backoffMin:     100 * time.Millisecond,
		backoffMax:     30 * time.Second,
	}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// WithReconnectGrace sets how long after a reconnect a Source holds back
// an empty answer that would replace a non-empty set (default 10s; 0
// disables the hold). A server that restarted, or that dropped the
// connections of the instances' owners, answers empty until the owners
// have reconnected and registered again.
func WithReconnectGrace(d time.Duration) Option {
	return func(o *options) {
		if d >= 0 {
			o.reconnectGrace = d
		}
	}
}

// WithBackoff sets the retry backoff after failures: full jitter over an
// interval starting at min and doubling up to max (defaults 100ms, 30s).
func WithBackoff(lo, hi time.Duration) Option {
	return func(o *options) {
		if lo > 0 && hi >= lo {
			o.backoffMin, o.backoffMax = lo, hi
		}
	}
}

// WithOnEvent sets the Registrar's event callback: kind is one of the
// Event constants, err is nil on success. It is called from Run's
// goroutine.
func WithOnEvent(fn func(kind string, err error)) Option {
	return func(o *options) { o.onEvent = fn }
}

// Source watches one Nacos service; it implements discovery.Source.
type Source struct {
	pool *Pool
	key  clientKey
	cfg  SourceConfig
	name string
	opts options
	now  func() time.Time
}

var _ discovery.Source = (*Source)(nil)

// NewSource validates cfg and returns a Source using pool's clients. It
// does not contact Nacos.
func NewSource(pool *Pool, cfg SourceConfig, opts ...Option) (*Source, error) {
	if pool == nil {
		return nil, errors.New("nacos: source: nil pool")
	}
	if err := checkName("service", cfg.Service, true); err != nil {
		return nil, fmt.Errorf("nacos: source: %w", err)
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if err := checkName("group", cfg.Group, false); err != nil {
		return nil, fmt.Errorf("nacos: source %q: %w", cfg.Service, err)
	}
	k, err := connConfig{cfg.Servers, cfg.GRPCPort, cfg.Namespace, cfg.Username, cfg.Password}.key()
	if err != nil {
		return nil, fmt.Errorf("nacos: source %q: %w", cfg.Service, err)
	}
	cfg.Namespace = k.namespace
	cfg.Servers = slices.Clone(cfg.Servers)
	cfg.Clusters = slices.Clone(cfg.Clusters)
	cfg.Metadata = maps.Clone(cfg.Metadata)
	name := "nacos:" + cfg.Group + "@@" + cfg.Service
	if cfg.Namespace != DefaultNamespace {
		name += "@" + cfg.Namespace
	}
	return &Source{pool: pool, key: k, cfg: cfg, name: name, opts: buildOptions(opts), now: time.Now}, nil
}

// checkName rejects what Nacos cannot key on.
func checkName(what, s string, required bool) error {
	switch {
	case strings.TrimSpace(s) == "":
		if required {
			return fmt.Errorf("%s is required", what)
		}
	case strings.Contains(s, "@@"):
		return fmt.Errorf("%s %q contains \"@@\"", what, s)
	case strings.ContainsAny(s, "/\\"):
		return fmt.Errorf("%s %q contains a path separator", what, s)
	}
	return nil
}

// Name is "nacos:<group>@@<service>", plus "@<namespace>" when the
// namespace is not public.
func (s *Source) Name() string { return s.name }

// runState is what Run remembers between wake-ups.
type runState struct {
	subEpoch uint64 // connection epoch of the last successful subscribe
	failures int
	// retryAt: no subscribe before then (backoff after failures; the SDK
	// reconnects after a failed request, so a new epoch alone does not
	// end the backoff).
	retryAt time.Time
	emitted bool // a good set was emitted
	last    []discovery.Target
	// lastEpoch is the connection epoch on which the last emitted
	// non-empty set was read.
	lastEpoch uint64
	// lastErr is the cause of the last emission when it was an error (the
	// next good set is then emitted whatever it holds); nil after a good
	// set.
	lastErr error
}

// Run watches the service until ctx ends; see the package documentation.
func (s *Source) Run(ctx context.Context, fn func(discovery.Update)) {
	var st runState
	fail := func(err error) {
		st.lastErr = err
		fn(discovery.Update{Err: fmt.Errorf("%s: %w", s.name, err), At: s.now()})
	}
	var l *lease
	for attempt := 1; ; attempt++ {
		var err error
		l, err = s.pool.acquire(ctx, s.key)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		fail(err)
		if !discovery.Sleep(ctx, retryDelay(attempt, s.opts)) {
			return
		}
	}
	defer l.release()
	c := l.client()
	w := c.watchService(s.cfg.Group, s.cfg.Service)
	defer c.unwatch(w)

	// Go 1.23 timers: Reset and Stop never leave a stale tick behind.
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		timer.Stop()
		if d := s.step(c, w, &st, fail, fn); d > 0 {
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			return
		case <-w.notify:
		case <-timer.C:
		}
	}
}

// step brings the emitted state up to date and returns when to look again
// (0: on the next wake-up only).
func (s *Source) step(c *client, w *watcher, st *runState, fail func(error), fn func(discovery.Update)) time.Duration {
	// Taken before the state is read: a push arriving after this is either
	// in what is read or wakes the next step.
	observed := w.take()
	cs := c.state()
	if !cs.connected {
		if !errors.Is(st.lastErr, ErrDisconnected) {
			fail(ErrDisconnected)
		}
		return 0
	}
	retry := func(err error) time.Duration {
		st.failures++
		st.subEpoch = 0
		d := retryDelay(st.failures, s.opts)
		st.retryAt = s.now().Add(d)
		fail(err)
		return d
	}
	if st.subEpoch != cs.epoch {
		if wait := st.retryAt.Sub(s.now()); wait > 0 {
			return wait
		}
		// First subscription, or the first look after a reconnect: read
		// fresh data from the server (the SDK's redo does the same; the
		// call is idempotent).
		if err := c.subscribe(w); err != nil {
			return retry(fmt.Errorf("subscribe: %w", err))
		}
		st.subEpoch = cs.epoch
	}
	svc, ok := c.snapshot(s.cfg.Group, s.cfg.Service)
	if !ok {
		// Subscribed, yet the answer is not where the SDK keys it (a
		// server answering another name or group).
		return retry(errors.New("subscribed, but the service is missing from the SDK cache"))
	}
	st.failures = 0
	ts := s.targets(svc.Hosts)
	if len(ts) == 0 && len(st.last) > 0 && cs.epoch != st.lastEpoch && s.opts.reconnectGrace > 0 {
		if wait := cs.since.Add(s.opts.reconnectGrace).Sub(s.now()); wait > 0 {
			if !errors.Is(st.lastErr, ErrEmptyAfterReconnect) {
				fail(ErrEmptyAfterReconnect)
			}
			return wait
		}
	}
	if len(ts) > 0 {
		st.lastEpoch = cs.epoch
	}
	if st.lastErr != nil || !st.emitted || !equalTargets(ts, st.last) {
		st.lastErr, st.emitted, st.last = nil, true, ts
		at := s.now()
		if observed.IsZero() {
			// No push: the answer of the subscribe just made.
			observed = at
		}
		fn(discovery.Update{Targets: ts, At: at, Observed: observed})
	}
	return 0
}

type instance struct {
	t       discovery.Target
	cluster string
	id      string
}

// targets turns the cached instances into the sorted target set.
func (s *Source) targets(hosts []model.Instance) []discovery.Target {
	var ins []instance
	for _, h := range hosts {
		if !h.Healthy || !h.Enable || !(h.Weight > 0) {
			continue
		}
		if h.Ip == "" || h.Port < 1 || h.Port > 65535 {
			continue
		}
		if len(s.cfg.Clusters) > 0 && !slices.Contains(s.cfg.Clusters, h.ClusterName) {
			continue
		}
		if !metaMatches(h.Metadata, s.cfg.Metadata) {
			continue
		}
		var meta map[string]string
		if len(h.Metadata) > 0 {
			meta = maps.Clone(h.Metadata)
		}
		if c := h.ClusterName; c != "" && c != DefaultCluster {
			// The cluster names the zone where the metadata has none.
			meta = discovery.WithLocality(meta, map[string]string{discovery.ZoneMetaKey: c})
		}
		ins = append(ins, instance{
			t: discovery.Target{
				Addr:     net.JoinHostPort(strings.Trim(h.Ip, "[]"), strconv.FormatUint(h.Port, 10)),
				Weight:   ScaleWeight(h.Weight),
				Meta:     meta,
				Priority: discovery.MetaPriority(meta),
				Backup:   discovery.MetaBackup(meta),
			},
			cluster: h.ClusterName,
			id:      h.InstanceId,
		})
	}
	slices.SortFunc(ins, func(a, b instance) int {
		return cmp.Or(strings.Compare(a.t.Addr, b.t.Addr), strings.Compare(a.cluster, b.cluster), strings.Compare(a.id, b.id))
	})
	ts := make([]discovery.Target, 0, len(ins))
	for i, in := range ins {
		if i > 0 && in.t.Addr == ins[i-1].t.Addr {
			continue
		}
		ts = append(ts, in.t)
	}
	return ts
}

// ScaleWeight maps a Nacos weight (a float, 1 by default) to a target
// weight: round(w*100), at least 1 for any positive weight, at most
// MaxWeight; 0 for zero, negative and NaN weights.
func ScaleWeight(w float64) int {
	if !(w > 0) {
		return 0
	}
	scaled := math.Round(w * 100)
	if scaled >= MaxWeight {
		return MaxWeight
	}
	return max(int(scaled), 1)
}

func metaMatches(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func equalTargets(a, b []discovery.Target) bool {
	return slices.EqualFunc(a, b, func(x, y discovery.Target) bool {
		return x.Addr == y.Addr && x.Weight == y.Weight && x.Priority == y.Priority && x.Backup == y.Backup &&
			slices.Equal(x.Tags, y.Tags) && maps.Equal(x.Meta, y.Meta)
	})
}

// retryDelay is the jittered backoff before retry number attempt; never 0,
// because callers treat 0 as "no timer".
func retryDelay(attempt int, o options) time.Duration {
	return max(discovery.Backoff(attempt, o.backoffMin, o.backoffMax, discovery.FullJitter), time.Millisecond)
}
