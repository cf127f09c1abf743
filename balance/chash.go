package balance

import (
	"math/bits"
	"slices"
)

// Consistent-hashing ring limits.
const (
	// DefaultSlots is the default ConsistentHash.Slots (Kong's default).
	DefaultSlots = 10000
	// MinSlots and MaxSlots bound ConsistentHash.Slots (Kong's range).
	MinSlots = 10
	MaxSlots = 65536
	// MaxRingPoints caps the points of one ring (4 MiB of positions).
	MaxRingPoints = 1 << 20
)

// ConsistentHash builds ketama-style consistent-hashing pickers over
// Request.Key.
//
// Ring: each endpoint owns points on a 32-bit circle; a key is served by the
// owner of the first point at or after it (clockwise, wrapping). The
// positions of endpoint e are the top 32 bits of
// mix64(fnv1a64(e.Addr) + (r+1)·φ64) for replica r = 0, 1, 2, ...
// (SplitMix64 seeded with the FNV-1a hash of the address): fixed functions,
// so every gateway process builds the same ring from the same endpoint set,
// whatever their order. Two points at the same position (rare) are ordered
// by address. Request.Key is passed through the same finaliser first, so a
// weak caller hash (or a plain integer id) still spreads evenly.
//
// Points per endpoint: Slots·w/wmax (rounded, at least 1), wmax being the
// largest weight in the set — an endpoint of the largest weight gets Slots
// points, lighter ones proportionally fewer. The count depends only on the
// endpoint's own weight and wmax, not on how many endpoints there are, and
// replica r's position never depends on the count. Hence, while wmax is
// unchanged: removing an endpoint removes exactly its points, so only its
// keys move; adding one adds its points, so only the keys it takes move
// (its share, about w/W); changing one weight moves only keys to or from
// that endpoint. Changing wmax rescales everyone. When the ring would exceed
// MaxRingPoints (with Slots = 10000 and equal weights: beyond 104
// endpoints), all counts are scaled down proportionally; then adding or
// removing one of n endpoints also moves about 1/n of the other keys
// (≲1 percentage point at that size).
//
// Note that Slots is therefore the resolution per endpoint, not Kong's total
// ring size: a ring whose size is fixed regardless of the endpoint count must
// reassign points of the remaining endpoints on every change, which moves
// up to about twice the minimal number of keys.
//
// Balance: an endpoint's share of the circle deviates from w/W by a relative
// standard deviation of about 1/√points; with the default Slots, about 1%.
//
// Lookup is a binary search (within a bucket of a 2^b-entry index on the
// top bits, so in practice 1–2 probes) over a sorted []uint32 of positions.
// Requests without a key (HasKey false) take a random position from Rand,
// i.e. weighted random.
//
// Why a ring and not Maglev: Maglev's lookup table gives near-perfect
// balance and O(1) lookups, but when the endpoint set changes it also
// reassigns some table entries between endpoints that did not change, and
// its table must be a prime much larger than the endpoint count. A ring
// with enough points per endpoint gives minimal disruption — only the keys
// that must move, move — which is what hashing for cache affinity wants; its
// balance error is bounded by the point count and its lookup is still well
// under 100 ns.
type ConsistentHash struct {
	// Slots is the number of ring points of an endpoint of the largest
	// weight; 0 means DefaultSlots. Build clamps it to [MinSlots,
	// MaxSlots]; ForName rejects values outside.
	Slots int
	// Rand chooses a random ring position for requests without a key.
	// nil means math/rand/v2's rand.Uint64.
	Rand func() uint64
}

// NewConsistentHash returns a consistent-hashing builder with slots points
// per endpoint of the largest weight (0 = DefaultSlots).
func NewConsistentHash(slots int) *ConsistentHash { return &ConsistentHash{Slots: slots} }

