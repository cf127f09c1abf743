package balance

import (
	"math/bits"
	"slices"
	"sync/atomic"
)

// DefaultMaxCycle is the default cap on the length of a round-robin cycle.
const DefaultMaxCycle = 1 << 20

// maxMaxCycle bounds RoundRobin.MaxCycle (64 MiB of uint32 indices).
const maxMaxCycle = 1 << 24

// RoundRobin builds exact, smooth, weighted round-robin pickers.
//
// Build precomputes one full cycle of picks as a sequence of endpoint
// indices; Pick is seq[counter.Add(1) % len] — one atomic add, no lock.
//
// The cycle: weights are first divided by their greatest common divisor, so
// weights 300 and 100 give the cycle [0 0 1 0] and any 400 consecutive picks
// contain exactly 300 and 100 of each. The order within the cycle is
// earliest-deadline-first with release times (Tijdeman's solution of the
// "chairman assignment problem"): with W the total weight, n the endpoint
// count and C = 1/(2(n-1)), the k-th occurrence of endpoint i may be placed
// at slot t (1-based) once t ≥ (k-1+C)·W/w_i and is due by (k-C)·W/w_i;
// each slot takes the released occurrence with the earliest due time, ties
// to the lowest index. All comparisons are exact integer
// cross-multiplications. The result is interleaved (no long runs) and its
// prefixes are as fair as possible: after t picks from the start of the
// cycle, every endpoint has been picked within 1 - 1/(2(n-1)) (< 1) of its
// ideal share t·w_i/W. Weights 5,1,1 give [0 0 1 0 0 2 0]; weights 3,1 give
// [0 0 1 0]. (Plain EDF with due times k/w_i would give [0 0 0 0 0 1 2] for
// 5,1,1, a run of five; nginx's smooth WRR gives [0 0 1 0 2 0 0].) A window
// that does not start at a cycle boundary is the difference of two
// prefixes, so its deviation stays below 2.
//
// The cycle is capped at MaxCycle entries (default DefaultMaxCycle = 2^20;
// indices are stored as uint16 up to 65 536 endpoints, uint32 above). When
// the reduced total weight W exceeds the cap, weights are scaled to sum to
// the cap by the largest-remainder method, with every endpoint kept at ≥ 1:
// each endpoint's scaled weight is within one unit of its exact share of the
// cap, so its traffic share is off by less than 1/MaxCycle (< 0.0001% at
// the default) plus, only when some endpoints' exact share was below one
// unit and had to be raised to 1, that excess spread over the others.
// Building costs O(W log n) time (a calendar of pending occurrences and a
// binary heap of released ones) and O(W) memory: about 150 ms for 10 000
// endpoints with distinct weights at the 2^20 cap, microseconds when the
// weights are equal (the cycle is then one pick per endpoint).
//
// Carry-over: when prev is a round-robin picker, the new picker starts at
// the same fractional phase of its cycle (old position / old length, scaled
// to the new length, keeping the sub-slot remainder so that repeated
// rebuilds do not round the phase toward the start). Frequent rebuilds —
// health flaps, discovery refreshes — therefore neither restart the cycle
// nor bias the ratios. Without a round-robin predecessor the phase starts at
// a random slot drawn from Rand, so that gateway replicas built at the same
// moment do not send their first requests to the same target.
type RoundRobin struct {
	// MaxCycle caps the cycle length; 0 means DefaultMaxCycle. Values are
	// clamped to at most 2^24 and at least the number of endpoints.
	MaxCycle int
	// Rand draws the starting slot of a picker built without a
	// round-robin predecessor. nil means math/rand/v2's rand.Uint64; tests
	// inject func() uint64 { return 0 } to start at slot 0.
	Rand func() uint64
}

// NewRoundRobin returns a round-robin builder with default settings.
func NewRoundRobin() *RoundRobin { return &RoundRobin{} }

// rrPhaser is implemented by round-robin pickers, so that Build can read
// the phase of its predecessor.
type rrPhaser interface {
	// rrPhase returns the next slot of the cycle, the fraction of a slot
	// beyond it (in units of 2^-64) and the cycle length (>= 1).
	rrPhase() (pos, frac, n uint64)
}

// rrPicker is a round-robin picker over a non-empty cycle.
type rrPicker[T index] struct {
	ctr  atomic.Uint64
	n    uint64
	seq  []T
	frac uint64
}

func (p *rrPicker[T]) Pick(*Request) int {
	c := p.ctr.Add(1) - 1
	return int(p.seq[c%p.n])
}

