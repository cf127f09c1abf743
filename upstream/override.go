package upstream

import (
	"math"
	"slices"
)

// Override adjusts the weight of the targets it selects, whatever source
// they come from, and survives every update of that source. It selects
// one address (Target), or every target carrying all Tags and Meta
// entries — so an instance discovered later inherits it.
type Override struct {
	ID     string
	Target string
	Tags   []string
	Meta   map[string]string
	// Weight, when set, replaces each selected target's weight.
	Weight *int
	// Share, when set (0..100), gives the selected eligible targets
	// together that percentage of the upstream's traffic, split among them
	// by weight; the other targets share the rest by weight (as Fabio's
	// fixed canary shares).
	Share *float64
}

// matches reports whether o selects t. An override with no selector
// selects nothing.
func (o *Override) matches(t *Target) bool {
	if o.Target != "" {
		return o.Target == t.Addr
	}
	if len(o.Tags) == 0 && len(o.Meta) == 0 {
		return false
	}
	for _, tag := range o.Tags {
		if !slices.Contains(t.Tags, tag) {
			return false
		}
	}
	for k, v := range o.Meta {
		if tv, ok := t.Meta[k]; !ok || tv != v {
			return false
		}
	}
	return true
}

// SetOverrides replaces the upstream's overrides (later ones win where
// several select a target) and rebuilds.
func (u *Upstream) SetOverrides(os []Override) {
	cp := slices.Clone(os)
	u.mu.Lock()
	u.overrides = cp
	u.mu.Unlock()
	u.Rebuild()
}

// weightOverride returns the weight the last matching weight override
// sets, and its ID.
func weightOverride(os []Override, t *Target) (int, string, bool) {
	for i := len(os) - 1; i >= 0; i-- {
		if o := &os[i]; o.Weight != nil && o.matches(t) {
			return *o.Weight, o.ID, true
		}
	}
	return 0, "", false
}

// shareOf returns the index of the last share override selecting t, or -1.
func shareOf(os []Override, t *Target) int {
	for i := len(os) - 1; i >= 0; i-- {
		if os[i].Share != nil && os[i].matches(t) {
			return i
		}
	}
	return -1
}

// shareBudget is the total weight shares are expressed in: fine enough for
// 0.001 % steps and within the balancer's 16-bit weights.
const shareBudget = 60000

// applyShares rescales the weights of eligible endpoints so the targets
// selected by each share override get that share of the total. groups[i]
// is the share override index of endpoint i, or -1. Overrides that select
// no eligible endpoint reserve nothing.
func applyShares(weights []uint32, groups []int, os []Override) {
	sums := map[int]float64{}
	for i, g := range groups {
		sums[g] += float64(weights[i])
	}
	if len(sums) == 1 && sums[-1] > 0 {
		return // no share applies
	}
	reserved := 0.0
	for g := range sums {
		if g >= 0 {
			reserved += *os[g].Share
		}
	}
	// The unselected targets share what is left; when there are none, the
	// shares are scaled up to fill 100 %.
	rest, scale := max(100-reserved, 0), 100.0
	if sums[-1] == 0 {
		rest, scale = 0, reserved
	}
	for i, g := range groups {
		share := rest
		if g >= 0 {
			share = *os[g].Share
		}
		if sums[g] == 0 || scale == 0 {
			weights[i] = 0
			continue
		}
		w := math.Round(shareBudget * share / scale * float64(weights[i]) / sums[g])
		if w < 1 && share > 0 {
			w = 1
		}
		weights[i] = uint32(min(w, math.MaxUint16))
	}
}
