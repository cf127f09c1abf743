package balance

import (
	"fmt"
	"testing"
	"time"
)

// benchCase is one algorithm as benchmarked: a builder, how to prepare the
// endpoints, and how to vary the request per iteration.
type benchCase struct {
	name    string
	builder func() Builder
	// prepare runs after Build (warm caches, stats, sticky memory).
	prepare func(p Picker, eps []Endpoint)
	// request sets per-iteration request fields.
	request func(r *Request, i uint64)
}

// benchNow is a fixed request time for the variants that pass Request.Now.
const benchNow = 1_700_000_000_000_000_000

func benchCases() []benchCase {
	keyed := func(r *Request, i uint64) { r.Key, r.HasKey = i*golden, true }
	withNow := func(r *Request, _ uint64) { r.Now = benchNow }
	observeAll := func(_ Picker, eps []Endpoint) {
		for i := range eps {
			eps[i].Stats.Observe(time.Duration(1+i%7)*time.Millisecond, false, benchNow-int64(i%5)*int64(time.Second))
			eps[i].Stats.InFlight.Store(int64(i % 3))
		}
	}
	const stickyKeys = 4096
	stickyWarm := func(p Picker, _ []Endpoint) {
		r := &Request{HasKey: true, Now: benchNow}
		for k := range uint64(stickyKeys) {
			r.Key = k
			p.Pick(r)
		}
	}
	stickyHit := func(r *Request, i uint64) { r.Key, r.HasKey, r.Now = i%stickyKeys, true, benchNow }
	return []benchCase{
		{name: "roundrobin", builder: func() Builder { return NewRoundRobin() }},
		{name: "consistenthash", builder: func() Builder { return NewConsistentHash(0) }, request: keyed},
		{name: "leastconn", builder: func() Builder { return NewLeastConnections() }, prepare: observeAll},
		{name: "latency", builder: func() Builder { return NewLatency() }, prepare: observeAll, request: withNow},
		{name: "latency-ownclock", builder: func() Builder { return NewLatency() }, prepare: observeAll},
		{name: "random", builder: func() Builder { return NewRandom() }},
		{name: "sticky", builder: func() Builder { return NewSticky(1<<16, time.Hour, nil) }, prepare: stickyWarm, request: stickyHit},
		{name: "sticky-nottl", builder: func() Builder { return NewSticky(1<<16, 0, nil) }, prepare: stickyWarm, request: stickyHit},
	}
}

// benchWeights varies weights so weighted tables are not trivial.
func benchWeights(n int) []uint32 {
	ws := make([]uint32, n)
	for i := range ws {
		ws[i] = uint32(1 + i%5)
	}
	return ws
}

// benchSizes are the endpoint counts benchmarked.
func benchSizes() []int { return []int{3, 100, 10000} }

// BenchmarkPick measures Pick for every algorithm at 3, 100 and 10 000
// endpoints.
func BenchmarkPick(b *testing.B) {
	for _, bc := range benchCases() {
		for _, n := range benchSizes() {
			b.Run(fmt.Sprintf("%s/%d", bc.name, n), func(b *testing.B) {
				eps := endpoints(benchWeights(n)...)
				p := bc.builder().Build(eps, nil)
				if bc.prepare != nil {
					bc.prepare(p, eps)
				}
				r := &Request{}
				b.ReportAllocs()
				b.ResetTimer()
				for i := uint64(0); i < uint64(b.N); i++ {
					if bc.request != nil {
						bc.request(r, i)
					}
					if p.Pick(r) < 0 {
						b.Fatal("no pick")
					}
				}
			})
		}
	}
}

// BenchmarkPickParallel is BenchmarkPick from GOMAXPROCS goroutines sharing
// one picker (round-robin's counter, the sticky LRU's mutex and the Stats
// cache lines are contended).
func BenchmarkPickParallel(b *testing.B) {
	for _, bc := range benchCases() {
		for _, n := range benchSizes() {
			b.Run(fmt.Sprintf("%s/%d", bc.name, n), func(b *testing.B) {
				eps := endpoints(benchWeights(n)...)
				p := bc.builder().Build(eps, nil)
				if bc.prepare != nil {
					bc.prepare(p, eps)
				}
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					r := &Request{}
					for i := uint64(0); pb.Next(); i++ {
						if bc.request != nil {
							bc.request(r, i)
						}
						if p.Pick(r) < 0 {
							b.Error("no pick")
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkBuild measures rebuilding at 10 000 endpoints with distinct
// weights (the round-robin cycle reaches its 2^20 cap).
func BenchmarkBuild(b *testing.B) {
	ws := make([]uint32, 10000)
	for i := range ws {
		ws[i] = uint32(1 + (i*7919)%65535)
	}
	eps := endpoints(ws...)
	for _, bc := range benchCases() {
		b.Run(bc.name+"/10000", func(b *testing.B) {
			bl := bc.builder()
			var prev Picker
			b.ReportAllocs()
			for range b.N {
				prev = bl.Build(eps, prev)
			}
		})
	}
}

// TestPickDoesNotAllocate checks testing.AllocsPerRun == 0 for every
// algorithm (for sticky-sessions: the hit and keyless paths; a miss inserts
// into the LRU, which allocates).
func TestPickDoesNotAllocate(t *testing.T) {
	for _, bc := range benchCases() {
		for _, n := range []int{1, 3, 100, 70000} {
			t.Run(fmt.Sprintf("%s/%d", bc.name, n), func(t *testing.T) {
				eps := endpoints(benchWeights(n)...)
				p := bc.builder().Build(eps, nil)
				if bc.prepare != nil {
					bc.prepare(p, eps)
				}
				r := &Request{}
				i := uint64(0)
				allocs := testing.AllocsPerRun(1000, func() {
					if bc.request != nil {
						bc.request(r, i)
					}
					i++
					p.Pick(r)
				})
				if allocs != 0 {
					t.Errorf("Pick allocates %v times per call", allocs)
				}
				r2 := &Request{}
				if allocs := testing.AllocsPerRun(1000, func() { p.Pick(r2) }); allocs != 0 {
					t.Errorf("keyless Pick allocates %v times per call", allocs)
				}
			})
		}
	}
}
