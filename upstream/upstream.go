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
//   - Every listed address has a Member. A request holds the Member of
//     the endpoint it uses (Hold, then Done); a Member ends once its
//     address has left and the last request holding it is done, and
//     Options.OnTargetGone is called then, exactly once. An address that
//     comes back after that gets a new Member; one that comes back while
//     a request still holds the old one keeps it.
//   - Apply sets every configured input at once with one snapshot swap
//     (none when nothing changed), so no reader sees half of a change.
//   - A snapshot records the configuration generation of the spec it was
//     built from (Spec.Generation). When Apply moves the upstream to a new
//     generation, the last snapshot of the previous one stays reachable
//     (one step back, never a chain): SnapshotAt(gen) gives a request that
//     resolves generation gen the state of that generation, so a
//     configuration change can install every upstream's new snapshot
//     before it switches the routing table, and no request mixes the two.
//   - Nothing outside this package mutates a Picker.
package upstream

import (
	"cmp"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/health"
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
	// Tags and Meta are labels from the config or discovery.
	Tags []string
	Meta map[string]string
	// Priority groups targets into levels (static config, DNS SRV): the
	// lowest level takes traffic by its health, overprovisioned 1.4 times
	// (Envoy's priority load); what it cannot take goes to the next.
	Priority int
	// Backup targets get traffic only when no primary (non-backup)
	// target is healthy; among themselves they form levels by Priority.
	Backup bool
	// Source names where the target came from ("static", "consul:web", ...).
	Source string
}

// Panic configures what an upstream does when too few targets are healthy.
type Panic struct {
	// MinHealthyPercent engages panic mode below this share; 0 disables.
	// fail-open counts targets (Envoy); fail-closed counts weight (Kong's
	// healthchecks.threshold).
	MinHealthyPercent float64
	// FailClosed answers 503 in panic mode (Kong); otherwise the balancer
	// uses every weighted target, healthy or not (Envoy, fail-open).
	FailClosed bool
}

// SlowStart ramps the weight of a target that joins (after the first
// target set) or recovers, as Envoy does.
type SlowStart struct {
	Window           time.Duration
	Aggression       float64
	MinWeightPercent float64
}

// Options configures an Upstream.
type Options struct {
	// Name is the upstream's name (as routes and services refer to it).
	Name string
	// Balancer builds pickers; required.
	Balancer balance.Builder
	// Health, when set, filters unhealthy targets out of the picker and
	// receives every attempt's outcome (passive checks). The upstream keeps
	// its target set current; the caller wires the checker's OnChange to
	// Rebuild and starts and stops it.
	Health *health.Checker
	// Panic is the panic-mode policy.
	Panic Panic
	// SlowStart, when set, ramps new and recovered targets.
	SlowStart *SlowStart
	// OnPanic, when set, is called (outside any lock) when panic mode
	// engages or ends, with the healthy share that decided it.
	OnPanic func(engaged bool, healthyPercent float64)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Zone is the sidecar's own zone; when set, each priority level
	// prefers the targets whose MetaZone is Zone (zone-aware routing).
	// MinClusterSize is the number of healthy targets a level needs for
	// it; 0 means DefaultMinClusterSize.
	Zone           string
	MinClusterSize int
	// OnSnapshot, when set, is called after every snapshot swap (outside
	// any lock); used for metrics.
	OnSnapshot func(*Snapshot)
	// Observer, when set, also receives every attempt's outcome.
	Observer func(*Endpoint, Outcome)
	// GRPCFailures are the gRPC statuses that count as failures of the
	// target (passive health, latency balancer); nil means
	// DefaultGRPCFailures.
	GRPCFailures []int
	// OnTargetGone, when set, is called once a target that left the
	// upstream has no request holding its Member (the metrics of the
	// address can go). It runs with the upstream's member lock held, so
	// that it is ordered with the address coming back; it must not call
	// into the upstream.
	OnTargetGone func(addr string)
}

// Endpoint is an eligible target in a snapshot; Pick returns a pointer to
// one, valid for as long as the caller needs it (snapshots are immutable).
type Endpoint struct {
	balance.Endpoint
	Target Target
	// Member is the target's life in the upstream; a request holds it
	// while it uses the endpoint.
	Member *Member
}

