// Package upstream is the hub where discovery, health and balancing meet.
//
// An Upstream owns a set of targets (static ones from the config, and later
// ones from discovery sources), the per-address runtime state that must
// survive target-set changes (balancer stats, first-seen time for slow
// start), an optional health view, and the balancer. Whenever any input
// changes it derives an immutable Snapshot — the eligible endpoints and a
// Picker built over them — and swaps it in atomically. The request path only
// ever loads the current snapshot: Pick takes no lock and allocates nothing.
//
// Contract:
//   - Targets are identified by address ("host:port"); updates are full sets
//     and are diffed by address, so state of unchanged targets is kept.
//   - Weight 0 means draining: the target stays listed but gets no new
//     requests; requests already in flight finish normally.
//   - Nothing outside this package mutates a Picker.
package upstream

import (
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outrigger-gw/outrigger/balance"
)

// StaticSource is the source name of targets written in the configuration.
const StaticSource = "static"

// Errors returned by Pick.
var (
	// ErrNoTargets means the upstream has no eligible (weighted, healthy)
	// target.
	ErrNoTargets = errors.New("no healthy upstream target available")
)

// Target is one backend of an upstream as configured or discovered.
type Target struct {
	// Addr is "host:port"; the target's identity.
	Addr string
	// Weight is 0..65535; 0 drains the target.
	Weight int
	// Tags are free-form labels (from config or discovery).
	Tags []string
	// Source names where the target came from ("static", "consul:web", ...).
	Source string
}

// HealthView answers whether an address may receive traffic. A nil
// HealthView means every target is healthy.
type HealthView interface {
	Healthy(addr string) bool
}

// Options configures an Upstream.
type Options struct {
	// Name is the upstream's name (as routes and services refer to it).
	Name string
	// Balancer builds pickers; required.
	Balancer balance.Builder
	// Health, when set, filters unhealthy targets out of the picker.
	Health HealthView
	// OnSnapshot, when set, is called after every snapshot swap (outside
	// any lock); used for metrics.
	OnSnapshot func(*Snapshot)
	// Observer, when set, receives every attempt's outcome (Report).
	Observer func(*Endpoint, Outcome)
}

// Endpoint is an eligible target in a snapshot; Pick returns a pointer to
// one, valid for as long as the caller needs it (snapshots are immutable).
type Endpoint struct {
	balance.Endpoint
	Target Target
}

// TargetState is a target's effective state as the admin API reports it.
type TargetState struct {
	Target
	// EffectiveWeight is the weight the balancer uses now (after slow start
	// and overrides); 0 when draining or unhealthy.
	EffectiveWeight int
	Healthy         bool
}

// Snapshot is the immutable state the request path reads.
type Snapshot struct {
	// Generation increases with every swap.
	Generation uint64
	// Endpoints are the eligible targets, index-aligned with Picker.
	Endpoints []Endpoint
	// Targets lists every known target with its effective state.
	Targets []TargetState
	picker  balance.Picker
}

// Upstream is one named pool of targets with its balancer.
type Upstream struct {
	name       string
	builder    balance.Builder
	health     HealthView
	onSnapshot func(*Snapshot)
	observer   func(*Endpoint, Outcome)

	// mu serialises writers (SetTargets, Rebuild) and guards the fields
	// below it. Readers never take it: they load snap.
	mu      sync.Mutex
	sources map[string][]Target       // full target set per source
	stats   map[string]*balance.Stats // per address; survives updates
	gen     uint64

	snap atomic.Pointer[Snapshot]
}

// New returns an Upstream with no targets.
func New(o Options) *Upstream {
	u := &Upstream{
		name:       o.Name,
		builder:    o.Balancer,
		health:     o.Health,
		onSnapshot: o.OnSnapshot,
		observer:   o.Observer,
		sources:    map[string][]Target{},
		stats:      map[string]*balance.Stats{},
	}
	u.snap.Store(&Snapshot{})
	return u
}

// Name returns the upstream's name.
func (u *Upstream) Name() string { return u.name }

// Snapshot returns the current snapshot.
func (u *Upstream) Snapshot() *Snapshot { return u.snap.Load() }

