package health

import (
	"context"
	"crypto/tls"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options are a Checker's collaborators. Every field is optional.
type Options struct {
	// Clock drives probe intervals, jitter and ejection timers; nil means
	// real time.
	Clock Clock
	// OnChange is called after any target's effective health changed, so
	// the upstream can rebuild its picker. See "Callbacks" in the package
	// documentation.
	OnChange func()
	// OnEvent receives one Event per state change (for logs and metrics).
	OnEvent func(Event)
	// Rand is the jitter source; nil means math/rand/v2.Uint64.
	Rand func() uint64
	// DialContext opens probe connections (all probe types); nil means a
	// plain net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSConfig is the base TLS configuration of https probes (root CAs,
	// client certificates, ...). It is cloned; ServerName and
	// InsecureSkipVerify are then set from the Config.
	TLSConfig *tls.Config
}

// Checker holds the health state of one upstream's targets. Create it with
// New; all methods are safe for concurrent use.
type Checker struct {
	// Immutable after New.
	clock          Clock
	rand           func() uint64
	onChange       func()
	onEvent        func(Event)
	activeTh       thresholds
	passiveTh      thresholds
	passiveOn      bool
	probeOn        bool // active enabled with at least one non-zero interval
	activeRecovers bool // active probes can bring an unhealthy target back
	healthyEvery   time.Duration
	unhealthyEvery time.Duration
	maxEjectPct    float64 // 0: no cap
	baseEject      time.Duration
	maxEject       time.Duration
	prober         prober
	// rate is success-rate ejection; nil when off.
	rate *SuccessRateConfig

	// lifeMu serialises Start and Stop and guards last.
	lifeMu sync.Mutex
	last   *run // most recent run started, possibly finished

	// mu serialises the writers that walk or replace the target set:
	// SetTargets, Start and the teardown of a run. Lock order: lifeMu, mu,
	// target.mu, evMu.
	mu sync.Mutex
	// targets is a copy-on-write map, replaced under mu and read without
	// locks (Healthy, Observe, Mark, States).
	targets atomic.Pointer[map[string]*target]
	// cur is the run probes are scheduled on, nil when not probing. Stored
	// under mu, read under a target's mu.
	cur atomic.Pointer[run]
	// rateRun is the run success-rate evaluations are scheduled on, nil
	// when none; guarded by mu.
	rateRun *run
	// halted is set by Stop (and by a cancelled Start context) and cleared
	// by Start; while set, timed ejections are not armed.
	halted atomic.Bool
	// ejected counts targets holding an ejection slot (MaxEjectionPercent).
	ejected atomic.Int64

	// evMu guards the callback queue below. It is a leaf lock, taken under
	// a target's mu to enqueue in order, and never held while a callback
	// runs.
	evMu       sync.Mutex
	evQueue    []Event
	evChanged  bool // an OnChange call is owed
	evDraining bool // some goroutine is delivering the queue
}

// target is the state of one address.
type target struct {
	addr string
	// eff is the effective health; written under mu, read lock-free by
	// Healthy.
	eff atomic.Bool
	// status is the effective health with its reason, replaced under mu
	// at every state change and read lock-free by Status.
	status atomic.Pointer[Status]

	mu sync.Mutex
	// Everything below is guarded by mu.
	removed bool // no longer in the target set; ignore all reports

	healthy bool // the checks' verdict
	cause   Cause
	since   time.Time
	active  counters
	passive counters
	mark    Mark

	// Passive ejection.
	ejected      bool // holds an ejection slot; implies !healthy
	ejections    int
	decayFrom    time.Time // start of the healthy period decaying ejections
	ejectedUntil time.Time // zero unless a timed ejection is pending
	ejectTimer   Timer
	ejectSeq     uint64
	// rate is the last success-rate sample (nil before one); rateOK and
	// rateTotal count the current interval's outcomes, lock-free.
	rate      *RateSample
	rateOK    atomic.Int64
	rateTotal atomic.Int64

	// Active probing: a target has a pending probe timer, a probe in
	// flight (probing), or neither (parked); never both.
	probeTimer Timer
	probeRun   *run // run probeTimer belongs to
	probeSeq   uint64
	probing    bool
	// grpc is the target's gRPC channel (grpc and grpcs probes), opened
	// by its first probe and closed when the target is removed or a run
	// ends.
	grpc *grpcConn
}

// counters are consecutive-outcome counters, saturating.
type counters struct {
	successes, httpFailures, tcpFailures, timeouts uint32
}

func (c counters) export() Counters {
	return Counters{
		Successes:    int(c.successes),
		HTTPFailures: int(c.httpFailures),
		TCPFailures:  int(c.tcpFailures),
		Timeouts:     int(c.timeouts),
	}
}

// kind is a classified outcome.
type kind uint8

const (
	kindIgnore kind = iota
	kindSuccess
	kindHTTPFailure
	kindTCPFailure
	kindTimeout
)

func (th *thresholds) classify(r Result) kind {
	switch {
	case r.Timeout:
		return kindTimeout
	case r.TCPFailure:
		return kindTCPFailure
	case r.Failure:
		return kindHTTPFailure
	case th.healthy.has(r.Status):
		return kindSuccess
	case th.unhealthy.has(r.Status):
		return kindHTTPFailure
	}
	return kindIgnore
}

func incr(p *uint32) uint32 {
	if *p < 1<<31 {
		*p++
	}
	return *p
}

// record counts one outcome: a success clears the failure counters, a
// failure clears the success counter, and a counter whose threshold is 0
// is not incremented. It returns +1 when the success threshold is reached,
// -1 when a failure threshold is reached, 0 otherwise. Counting goes on in
// the state the outcome points to; only the caller decides on flips.
func (c *counters) record(k kind, th *thresholds) int {
	switch k {
	case kindSuccess:
		c.httpFailures, c.tcpFailures, c.timeouts = 0, 0, 0
		if th.successes > 0 && incr(&c.successes) >= th.successes {
			return 1
		}
	case kindHTTPFailure:
		c.successes = 0
		if th.httpFailures > 0 && incr(&c.httpFailures) >= th.httpFailures {
			return -1
		}
	case kindTCPFailure:
		c.successes = 0
		if th.tcpFailures > 0 && incr(&c.tcpFailures) >= th.tcpFailures {
			return -1
		}
	case kindTimeout:
		c.successes = 0
		if th.timeouts > 0 && incr(&c.timeouts) >= th.timeouts {
			return -1
		}
	}
	return 0
}

// New returns a Checker with no targets. Probing starts with Start;
// passive checks and manual marks work right away.
func New(cfg Config, opts Options) *Checker {
	a, p := cfg.Active, cfg.Passive
	c := &Checker{
		clock:          opts.Clock,
		rand:           opts.Rand,
		onChange:       opts.OnChange,
		onEvent:        opts.OnEvent,
		activeTh:       makeThresholds(a.Successes, a.HTTPFailures, a.TCPFailures, a.Timeouts, a.HealthyStatuses, a.UnhealthyStatuses),
		passiveTh:      makeThresholds(p.Successes, p.HTTPFailures, p.TCPFailures, p.Timeouts, p.HealthyStatuses, p.UnhealthyStatuses),
		passiveOn:      p.Enabled,
		healthyEvery:   max(a.HealthyInterval, 0),
		unhealthyEvery: max(a.UnhealthyInterval, 0),
		baseEject:      p.BaseEjectionTime,
		maxEject:       p.MaxEjectionTime,
	}
	if c.clock == nil {
		c.clock = realClock{}
	}
	if c.rand == nil {
		c.rand = rand.Uint64
	}
	if !a.Enabled {
		c.healthyEvery, c.unhealthyEvery = 0, 0
	}
	c.probeOn = c.healthyEvery > 0 || c.unhealthyEvery > 0
	// Active probes can heal a target only if unhealthy targets are probed,
	// successes are counted and something counts as a success.
	c.activeRecovers = c.unhealthyEvery > 0 && a.Successes > 0 &&
		(!httpType(a.Type) || len(a.HealthyStatuses) > 0)
	if pct := p.MaxEjectionPercent; pct > 0 && pct < 100 {
		c.maxEjectPct = pct
	}
	if c.baseEject <= 0 {
		c.baseEject = DefaultBaseEjectionTime
	}
	if c.maxEject <= 0 {
		c.maxEject = DefaultMaxEjectionTime
	}
	c.maxEject = max(c.maxEject, c.baseEject)
	if c.probeOn {
		c.prober = newProber(a, opts)
	}
	if sr := p.SuccessRate; sr != nil && p.Enabled && sr.Interval > 0 {
		cp := *sr
		c.rate = &cp
	}
	empty := map[string]*target{}
	c.targets.Store(&empty)
	return c
}

func (c *Checker) lookup(addr string) *target {
	return (*c.targets.Load())[addr]
}

// Healthy reports the effective health of addr: the manual mark if any,
// else the checks' verdict. Unknown addresses are healthy. It takes no
// lock.
func (c *Checker) Healthy(addr string) bool {
	t := c.lookup(addr)
	return t == nil || t.eff.Load()
}

// SetTargets replaces the target set. Addresses already known keep all
// their state (verdict, counters, mark, ejections); new ones start
// healthy and, while running, get their first probe after a random jitter;
// removed ones are forgotten and their probes and timers stopped (a probe
// in flight finishes but its result is dropped). Duplicates are ignored.
// No callback is called: target-set changes are not health changes.
func (c *Checker) SetTargets(addrs []string) {
	var closing []*grpcConn
	defer func() {
		for _, g := range closing { // outside the locks
			g.close()
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.targets.Load()
	next := make(map[string]*target, len(addrs))
	var added []*target
	now := c.clock.Now()
	for _, a := range addrs {
		if _, dup := next[a]; dup {
			continue
		}
		if t := old[a]; t != nil {
			next[a] = t
			continue
		}
		t := &target{addr: a, healthy: true, cause: CauseInitial, since: now, decayFrom: now}
		t.eff.Store(true)
		t.status.Store(&Status{Healthy: true, Cause: CauseInitial, Since: now})
		next[a] = t
		added = append(added, t)
	}
	c.targets.Store(&next)
	for a, t := range old {
		if next[a] == nil {
			if g := c.remove(t); g != nil {
				closing = append(closing, g)
			}
		}
	}
	if r := c.cur.Load(); r != nil {
		for _, t := range added {
			t.mu.Lock()
			c.scheduleFirst(t, r)
			t.mu.Unlock()
		}
	}
}

// remove retires t and returns its gRPC channel, if any, for the caller
// to close once it holds no lock. Caller holds c.mu.
func (c *Checker) remove(t *target) *grpcConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removed = true
	g := t.grpc
	t.grpc = nil
	c.stopProbeTimer(t)
	c.stopEjectTimer(t)
	if t.ejected {
		t.ejected = false
		c.ejected.Add(-1)
	}
	return g
}

// Observe feeds the outcome of one proxied request to addr to the passive
// checker. It is a no-op when passive checking is disabled, for unknown
// addresses and for outcomes that are neither success nor failure; it
// takes only addr's own lock.
//
// While a target is unhealthy, passive outcomes are ignored, except during
// a timed ejection, where successes can end the ejection early (see
// PassiveConfig.Successes).
func (c *Checker) Observe(addr string, r Result) {
	if !c.passiveOn {
		return
	}
	k := c.passiveTh.classify(r)
	if k == kindIgnore {
		return
	}
	t := c.lookup(addr)
	if t == nil {
		return
	}
	if c.rate != nil {
		c.countRate(t, k)
	}
	t.mu.Lock()
	if t.removed || (!t.healthy && !(t.ejected && !c.activeRecovers)) {
		t.mu.Unlock()
		return
	}
	notify := false
	switch move := t.passive.record(k, &c.passiveTh); {
	case move < 0 && t.healthy:
		c.eject(t, c.clock.Now(), CausePassive, false)
		notify = true
	case move > 0 && !t.healthy:
		c.setChecks(t, true, CausePassive, c.clock.Now())
		notify = true
	}
	t.mu.Unlock()
	if notify {
		c.drain()
	}
}

// Mark sets (MarkHealthy, MarkUnhealthy) or clears (MarkNone) a manual
// override of addr's health. The checks keep counting underneath; clearing
// returns to their verdict. It reports false for unknown addresses and
// invalid marks. A mark survives SetTargets as long as addr stays listed.
func (c *Checker) Mark(addr string, m Mark) bool {
	if m > MarkUnhealthy {
		return false
	}
	t := c.lookup(addr)
	if t == nil {
		return false
	}
	t.mu.Lock()
	if t.removed {
		t.mu.Unlock()
		return false
	}
	if t.mark == m {
		t.mu.Unlock()
		return true
	}
	old := t.effective()
	t.mark = m
	c.publish(t, old, CauseManual, c.clock.Now())
	t.mu.Unlock()
	c.drain()
	return true
}

// States returns a snapshot of every target, sorted by address.
func (c *Checker) States() []TargetState {
	m := *c.targets.Load()
	out := make([]TargetState, 0, len(m))
	now := c.clock.Now()
	for _, t := range m {
		t.mu.Lock()
		c.decay(t, now)
		out = append(out, TargetState{
			Addr:         t.addr,
			Healthy:      t.effective(),
			Checks:       t.healthy,
			Cause:        t.cause,
			Since:        t.since,
			Mark:         t.mark,
			Active:       t.active.export(),
			Passive:      t.passive.export(),
			Ejected:      t.ejected,
			Ejections:    t.ejections,
			EjectedUntil: t.ejectedUntil,
			SuccessRate:  t.rate,
		})
		t.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b TargetState) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}

// effective is the health after the manual mark. Caller holds t.mu.
func (t *target) effective() bool {
	switch t.mark {
	case MarkHealthy:
		return true
	case MarkUnhealthy:
		return false
	}
	return t.healthy
}

// setChecks flips the checks' verdict of t, resets all its counters,
// settles the ejection bookkeeping, re-plans probing and queues the
// callbacks. Caller holds t.mu and must call drain after unlocking.
func (c *Checker) setChecks(t *target, healthy bool, cause Cause, now time.Time) {
	old := t.effective()
	if !healthy {
		c.decay(t, now)
	}
	t.healthy = healthy
	t.cause = cause
	t.since = now
	t.active, t.passive = counters{}, counters{}
	if healthy {
		t.decayFrom = now
		c.stopEjectTimer(t)
		t.ejectedUntil = time.Time{}
		if t.ejected {
			t.ejected = false
			c.ejected.Add(-1)
		}
	}
	c.publish(t, old, cause, now)
	c.replan(t)
}

// publish stores the effective health and queues an Event (and an
// OnChange call if the effective health changed). Caller holds t.mu.
func (c *Checker) publish(t *target, old bool, cause Cause, now time.Time) {
	eff := t.effective()
	t.eff.Store(eff)
	t.storeStatus(old != eff, cause, now)
	c.enqueue(Event{
		Addr:         t.addr,
		At:           now,
		Cause:        cause,
		Old:          old,
		New:          eff,
		Checks:       t.healthy,
		Mark:         t.mark,
		Ejections:    t.ejections,
		EjectedUntil: t.ejectedUntil,
	}, old != eff)
}

// eject handles an ejection decided by the passive checks (cause
// CausePassive: a failure threshold; CauseSuccessRate: an outlier) for a
// healthy target: either an ejection or, over MaxEjectionPercent, a
// refusal. keepOne refuses an ejection that would leave no target
// unejected. It reports whether the target was ejected. Caller holds t.mu
// and must call drain after unlocking.
func (c *Checker) eject(t *target, now time.Time, cause Cause, keepOne bool) bool {
	if !c.reserveSlot(keepOne) {
		t.passive = counters{}
		eff := t.effective()
		c.enqueue(Event{
			Addr: t.addr, At: now, Cause: CauseEjectionRefused,
			Old: eff, New: eff, Checks: true, Mark: t.mark,
			Ejections: t.ejections,
		}, false)
		return false
	}
	c.decay(t, now)
	t.ejected = true
	if t.ejections < 1<<20 {
		t.ejections++
	}
	if !c.activeRecovers {
		d := c.maxEject
		if n := time.Duration(t.ejections); c.baseEject <= c.maxEject/n {
			d = c.baseEject * n
		}
		t.ejectedUntil = now.Add(d)
		c.armEjectTimer(t, d)
	}
	c.setChecks(t, false, cause, now)
	return true
}

// ejectionLimit is how many of total targets may hold an ejection slot
// under MaxEjectionPercent pct (0: no cap): floor(pct × total / 100), but
// at least one (Envoy ejects one host whatever the percentage) and, with a
// cap, never all of them, so a pool of 2 or 3 is neither forbidden an
// ejection by rounding nor emptied by it. keepOne also keeps one target
// out of reach without a cap.
func ejectionLimit(pct float64, total int, keepOne bool) int {
	limit := total
	if pct > 0 {
		limit = max(int(math.Floor(pct*float64(total)/100+1e-9)), 1)
		keepOne = true
	}
	if keepOne {
		limit = min(limit, total-1)
	}
	return max(limit, 0)
}

// reserveSlot takes one ejection slot unless that would put more targets
// in the ejected state than ejectionLimit allows.
func (c *Checker) reserveSlot(keepOne bool) bool {
	limit := int64(ejectionLimit(c.maxEjectPct, len(*c.targets.Load()), keepOne))
	for {
		n := c.ejected.Load()
		if n+1 > limit {
			return false
		}
		if c.ejected.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// decay forgets one ejection per BaseEjectionTime the target has spent
// healthy since decayFrom. Caller holds t.mu.
func (c *Checker) decay(t *target, now time.Time) {
	if !t.healthy {
		return
	}
	if t.ejections == 0 {
		t.decayFrom = now // nothing to decay: the period starts afresh
		return
	}
	k := now.Sub(t.decayFrom) / c.baseEject
	if k <= 0 {
		return
	}
	if k >= time.Duration(t.ejections) {
		t.ejections = 0
		t.decayFrom = now
		return
	}
	t.ejections -= int(k)
	t.decayFrom = t.decayFrom.Add(k * c.baseEject)
}

// armEjectTimer schedules the end of a timed ejection. Caller holds t.mu.
func (c *Checker) armEjectTimer(t *target, d time.Duration) {
	c.stopEjectTimer(t)
	if c.halted.Load() || t.removed {
		return
	}
	t.ejectSeq++
	seq := t.ejectSeq
	t.ejectTimer = c.clock.AfterFunc(d, func() { c.ejectionExpired(t, seq) })
}

func (c *Checker) stopEjectTimer(t *target) {
	if t.ejectTimer != nil {
		t.ejectTimer.Stop()
		t.ejectTimer = nil
	}
	t.ejectSeq++ // a callback already started is now stale
}

func (c *Checker) ejectionExpired(t *target, seq uint64) {
	t.mu.Lock()
	if t.removed || seq != t.ejectSeq || !t.ejected {
		t.mu.Unlock()
		return
	}
	t.ejectTimer = nil
	c.setChecks(t, true, CauseEjectionExpired, c.clock.Now())
	t.mu.Unlock()
	c.drain()
}

// enqueue queues an event and possibly an OnChange call. Caller holds
// t.mu, which keeps the queue in the order of the changes.
func (c *Checker) enqueue(ev Event, changed bool) {
	if c.onEvent == nil && (c.onChange == nil || !changed) {
		return
	}
	c.evMu.Lock()
	if c.onEvent != nil {
		c.evQueue = append(c.evQueue, ev)
	}
	if changed && c.onChange != nil {
		c.evChanged = true
	}
	c.evMu.Unlock()
}

// drain delivers queued callbacks, holding no lock while they run. Only
// one goroutine delivers at a time; one that finds delivery under way
// leaves its events to it.
func (c *Checker) drain() {
	c.evMu.Lock()
	if c.evDraining {
		c.evMu.Unlock()
		return
	}
	c.evDraining = true
	done := false
	defer func() {
		if !done { // a callback panicked: let the next caller deliver
			c.evMu.Lock()
			c.evDraining = false
			c.evMu.Unlock()
		}
	}()
	for len(c.evQueue) > 0 || c.evChanged {
		q, changed := c.evQueue, c.evChanged
		c.evQueue, c.evChanged = nil, false
		c.evMu.Unlock()
		for _, ev := range q {
			c.onEvent(ev)
		}
		if changed {
			c.onChange()
		}
		c.evMu.Lock()
	}
	c.evDraining = false
	done = true
	c.evMu.Unlock()
}
