package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's Prometheus collectors. Create one per gateway with
// NewMetrics; the zero value is not usable.
type Metrics struct {
	Requests *prometheus.CounterVec
	Latency  *prometheus.HistogramVec
	InFlight prometheus.Gauge
	Retries  *prometheus.CounterVec
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
	}
	reg.MustRegister(m.Requests, m.Latency, m.InFlight, m.Retries)
	return m
}

// codeClass maps a status to its Prometheus label ("2xx", ...).
func codeClass(status int) string {
	switch {
	case status >= 500:
		return "5xx"
	case status >= 400:
		return "4xx"
	case status >= 300:
		return "3xx"
	case status >= 200:
		return "2xx"
	default:
		return "1xx"
	}
}
