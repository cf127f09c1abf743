package proxy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outrigger-gw/outrigger/upstream"
)

// Metrics are the proxy's Prometheus collectors. Create one per gateway with
// NewMetrics; the zero value is not usable. The collectors are safe for
// concurrent use.
//
// Series with a target label live as long as the target's
// upstream.Member: the proxy resolves their children once per target and
// (route, service, status class), keeps them on the member, and
// ForgetTarget deletes them when the member ends (the gateway wires it to
// upstream.Options.OnTargetGone). A target that comes back gets fresh
// series.
type Metrics struct {
	Requests *prometheus.CounterVec
	Latency  *prometheus.HistogramVec
	InFlight prometheus.Gauge
	Retries  *prometheus.CounterVec
	// GRPC counts finished gRPC calls by route, service, upstream and
	// grpc-status ("0".."16", "other"); no target label.
	GRPC *prometheus.CounterVec
	// Overloaded counts requests a circuit breaker or the retry budget
	// turned away, by upstream and limit (max_requests, max_retries,
	// retry_budget).
	Overloaded *prometheus.CounterVec

	// upstreams maps a name to the upstream whose remaining capacity is
	// read at scrape time (TrackUpstream); a sync.Map, safe for
	// concurrent use.
	upstreams sync.Map
	capacity  *prometheus.Desc
}

// NewMetrics creates the proxy collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "outrigger", Name: "requests_total",
			Help: "Proxied requests by route, service, upstream, target and status class.",
		}, []string{"route", "service", "upstream", "target", "code"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "outrigger", Name: "request_duration_seconds",
			Help:    "Time from receiving a request to finishing its response.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "service", "upstream"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "outrigger", Name: "requests_in_flight",
			Help: "Requests currently being proxied.",
		}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "outrigger", Name: "retries_total",
			Help: "Upstream attempts beyond the first, by service and upstream.",
		}, []string{"service", "upstream"}),
		GRPC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "outrigger", Name: "grpc_responses_total",
			Help: "Proxied gRPC calls by route, service, upstream and grpc-status.",
		}, []string{"route", "service", "upstream", "grpc_status"}),
		Overloaded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "outrigger", Name: "overloaded_total",
			Help: "Requests answered 503 by a circuit breaker, or retries refused by the retry budget, by upstream and limit.",
		}, []string{"upstream", "limit"}),
		capacity: prometheus.NewDesc("outrigger_upstream_capacity_remaining",
			"Requests or retries an upstream's circuit breaker still admits, by upstream and limit (only limits that are set).",
			[]string{"upstream", "limit"}, nil),
	}
	reg.MustRegister(m.Requests, m.Latency, m.InFlight, m.Retries, m.GRPC, m.Overloaded, capacityCollector{m})
	return m
}

// TrackUpstream makes u's remaining circuit breaker capacity part of the
// scrape, replacing an earlier upstream of the same name.
func (m *Metrics) TrackUpstream(u *upstream.Upstream) { m.upstreams.Store(u.Name(), u) }

// capacityCollector reads the circuit breakers at scrape time.
type capacityCollector struct{ m *Metrics }

func (c capacityCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.capacity }

func (c capacityCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.upstreams.Range(func(k, v any) bool {
		b := v.(*upstream.Upstream).Breakers()
		l := b.Limits()
		reqs, rets := b.InProgress()
		if l.MaxRequests > 0 {
			ch <- prometheus.MustNewConstMetric(c.m.capacity, prometheus.GaugeValue, float64(max(l.MaxRequests-reqs, 0)), k.(string), "max_requests")
		}
		if l.MaxConnections > 0 {
			ch <- prometheus.MustNewConstMetric(c.m.capacity, prometheus.GaugeValue, float64(max(l.MaxConnections-b.Connections(), 0)), k.(string), "max_connections")
		}
		if l.MaxPendingRequests > 0 {
			ch <- prometheus.MustNewConstMetric(c.m.capacity, prometheus.GaugeValue, float64(max(l.MaxPendingRequests-b.Pending(), 0)), k.(string), "max_pending_requests")
		}
		if l.MaxRetries > 0 {
			ch <- prometheus.MustNewConstMetric(c.m.capacity, prometheus.GaugeValue, float64(max(l.MaxRetries-rets, 0)), k.(string), "max_retries")
		}
		return true
	})
}

