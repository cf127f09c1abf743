package balance

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// builders returns one builder per algorithm, with production randomness
// and clocks.
func builders() map[string]Builder {
	return map[string]Builder{
		"roundrobin":     NewRoundRobin(),
		"consistenthash": NewConsistentHash(100),
		"leastconn":      NewLeastConnections(),
		"latency":        NewLatency(),
		"random":         NewRandom(),
		"sticky":         NewSticky(1000, time.Minute, nil),
	}
}

// built is what package upstream swaps atomically: a picker and its set.
type built struct {
	p   Picker
	eps []Endpoint
}

// TestConcurrentPickAndRebuild picks from several goroutines while the
// picker is rebuilt and swapped, as package upstream does (run with -race).
func TestConcurrentPickAndRebuild(t *testing.T) {
	for name, b := range builders() {
		t.Run(name, func(t *testing.T) {
			sets := [][]Endpoint{endpoints(1, 2, 3), endpoints(5, 1), endpoints(equalWeights(40, 2)...), nil}
			var cur atomic.Pointer[built]
			cur.Store(&built{b.Build(sets[0], nil), sets[0]})
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := &Request{HasKey: g%2 == 0}
					for n := uint64(0); ; n++ {
						select {
						case <-stop:
							return
						default:
						}
						c := cur.Load()
						r.Key = n % 64
						i := c.p.Pick(r)
						if i < -1 || i >= len(c.eps) || (i == -1) != (len(c.eps) == 0) {
							t.Errorf("Pick = %d with %d endpoints", i, len(c.eps))
							return
						}
						if i < 0 {
							continue
						}
						s := c.eps[i].Stats
						s.InFlight.Add(1)
						s.Observe(time.Millisecond, n%7 == 0, time.Now().UnixNano())
						s.InFlight.Add(-1)
					}
				}()
			}
			for k := range 300 {
				s := sets[k%len(sets)]
				cur.Store(&built{b.Build(s, cur.Load().p), s})
			}
			close(stop)
			wg.Wait()
		})
	}
}
