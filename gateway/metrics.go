package gateway

import (
	"log"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/upstream"
)

// metrics are the gateway-level collectors (per-upstream target counts,
// configuration generation). Safe for concurrent use.
type metrics struct {
	targets    *prometheus.GaugeVec
	generation prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		targets: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "outrigger", Name: "upstream_targets",
			Help: "Targets per upstream by state (eligible: receives new requests; draining: weight 0; unhealthy).",
		}, []string{"upstream", "state"}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "outrigger", Name: "config_generation",
			Help: "Generation of the configuration in force; increases on every successful reload.",
		}),
	}
	reg.MustRegister(m.targets, m.generation)
	return m
}

func (m *metrics) observeSnapshot(name string, s *upstream.Snapshot) {
	var eligible, draining, unhealthy int
	for _, t := range s.Targets {
		switch {
		case !t.Healthy:
			unhealthy++
		case t.EffectiveWeight == 0:
			draining++
		default:
			eligible++
		}
	}
	m.targets.WithLabelValues(name, "eligible").Set(float64(eligible))
	m.targets.WithLabelValues(name, "draining").Set(float64(draining))
	m.targets.WithLabelValues(name, "unhealthy").Set(float64(unhealthy))
}

func (m *metrics) forget(name string) {
	m.targets.DeletePartialMatch(prometheus.Labels{"upstream": name})
}

// zerologStd adapts net/http's server error log to zerolog.
func zerologStd(l zerolog.Logger) *log.Logger {
	return log.New(stdWriter{l}, "", 0)
}

type stdWriter struct{ l zerolog.Logger }

func (w stdWriter) Write(b []byte) (int, error) {
	w.l.Debug().Str("log", "http").Msg(strings.TrimSpace(string(b)))
	return len(b), nil
}