// Member is one address's life in an upstream (see the package contract).
// Safe for concurrent use.
type Member struct {
	// Addr is the target's address.
	Addr string
	u    *Upstream
	// refs is 1 while the address is listed, plus 1 per Hold not yet
	// Done. The member ends when refs reaches 0 and never leaves 0.
	refs atomic.Int64
	// listed is guarded by u.memMu.
	listed bool
	// ext is what the member's user attached (Attach).
	ext atomic.Pointer[any]
}

// Hold keeps the member alive for one request; Done must follow. It
// returns false when the member has ended: the caller read a snapshot
// older than the target's removal and must pick from the current one.
// It takes no lock and allocates nothing.
func (m *Member) Hold() bool {
	for {
		n := m.refs.Load()
		if n <= 0 {
			return false
		}
		if m.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Done releases a Hold. Only the release that ends a departed member
// takes a lock.
func (m *Member) Done() { m.release() }

func (m *Member) release() {
	if m.refs.Add(-1) == 0 {
		m.u.memberEnded(m)
	}
}

// Value returns the value attached to the member, or nil.
func (m *Member) Value() any {
	if p := m.ext.Load(); p != nil {
		return *p
	}
	return nil
}

// Attach attaches v to the member unless a value is attached already, and
// returns the value attached. The proxy keeps its per-target metric
// children here, so they live exactly as long as the member.
func (m *Member) Attach(v any) any {
	if m.ext.CompareAndSwap(nil, &v) {
		return v
	}
	return m.Value()
}

// memberEnded forgets a member whose last reference went, unless its
// address came back with a new member meanwhile (then the address's
// metrics live on).
func (u *Upstream) memberEnded(m *Member) {
	u.memMu.Lock()
	defer u.memMu.Unlock()
	if u.members[m.Addr] != m {
		return
	}
	delete(u.members, m.Addr)
	if u.onGone != nil {
		u.onGone(m.Addr)
	}
}

// TargetState is a target's effective state as the admin API reports it.
type TargetState struct {
	Target
	// EffectiveWeight is the weight the balancer uses now (after slow start
	// and overrides); 0 when draining or unhealthy (outside panic mode).
	EffectiveWeight int
	Healthy         bool
	// RampingSince is when slow start began for the target (zero when it is
	// not ramping).
	RampingSince time.Time
	// Override is the ID of the weight override in force, if any.
	Override string
	// ConfiguredWeight is the weight the target's source gives it (Weight
	// is after the weight override, if any).
	ConfiguredWeight int
	// SlowStartFactor is the share of its weight slow start gave the
	// target at this snapshot (1 when it is not ramping).
	SlowStartFactor float64
	// Stats is the address's balancer state (in flight, requests, latency
	// EWMA), shared with the pickers; read it atomically.
	Stats *balance.Stats
}

// Snapshot is the immutable state the request path reads.
type Snapshot struct {
	// Generation increases with every swap.
	Generation uint64
	// ConfigGeneration is the configuration generation of the spec the
	// snapshot was built from (Spec.Generation of the last Apply that
	// changed something); rebuilds between two Applies (targets, health,
	// slow start) keep it.
	ConfigGeneration uint64
	// Endpoints are the eligible targets, index-aligned with Picker.
	Endpoints []Endpoint
	// Targets lists every known target with its effective state.
	Targets []TargetState
	// Panic reports that panic mode is engaged; HealthyPercent is the
	// healthy share that decided it.
	Panic          bool
	HealthyPercent float64
	// SourceGenerations counts, per source other than StaticSource, the
	// target sets that changed it (SetTargets), up to this snapshot.
	SourceGenerations map[string]uint64
	// Levels are the priority levels of the weighted targets, primaries
	// by priority then backups by priority, with the share of traffic
	// each takes.
	Levels []Level
	picker balance.Picker
}

// snapshots is what readers load: the current snapshot, and the last one
// of the configuration generation before the current one's (nil before
// the first change of generation). The predecessor's own predecessor is
// not kept.
type snapshots struct {
	cur, prev *Snapshot
}

// Level is one priority level of a snapshot.
type Level struct {
	Priority int  `json:"priority"`
	Backup   bool `json:"backup"`
	// Targets and Healthy count its weighted targets.
	Targets int `json:"targets"`
	Healthy int `json:"healthy"`
	// Load is the percentage of requests it takes (0..100).
	Load int `json:"load"`
	// Zones, under zone-aware routing, is the percentage of the level's
	// requests each zone takes; nil when the level ignores zones.
	Zones map[string]int `json:"zones,omitempty"`
}

// Upstream is one named pool of targets with its balancer.
type Upstream struct {
	// Immutable after New.
	name       string
	health     *health.Checker
	panic      Panic
	slow       *SlowStart
	onSnapshot func(*Snapshot)
	onPanic    func(bool, float64)
	observer   func(*Endpoint, Outcome)
	grpcFail   uint32 // bit n: gRPC status n is a failure (immutable)
	onGone     func(string)
	now        func() time.Time
	zone       string
	minCluster int

	// setMu serialises whole target-set updates, which hand the address
	// list to the health checker outside mu (the checker may call Rebuild
	// back synchronously).
	setMu sync.Mutex

	// mu serialises snapshot rebuilds and guards the fields below it.
	// Readers never take it: they load snap.
	mu          sync.Mutex
	builder     balance.Builder
	overrides   []Override
	marks       map[string]health.Mark
	sources     map[string][]Target       // full target set per source
	stats       map[string]*balance.Stats // per address; survives updates
	eligible    map[string]bool           // eligibility at the last rebuild
	rampStart   map[string]time.Time      // slow start in progress
	srcGen      map[string]uint64         // per source: changing SetTargets calls
	initialized bool                      // a first target set was applied
	rampTimer   *time.Timer
	closed      bool
	gen         uint64
	cfgGen      uint64 // the configuration generation of the spec in force
	// applying defers rebuilds while Apply hands its inputs to the health
	// checker (Apply's own rebuild then covers them).
	applying bool

	// memMu guards members: every listed address, and departed ones that
	// a request still holds. Lock order: mu, then memMu; the request path
	// takes memMu only when it ends a departed member.
	memMu   sync.Mutex
	members map[string]*Member

	snap atomic.Pointer[snapshots]

	// brk holds the circuit breakers; safe for concurrent use itself.
	brk Breakers
	// retry is the retry policy; nil means the default. Swapped whole.
	retry atomic.Pointer[RetryPolicy]
}

// New returns an Upstream with no targets.
func New(o Options) *Upstream {
	u := &Upstream{
		name:       o.Name,
		builder:    o.Balancer,
		health:     o.Health,
		panic:      o.Panic,
		slow:       o.SlowStart,
		onSnapshot: o.OnSnapshot,
		onPanic:    o.OnPanic,
		observer:   o.Observer,
		grpcFail:   grpcFailSet(o.GRPCFailures),
		onGone:     o.OnTargetGone,
		zone:       o.Zone,
		minCluster: cmp.Or(o.MinClusterSize, DefaultMinClusterSize),
		now:        o.Now,
		sources:    map[string][]Target{},
		stats:      map[string]*balance.Stats{},
		eligible:   map[string]bool{},
		rampStart:  map[string]time.Time{},
		srcGen:     map[string]uint64{},
		members:    map[string]*Member{},
	}
	if u.now == nil {
		u.now = time.Now
	}
	u.snap.Store(&snapshots{cur: &Snapshot{}})
	return u
}

// Name returns the upstream's name.
func (u *Upstream) Name() string { return u.name }

// Snapshot returns the current snapshot.
func (u *Upstream) Snapshot() *Snapshot { return u.snap.Load().cur }

// SnapshotAt returns the snapshot of a request that resolves configuration
// generation gen (the routing table's): the current snapshot when it was
// built from gen's spec or an earlier one, else the predecessor when that
// is of gen or earlier — the request's table was built before the spec in
// force was applied. A request older still (its table was replaced twice
// since) gets the current snapshot. It takes no lock and allocates
// nothing.
func (u *Upstream) SnapshotAt(gen uint64) *Snapshot {
	ss := u.snap.Load()
	if ss.cur.ConfigGeneration > gen && ss.prev != nil && ss.prev.ConfigGeneration <= gen {
		return ss.prev
	}
	return ss.cur
}

// SetTargets replaces the full target set of one source and rebuilds the
// picker. State of addresses present before and after is kept.
func (u *Upstream) SetTargets(source string, ts []Target) {
	cp := make([]Target, len(ts))
	for i, t := range ts {
		t.Source = source
		cp[i] = t
	}
	u.setMu.Lock()
	defer u.setMu.Unlock()
	u.mu.Lock()
	if !targetsEqual(u.sources[source], cp) {
		u.srcGen[source]++
	}
	if len(cp) == 0 {
		delete(u.sources, source)
	} else {
		u.sources[source] = cp
	}
	var addrs []string
	if u.health != nil {
		for _, t := range u.mergedLocked() {
			addrs = append(addrs, t.Addr)
		}
	}
	marks := u.marks
	u.mu.Unlock()
	if u.health != nil {
		u.health.SetTargets(addrs)
		for a, m := range marks {
			u.health.Mark(a, m) // a target that just appeared gets its mark
		}
	}
	u.Rebuild()
}

// Spec is everything the configuration sets on an upstream: the balancer,
// the static targets, the weight overrides and the manual health marks.
type Spec struct {
	// Generation is the configuration generation the spec belongs to
	// (the snapshot's ConfigGeneration); generations only increase. 0
	// leaves the upstream unversioned: SnapshotAt is then Snapshot.
	Generation uint64
	Balancer   balance.Builder
	Targets    []Target // the StaticSource's set
	Overrides  []Override
	// Marks are the manual health marks by address (see SetMarks); they
	// need a health checker.
	Marks map[string]health.Mark
}

// Apply sets every input of s at once: the snapshot is swapped exactly
// once, with all of s in force, or not at all when s changes nothing (the
// balancer is compared by identity; s.Generation is not an input: a spec
// that changes nothing leaves the snapshot of its earlier generation in
// force, valid for this one too). Per-address state (health, slow start,
// balancer stats, members) is kept as with SetTargets. It reports whether
// the snapshot was rebuilt; the snapshot it was before stays reachable by
// SnapshotAt for requests of the generations before s.Generation.
func (u *Upstream) Apply(s Spec) bool {
	static := make([]Target, len(s.Targets))
	for i, t := range s.Targets {
		t.Source = StaticSource
		static[i] = t
	}
	ovs := slices.Clone(s.Overrides)
	marks := maps.Clone(s.Marks)
	if u.health == nil {
		marks = nil
	}
	u.setMu.Lock()
	defer u.setMu.Unlock()
	u.mu.Lock()
	if s.Balancer == nil {
		s.Balancer = u.builder
	}
	if s.Balancer == u.builder && targetsEqual(u.sources[StaticSource], static) &&
		overridesEqual(u.overrides, ovs) && maps.Equal(u.marks, marks) {
		u.mu.Unlock()
		return false
	}
	u.builder, u.overrides, u.cfgGen = s.Balancer, ovs, s.Generation
	if len(static) == 0 {
		delete(u.sources, StaticSource)
	} else {
		u.sources[StaticSource] = static
	}
	oldMarks := u.marks
	u.marks = marks
	var addrs []string
	if u.health != nil {
		for _, t := range u.mergedLocked() {
			addrs = append(addrs, t.Addr)
		}
	}
	u.applying = true
	u.mu.Unlock()
	if u.health != nil {
		// Health changes these cause call Rebuild back: deferred, so the
		// one rebuild below sees them with everything else.
		u.health.SetTargets(addrs)
		for a := range oldMarks {
			if _, ok := marks[a]; !ok {
				u.health.Mark(a, health.MarkNone)
			}
		}
		for a, m := range marks {
			u.health.Mark(a, m)
		}
	}
	u.mu.Lock()
	u.applying = false
	old := u.Snapshot()
	snap := u.rebuildLocked()
	u.mu.Unlock()
	u.notify(old, snap)
	return true
}

func targetsEqual(a, b []Target) bool {
	return slices.EqualFunc(a, b, func(x, y Target) bool {
		return x.Addr == y.Addr && x.Weight == y.Weight && x.Priority == y.Priority && x.Backup == y.Backup && x.Source == y.Source &&
			slices.Equal(x.Tags, y.Tags) && maps.Equal(x.Meta, y.Meta)
	})
}

func overridesEqual(a, b []Override) bool {
	return slices.EqualFunc(a, b, func(x, y Override) bool {
		return x.ID == y.ID && x.Target == y.Target && slices.Equal(x.Tags, y.Tags) && maps.Equal(x.Meta, y.Meta) &&
			eqPtr(x.Weight, y.Weight) && eqPtr(x.Share, y.Share)
	})
}

func eqPtr[T comparable](a, b *T) bool { return a == b || (a != nil && b != nil && *a == *b) }

// SetMarks replaces the manual health marks (address → mark). A mark for
// an address the upstream does not have yet applies when it appears;
// addresses that lose their mark go back to their checks. Marks need a
// health checker (Options.Health).
func (u *Upstream) SetMarks(marks map[string]health.Mark) {
	if u.health == nil {
		return
	}
	u.setMu.Lock()
	defer u.setMu.Unlock()
	u.mu.Lock()
	old := u.marks
	u.marks = maps.Clone(marks)
	u.mu.Unlock()
	for a := range old {
		if _, ok := marks[a]; !ok {
			u.health.Mark(a, health.MarkNone)
		}
	}
	for a, m := range marks {
		u.health.Mark(a, m)
	}
}

// Health returns the upstream's health checker (nil when it has none).
func (u *Upstream) Health() *health.Checker { return u.health }

// Close stops the upstream's timers. The upstream keeps serving its last
// snapshot.
func (u *Upstream) Close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = true
	if u.rampTimer != nil {
		u.rampTimer.Stop()
	}
}

// Rebuild recomputes the snapshot from the current inputs (call it when
// health changes).
func (u *Upstream) Rebuild() {
	u.mu.Lock()
	if u.applying {
		u.mu.Unlock()
		return
	}
	old := u.Snapshot()
	s := u.rebuildLocked()
	u.mu.Unlock()
	u.notify(old, s)
}

func (u *Upstream) notify(old, s *Snapshot) {
	if u.onPanic != nil && old.Panic != s.Panic {
		u.onPanic(s.Panic, s.HealthyPercent)
	}
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
	now := u.now()
	s := &Snapshot{Targets: make([]TargetState, 0, len(all))}
	overridden := make([]string, len(all))
	configured := make([]int, len(all))
	for i := range all {
		configured[i] = all[i].Weight
		if w, id, ok := weightOverride(u.overrides, &all[i]); ok {
			all[i].Weight, overridden[i] = w, id
		}
	}

	// Health and panic mode: the share of weighted targets (by count for
	// fail-open, by weight for fail-closed) that is healthy.
	var total, healthyN, totalW, healthyW int
	healthy := make([]bool, len(all))
	for i, t := range all {
		healthy[i] = u.health == nil || u.health.Healthy(t.Addr)
		if t.Weight > 0 {
			total++
			totalW += t.Weight
			if healthy[i] {
				healthyN++
				healthyW += t.Weight
			}
		}
	}
	s.HealthyPercent = 100
	if u.panic.FailClosed && totalW > 0 {
		s.HealthyPercent = 100 * float64(healthyW) / float64(totalW)
	} else if !u.panic.FailClosed && total > 0 {
		s.HealthyPercent = 100 * float64(healthyN) / float64(total)
	}
	s.Panic = total > 0 && u.panic.MinHealthyPercent > 0 && s.HealthyPercent < u.panic.MinHealthyPercent
	levelOf, levels := priorityLevels(all, healthy, s.Panic && !u.panic.FailClosed)
	s.Levels = levels
	members, departed := u.membersLocked(all)

	live := make(map[string]bool, len(all))
	eligible := make(map[string]bool, len(all))
	ramping := false
	var eps []balance.Endpoint
	var groups, stateIdx, epLevel []int // per endpoint: share override, index in s.Targets, level
	var epMembers []*Member
	for i, t := range all {
		live[t.Addr] = true
		st := u.stats[t.Addr]
		if st == nil {
			st = &balance.Stats{}
			u.stats[t.Addr] = st
		}
		w := min(max(t.Weight, 0), math.MaxUint16)
		use := w > 0 && levelOf[i] >= 0 && levels[levelOf[i]].Load > 0 && (healthy[i] || (s.Panic && !u.panic.FailClosed))
		if s.Panic && u.panic.FailClosed {
			use = false
		}
		ts := TargetState{Target: t, Healthy: healthy[i], Override: overridden[i], ConfiguredWeight: configured[i],
			SlowStartFactor: 1, Stats: st}
		if use {
			eligible[t.Addr] = true
			if u.slow != nil && u.slow.Window > 0 {
				if u.initialized && !u.eligible[t.Addr] {
					u.rampStart[t.Addr] = now
				}
				if start, ok := u.rampStart[t.Addr]; ok {
					if el := now.Sub(start); el < u.slow.Window {
						full := w
						w = int(balance.SlowStartWeight(uint32(w), el, u.slow.Window, u.slow.Aggression, u.slow.MinWeightPercent))
						ts.RampingSince = start
						ts.SlowStartFactor = float64(w) / float64(full)
						ramping = true
					} else {
						delete(u.rampStart, t.Addr)
					}
				}
			}
			ts.EffectiveWeight = w
			eps = append(eps, balance.Endpoint{Addr: t.Addr, Weight: uint32(w), Stats: st})
			groups = append(groups, shareOf(u.overrides, &all[i]))
			stateIdx = append(stateIdx, len(s.Targets))
			epLevel = append(epLevel, levelOf[i])
			epMembers = append(epMembers, members[i])
		} else {
			delete(u.rampStart, t.Addr)
		}
		s.Targets = append(s.Targets, ts)
	}
	for a := range u.stats {
		if !live[a] {
			delete(u.stats, a)
		}
	}
	if len(u.overrides) > 0 {
		ws := make([]uint32, len(eps))
		for i := range eps {
			ws[i] = eps[i].Weight
		}
		applyShares(ws, groups, u.overrides)
		for i := range eps {
			eps[i].Weight = ws[i]
			s.Targets[stateIdx[i]].EffectiveWeight = int(ws[i])
		}
	}
	// Endpoints are grouped by level, in target order within each.
	order := make([]int, 0, len(eps))
	for i := range eps {
		if eps[i].Weight > 0 { // a share of 0 % drains
			order = append(order, i)
		}
	}
	epGroup, groupLoads := u.localityGroups(all, healthy, levelOf, levels, epLevel, stateIdx, s)
	slices.SortStableFunc(order, func(a, b int) int { return epGroup[a] - epGroup[b] })
	sizes := make([]int, len(groupLoads))
	kept := make([]balance.Endpoint, 0, len(order))
	for _, i := range order {
		kept = append(kept, eps[i])
		sizes[epGroup[i]]++
		s.Endpoints = append(s.Endpoints, Endpoint{Endpoint: eps[i], Target: s.Targets[stateIdx[i]].Target, Member: epMembers[i]})
	}
	eps = kept
	u.eligible = eligible
	if len(all) > 0 {
		u.initialized = true
	}
	if ramping && !u.closed && u.rampTimer == nil {
		// Rebuild a few dozen times per window while anything ramps.
		step := max(u.slow.Window/40, 50*time.Millisecond)
		u.rampTimer = time.AfterFunc(step, func() {
			u.mu.Lock()
			u.rampTimer = nil
			u.mu.Unlock()
			u.Rebuild()
		})
	}

	old := u.snap.Load()
	s.picker = buildLevels(u.builder, eps, sizes, groupLoads, old.cur.picker)
	u.gen++
	s.Generation, s.ConfigGeneration = u.gen, u.cfgGen
	s.SourceGenerations = maps.Clone(u.srcGen)
	next := &snapshots{cur: s, prev: old.prev}
	if old.cur.ConfigGeneration != s.ConfigGeneration {
		next.prev = old.cur
	}
	u.snap.Store(next)
	// Only now, with no current snapshot listing them, can departed
	// members end (a Hold on an older snapshot's endpoint then fails).
	for _, m := range departed {
		m.release()
	}
	return s
}

// membersLocked returns the member of every target of all (index-aligned),
// creating those of addresses that join, and the members of addresses
// that left, still to be released once the new snapshot is in. The caller
// holds u.mu.
func (u *Upstream) membersLocked(all []Target) (members, departed []*Member) {
	u.memMu.Lock()
	defer u.memMu.Unlock()
	members = make([]*Member, len(all))
	listed := make(map[string]bool, len(all))
	for i, t := range all {
		listed[t.Addr] = true
		m := u.members[t.Addr]
		if m == nil || !m.listed {
			// A departed member a request still holds is taken back;
			// one that just ended is replaced.
			if m == nil || !m.Hold() {
				m = &Member{Addr: t.Addr, u: u}
				m.refs.Store(1)
				u.members[t.Addr] = m
			}
			m.listed = true
		}
		members[i] = m
	}
	for a, m := range u.members {
		if m.listed && !listed[a] {
			m.listed = false
			departed = append(departed, m)
		}
	}
	return members, departed
}

// priorityLevels sorts the weighted targets into levels (primaries by
// priority, then backups by priority) and gives each its load: Envoy's
// priority load over the primaries, or over the backups when no primary is
// healthy. When no level has a healthy target, or in fail-open panic mode,
// the lowest level with a healthy target (else the lowest) takes it all,
// as one group. levelOf[i] is target i's level, -1 when it has no weight.
func priorityLevels(all []Target, healthy []bool, panicked bool) (levelOf []int, levels []Level) {
	less := func(a, b Level) int {
		if a.Backup != b.Backup {
			if a.Backup {
				return 1
			}
			return -1
		}
		return a.Priority - b.Priority
	}
	for _, t := range all {
		if t.Weight > 0 {
			levels = append(levels, Level{Priority: t.Priority, Backup: t.Backup})
		}
	}
	slices.SortFunc(levels, less)
	levels = slices.CompactFunc(levels, func(a, b Level) bool { return less(a, b) == 0 })
	levelOf = make([]int, len(all))
	for i, t := range all {
		levelOf[i] = -1
		if t.Weight <= 0 {
			continue
		}
		l, _ := slices.BinarySearchFunc(levels, Level{Priority: t.Priority, Backup: t.Backup}, less)
		levelOf[i] = l
		levels[l].Targets++
		if healthy[i] {
			levels[l].Healthy++
		}
	}
	split := func(from, to int) bool {
		h, n := make([]int, to-from), make([]int, to-from)
		for i := from; i < to; i++ {
			h[i-from], n[i-from] = levels[i].Healthy, levels[i].Targets
		}
		loads := balance.PriorityLoads(h, n, 0)
		ok := false
		for i, l := range loads {
			levels[from+i].Load = int(l)
			ok = ok || l > 0
		}
		return ok
	}
	primaries := 0
	for primaries < len(levels) && !levels[primaries].Backup {
		primaries++
	}
	if !panicked && (split(0, primaries) || split(primaries, len(levels))) {
		return levelOf, levels
	}
	for i := range levels {
		levels[i].Load = 0
	}
	if len(levels) == 0 {
		return levelOf, levels
	}
	active := 0
	for i := range levels {
		if levels[i].Healthy > 0 {
			active = i
			break
		}
	}
	levels[active].Load = 100
	return levelOf, levels
}

// buildLevels builds the snapshot's picker: the builder's own over eps when
// one group holds every endpoint, else a level picker over one picker per
// group with endpoints (eps are grouped, sizes[i] in group i, which takes
// loads[i] of the traffic).
func buildLevels(b balance.Builder, eps []balance.Endpoint, sizes []int, loads []uint32, prev balance.Picker) balance.Picker {
	var subSizes []int
	var subLoads []uint32
	g := uint32(0)
	for i, n := range sizes {
		if n > 0 {
			subSizes = append(subSizes, n)
			subLoads = append(subLoads, loads[i])
			g = gcd(g, loads[i])
		}
	}
	if len(subSizes) <= 1 || len(subSizes) > balance.MaxLevels {
		if lp := balance.LevelPicker(prev, 0); lp != nil {
			prev = lp
		}
		return b.Build(eps, prev)
	}
	subs := make([]balance.Picker, len(subSizes))
	off := 0
	for i := range subs {
		sub := balance.LevelPicker(prev, i)
		if sub == nil && i == 0 {
			sub = prev
		}
		subs[i] = b.Build(eps[off:off+subSizes[i]], sub)
		off += subSizes[i]
		if g > 0 {
			subLoads[i] /= g
		}
	}
	return balance.NewLevels(subs, subSizes, subLoads, prev)
}

func gcd(a, b uint32) uint32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Pick chooses an endpoint for a request. It takes no lock and allocates
// nothing.
func (u *Upstream) Pick(r *balance.Request) (*Endpoint, error) {
	return u.Snapshot().Pick(r)
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

// Next returns the endpoint after the one at addr (in snapshot order) that
// skip does not reject, for a retry; the balancer is not consulted, so its
// state (a round-robin position, say) is not disturbed. When every endpoint
// is rejected it returns the one after addr anyway, so a retry still
// happens on a single-target upstream.
func (s *Snapshot) Next(addr string, skip func(string) bool) (*Endpoint, error) {
	n := len(s.Endpoints)
	if n == 0 {
		return nil, ErrNoTargets
	}
	start := 0
	for i := range s.Endpoints {
		if s.Endpoints[i].Addr == addr {
			start = i
			break
		}
	}
	for j := 1; j <= n; j++ {
		if ep := &s.Endpoints[(start+j)%n]; !skip(ep.Addr) {
			return ep, nil
		}
	}
	return &s.Endpoints[(start+1)%n], nil
}

// Outcome is what the proxy reports after a request to an endpoint.
type Outcome struct {
	// Status is the HTTP status received (0 if none).
	Status int
	// GRPC means the attempt was a gRPC call that ended with GRPCStatus
	// (from the trailers or a trailers-only response).
	GRPC       bool
	GRPCStatus int
	// ConnectFailed means no connection was established.
	ConnectFailed bool
	// Timeout means the upstream timed out.
	Timeout bool
	// Duration is the time to the response headers (or to the failure).
	Duration time.Duration
	// At is when the outcome was known.
	At time.Time
}

// Report feeds the outcome of one attempt back: the latency EWMA of the
// target, the passive health checks, and the observer.
func (u *Upstream) Report(ep *Endpoint, o Outcome) {
	grpcFailed := o.GRPC && o.GRPCStatus >= 0 && o.GRPCStatus < 32 && u.grpcFail&(1<<o.GRPCStatus) != 0
	failed := o.ConnectFailed || o.Timeout || o.Status >= 500 || grpcFailed
	ep.Stats.Observe(o.Duration, failed, o.At.UnixNano())
	if u.health != nil {
		u.health.Observe(ep.Addr, health.Result{Status: o.Status, TCPFailure: o.ConnectFailed, Timeout: o.Timeout, Failure: grpcFailed})
	}
	if u.observer != nil {
		u.observer(ep, o)
	}
}

// SetBalancer replaces the balancing algorithm and rebuilds the picker.
func (u *Upstream) SetBalancer(b balance.Builder) {
	u.mu.Lock()
	u.builder = b
	u.mu.Unlock()
	u.Rebuild()
}

// SourceTargets returns a copy of every non-static source's target set, so
// a replacement upstream can start with what discovery already knows.
func (u *Upstream) SourceTargets() map[string][]Target {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string][]Target, len(u.sources))
	for name, ts := range u.sources {
		if name != StaticSource {
			out[name] = slices.Clone(ts)
		}
	}
	return out
}

// DefaultGRPCFailures are the gRPC statuses held against a target unless
// configured otherwise: DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED and
// UNAVAILABLE.
func DefaultGRPCFailures() []int { return []int{4, 8, 14} }

func grpcFailSet(codes []int) uint32 {
	if codes == nil {
		codes = DefaultGRPCFailures()
	}
	var set uint32
	for _, c := range codes {
		if c >= 0 && c < 32 {
			set |= 1 << c
		}
	}
	return set
}
