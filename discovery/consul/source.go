package consul

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-gw/outrigger/discovery"
)

// MaxWaitTime is Consul's cap on a blocking query's wait.
const MaxWaitTime = 10 * time.Minute

// DefaultWaitTime is the blocking query wait when SourceConfig.WaitTime is 0.
const DefaultWaitTime = 5 * time.Minute

// SourceConfig configures a Source.
type SourceConfig struct {
	// Address is the agent's host:port (a "http://" or "https://" prefix
	// is accepted); "" means CONSUL_HTTP_ADDR, then 127.0.0.1:8500.
	Address string
	// Scheme is "http" (default) or "https".
	Scheme string
	// Service is the watched service name (required).
	Service string
	// Tags must all be carried by an instance (AND).
	Tags []string
	// Meta entries must all be present with these exact values.
	Meta       map[string]string
	Datacenter string
	// PassingOnly keeps only passing instances; otherwise warning instances
	// are kept too. Critical instances are never kept.
	PassingOnly bool
	// Token is the ACL token (resolved by the caller).
	Token string
	// WeightMetaKey, when set, names a Service.Meta key holding an integer
	// weight that takes precedence over Service.Weights.
	WeightMetaKey string
	// ZoneMetaKey names the Service.Meta (else Node.Meta) key holding the
	// target's zone, copied to Meta["zone"]; "" means "zone".
	ZoneMetaKey string
	// WaitTime is the blocking query wait (default 5m, at most 10m).
	WaitTime time.Duration
}

// Source watches one Consul service; it implements discovery.Source.
type Source struct {
	cfg  SourceConfig
	name string
	opts options

	// Seams for tests; set by NewSource.
	query func(ctx context.Context, waitIndex uint64) ([]*api.ServiceEntry, uint64, error)
	now   func() time.Time
	// sleep waits d, or until wake (nil: never) is closed; false when ctx
	// ended.
	sleep  func(ctx context.Context, d time.Duration, wake <-chan struct{}) bool
	jitter func(time.Duration) time.Duration
	// awaitAgent returns a channel closed once the agent's reachability
	// probe sees it back, and the function that ends the wait (probe.await).
	awaitAgent func(down bool) (<-chan struct{}, func())
}

var _ discovery.Source = (*Source)(nil)

// NewSource validates cfg and returns a Source. It does not contact Consul.
func NewSource(cfg SourceConfig, opts ...Option) (*Source, error) {
	if strings.TrimSpace(cfg.Service) == "" {
		return nil, errors.New("consul: source: service is required")
	}
	scheme, err := checkScheme(cfg.Scheme)
	if err != nil {
		return nil, err
	}
	cfg.Scheme = scheme
	switch {
	case cfg.WaitTime < 0:
		return nil, fmt.Errorf("consul: source %q: negative wait time %s", cfg.Service, cfg.WaitTime)
	case cfg.WaitTime == 0:
		cfg.WaitTime = DefaultWaitTime
	case cfg.WaitTime > MaxWaitTime:
		return nil, fmt.Errorf("consul: source %q: wait time %s exceeds Consul's maximum %s", cfg.Service, cfg.WaitTime, MaxWaitTime)
	}
	cfg.Tags = slices.Clone(cfg.Tags)
	cfg.Meta = maps.Clone(cfg.Meta)

	o := buildOptions(opts)
	cfg.Address = resolveAddress(cfg.Address, o.lookupEnv)
	// Consul adds up to wait/16 of jitter to the wait; leave a margin on top
	// so the client never cuts a healthy blocking query short.
	timeout := cfg.WaitTime + cfg.WaitTime/16 + 10*time.Second
	client, err := newClient(cfg.Address, cfg.Scheme, cfg.Token, cfg.Datacenter, timeout, &o)
	if err != nil {
		return nil, err
	}

	s := &Source{
		cfg:    cfg,
		name:   "consul:" + cfg.Service,
		opts:   o,
		now:    time.Now,
		sleep:  sleepOrWake,
		jitter: discovery.FullJitter,
	}
	probes := o.probes
	if probes == nil {
		probes = NewProbes()
	}
	s.awaitAgent = probes.get(cfg.Scheme, cfg.Address, o.transport).await
	if cfg.Datacenter != "" {
		s.name += "@" + cfg.Datacenter
	}
	health := client.Health()
	s.query = func(ctx context.Context, waitIndex uint64) ([]*api.ServiceEntry, uint64, error) {
		q := &api.QueryOptions{
			AllowStale: true,
			Datacenter: cfg.Datacenter,
			WaitIndex:  waitIndex,
			WaitTime:   cfg.WaitTime,
		}
		entries, meta, err := health.ServiceMultipleTags(cfg.Service, cfg.Tags, cfg.PassingOnly, q.WithContext(ctx))
		if err != nil {
			return nil, 0, err
		}
		return entries, meta.LastIndex, nil
	}
	return s, nil
}

