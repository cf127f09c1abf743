package upstream

import (
	"math"
	"sync/atomic"
	"time"
)

// Limits are an upstream's circuit breakers (Envoy's thresholds): counts
// of things in progress at once; 0 means unlimited, except that
// MaxPendingRequests 0 lets no request wait for a connection (over
// MaxConnections a request fails at once).
type Limits struct {
	MaxConnections     int64
	MaxPendingRequests int64
	MaxRequests        int64
	MaxRetries         int64
}

// Budget is a retry budget (Linkerd's shape): retries may add at most
// Ratio of the requests of the last TTL, plus MinPerSecond retries per
// second of TTL. A zero TTL means no budget.
type Budget struct {
	Ratio        float64
	MinPerSecond float64
	TTL          time.Duration
}

// maxBudgetSeconds bounds the ring of per-second buckets.
const maxBudgetSeconds = 600

// Breakers holds an upstream's circuit breaker counters and retry budget.
// It lives as long as its Upstream, so the counts survive snapshot swaps
// and limit changes. Every method is safe for concurrent use and takes no
// lock: the counters and the settings are atomics.
type Breakers struct {
	limits atomic.Pointer[Limits]
	budget atomic.Pointer[budgetRing]

	// Counts in progress, updated by the request path.
	requests    atomic.Int64
	retries     atomic.Int64
	connections atomic.Int64
	pending     atomic.Int64

	// wake, while requests wait for a connection, is closed (and
	// cleared) when a connection closes or goes back idle.
	wake atomic.Pointer[chan struct{}]
}

// Breakers returns the upstream's circuit breakers.
func (u *Upstream) Breakers() *Breakers { return &u.brk }

// SetLimits replaces the limits; counts in progress are kept.
func (b *Breakers) SetLimits(l Limits) {
	if l == (Limits{}) {
		b.limits.Store(nil)
		return
	}
	b.limits.Store(&l)
}

// Limits returns the limits in force (the zero value when none).
func (b *Breakers) Limits() Limits {
	if l := b.limits.Load(); l != nil {
		return *l
	}
	return Limits{}
}

// SetBudget replaces the retry budget; a changed budget starts with an
// empty window. The zero Budget turns the budget off.
func (b *Breakers) SetBudget(bg Budget) {
	if bg.TTL <= 0 {
		b.budget.Store(nil)
		return
	}
	if r := b.budget.Load(); r != nil && r.cfg == bg {
		return
	}
	secs := int(math.Ceil(bg.TTL.Seconds()))
	secs = min(max(secs, 1), maxBudgetSeconds)
	b.budget.Store(&budgetRing{cfg: bg, buckets: make([]bucket, secs)})
}

// Budget returns the retry budget in force (the zero value when none).
func (b *Breakers) Budget() Budget {
	if r := b.budget.Load(); r != nil {
		return r.cfg
	}
	return Budget{}
}

func acquire(n *atomic.Int64, max int64) bool {
	if v := n.Add(1); max > 0 && v > max {
		n.Add(-1)
		return false
	}
	return true
}

// AcquireRequest counts a request in progress, or reports false (and
// counts nothing) when MaxRequests are already in progress. A true result
// is matched by one ReleaseRequest.
func (b *Breakers) AcquireRequest() bool {
	var max int64
	if l := b.limits.Load(); l != nil {
		max = l.MaxRequests
	}
	return acquire(&b.requests, max)
}

// ReleaseRequest ends a request AcquireRequest counted.
func (b *Breakers) ReleaseRequest() { b.requests.Add(-1) }

// AcquireRetry counts a retry in progress, or reports false when
// MaxRetries are already in progress. A true result is matched by one
// ReleaseRetry.
func (b *Breakers) AcquireRetry() bool {
	var max int64
	if l := b.limits.Load(); l != nil {
		max = l.MaxRetries
	}
	return acquire(&b.retries, max)
}

// ReleaseRetry ends a retry AcquireRetry counted.
func (b *Breakers) ReleaseRetry() { b.retries.Add(-1) }

