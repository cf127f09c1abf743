package balance

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
)

// endpoints returns endpoints with the given weights, addresses
// "10.0.<i/256>.<i%256>:80" and fresh Stats.
func endpoints(weights ...uint32) []Endpoint {
	eps := make([]Endpoint, len(weights))
	for i, w := range weights {
		eps[i] = Endpoint{Addr: addrOf(i), Weight: w, Stats: new(Stats)}
	}
	return eps
}

func addrOf(i int) string { return fmt.Sprintf("10.0.%d.%d:80", i/256, i%256) }

// equalWeights returns n weights of w.
func equalWeights(n int, w uint32) []uint32 {
	ws := make([]uint32, n)
	for i := range ws {
		ws[i] = w
	}
	return ws
}

// seeded returns a deterministic random source for one goroutine.
func seeded(seed uint64) func() uint64 {
	return rand.New(rand.NewPCG(seed, seed^0x5eed)).Uint64
}

// zeroRand starts round-robin cycles at slot 0.
func zeroRand() uint64 { return 0 }

// fakeClock is an injectable clock in Unix nanoseconds.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(1_700_000_000_000_000_000)
	return c
}

func (c *fakeClock) Now() int64 { return c.ns.Load() }

func (c *fakeClock) Advance(d int64) { c.ns.Add(d) }

// countPicks picks n times and counts picks per address.
func countPicks(p Picker, eps []Endpoint, r *Request, n int) map[string]int {
	got := make(map[string]int)
	for range n {
		i := p.Pick(r)
		if i < 0 {
			got[""]++
			continue
		}
		got[eps[i].Addr]++
	}
	return got
}
