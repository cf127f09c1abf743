package balance

// DefaultScanLimit is the default LeastConnections.ScanLimit.
const DefaultScanLimit = 16

// LeastConnections builds least-connections pickers: the endpoint with the
// lowest (InFlight+1)/Weight, compared exactly by cross-multiplication.
//
// Up to ScanLimit endpoints, Pick scans them all and breaks ties uniformly
// at random (reservoir sampling seeded by one draw from Rand), so an idle
// pool is spread instead of always hitting the first endpoint. Above
// ScanLimit, a full scan would cost ~1–3 ns per endpoint (10 000 endpoints:
// tens of microseconds), so Pick uses the power of two choices: it compares
// two distinct endpoints drawn uniformly at random and takes the less loaded
// one (ties at random). That is not the global minimum, but it is the
// classic approximation of it (the maximum load is exponentially better than
// random's) and costs the same at any size. Weights enter through the cost
// in both modes.
type LeastConnections struct {
	// Rand is the random source; nil means math/rand/v2's rand.Uint64.
	Rand func() uint64
	// ScanLimit is the largest endpoint count scanned in full; 0 means
	// DefaultScanLimit, negative means always use two random choices.
	ScanLimit int
}

// NewLeastConnections returns a least-connections builder with default
// settings.
func NewLeastConnections() *LeastConnections { return &LeastConnections{} }

type lcPicker struct {
	stats []*Stats
	w     []uint64
	scan  bool
	rnd   func() uint64
}

// maxLoad bounds the in-flight count used in costs, so that (load+1)·weight
// cannot overflow.
const maxLoad = 1 << 40

func load(s *Stats) uint64 {
	v := s.InFlight.Load()
	return uint64(min(max(v, 0), maxLoad)) + 1
}

// Build implements Builder.
func (b *LeastConnections) Build(eps []Endpoint, _ Picker) Picker {
	if len(eps) == 0 {
		return emptyPicker{}
	}
	limit := b.ScanLimit
	if limit == 0 {
		limit = DefaultScanLimit
	}
	p := &lcPicker{
		stats: make([]*Stats, len(eps)),
		w:     make([]uint64, len(eps)),
		scan:  len(eps) <= limit,
		rnd:   randSource(b.Rand),
	}
	for i := range eps {
		p.stats[i] = eps[i].Stats
		p.w[i] = max(uint64(eps[i].Weight), 1)
	}
	return p
}

func (p *lcPicker) Pick(*Request) int {
	n := len(p.stats)
	if n == 1 {
		return 0
	}
	r := p.rnd()
	if !p.scan {
		i, j, bit := twoDistinct(r, uint64(n))
		ci, cj := load(p.stats[i]), load(p.stats[j])
		wi, wj := p.w[i], p.w[j]
		if ci*wj < cj*wi || (ci*wj == cj*wi && bit) {
			return int(i)
		}
		return int(j)
	}
	best := 0
	bc, bw := load(p.stats[0]), p.w[0]
	ties := uint64(1)
	s := r
	for i := 1; i < n; i++ {
		c, w := load(p.stats[i]), p.w[i]
		switch l, rr := c*bw, bc*w; {
		case l < rr:
			best, bc, bw, ties = i, c, w, 1
		case l == rr:
			// Keep the i-th of k tied candidates with probability 1/k.
			ties++
			s += golden
			if bounded(mix64(s), ties) == 0 {
				best, bc, bw = i, c, w
			}
		}
	}
	return best
}
