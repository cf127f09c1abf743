package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/tracing"
)

// newTracer returns the tracer of cfg's tracing block, or nil when tracing
// is off (no block, or enabled: false). The block is taken at start: a
// reload keeps the running tracer.
func newTracer(cfg *config.File, version string, reg prometheus.Registerer) (*tracing.Tracer, error) {
	t := cfg.Tracing
	if t == nil || !t.Enabled {
		return nil, nil
	}
	tr, err := tracing.New(tracing.Config{
		Protocol:       t.Protocol,
		Endpoint:       t.Endpoint,
		Headers:        t.Headers,
		SampleRatio:    t.SampleRatio,
		Propagators:    t.Propagators,
		ServiceName:    t.ServiceName,
		ServiceVersion: version,
		QueueSize:      t.QueueSize,
		BatchSize:      t.BatchSize,
		BatchTimeout:   t.BatchTimeout,
		ExportTimeout:  t.ExportTimeout,
	}, tracing.Options{Registerer: reg})
	if err != nil {
		return nil, cfg.Errorf(t.Pos, "tracing: %v", err)
	}
	return tr, nil
}
