// Package balance holds Outrigger's load-balancing algorithms as pure code.
//
// Contract:
//   - No I/O, no net/http, no knowledge of health checks or discovery. The
//     caller (package upstream) decides which endpoints are eligible and with
//     what effective weight, then calls Build.
//   - A Picker is immutable once built. Pick takes no lock and allocates
//     nothing; it is safe for concurrent use. Mutable per-target runtime data
//     (in-flight count, latency EWMA) lives in *Stats, which the caller keeps
//     per address so it survives rebuilds, and which is updated with atomics.
//   - Build receives the previous Picker of the same upstream (or nil) so an
//     algorithm can carry its position over (round-robin phase, for example):
//     a rebuild must never make ratios drift.
//
// Algorithms, by Kong name (ForName maps names and Options to builders):
//
//	round-robin         NewRoundRobin        exact smooth weighted round robin
//	consistent-hashing  NewConsistentHash    ketama-style ring over Request.Key
//	least-connections   NewLeastConnections  min (InFlight+1)/Weight, random ties
//	latency             NewLatency           peak EWMA × (InFlight+1), two choices
//	random              NewRandom            weighted random (alias method)
//	sticky-sessions     NewSticky            remembered Key → Addr, else inner
//
// SlowStartWeight computes ramped weights for newly healthy targets; the
// caller applies it to Endpoint.Weight before Build. HashKey turns a hash
// key (header, cookie, IP) into Request.Key.
//
// The one exception to "no locks" is the sticky-sessions picker: its memory
// of key → target is an expirable LRU (github.com/hashicorp/golang-lru/v2)
// guarded by that library's mutex, and remembering a new key allocates an
// LRU entry. No other algorithm touches it.
//
// Randomised algorithms take an injectable source (a Rand func() uint64
// field, nil = math/rand/v2's lock-free rand.Uint64) and time-dependent ones
// an injectable clock (a Now func() int64 field returning Unix nanoseconds,
// nil = the wall clock), so tests are seeded and never sleep.
package balance

import (
	"math"
	"sync/atomic"
	"time"
)

// Endpoint is one eligible target as a Picker sees it.
type Endpoint struct {
	// Addr is the target's identity, "host:port".
	Addr string
	// Weight is the effective weight, 1..65535 (weight 0 targets are
	// draining and are never passed to Build).
	Weight uint32
	// Stats is the target's shared runtime state. Never nil.
	Stats *Stats
}

// Request carries what an algorithm may need to choose. The proxy fills it
// without allocating; algorithms that need no input ignore it.
type Request struct {
	// Key is the hash of the request's hash key (consistent hashing, sticky
	// sessions); valid only when HasKey is true.
	Key    uint64
	HasKey bool
	// Now is the request's arrival time in Unix nanoseconds, on the clock
	// passed to Stats.Observe. The proxy already reads the time to measure
	// latency; passing it here spares time-dependent algorithms (latency,
	// sticky-sessions with a TTL) a clock read of their own. 0 means
	// "unknown": the picker then reads its own clock.
	Now int64
}

// Picker chooses an endpoint for a request.
type Picker interface {
	// Pick returns an index into the endpoints the Picker was built from,
	// or -1 when it has none.
	Pick(r *Request) int
}

// Builder makes a Picker from a set of endpoints.
type Builder interface {
	// Build returns a Picker over eps. prev is the Picker this one
	// replaces (nil at first); Build may read state from it but must not
	// mutate anything prev's concurrent Pick calls rely on. Build must not
	// retain or modify eps' backing array beyond reading it; it may keep a
	// copy.
	Build(eps []Endpoint, prev Picker) Picker
}

// Stats is per-target runtime state shared by all pickers of an upstream.
// Every field is accessed atomically; the zero value is ready to use.
type Stats struct {
	// InFlight is the number of requests currently sent to the target.
	InFlight atomic.Int64
	// Requests counts picks of the target.
	Requests atomic.Uint64

	// ewma packs the latency algorithm's state in one word so it is always
	// read and replaced consistently: the high 32 bits are the float32 bits
	// of the peak EWMA of latency in nanoseconds, the low 32 bits the time of
	// the last observation in milliseconds (Unix ms mod 2^32). 0 means "never
	// observed".
	ewma atomic.Uint64
}

// EWMADecay is the time constant of the latency EWMA: a sample observed
// td ago keeps weight exp(-td/EWMADecay). It is also how fast an idle
// target's EWMA decays toward 0 when the latency picker reads it, so a
// target that was avoided is tried again (see Latency).
const EWMADecay = 10 * time.Second

// FailurePenalty is added to a failed request's sample: a failure is
// recorded as max(latency, current EWMA) + FailurePenalty, so a target that
// fails fast (connection refused, 5xx in a millisecond) looks slower than
// before instead of faster, and each further failure pushes it further away.
const FailurePenalty = time.Second

// Observe records a finished request for the latency algorithm. latency is
// its duration, failed whether it failed (connect error, timeout, 5xx as the
// caller defines it), now the completion time in Unix nanoseconds (the clock
// of Request.Now and of the latency builder's Now). The caller calls it from
// the request's Done, after decrementing InFlight.
//
// The EWMA is peak-sensitive: a sample above the current average replaces it
// at once; a lower one is blended in with weight 1-exp(-td/EWMADecay), td
// being the time since the previous observation. Concurrent Observe calls
// are serialised by a compare-and-swap loop on one word; Observe does not
// allocate.
func (s *Stats) Observe(latency time.Duration, failed bool, now int64) {
	sample := float64(latency)
	if sample < 0 {
		sample = 0
	}
	nowMs := unixMillis32(now)
	for {
		old := s.ewma.Load()
		prev := 0.0
		if old != 0 {
			prev = float64(math.Float32frombits(uint32(old >> 32)))
		}
		x := sample
		if failed {
			x = max(x, prev) + float64(FailurePenalty)
		}
		v, stamp := x, nowMs
		if old != 0 {
			if x <= prev {
				td := float64(msSince(nowMs, uint32(old)))
				w := math.Exp(-td / ewmaDecayMs)
				v = prev*w + x*(1-w)
			}
			if int32(nowMs-uint32(old)) < 0 {
				stamp = uint32(old) // a late report does not move time back
			}
		}
		packed := uint64(math.Float32bits(float32(v)))<<32 | uint64(stamp)
		if s.ewma.CompareAndSwap(old, packed) {
			return
		}
	}
}

// LatencyEWMA returns the stored peak EWMA of latency (without the idle decay
// the latency picker applies when reading it) and whether any request was
// observed yet. For metrics and the admin API.
func (s *Stats) LatencyEWMA() (time.Duration, bool) {
	v := s.ewma.Load()
	if v == 0 {
		return 0, false
	}
	return time.Duration(math.Float32frombits(uint32(v >> 32))), true
}

// ewmaDecayMs is EWMADecay in the unit of the packed timestamps.
const ewmaDecayMs = float64(EWMADecay / time.Millisecond)

// unixMillis32 converts Unix nanoseconds to the packed millisecond stamp.
func unixMillis32(ns int64) uint32 {
	return uint32(uint64(ns / int64(time.Millisecond)))
}

// msSince returns now - then in milliseconds for packed stamps, taken
// modulo 2^32 as a signed number (±24.8 days) and 0 if negative: requests
// finish out of order, and Request.Now is the arrival time, so a stamp
// slightly in the future is normal and must mean "just observed".
func msSince(now, then uint32) int64 {
	return max(int64(int32(now-then)), 0)
}