// Name is "consul:<service>", plus "@<datacenter>" when one is set.
func (s *Source) Name() string { return s.name }

// Run watches the service until ctx ends; see the package documentation.
func (s *Source) Run(ctx context.Context, fn func(discovery.Update)) {
	var (
		index    uint64
		last     []discovery.Target
		fresh    = true // the next good set is emitted whatever it holds
		failures int
		trouble  bool // the last failure may be the agent going away
		down     bool // ... and it was the agent not answering at all
		spins    int
		idle     bool // the last answer advanced the index without changing the set
		lim      = limiter{every: s.opts.limitEvery, burst: s.opts.limitBurst}
	)
	for ctx.Err() == nil {
		var delay time.Duration
		switch {
		case failures > 0:
			delay = discovery.Backoff(failures, s.opts.backoffMin, s.opts.backoffMax, s.jitter)
		case spins > 0:
			delay = discovery.Backoff(spins, s.opts.backoffMin, s.opts.backoffMax, s.jitter)
		}
		if delay > 0 {
			// An agent that did not answer (or answered 5xx) is probed
			// meanwhile: the watch resumes as soon as it is back, not
			// when the backoff (up to its cap) has run out.
			var wake <-chan struct{}
			release := func() {}
			if failures > 0 && trouble {
				wake, release = s.awaitAgent(down)
			}
			live := s.sleep(ctx, delay, wake)
			release()
			if !live {
				return
			}
		}
		// Only a query that follows an answer without effect (the index
		// moved, the set did not) takes a token: an answer that changed
		// the set is followed by the next blocking query at once, so the
		// next change is seen as soon as Consul has it (a blocking query
		// returns only on an index change, so this cannot spin).
		if idle {
			if d := lim.reserve(s.now()); d > 0 && !s.sleep(ctx, d, nil) {
				return
			}
		}
		idle = false

		start := s.now()
		entries, got, err := s.query(ctx, index)
		observed := s.now()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			trouble, down = agentTrouble(err)
			spins = 0
			// The agent (or the cluster) may come back with different,
			// lower indexes: start over with a non-blocking query.
			index = 0
			fresh = true
			fn(discovery.Update{Err: fmt.Errorf("%s: %w", s.name, err), At: s.now(), Observed: observed})
			continue
		}
		failures = 0

		next := NextIndex(index, got)
		switch {
		case index == 0:
			// A non-blocking query answers at once by design: it neither
			// counts as a spin nor clears the count, so a cycle of resets
			// keeps backing off.
		case next <= index && s.now().Sub(start) < s.cfg.WaitTime/2:
			// Back early without progress: a misbehaving index (a genuine
			// timeout comes back after about WaitTime).
			spins++
		default:
			spins = 0
		}
		index = next

		ts := s.targets(entries)
		if fresh || !equalTargets(ts, last) {
			fresh = false
			last = ts
			fn(discovery.Update{Targets: ts, At: s.now(), Observed: observed})
		} else {
			idle = spins == 0
		}
	}
}