// ForgetTarget deletes every series of one target of an upstream.
func (m *Metrics) ForgetTarget(upstreamName, target string) {
	m.Requests.DeletePartialMatch(prometheus.Labels{"upstream": upstreamName, "target": target})
}

// ForgetUpstream deletes every series of an upstream that left the
// configuration.
func (m *Metrics) ForgetUpstream(name string) {
	l := prometheus.Labels{"upstream": name}
	m.Requests.DeletePartialMatch(l)
	m.Latency.DeletePartialMatch(l)
	m.Retries.DeletePartialMatch(l)
	m.GRPC.DeletePartialMatch(l)
	m.Overloaded.DeletePartialMatch(l)
	m.upstreams.Delete(name)
}

// record counts one finished request. With a target (ep) it takes no lock
// and allocates nothing once the request's (route, service, class) has
// been seen for the target.
func (m *Metrics) record(route, service, upName string, ep *upstream.Endpoint, status int, d time.Duration) {
	class := codeIndex(status)
	if ep == nil {
		m.Requests.WithLabelValues(route, service, upName, "", classLabel(class)).Inc()
		m.Latency.WithLabelValues(route, service, upName).Observe(d.Seconds())
		return
	}
	ts, _ := ep.Member.Value().(*targetSeries)
	if ts == nil {
		ts, _ = ep.Member.Attach(&targetSeries{m: m, upstream: upName, target: ep.Addr}).(*targetSeries)
	}
	if ts == nil || ts.m != m {
		// The member carries another proxy's series (two proxies on one
		// upstream): resolve per request.
		m.Requests.WithLabelValues(route, service, upName, ep.Addr, classLabel(class)).Inc()
		m.Latency.WithLabelValues(route, service, upName).Observe(d.Seconds())
		return
	}
	e := ts.lookup(route, service, class)
	e.requests.Inc()
	e.latency.Observe(d.Seconds())
}

// targetSeries is one target's resolved series children, by (route,
// service, status class). Attached to the target's upstream.Member, so it
// lives and goes with it.
type targetSeries struct {
	m                *Metrics
	upstream, target string // immutable

	mu      sync.Mutex                    // serialises additions to entries
	entries atomic.Pointer[[]seriesEntry] // copy on write; readers take no lock
}

type seriesEntry struct {
	route, service string
	class          uint8
	requests       prometheus.Counter
	latency        prometheus.Observer // the route's, not the target's: resolved here too
}

func (ts *targetSeries) lookup(route, service string, class uint8) *seriesEntry {
	if es := ts.entries.Load(); es != nil {
		for i := range *es {
			if e := &(*es)[i]; e.class == class && e.route == route && e.service == service {
				return e
			}
		}
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var old []seriesEntry
	if es := ts.entries.Load(); es != nil {
		old = *es
		for i := range old {
			if e := &old[i]; e.class == class && e.route == route && e.service == service {
				return e
			}
		}
	}
	next := make([]seriesEntry, len(old), len(old)+1)
	copy(next, old)
	next = append(next, seriesEntry{route: route, service: service, class: class,
		requests: ts.m.Requests.WithLabelValues(route, service, ts.upstream, ts.target, classLabel(class)),
		latency:  ts.m.Latency.WithLabelValues(route, service, ts.upstream)})
	ts.entries.Store(&next)
	return &next[len(next)-1]
}

// codeIndex maps a status to its class in codeClasses.
func codeIndex(status int) uint8 {
	switch {
	case status >= 500:
		return 4
	case status >= 400:
		return 3
	case status >= 300:
		return 2
	case status >= 200:
		return 1
	default:
		return 0
	}
}

// classLabel is the Prometheus label of a codeIndex class.
func classLabel(class uint8) string {
	switch class {
	case 4:
		return "5xx"
	case 3:
		return "4xx"
	case 2:
		return "3xx"
	case 1:
		return "2xx"
	default:
		return "1xx"
	}
}
