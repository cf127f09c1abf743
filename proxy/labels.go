package proxy

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// labelCache resolves the engine's labelled metric children once per
// label combination instead of once per request (WithLabelValues hashes
// and locks). Lookups read an immutable map without locking; a new
// combination copies the map under mu.
//
// Concurrency: req and ret are swapped atomically; mu serialises writers.
type labelCache struct {
	mu  sync.Mutex
	req atomic.Pointer[map[reqLabels]*reqChildren]
	ret atomic.Pointer[map[[2]string]prometheus.Counter]
}

type reqLabels struct{ route, service, upstream, target string }

// reqChildren are the children of one (route, service, upstream, target):
// requests by status class (classIndex) and latency.
type reqChildren struct {
	requests [5]prometheus.Counter
	latency  prometheus.Observer
}

// classIndex is the index in reqChildren.requests of codeClass(status).
func classIndex(status int) int {
	switch {
	case status >= 500:
		return 4
	case status >= 400:
		return 3
	case status >= 300:
		return 2
	case status >= 200:
		return 1
	}
	return 0
}

func (lc *labelCache) request(mt *Metrics, route, service, up, target string) *reqChildren {
	k := reqLabels{route, service, up, target}
	if m := lc.req.Load(); m != nil {
		if ch := (*m)[k]; ch != nil {
			return ch
		}
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	old := lc.req.Load()
	if old != nil {
		if ch := (*old)[k]; ch != nil {
			return ch
		}
	}
	ch := &reqChildren{latency: mt.Latency.WithLabelValues(route, service, up)}
	for i := range ch.requests {
		ch.requests[i] = mt.Requests.WithLabelValues(route, service, up, target, codeClass(100*(i+1)))
	}
	nm := make(map[reqLabels]*reqChildren, 1)
	if old != nil {
		for kk, v := range *old {
			nm[kk] = v
		}
	}
	nm[k] = ch
	lc.req.Store(&nm)
	return ch
}

func (lc *labelCache) retries(mt *Metrics, service, up string) prometheus.Counter {
	k := [2]string{service, up}
	if m := lc.ret.Load(); m != nil {
		if c := (*m)[k]; c != nil {
			return c
		}
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	old := lc.ret.Load()
	if old != nil {
		if c := (*old)[k]; c != nil {
			return c
		}
	}
	c := mt.Retries.WithLabelValues(service, up)
	nm := make(map[[2]string]prometheus.Counter, 1)
	if old != nil {
		for kk, v := range *old {
			nm[kk] = v
		}
	}
	nm[k] = c
	lc.ret.Store(&nm)
	return c
}
