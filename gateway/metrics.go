package gateway

import (
	"log"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/health"
	"github.com/outrigger-gw/outrigger/proxy"
	"github.com/outrigger-gw/outrigger/upstream"
)

// metrics are the gateway-level collectors (per-upstream target counts,
// configuration generation) and the proxy's. Safe for concurrent use.
type metrics struct {
	proxy         *proxy.Metrics
	targets       *prometheus.GaugeVec
	targetHealthy *prometheus.GaugeVec
	healthChanges *prometheus.CounterVec
	panicMode     *prometheus.GaugeVec
	panics        *prometheus.CounterVec
	generation    prometheus.Gauge
	layerState    *prometheus.GaugeVec
	// requestPanics counts panics recovered while serving a request, by
	// listener ("proxy", "admin"); both series exist from the start.
	requestPanics *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		proxy: proxy.NewMetrics(reg),
		targets: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "outrigger", Name: "upstream_targets",
			Help: "Targets per upstream by state (eligible: receives new requests; draining: weight 0; unhealthy).",
		}, []string{"upstream", "state"}),
		targetHealthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "outrigger", Name: "target_healthy",
			Help: "1 when the target is healthy (checks and manual marks applied), else 0.",
		}, []string{"upstream", "target"}),
		healthChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "outrigger", Name: "health_changes_total",
			Help: "Target health changes by cause (active, passive, manual, ejection-expired, ejection-refused, success-rate) and new state.",
		}, []string{"upstream", "cause", "state"}),
		panicMode: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "outrigger", Name: "upstream_panic",
			Help: "1 while the upstream is in panic mode (too few healthy targets).",
		}, []string{"upstream"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "outrigger", Name: "upstream_panics_total",
			Help: "Times panic mode engaged.",
		}, []string{"upstream"}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "outrigger", Name: "config_generation",
			Help: "Generation of the configuration in force; increases on every successful reload.",
		}),
		layerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "outrigger", Name: "admin_layer_state",
			Help: "1 for the admin layer's current state, 0 for the others: in_sync (the store's latest layer is in force), " +
				"not_applied (it does not build with this configuration file; admin changes are refused), lost (the store's copy vanished; being published again).",
		}, []string{"state"}),
		requestPanics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "outrigger", Name: "panics_total",
			Help: "Panics recovered while serving a request, by listener (each one is logged at error level with its stack).",
		}, []string{"listener"}),
	}
	m.requestPanics.WithLabelValues("proxy")
	m.requestPanics.WithLabelValues("admin")
	reg.MustRegister(m.targets, m.targetHealthy, m.healthChanges, m.panicMode, m.panics, m.generation, m.layerState, m.requestPanics)
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
	// Targets come and go: drop the upstream's series and set the current
	// ones (snapshots change rarely; this is off the request path).
	m.targetHealthy.DeletePartialMatch(prometheus.Labels{"upstream": name})
	for _, t := range s.Targets {
		v := 0.0
		if t.Healthy {
			v = 1
		}
		m.targetHealthy.WithLabelValues(name, t.Addr).Set(v)
	}
	m.targets.WithLabelValues(name, "eligible").Set(float64(eligible))
	m.targets.WithLabelValues(name, "draining").Set(float64(draining))
	m.targets.WithLabelValues(name, "unhealthy").Set(float64(unhealthy))
}

// forgetTarget deletes every series of a target that left its upstream
// (once its last request was counted).
func (m *metrics) forgetTarget(name, addr string) {
	m.proxy.ForgetTarget(name, addr)
	m.targetHealthy.DeleteLabelValues(name, addr)
}

func (m *metrics) forget(name string) {
	l := prometheus.Labels{"upstream": name}
	m.targets.DeletePartialMatch(l)
	m.targetHealthy.DeletePartialMatch(l)
	m.panicMode.DeletePartialMatch(l)
	m.proxy.ForgetUpstream(name)
}

func (m *metrics) healthEvent(name string, ev health.Event) {
	state := "unhealthy"
	if ev.New {
		state = "healthy"
	}
	m.healthChanges.WithLabelValues(name, ev.Cause.String(), state).Inc()
}

func (m *metrics) panic(name string, on bool) {
	if on {
		m.panicMode.WithLabelValues(name).Set(1)
		m.panics.WithLabelValues(name).Inc()
	} else {
		m.panicMode.WithLabelValues(name).Set(0)
	}
}

// setLayerState sets the admin layer state gauge: 1 for state, 0 for the
// others.
func (m *metrics) setLayerState(state string) {
	for _, s := range []string{admin.LayerInSync, admin.LayerNotApplied, admin.LayerLost} {
		v := 0.0
		if s == state {
			v = 1
		}
		m.layerState.WithLabelValues(s).Set(v)
	}
}

// zerologStd adapts net/http's server error log to zerolog.
func zerologStd(l zerolog.Logger) *log.Logger {
	return log.New(stdWriter{l}, "", 0)
}

type stdWriter struct{ l zerolog.Logger }

func (w stdWriter) Write(b []byte) (int, error) {
	msg := strings.TrimSpace(string(b))
	ev := w.l.Debug()
	if strings.HasPrefix(msg, "http: panic serving") {
		// The handlers recover their own panics (internal/guard); one that
		// still reaches net/http is never hidden at debug level.
		ev = w.l.Error()
	}
	ev.Str("log", "http").Msg(msg)
	return len(b), nil
}
