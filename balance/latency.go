package balance

import (
	"math"
	"time"
)

// Latency builds peak-EWMA pickers with the power of two choices (as
// Finagle's and linkerd's "peak EWMA" and APISIX's "ewma" balancers).
//
// Each target's latency is tracked in its Stats by Stats.Observe, which the
// caller calls when a request finishes: an exponentially weighted moving
// average with time constant EWMADecay (10 s), peak-sensitive (a sample
// above the average replaces it at once, so a target that turns slow is
// avoided immediately, while recovery is gradual), and failures recorded as
// max(latency, average) + FailurePenalty (1 s).
//
// Pick draws two distinct targets uniformly at random and takes the one of
// lower cost (ties at random), with
//
//	cost = ewma × (InFlight+1) / Weight
//
// so latency and current load both count. A target that has never been
// observed costs 0 (it is tried at once) unless it already has requests in
// flight, in which case its cost is prohibitive (one probe at a time, as
// Finagle does). A target with nothing in flight — in particular one that
// was avoided — has its EWMA decayed toward 0 as it is read, by
// exp(-idle/EWMADecay), idle being the time since its last observation: a
// target that turned slow and recovered gets traffic again (a penalty of
// 1 s falls below a healthy 10 ms after about 46 s). The decay does not
// apply while requests are in flight, so a target that hangs (requests that
// never complete) is not made attractive by the passage of time; its
// in-flight count makes it costlier instead.
//
// Costs use the time of Request.Now, or the builder's clock when that is 0.
type Latency struct {
	// Rand is the random source; nil means math/rand/v2's rand.Uint64.
	Rand func() uint64
	// Now returns the current time in Unix nanoseconds, the clock of
	// Stats.Observe; nil means the wall clock (read once per Build and
	// advanced by the cheaper monotonic clock). Used only for requests
	// whose Now is 0.
	Now func() int64
}

// NewLatency returns a latency (peak EWMA) builder with default settings.
func NewLatency() *Latency { return &Latency{} }

type latencyPicker struct {
	stats []*Stats
	w     []float64
	rnd   func() uint64
	now   func() int64
}

// unknownCost is the cost of a never-observed target with requests in
// flight: above any real latency (an hour, in ns), plus the in-flight count.
const unknownCost = float64(time.Hour)

// Build implements Builder.
func (b *Latency) Build(eps []Endpoint, _ Picker) Picker {
	if len(eps) == 0 {
		return emptyPicker{}
	}
	p := &latencyPicker{
		stats: make([]*Stats, len(eps)),
		w:     make([]float64, len(eps)),
		rnd:   randSource(b.Rand),
		now:   clockSource(b.Now),
	}
	for i := range eps {
		p.stats[i] = eps[i].Stats
		p.w[i] = float64(max(eps[i].Weight, 1))
	}
	return p
}

func (p *latencyPicker) Pick(r *Request) int {
	n := len(p.stats)
	if n == 1 {
		return 0
	}
	now := r.Now
	if now == 0 {
		now = p.now()
	}
	nowMs := unixMillis32(now)
	i, j, bit := twoDistinct(p.rnd(), uint64(n))
	ci := latencyCost(p.stats[i], nowMs) / p.w[i]
	cj := latencyCost(p.stats[j], nowMs) / p.w[j]
	if ci < cj || (ci == cj && bit) {
		return int(i)
	}
	return int(j)
}

// latencyCost is a target's cost before dividing by its weight.
func latencyCost(s *Stats, nowMs uint32) float64 {
	inflight := float64(max(s.InFlight.Load(), 0))
	v := s.ewma.Load()
	if v == 0 {
		if inflight > 0 {
			return unknownCost + inflight
		}
		return 0
	}
	ewma := float64(math.Float32frombits(uint32(v >> 32)))
	if inflight == 0 {
		idle := float64(msSince(nowMs, uint32(v)))
		ewma *= expNeg(idle / ewmaDecayMs)
	}
	return ewma * (inflight + 1)
}