func (p *rrPicker[T]) rrPhase() (uint64, uint64, uint64) {
	return p.ctr.Load() % p.n, p.frac, p.n
}

// rrEmpty is a round-robin picker with no endpoints. It keeps the phase of
// its predecessor (as a cycle of length 1), so that a transient empty set
// does not reset the next one to the start of its cycle.
type rrEmpty struct{ frac uint64 }

func (*rrEmpty) Pick(*Request) int { return -1 }

func (p *rrEmpty) rrPhase() (uint64, uint64, uint64) { return 0, p.frac, 1 }

// Build implements Builder.
func (b *RoundRobin) Build(eps []Endpoint, prev Picker) Picker {
	n := len(eps)
	limit := b.MaxCycle
	if limit <= 0 {
		limit = DefaultMaxCycle
	}
	limit = max(min(limit, maxMaxCycle), n)
	w := make([]uint64, n)
	for i := range eps {
		w[i] = max(uint64(eps[i].Weight), 1)
	}
	total := cycleWeights(w, uint64(limit))
	cycle := max(total, 1)

	var pos, frac uint64
	if ph, ok := prev.(rrPhaser); ok {
		opos, ofrac, on := ph.rrPhase()
		pos, frac = scalePhase(opos, ofrac, on, cycle)
	} else if n > 0 {
		pos = bounded(randSource(b.Rand)(), cycle)
	}
	if n == 0 {
		return &rrEmpty{frac: frac}
	}
	if fitsUint16(n) {
		return newRRPicker[uint16](w, total, pos, frac)
	}
	return newRRPicker[uint32](w, total, pos, frac)
}

func newRRPicker[T index](w []uint64, total, pos, frac uint64) *rrPicker[T] {
	p := &rrPicker[T]{n: total, seq: make([]T, total), frac: frac}
	smoothSequence(p.seq, w, total)
	p.ctr.Store(pos)
	return p
}

// scalePhase maps position pos+frac/2^64 in a cycle of length from to the
// same fraction of a cycle of length to: x = (pos + frac/2^64)·to/from,
// returned as floor(x) and the fractional part in units of 2^-64. Exact
// for lengths below 2^32.
func scalePhase(pos, frac, from, to uint64) (uint64, uint64) {
	if from == to {
		return pos, frac
	}
	hi, lo := bits.Mul64(frac, to) // frac·to = hi·2^64 + lo
	a := pos*to + hi
	q, r := a/from, a%from
	f, _ := bits.Div64(r, lo, from)
	return q, f
}

// cycleWeights divides w by its GCD and, if the sum then exceeds limit
// (>= len(w)), scales it to sum to limit by the largest-remainder method,
// keeping each weight >= 1. It rewrites w and returns the new sum.
func cycleWeights(w []uint64, limit uint64) uint64 {
	total := reduceByGCD(w)
	if total <= limit {
		return total
	}
	n := len(w)
	rem := make([]uint64, n)
	order := make([]int, 0, n)
	var sum uint64
	for i, x := range w {
		hi, lo := bits.Mul64(x, limit)
		q, r := bits.Div64(hi, lo, total) // x·limit < total·2^64
		if q == 0 {
			q = 1 // raised: gets no share of the remainder
		} else {
			order = append(order, i)
		}
		w[i], rem[i] = q, r
		sum += q
	}
	if sum < limit {
		slices.SortStableFunc(order, func(a, b int) int {
			switch {
			case rem[a] > rem[b]:
				return -1
			case rem[a] < rem[b]:
				return 1
			}
			return 0
		})
		for _, i := range order[:min(uint64(len(order)), limit-sum)] {
			w[i]++
		}
	}
	return reduceByGCD(w)
}

// reduceByGCD divides w by the GCD of its elements and returns their sum.
func reduceByGCD(w []uint64) uint64 {
	var g uint64
	for _, x := range w {
		g = gcd(g, x)
	}
	var sum uint64
	for i := range w {
		w[i] /= g
		sum += w[i]
	}
	return sum
}

// rrItem is the next occurrence of an endpoint in smoothSequence: its k-th
// of w, due or released at num/(2(n-1)·w) in units of W slots.
type rrItem struct {
	num, w, k uint64
}

// rrEntry is a heap element: an endpoint index and its float64(num)/w.
type rrEntry struct {
	key float64
	i   uint32
}

// rrHeap is a binary min-heap of endpoints by their item's num/w, ties by
// index.
type rrHeap struct {
	e     []rrEntry
	items []rrItem
}

