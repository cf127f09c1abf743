package balance

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"time"
)

// index is the element type of the index tables pickers precompute: uint16
// while the endpoint count allows it (half the cache footprint), uint32
// above.
type index interface{ ~uint16 | ~uint32 }

// fitsUint16 reports whether endpoint indices below n fit an uint16 table.
func fitsUint16(n int) bool { return n <= 1<<16 }

// emptyPicker has no endpoints.
type emptyPicker struct{}

func (emptyPicker) Pick(*Request) int { return -1 }

// randSource returns f, or the lock-free math/rand/v2 generator when f is
// nil.
func randSource(f func() uint64) func() uint64 {
	if f == nil {
		return rand.Uint64
	}
	return f
}

// clockSource returns f or, when f is nil, the default clock: Unix
// nanoseconds read as the wall time at this call plus the monotonic time
// elapsed since (time.Since costs half of time.Now, which reads both
// clocks). Pickers call it at Build, so a wall-clock step is picked up at
// the next rebuild.
func clockSource(f func() int64) func() int64 {
	if f != nil {
		return f
	}
	anchor := time.Now()
	base := anchor.UnixNano()
	return func() int64 { return base + int64(time.Since(anchor)) }
}

// golden is 2^64 / φ, the SplitMix64 increment.
const golden = 0x9e3779b97f4a7c15

// mix64 is the SplitMix64 finaliser (a bijection with full avalanche). It
// is applied to caller-supplied hashes, which may be weak (a plain FNV of a
// short string, or even a small integer), and to derive ring points.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// fnv1a64 is FNV-1a 64 of s. It is fixed by its definition, so hashes
// derived from it are the same in every process.
func fnv1a64(s string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 0x100000001b3
	}
	return h
}

// bounded maps a uniform 64-bit random number to [0, n) by multiply-shift
// (Lemire); the bias is at most n/2^64.
func bounded(r, n uint64) uint64 {
	hi, _ := bits.Mul64(r, n)
	return hi
}

// twoDistinct derives two distinct uniform indices in [0, n), n >= 2, and
// one spare random bit from a single random number.
func twoDistinct(r uint64, n uint64) (i, j uint64, bit bool) {
	i = bounded(r, n)
	s := mix64(r)
	j = bounded(s, n-1)
	if j >= i {
		j++
	}
	return i, j, s&1 == 1
}

// gcd is Euclid's algorithm.
func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// expNeg approximates exp(-x) for x >= 0 with a relative error below 3e-6
// in a few nanoseconds (math.Exp costs ~30 ns here). It is used on the Pick
// path, where only comparisons of costs matter.
func expNeg(x float64) float64 {
	if !(x > 0) { // also catches NaN
		return 1
	}
	if x > 700 {
		return 0
	}
	// exp(-x) = 2^-y = 2^-n * 2^-f, n integer, f in [0, 1).
	y := x * math.Log2E
	n := math.Floor(y)
	g := (y - n) * math.Ln2 // exp(-g) = 2^-f, g in [0, ln 2)
	// Taylor series of exp(-g) to degree 7: error <= g^8/8! < 1.4e-6.
	p := 1 - g*(1-g*(1.0/2-g*(1.0/6-g*(1.0/24-g*(1.0/120-g*(1.0/720-g*(1.0/5040)))))))
	// p is in (0.5, 1]; scale by 2^-n through the exponent bits (n <= 1010
	// keeps the result a normal float64).
	return math.Float64frombits(math.Float64bits(p) - uint64(n)<<52)
}