// chPicker is an immutable hash ring.
type chPicker[T index] struct {
	pos   []uint32 // sorted point positions
	own   []T      // own[j] is the endpoint index owning pos[j]
	table []uint32 // table[b] = first j with pos[j]>>shift >= b; len 2^bits+1
	shift uint
	rnd   func() uint64
}

func (p *chPicker[T]) Pick(r *Request) int {
	var h uint64
	if r.HasKey {
		h = mix64(r.Key)
	} else {
		h = p.rnd()
	}
	x := uint32(h >> 32)
	b := x >> p.shift
	lo, hi := p.table[b], p.table[b+1]
	for lo < hi {
		mid := (lo + hi) >> 1
		if p.pos[mid] < x {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if int(lo) == len(p.pos) {
		lo = 0
	}
	return int(p.own[lo])
}

// Build implements Builder. prev is not used: the ring is a function of the
// endpoint set only.
func (b *ConsistentHash) Build(eps []Endpoint, _ Picker) Picker {
	n := len(eps)
	if n == 0 {
		return emptyPicker{}
	}
	slots := b.Slots
	if slots == 0 {
		slots = DefaultSlots
	}
	slots = min(max(slots, MinSlots), MaxSlots)
	counts := ringPointCounts(eps, uint64(slots))

	var total uint64
	for _, c := range counts {
		total += c
	}
	// A point is packed as position<<32 | endpoint index, so one integer
	// sort orders the ring.
	packed := make([]uint64, 0, total)
	for i := range eps {
		base := fnv1a64(eps[i].Addr)
		for r := uint64(0); r < counts[i]; r++ {
			h := mix64(base + (r+1)*golden)
			packed = append(packed, h>>32<<32|uint64(i))
		}
	}
	slices.Sort(packed)
	// Equal positions: the smallest address first, so the owner does not
	// depend on the order of eps.
	for j := 0; j < len(packed); {
		k := j + 1
		for k < len(packed) && packed[k]>>32 == packed[j]>>32 {
			k++
		}
		if k-j > 1 {
			best := j
			for c := j + 1; c < k; c++ {
				if eps[uint32(packed[c])].Addr < eps[uint32(packed[best])].Addr {
					best = c
				}
			}
			packed[j], packed[best] = packed[best], packed[j]
		}
		j = k
	}
	rnd := randSource(b.Rand)
	if fitsUint16(n) {
		return newCHPicker[uint16](packed, rnd)
	}
	return newCHPicker[uint32](packed, rnd)
}

// ringPointCounts returns each endpoint's number of ring points.
func ringPointCounts(eps []Endpoint, slots uint64) []uint64 {
	var wmax uint64
	for i := range eps {
		wmax = max(wmax, uint64(eps[i].Weight))
	}
	wmax = max(wmax, 1)
	counts := make([]uint64, len(eps))
	var total uint64
	for i := range eps {
		w := max(uint64(eps[i].Weight), 1)
		counts[i] = max((slots*w+wmax/2)/wmax, 1)
		total += counts[i]
	}
	if total > MaxRingPoints {
		for i, c := range counts {
			counts[i] = max(c*MaxRingPoints/total, 1)
		}
	}
	return counts
}

func newCHPicker[T index](packed []uint64, rnd func() uint64) *chPicker[T] {
	p := &chPicker[T]{
		pos: make([]uint32, len(packed)),
		own: make([]T, len(packed)),
		rnd: rnd,
	}
	for j, v := range packed {
		p.pos[j] = uint32(v >> 32)
		p.own[j] = T(uint32(v))
	}
	// About two points per bucket; between 2^4 and 2^20 buckets.
	nb := min(max(bits.Len(uint(len(packed)))-1, 4), 20)
	p.shift = uint(32 - nb)
	p.table = make([]uint32, 1<<nb+1)
	j := 0
	for b := range p.table {
		for j < len(p.pos) && uint64(p.pos[j])>>p.shift < uint64(b) {
			j++
		}
		p.table[b] = uint32(j)
	}
	return p
}