// Status names of the aggregated health of an instance.
const (
	statusPassing  = api.HealthPassing
	statusWarning  = api.HealthWarning
	statusCritical = api.HealthCritical
)

// instanceStatus aggregates an instance's node and service checks: any
// maintenance or critical check (or a status Consul does not define) makes it
// critical, else any warning makes it warning.
func instanceStatus(checks api.HealthChecks) string {
	st := statusPassing
	for _, c := range checks {
		if c == nil {
			continue
		}
		if c.CheckID == api.NodeMaint || strings.HasPrefix(c.CheckID, api.ServiceMaintPrefix) {
			return statusCritical
		}
		switch c.Status {
		case api.HealthPassing:
		case api.HealthWarning:
			st = statusWarning
		default:
			return statusCritical
		}
	}
	return st
}

type instance struct {
	t       discovery.Target
	node    string
	service string
}

// targets turns health entries into the sorted target set.
func (s *Source) targets(entries []*api.ServiceEntry) []discovery.Target {
	var ins []instance
	for _, e := range entries {
		if e == nil || e.Service == nil {
			continue
		}
		st := instanceStatus(e.Checks)
		if st == statusCritical || (s.cfg.PassingOnly && st != statusPassing) {
			continue
		}
		if !metaMatches(e.Service.Meta, s.cfg.Meta) {
			continue
		}
		host := e.Service.Address
		node := ""
		if e.Node != nil {
			node = e.Node.Node
			if host == "" {
				host = e.Node.Address
			}
		}
		if host == "" || e.Service.Port <= 0 {
			continue
		}
		meta := maps.Clone(e.Service.Meta)
		if k := s.cfg.ZoneMetaKey; k != "" && k != discovery.ZoneMetaKey {
			z := e.Service.Meta[k]
			if z == "" && e.Node != nil {
				z = e.Node.Meta[k]
			}
			if z != "" { // the configured key wins over a "zone" entry
				if meta == nil {
					meta = map[string]string{}
				}
				meta[discovery.ZoneMetaKey] = z
			}
		}
		if e.Node != nil {
			// The node's zone and region where the service has none.
			meta = discovery.WithLocality(meta, e.Node.Meta)
		}
		ins = append(ins, instance{
			t: discovery.Target{
				Addr:   joinHostPort(host, e.Service.Port),
				Weight: s.weight(e.Service, st),
				Tags:   slices.Clone(e.Service.Tags),
				Meta:   meta,
				// A level from the meta key "priority", backup from
				// "backup".
				Priority: discovery.MetaPriority(e.Service.Meta),
				Backup:   discovery.MetaBackup(e.Service.Meta),
			},
			node:    node,
			service: e.Service.ID,
		})
	}
	slices.SortFunc(ins, func(a, b instance) int {
		return cmp.Or(
			strings.Compare(a.t.Addr, b.t.Addr),
			strings.Compare(a.node, b.node),
			strings.Compare(a.service, b.service),
		)
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

func metaMatches(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// weight picks the instance's weight; see the package documentation.
func (s *Source) weight(svc *api.AgentService, status string) int {
	if s.cfg.WeightMetaKey != "" {
		if v, ok := svc.Meta[s.cfg.WeightMetaKey]; ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return clampWeight(n)
			}
		}
	}
	w := svc.Weights.Passing
	if status == statusWarning {
		w = svc.Weights.Warning
	}
	if svc.Weights.Passing == 0 && svc.Weights.Warning == 0 {
		// Agents always fill weights (default 1/1); all zeros means an
		// answer without weights.
		w = 1
	}
	return clampWeight(int64(w))
}

func clampWeight(n int64) int {
	return int(min(max(n, 0), 65535))
}

func equalTargets(a, b []discovery.Target) bool {
	return slices.EqualFunc(a, b, func(x, y discovery.Target) bool {
		return x.Addr == y.Addr && x.Weight == y.Weight && x.Priority == y.Priority && x.Backup == y.Backup &&
			slices.Equal(x.Tags, y.Tags) && maps.Equal(x.Meta, y.Meta)
	})
}
