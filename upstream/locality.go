package upstream

import (
	"slices"
)

// MetaZone is the metadata key of a target's zone (Kubernetes sets it from
// the EndpointSlice; a static target's zone is written there too).
const MetaZone = "zone"

// DefaultMinClusterSize is Envoy's zone-aware routing minimum: a level
// with fewer healthy targets is balanced without regard to zones.
const DefaultMinClusterSize = 6

// zoneCount counts a level's weighted targets in one zone.
type zoneCount struct{ total, healthy int }

// localityGroups splits every level with load into picker groups: the whole
// level, or, with zone-aware routing, one group per zone. It returns each
// endpoint's group (eps index-aligned with epLevel) and each group's load
// (level load in percent × zone share in percent).
func (u *Upstream) localityGroups(all []Target, healthy []bool, levelOf []int, levels []Level, epLevel, stateIdx []int, s *Snapshot) (epGroup []int, loads []uint32) {
	counts := make([]map[string]*zoneCount, len(levels))
	if u.zone != "" {
		for i, t := range all {
			l := levelOf[i]
			if l < 0 {
				continue
			}
			if counts[l] == nil {
				counts[l] = map[string]*zoneCount{}
			}
			z := t.Meta[MetaZone]
			c := counts[l][z]
			if c == nil {
				c = &zoneCount{}
				counts[l][z] = c
			}
			c.total++
			if healthy[i] {
				c.healthy++
			}
		}
	}
	type key struct {
		level int
		zone  string
	}
	group := map[key]int{}
	split := make([]bool, len(levels))
	for l := range levels {
		if levels[l].Load == 0 {
			continue
		}
		shares := zoneShares(counts[l], u.zone, u.minCluster)
		if shares == nil || s.Panic {
			group[key{l, ""}] = len(loads)
			loads = append(loads, uint32(levels[l].Load)*100)
			continue
		}
		split[l] = true
		zones := make([]string, 0, len(shares))
		for z := range counts[l] {
			zones = append(zones, z)
		}
		slices.Sort(zones)
		if i := slices.Index(zones, u.zone); i > 0 {
			zones = append(append([]string{u.zone}, zones[:i]...), zones[i+1:]...)
		}
		for _, z := range zones {
			group[key{l, z}] = len(loads)
			loads = append(loads, uint32(levels[l].Load*shares[z]))
		}
		levels[l].Zones = shares
	}
	epGroup = make([]int, len(epLevel))
	for i, l := range epLevel {
		k := key{l, ""}
		if split[l] {
			k.zone = s.Targets[stateIdx[i]].Target.Meta[MetaZone]
		}
		epGroup[i] = group[k]
	}
	return epGroup, loads
}

// zoneShares is Envoy's zone-aware routing for one level, with the
// callers assumed to be spread over zones as the level's targets are
// (healthy or not): the local zone keeps all traffic while its share of
// the healthy targets is at least its share of all targets; otherwise it
// takes healthy share / total share of it, and the rest goes to the other
// zones in proportion to their surplus (healthy share − total share). It
// returns percentages per zone summing to 100, or nil for no zone
// awareness: no local zone, fewer than minCluster healthy targets, or no
// healthy target in the local zone.
func zoneShares(counts map[string]*zoneCount, local string, minCluster int) map[string]int {
	lc := counts[local]
	if local == "" || lc == nil || lc.healthy == 0 {
		return nil
	}
	n, h := 0, 0
	for _, c := range counts {
		n += c.total
		h += c.healthy
	}
	if h < minCluster {
		return nil
	}
	shares := make(map[string]int, len(counts))
	for z := range counts {
		shares[z] = 0
	}
	// Shares of healthy and of all targets, compared over h·n.
	if lc.healthy*n >= lc.total*h {
		shares[local] = 100
		return shares
	}
	localPct := lc.healthy * n * 100 / (h * lc.total)
	rest := 100 - localPct
	surplus := map[string]int{}
	sum := 0
	for z, c := range counts {
		if z == local {
			continue
		}
		if d := c.healthy*n - c.total*h; d > 0 {
			surplus[z] = d
			sum += d
		}
	}
	given := 0
	for z, d := range surplus {
		shares[z] = rest * d / sum
		given += shares[z]
	}
	shares[local] = localPct + rest - given
	return shares
}
