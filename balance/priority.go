package balance

import "sync/atomic"

// Overprovisioning is Envoy's default overprovisioning factor, in percent:
// a priority level whose healthy share h (of its targets) times 1.4 reaches
// 100 % keeps all of its traffic.
const Overprovisioning = 140

// PriorityLoads splits 100 % of the traffic over priority levels (lowest
// first) as Envoy's priority load does. healthy[i] and total[i] count the
// targets of level i. Level i's health is min(100, healthy·factor/total)
// percent (factor in percent, Overprovisioning by default when 0); when the
// health of all levels sums to less than 100 it is scaled up to 100, and
// each level then takes its health, capped at what the levels before it
// left. Rounding remainders go to the first level with load. The result
// sums to 100, except that it is all zero when no level has a healthy
// target (the caller decides what happens then: panic mode).
func PriorityLoads(healthy, total []int, factor int) []uint32 {
	if factor <= 0 {
		factor = Overprovisioning
	}
	loads := make([]uint32, len(total))
	hp := make([]int, len(total))
	sum := 0
	for i := range total {
		if total[i] > 0 {
			hp[i] = min(100, healthy[i]*factor/total[i])
		}
		sum += hp[i]
	}
	sum = min(sum, 100)
	if sum == 0 {
		return loads
	}
	left := 100
	for i := range hp {
		l := min(left, hp[i]*100/sum)
		loads[i] = uint32(l)
		left -= l
	}
	for i := range loads {
		if left > 0 && loads[i] > 0 {
			loads[i] += uint32(left)
			left = 0
		}
	}
	return loads
}

// levelsPicker chooses a priority level by a precomputed smooth weighted
// round-robin schedule over the levels' loads, then asks that level's
// picker. Endpoint indices are those of the levels' endpoints
// concatenated in level order.
//
// Concurrency: everything but pos is immutable after NewLevels; pos is an
// atomic counter shared with the picker's successors (so a rebuild keeps
// the schedule's phase).
type levelsPicker struct {
	subs  []Picker
	offs  []int
	sched []uint8
	pos   *atomic.Uint64
}

// MaxLevels is the number of levels NewLevels accepts.
const MaxLevels = 256

// NewLevels returns a Picker over levels: subs[i] picks among sizes[i]
// endpoints, and level i gets loads[i] picks out of every sum(loads), in a
// smooth (interleaved) order, so the ratios hold exactly over each cycle.
// A request with a key chooses its level by the key instead, so a
// consistent-hash level stays consistent. Levels with load 0 are never
// chosen; with no load at all the picker has no endpoints. prev, when it
// is a picker NewLevels built, lends its position. At most MaxLevels
// levels; sum(loads) should be small (percentages), as the schedule has
// one entry per unit of load.
func NewLevels(subs []Picker, sizes []int, loads []uint32, prev Picker) Picker {
	if len(subs) > MaxLevels {
		subs = subs[:MaxLevels]
	}
	p := &levelsPicker{subs: subs, offs: make([]int, len(subs))}
	off := 0
	var total uint32
	for i := range subs {
		p.offs[i] = off
		off += sizes[i]
		total += loads[i]
	}
	if total == 0 {
		return emptyPicker{}
	}
	// Smooth weighted round robin, unrolled once over a cycle.
	cur := make([]int64, len(subs))
	p.sched = make([]uint8, total)
	for k := range p.sched {
		best := -1
		for i := range subs {
			cur[i] += int64(loads[i])
			if loads[i] > 0 && (best < 0 || cur[i] > cur[best]) {
				best = i
			}
		}
		cur[best] -= int64(total)
		p.sched[k] = uint8(best)
	}
	if lp, ok := prev.(*levelsPicker); ok {
		p.pos = lp.pos
	} else {
		p.pos = new(atomic.Uint64)
	}
	return p
}

// LevelPicker returns the picker of level i of a picker NewLevels built,
// or nil; a builder passes it as the prev of that level's next picker.
func LevelPicker(p Picker, i int) Picker {
	if lp, ok := p.(*levelsPicker); ok && i < len(lp.subs) {
		return lp.subs[i]
	}
	return nil
}

func (p *levelsPicker) Pick(r *Request) int {
	var slot uint64
	if r != nil && r.HasKey {
		slot = mix64(r.Key) % uint64(len(p.sched))
	} else {
		slot = (p.pos.Add(1) - 1) % uint64(len(p.sched))
	}
	l := p.sched[slot]
	i := p.subs[l].Pick(r)
	if i < 0 {
		return -1
	}
	return p.offs[l] + i
}
