package proxy

import (
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/upstream"
)

// PercentScale is the resolution of canary percents: 100 % = 100000, so
// 0.001 % steps are exact.
const PercentScale = 100000

// ScalePercent is a canary share of 0..100 (decimals allowed) as a
// Table's Percents hold it, 0..PercentScale.
func ScalePercent(p float64) uint64 {
	return uint64(math.Round(min(max(p, 0), 100) * PercentScale / 100))
}

// Splitter is the state of a service's canary split that must outlive
// table rebuilds: the position of the exact counter split. The percent is
// the table's (Table.Percents), so that a request splits by the percent of
// the generation it resolves everything else against. Safe for concurrent
// use; the zero value is ready.
type Splitter struct {
	n atomic.Uint64 // requests split so far
}

// next reports whether the next request of the exact split at p
// (0..PercentScale) goes to the canary: the n-th request does when
// floor(n·p) grows, so any window of k consecutive requests at one
// percent holds floor or ceil of k·p canary requests.
func (s *Splitter) next(p uint64) bool {
	n := s.n.Add(1)
	return n*p/PercentScale != (n-1)*p/PercentScale
}

// Force kinds.
const (
	ForceHeader = "header"
	ForceCookie = "cookie"
	ForceQuery  = "query"
)

// ForceRule sends a request to the canary when its input equals Value.
type ForceRule struct {
	Kind, Name, Value string
}

func (f *ForceRule) matches(r inbound) bool {
	switch f.Kind {
	case ForceHeader:
		v, _ := r.header(f.Name)
		return v == f.Value
	case ForceCookie:
		v, ok := r.cookie(f.Name)
		return ok && v == f.Value
	case ForceQuery:
		v, _ := r.queryArg(f.Name)
		return v == f.Value
	}
	return false
}

// Canary sends part of a service's traffic to another upstream.
type Canary struct {
	Upstream *upstream.Upstream
	// Hash keys the canary upstream's balancer (its own hash_on settings).
	Hash  *HashSpec
	Split *Splitter
	// Slot is the index of the canary's percent in Table.Percents; a
	// table without it sends nothing to the canary (but forced requests).
	Slot  int
	Force []ForceRule
	// StickyBy, when set ("ip", "header:NAME" or "cookie:NAME"), assigns a
	// request by the hash of that input instead of the exact counter, so a
	// user who was sent to the canary stays there as the percent grows.
	// Requests without the input fall back to the counter.
	StickyBy string
	// Stats, when set, records the canary side's outcomes.
	Stats *RoleStats
}

// choose reports whether r, routed by table t, goes to the canary.
func (c *Canary) choose(r inbound, t *Table) bool {
	for i := range c.Force {
		if c.Force[i].matches(r) {
			return true
		}
	}
	var p uint64
	if c.Slot >= 0 && c.Slot < len(t.Percents) {
		p = t.Percents[c.Slot]
	}
	switch {
	case p == 0:
		return false
	case p >= PercentScale:
		return true
	}
	if key, ok := stickyInput(r, c.StickyBy); ok {
		return balance.HashKey(key)%PercentScale < p
	}
	return c.Split.next(p)
}

func stickyInput(r inbound, by string) (string, bool) {
	switch {
	case by == "":
		return "", false
	case by == "ip":
		return r.remoteIP()
	case strings.HasPrefix(by, "header:"):
		v, _ := r.header(by[len("header:"):])
		return v, v != ""
	case strings.HasPrefix(by, "cookie:"):
		v, ok := r.cookie(by[len("cookie:"):])
		return v, ok && v != ""
	}
	return "", false
}

// histBuckets is the size of a RoleStats latency histogram: 4 buckets per
// doubling from 1 µs, up to about 18 minutes.
const histBuckets = 120

// RoleStats counts one side (primary or canary) of a service's traffic for
// rollout decisions. Every field is updated atomically; the zero value is
// ready.
type RoleStats struct {
	requests, errors atomic.Int64
	hist             [histBuckets]atomic.Int64
}

// latencyBucket is floor(4·log2(d in µs)), 0 up to 1 µs, at most the
// last bucket: the binary exponent gives the doubling, three comparisons
// of the mantissa its quarter (math.Log2 costs several times more, on
// every request).
func latencyBucket(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	frac, exp := math.Frexp(us) // us = frac·2^exp, frac in [0.5, 1)
	m := 2 * frac               // us = m·2^(exp-1), m in [1, 2)
	q := 0
	switch {
	case m >= quarter3:
		q = 3
	case m >= quarter2:
		q = 2
	case m >= quarter1:
		q = 1
	}
	return min(4*(exp-1)+q, histBuckets-1)
}

// The mantissas where a quarter of a doubling starts: 2^(1/4), 2^(2/4),
// 2^(3/4).
const (
	quarter1 = 1.189207115002721
	quarter2 = 1.4142135623730951
	quarter3 = 1.681792830507429
)

// Record counts one finished request.
func (s *RoleStats) Record(d time.Duration, failed bool) {
	s.requests.Add(1)
	if failed {
		s.errors.Add(1)
	}
	s.hist[latencyBucket(d)].Add(1)
}

// RoleSnapshot is a point-in-time copy of RoleStats; subtract two to get a
// window.
type RoleSnapshot struct {
	Requests, Errors int64
	Hist             [histBuckets]int64
}

// Snapshot copies the counters.
func (s *RoleStats) Snapshot() RoleSnapshot {
	var out RoleSnapshot
	out.Requests, out.Errors = s.requests.Load(), s.errors.Load()
	for i := range s.hist {
		out.Hist[i] = s.hist[i].Load()
	}
	return out
}

// Sub returns the counts between an earlier snapshot and this one.
func (a RoleSnapshot) Sub(b RoleSnapshot) RoleSnapshot {
	out := RoleSnapshot{Requests: a.Requests - b.Requests, Errors: a.Errors - b.Errors}
	for i := range a.Hist {
		out.Hist[i] = a.Hist[i] - b.Hist[i]
	}
	return out
}

// ErrorRate is errors / requests (0 without requests).
func (a RoleSnapshot) ErrorRate() float64 {
	if a.Requests == 0 {
		return 0
	}
	return float64(a.Errors) / float64(a.Requests)
}

// P99 is the upper bound of the bucket holding the 99th percentile.
func (a RoleSnapshot) P99() time.Duration {
	var total int64
	for _, c := range a.Hist {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(float64(total) * 0.99))
	var seen int64
	for i, c := range a.Hist {
		seen += c
		if seen >= rank {
			return time.Duration(math.Pow(2, float64(i+1)/4) * float64(time.Microsecond))
		}
	}
	return 0
}
