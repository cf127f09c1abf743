package proxy

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outrigger-gw/outrigger/balance"
	"github.com/outrigger-gw/outrigger/upstream"
)

// The per-request bookkeeping of a proxied request, outside any I/O, on
// every P at once (the counters are shared): in-flight gauges, the
// target's pick and latency stats, the outcome report, the role stats
// and the Prometheus series.
func BenchmarkRequestBookkeeping(b *testing.B) {
	mt := NewMetrics(prometheus.NewRegistry())
	u := upstream.New(upstream.Options{Name: "u", Balancer: balance.NewRoundRobin()})
	u.SetTargets(upstream.StaticSource, []upstream.Target{{Addr: "127.0.0.1:1", Weight: 1}})
	var role RoleStats
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			snap := u.Snapshot()
			ep := &snap.Endpoints[0]
			mt.InFlight.Inc()
			ep.Member.Hold()
			ep.Stats.InFlight.Add(1)
			ep.Stats.Requests.Add(1)
			now := time.Now()
			u.Report(ep, upstream.Outcome{Status: 200, Duration: now.Sub(start), At: now})
			ep.Stats.InFlight.Add(-1)
			d := time.Since(start)
			role.Record(d, false)
			mt.InFlight.Dec()
			mt.record("r", "s", "u", ep, 200, d)
			ep.Member.Done()
		}
	})
}