// less orders by num/w exactly. num and w are below 2^53, so their float64
// quotients are correctly rounded, and rounding is monotonic: different
// quotients order the exact ratios; only equal ones need the exact
// cross-multiplication.
func (h *rrHeap) less(x, y rrEntry) bool {
	if x.key != y.key {
		return x.key < y.key
	}
	a, b := &h.items[x.i], &h.items[y.i]
	h1, l1 := bits.Mul64(a.num, b.w)
	h2, l2 := bits.Mul64(b.num, a.w)
	if h1 != h2 {
		return h1 < h2
	}
	if l1 != l2 {
		return l1 < l2
	}
	return x.i < y.i
}

// push adds endpoint i, keyed by its item's current num.
func (h *rrHeap) push(i uint32) {
	it := &h.items[i]
	x := rrEntry{key: float64(it.num) / float64(it.w), i: i}
	h.e = append(h.e, x)
	h.up(len(h.e)-1, x)
}

func (h *rrHeap) up(c int, x rrEntry) {
	e := h.e
	for c > 0 {
		p := (c - 1) / 2
		if !h.less(x, e[p]) {
			break
		}
		e[c] = e[p]
		c = p
	}
	e[c] = x
}

// pop removes the minimum and returns its endpoint index. It moves the
// hole at the root down to a leaf along the smaller children (one
// comparison per level), then sifts the last element up from there
// (Floyd's variant: the last element usually belongs near the bottom).
func (h *rrHeap) pop() uint32 {
	e := h.e
	top := e[0].i
	last := e[len(e)-1]
	e = e[:len(e)-1]
	h.e = e
	if len(e) == 0 {
		return top
	}
	c := 0
	for {
		l := 2*c + 1
		if l >= len(e) {
			break
		}
		if l+1 < len(e) && h.less(e[l+1], e[l]) {
			l++
		}
		e[c] = e[l]
		c = l
	}
	h.up(c, last)
	return top
}

// smoothSequence fills seq (length total = Σw) with the round-robin cycle
// described on RoundRobin. It returns how many slots had no released
// occurrence and took the earliest pending one instead; Tijdeman's theorem
// says this never happens (the tests check it).
//
// Pending occurrences wait in a calendar of per-slot lists, keyed by the
// first slot at which they are released; released ones in a heap by due
// time. Each occurrence costs O(1) plus one heap push and pop: O(W log n).
func smoothSequence[T index](seq []T, w []uint64, total uint64) (forced int) {
	n := len(w)
	if n == 1 {
		clear(seq) // w[0] == 1 after the GCD reduction
		return 0
	}
	m2 := 2 * uint64(n-1)
	// Release time of occurrence k: (2(n-1)(k-1)+1)/(2(n-1)·w) · W slots.
	// Due time:                     (2(n-1)k-1)/(2(n-1)·w) · W slots.
	items := make([]rrItem, n)
	ready := rrHeap{e: make([]rrEntry, 0, n), items: items}
	head := make([]int32, total+2) // head[t]: first endpoint released at t
	for t := range head {
		head[t] = -1
	}
	next := make([]int32, n)
	wait := func(i int, now uint64) {
		// First slot t with num·W <= t·2(n-1)·w, and after now: an
		// occurrence may be placed one slot after its (fractional) due
		// time, when its successor can already be released.
		it := &items[i]
		d := m2 * it.w
		hi, lo := bits.Mul64(it.num, total)
		q, r := bits.Div64(hi, lo, d)
		if r != 0 {
			q++
		}
		q = max(q, now+1)
		next[i] = head[q]
		head[q] = int32(i)
	}
	for i, x := range w {
		items[i] = rrItem{num: 1, w: x, k: 1}
		wait(i, 0)
	}
	for t := uint64(1); t <= total; t++ {
		for i := head[t]; i >= 0; i = next[i] {
			it := &items[i]
			it.num = m2*it.k - 1
			ready.push(uint32(i))
		}
		head[t] = -1
		if len(ready.e) == 0 {
			// Defensive only: release the earliest pending occurrence.
			forced++
			u := t + 1
			for head[u] < 0 {
				u++
			}
			i := head[u]
			head[u] = next[i]
			items[i].num = m2*items[i].k - 1
			ready.push(uint32(i))
		}
		i := ready.pop()
		seq[t-1] = T(i)
		if it := &items[i]; it.k < it.w {
			it.k++
			it.num = m2*(it.k-1) + 1
			wait(int(i), t)
		}
	}
	return forced
}
