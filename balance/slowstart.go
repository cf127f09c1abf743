package balance

import (
	"math"
	"time"
)

// SlowStartWeight returns the effective weight of a target elapsed into its
// slow-start window (Envoy's slow start formula):
//
//	weight × max(minPercent/100, (elapsed/window)^(1/aggression))
//
// rounded to the nearest integer and at least 1; the full weight once
// elapsed ≥ window (or when window ≤ 0). aggression ≤ 0 (or NaN) is taken as
// 1, a linear ramp; larger values ramp faster at first. minPercent is
// clamped to [0, 100]; Envoy's default is 10. A negative elapsed counts as 0.
// Weight 0 (draining) stays 0.
//
// It applies to any algorithm: the caller (package upstream) passes the
// ramped weight in Endpoint.Weight and rebuilds every so often during the
// window (round-robin's phase carry-over keeps those rebuilds from biasing
// the ratios).
func SlowStartWeight(weight uint32, elapsed, window time.Duration, aggression, minPercent float64) uint32 {
	if weight == 0 || window <= 0 || elapsed >= window {
		return weight
	}
	if !(aggression > 0) {
		aggression = 1
	}
	if !(minPercent > 0) {
		minPercent = 0
	}
	minPercent = min(minPercent, 100)
	elapsed = max(elapsed, 0)
	f := math.Pow(float64(elapsed)/float64(window), 1/aggression)
	f = max(f, minPercent/100)
	w := math.Round(float64(weight) * f)
	return uint32(min(max(w, 1), float64(weight)))
}