// SetTargets replaces the full target set of one source and rebuilds the
// picker. State of addresses present before and after is kept.
func (u *Upstream) SetTargets(source string, ts []Target) {
	cp := make([]Target, len(ts))
	for i, t := range ts {
		t.Source = source
		cp[i] = t
	}
	u.mu.Lock()
	if len(cp) == 0 {
		delete(u.sources, source)
	} else {
		u.sources[source] = cp
	}
	s := u.rebuildLocked()
	u.mu.Unlock()
	u.notify(s)
}

// Rebuild recomputes the snapshot from the current inputs (call it when
// health changes).
func (u *Upstream) Rebuild() {
	u.mu.Lock()
	s := u.rebuildLocked()
	u.mu.Unlock()
	u.notify(s)
}

func (u *Upstream) notify(s *Snapshot) {
	if u.onSnapshot != nil {
		u.onSnapshot(s)
	}
}

// mergedLocked returns every target, one per address, in a stable order:
// the "static" source first, then the others by name, each in the order it
// gave. When two sources list one address, the earlier one wins, so an
// address written in the config keeps its configured weight.
func (u *Upstream) mergedLocked() []Target {
	names := make([]string, 0, len(u.sources))
	for n := range u.sources {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == StaticSource:
			return -1
		case b == StaticSource:
			return 1
		}
		return strings.Compare(a, b)
	})
	seen := map[string]bool{}
	var out []Target
	for _, n := range names {
		for _, t := range u.sources[n] {
			if seen[t.Addr] {
				continue
			}
			seen[t.Addr] = true
			out = append(out, t)
		}
	}
	return out
}

func (u *Upstream) rebuildLocked() *Snapshot {
	all := u.mergedLocked()
	live := make(map[string]bool, len(all))
	s := &Snapshot{Targets: make([]TargetState, 0, len(all))}
	var eps []balance.Endpoint
	for _, t := range all {
		live[t.Addr] = true
		st := u.stats[t.Addr]
		if st == nil {
			st = &balance.Stats{}
			u.stats[t.Addr] = st
		}
		healthy := u.health == nil || u.health.Healthy(t.Addr)
		w := t.Weight
		if !healthy {
			w = 0
		}
		if w > math.MaxUint16 {
			w = math.MaxUint16
		}
		s.Targets = append(s.Targets, TargetState{Target: t, EffectiveWeight: w, Healthy: healthy})
		if w > 0 {
			eps = append(eps, balance.Endpoint{Addr: t.Addr, Weight: uint32(w), Stats: st})
			s.Endpoints = append(s.Endpoints, Endpoint{Endpoint: eps[len(eps)-1], Target: t})
		}
	}
	for a := range u.stats {
		if !live[a] {
			delete(u.stats, a)
		}
	}
	var prev balance.Picker
	if old := u.snap.Load(); old != nil {
		prev = old.picker
	}
	s.picker = u.builder.Build(eps, prev)
	u.gen++
	s.Generation = u.gen
	u.snap.Store(s)
	return s
}

// Pick chooses an endpoint for a request. It takes no lock and allocates
// nothing.
func (u *Upstream) Pick(r *balance.Request) (*Endpoint, error) {
	s := u.snap.Load()
	return s.Pick(r)
}

// Pick chooses an endpoint from this snapshot.
func (s *Snapshot) Pick(r *balance.Request) (*Endpoint, error) {
	if s.picker == nil || len(s.Endpoints) == 0 {
		return nil, ErrNoTargets
	}
	i := s.picker.Pick(r)
	if i < 0 || i >= len(s.Endpoints) {
		return nil, ErrNoTargets
	}
	return &s.Endpoints[i], nil
}

// Outcome is what the proxy reports after a request to an endpoint.
type Outcome struct {
	// Status is the HTTP status received (0 if none).
	Status int
	// ConnectFailed means no connection was established.
	ConnectFailed bool
	// Timeout means the upstream timed out.
	Timeout bool
	// Duration is the time to the response headers (or to the failure).
	Duration time.Duration
}

// Report feeds the outcome of one attempt back to the upstream's observer
// (passive health checks, latency tracking).
func (u *Upstream) Report(ep *Endpoint, o Outcome) {
	if u.observer != nil {
		u.observer(ep, o)
	}
}

// SetBalancer replaces the balancing algorithm and rebuilds the picker.
func (u *Upstream) SetBalancer(b balance.Builder) {
	u.mu.Lock()
	u.builder = b
	s := u.rebuildLocked()
	u.mu.Unlock()
	u.notify(s)
}
