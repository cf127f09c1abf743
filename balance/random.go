package balance

import "math/bits"

// Random builds weighted random pickers using Walker's alias method (Vose's
// construction, in exact integer arithmetic): Pick draws one 64-bit number,
// whose high part (multiply-shift) selects a column and whose low part is
// compared with the column's threshold — O(1) at any size, two table reads.
// Each endpoint's probability is w/W up to rounding of order n/2^64.
type Random struct {
	// Rand is the random source; nil means math/rand/v2's rand.Uint64.
	Rand func() uint64
}

// NewRandom returns a weighted random builder with default settings.
func NewRandom() *Random { return &Random{} }

// aliasPicker: column c is taken when the low part of the draw is below
// prob[c] (or always, when full[c]), else alias[c] is.
type aliasPicker[T index] struct {
	prob  []uint64
	alias []T
	rnd   func() uint64
}

func (p *aliasPicker[T]) Pick(*Request) int {
	c, f := bits.Mul64(p.rnd(), uint64(len(p.prob)))
	if f < p.prob[c] {
		return int(c)
	}
	return int(p.alias[c])
}

// Build implements Builder.
func (b *Random) Build(eps []Endpoint, _ Picker) Picker {
	if len(eps) == 0 {
		return emptyPicker{}
	}
	rnd := randSource(b.Rand)
	if fitsUint16(len(eps)) {
		return newAliasPicker[uint16](eps, rnd)
	}
	return newAliasPicker[uint32](eps, rnd)
}

func newAliasPicker[T index](eps []Endpoint, rnd func() uint64) *aliasPicker[T] {
	n := uint64(len(eps))
	p := &aliasPicker[T]{
		prob:  make([]uint64, n),
		alias: make([]T, n),
		rnd:   rnd,
	}
	// Column heights scaled by n, so the average height is W exactly.
	h := make([]uint64, n)
	var total uint64
	for i := range eps {
		w := max(uint64(eps[i].Weight), 1)
		h[i] = w * n
		total += w
	}
	var small, large []int
	for i, x := range h {
		if x < total {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s := small[len(small)-1]
		small = small[:len(small)-1]
		l := large[len(large)-1]
		// Column s keeps h[s]/total of its own mass and is topped up by l.
		p.prob[s], _ = bits.Div64(h[s], 0, total)
		p.alias[s] = T(l)
		h[l] -= total - h[s]
		if h[l] < total {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	// What remains has height exactly total (integer arithmetic): full
	// columns, which the low part of a draw can never reach past.
	for _, i := range append(small, large...) {
		p.prob[i] = ^uint64(0)
		p.alias[i] = T(i)
	}
	return p
}