// AcquireConnection counts an open upstream connection, or reports false
// when MaxConnections are already open. A true result is matched by one
// ReleaseConnection when the connection closes.
func (b *Breakers) AcquireConnection() bool {
	var max int64
	if l := b.limits.Load(); l != nil {
		max = l.MaxConnections
	}
	return acquire(&b.connections, max)
}

// ReleaseConnection ends a connection AcquireConnection counted, and
// wakes the requests waiting for one.
func (b *Breakers) ReleaseConnection() {
	b.connections.Add(-1)
	b.ConnectionFreed()
}

// AcquirePending counts a request waiting for a connection, or reports
// false when MaxPendingRequests already wait (or none may: 0). A true
// result is matched by one ReleasePending.
func (b *Breakers) AcquirePending() bool {
	l := b.limits.Load()
	if l == nil || l.MaxPendingRequests <= 0 {
		return false
	}
	return acquire(&b.pending, l.MaxPendingRequests)
}

// ReleasePending ends a wait AcquirePending counted.
func (b *Breakers) ReleasePending() { b.pending.Add(-1) }

// Pending returns the requests waiting for a connection.
func (b *Breakers) Pending() int64 { return b.pending.Load() }

// ConnectionWait returns a channel closed at the next ConnectionFreed. A
// waiter takes it before it tries for a connection (AcquireConnection or
// an idle one), then waits on it if it got none: a connection freed in
// between closes the channel it holds.
func (b *Breakers) ConnectionWait() <-chan struct{} {
	for {
		if p := b.wake.Load(); p != nil {
			return *p
		}
		c := make(chan struct{})
		if b.wake.CompareAndSwap(nil, &c) {
			return c
		}
	}
}

// ConnectionFreed wakes the requests waiting for a connection: one closed
// or went back to its pool. Without waiters it costs one atomic load.
func (b *Breakers) ConnectionFreed() {
	if b.pending.Load() == 0 {
		return
	}
	if p := b.wake.Swap(nil); p != nil {
		close(*p)
	}
}

// Connections returns the open connections counted.
func (b *Breakers) Connections() int64 { return b.connections.Load() }

// InProgress returns the requests and retries in progress.
func (b *Breakers) InProgress() (requests, retries int64) {
	return b.requests.Load(), b.retries.Load()
}

// RecordRequest counts a request into the retry budget's window.
func (b *Breakers) RecordRequest(now time.Time) {
	if r := b.budget.Load(); r != nil {
		r.at(now.Unix()).requests.Add(1)
	}
}

// AllowRetry reports whether the retry budget allows one more retry now,
// and if so counts it. Without a budget every retry is allowed.
func (b *Breakers) AllowRetry(now time.Time) bool {
	r := b.budget.Load()
	if r == nil {
		return true
	}
	sec := now.Unix()
	reqs, rets := r.sum(sec)
	allowed := r.cfg.Ratio*float64(reqs) + r.cfg.MinPerSecond*float64(len(r.buckets))
	if float64(rets)+1 > allowed {
		return false
	}
	r.at(sec).retries.Add(1)
	return true
}

// budgetRing is a ring of per-second buckets over the budget's TTL.
type budgetRing struct {
	cfg     Budget
	buckets []bucket
}

type bucket struct {
	sec      atomic.Int64 // the second the counts are for
	requests atomic.Int64
	retries  atomic.Int64
}

// at returns the bucket of second sec, emptying it first when it last
// held an older second. Counts that race with the emptying may be lost:
// the budget is approximate by a few requests per second, never by a
// window.
func (r *budgetRing) at(sec int64) *bucket {
	bk := &r.buckets[uint64(sec)%uint64(len(r.buckets))]
	if old := bk.sec.Load(); old != sec && old < sec && bk.sec.CompareAndSwap(old, sec) {
		bk.requests.Store(0)
		bk.retries.Store(0)
	}
	return bk
}

// sum returns the requests and retries of the window ending at sec.
func (r *budgetRing) sum(sec int64) (reqs, rets int64) {
	n := int64(len(r.buckets))
	for i := range r.buckets {
		bk := &r.buckets[i]
		if s := bk.sec.Load(); s > sec-n && s <= sec {
			reqs += bk.requests.Load()
			rets += bk.retries.Load()
		}
	}
	return reqs, rets
}
