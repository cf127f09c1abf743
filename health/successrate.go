package health

import (
	"math"
	"slices"
	"strings"
	"time"
)

// SuccessRateConfig is success-rate outlier ejection (Envoy's
// outlier_detection success_rate_*): every Interval, the targets that
// received at least RequestVolume passive outcomes in it are compared when
// there are at least MinimumHosts of them; a target whose success rate is
// under mean − StdevFactor/1000 × stdev is ejected like a passive
// ejection (BaseEjectionTime × ejections, MaxEjectionPercent).
type SuccessRateConfig struct {
	MinimumHosts  int
	RequestVolume int
	StdevFactor   int
	Interval      time.Duration
}

// RateSample is a target's success rate over the last interval that
// judged it.
type RateSample struct {
	// Rate is the share of successes, in percent; Requests the outcomes
	// counted.
	Rate     float64 `json:"rate"`
	Requests int64   `json:"requests"`
	// Threshold is the rate under which a target was an outlier in that
	// interval (percent); 0 when too few targets had the volume.
	Threshold float64   `json:"threshold"`
	At        time.Time `json:"at"`
}

// countRate adds one classified outcome to t's interval counts; lock-free.
func (c *Checker) countRate(t *target, k kind) {
	t.rateTotal.Add(1)
	if k == kindSuccess {
		t.rateOK.Add(1)
	}
}

// armRate schedules the next success-rate evaluation of run r.
// Caller holds c.mu.
func (c *Checker) armRate(r *run) {
	r.rateTimer = c.clock.AfterFunc(c.rate.Interval, func() {
		c.mu.Lock()
		if r.ctx.Err() != nil || c.rateRun != r {
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.evaluateRates(c.clock.Now())
		c.mu.Lock()
		if r.ctx.Err() == nil && c.rateRun == r {
			c.armRate(r)
		}
		c.mu.Unlock()
	})
}

// rateCand is a target judged in one evaluation.
type rateCand struct {
	t    *target
	rate float64
	n    int64
}

// evaluateRates ends an interval: it takes every target's counts (and
// zeroes them), computes the mean and standard deviation of the success
// rates of the healthy targets with the volume, and ejects the outliers,
// lowest rate first, never the last healthy target and within
// MaxEjectionPercent.
func (c *Checker) evaluateRates(now time.Time) {
	m := *c.targets.Load()
	var cands []rateCand
	healthy := 0
	for _, t := range m {
		n, ok := t.rateTotal.Swap(0), t.rateOK.Swap(0)
		if !t.eff.Load() {
			continue // out already: not part of the comparison
		}
		healthy++
		if n >= int64(c.rate.RequestVolume) && n > 0 {
			cands = append(cands, rateCand{t: t, rate: 100 * float64(ok) / float64(n), n: n})
		}
	}
	var threshold float64
	if len(cands) >= c.rate.MinimumHosts && len(cands) > 0 {
		var sum float64
		for _, x := range cands {
			sum += x.rate
		}
		mean := sum / float64(len(cands))
		var sq float64
		for _, x := range cands {
			sq += (x.rate - mean) * (x.rate - mean)
		}
		stdev := math.Sqrt(sq / float64(len(cands)))
		threshold = mean - float64(c.rate.StdevFactor)/1000*stdev
	}
	slices.SortFunc(cands, func(a, b rateCand) int {
		if a.rate != b.rate {
			if a.rate < b.rate {
				return -1
			}
			return 1
		}
		return strings.Compare(a.t.addr, b.t.addr)
	})
	notify := false
	for _, x := range cands {
		t := x.t
		t.mu.Lock()
		t.rate = &RateSample{Rate: x.rate, Requests: x.n, Threshold: threshold, At: now}
		if threshold > 0 && x.rate < threshold && !t.removed && t.healthy && healthy > 1 {
			if c.eject(t, now, CauseSuccessRate, true) {
				healthy--
			}
			notify = true
		}
		t.mu.Unlock()
	}
	if notify {
		c.drain()
	}
}

// RateSample returns addr's last success-rate sample, nil when there is
// none (or no such target).
func (c *Checker) RateSample(addr string) *RateSample {
	t := c.lookup(addr)
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rate == nil {
		return nil
	}
	r := *t.rate
	return &r
}
