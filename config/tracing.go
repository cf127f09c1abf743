package config

import (
	"errors"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/outrigger-gw/outrigger/tracing"
)

// Tracing is the "tracing" section: OpenTelemetry traces of the proxied
// requests, exported over OTLP. Taken at start; a reload keeps the running
// values.
type Tracing struct {
	Pos Pos
	// Enabled: the block traces (true unless set false).
	Enabled bool
	// Endpoint is the collector's URL, http(s)://host:port[/path]
	// (required).
	Endpoint string
	// Protocol is tracing.ProtocolHTTP (OTLP/HTTP protobuf, the default)
	// or tracing.ProtocolGRPC.
	Protocol string
	// Headers are sent with every export (an API key: ${VAR} reads it
	// from the environment); several values of one name are joined with
	// ",".
	Headers map[string]string
	// SampleRatio is the share of root traces recorded (parent-based).
	SampleRatio float64
	// Propagators, in extraction order (tracing.Propagators()).
	Propagators []string
	// ServiceName is the spans' service.name.
	ServiceName string
	// QueueSize bounds the spans waiting for export (more are dropped
	// and counted); BatchSize is the most spans per export and at most
	// QueueSize.
	QueueSize, BatchSize        int
	BatchTimeout, ExportTimeout time.Duration
}

func defaultTracing() Tracing {
	return Tracing{
		Enabled:       true,
		Protocol:      tracing.ProtocolHTTP,
		SampleRatio:   1,
		Propagators:   []string{tracing.PropTraceContext},
		ServiceName:   tracing.DefaultServiceName,
		QueueSize:     tracing.DefaultQueueSize,
		BatchSize:     tracing.DefaultBatchSize,
		BatchTimeout:  tracing.DefaultBatchTimeout,
		ExportTimeout: tracing.DefaultExportTimeout,
	}
}

func (d *decoder) tracing(n *yaml.Node) *Tracing {
	t := defaultTracing()
	t.Pos = pos(deref(n))
	seen := d.mapping(n, "tracing", "tracing", []field{
		{"enabled", d.boolField(&t.Enabled, "enabled")},
		{"endpoint", d.strField(&t.Endpoint, "endpoint", checkCollectorURL)},
		{"protocol", d.enumField(&t.Protocol, "protocol", tracing.ProtocolHTTP, tracing.ProtocolGRPC)},
		{"headers", func(v *yaml.Node) {
			t.Headers = map[string]string{}
			for k, vs := range d.headers(v, false) {
				t.Headers[k] = strings.Join(vs, ",")
			}
		}},
		{"sample_ratio", d.numberField(&t.SampleRatio, "sample_ratio", 0, 1)},
		{"propagators", func(v *yaml.Node) {
			var out []string
			bad := false
			d.stringList(v, "propagators", true, func(s string, item *yaml.Node) {
				switch {
				case !slices.Contains(tracing.Propagators(), s):
					bad = true
					d.errorf(item, "propagators: unknown propagator %s; expected one of: %s", quote(s), strings.Join(tracing.Propagators(), ", "))
				case slices.Contains(out, s):
					bad = true
					d.errorf(item, "propagators: %s is listed twice", quote(s))
				default:
					out = append(out, s)
				}
			})
			if len(out) == 0 && !bad {
				d.errorf(deref(v), "propagators: at least one propagator is required")
			}
			t.Propagators = out
		}},
		{"service_name", d.strField(&t.ServiceName, "service_name", checkNonEmpty)},
		{"queue_size", d.intField(&t.QueueSize, "queue_size", 1, MaxTracingQueueSize)},
		{"batch_size", d.intField(&t.BatchSize, "batch_size", 1, MaxTracingBatchSize)},
		{"batch_timeout", d.durationField(&t.BatchTimeout, "batch_timeout", true)},
		{"export_timeout", d.durationField(&t.ExportTimeout, "export_timeout", true)},
	})
	if seen == nil {
		return &t
	}
	if _, ok := seen["endpoint"]; !ok && t.Enabled {
		d.errorAt(t.Pos, "tracing: endpoint is required (the OTLP collector's URL, e.g. http://127.0.0.1:4318)")
	}
	if e, ok := seen["batch_size"]; ok && e.ok && t.BatchSize > t.QueueSize {
		d.errorf(deref(e.val), "batch_size: %d is larger than queue_size %d", t.BatchSize, t.QueueSize)
	}
	return &t
}

// checkCollectorURL checks an OTLP collector URL.
func checkCollectorURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must be an http:// or https:// URL")
	case u.Host == "":
		return errors.New("missing host (expected http://host:port)")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return errors.New("user information, a query or a fragment is not supported")
	}
	return nil
}

// SameTracing reports whether two tracing blocks (nil: absent) configure
// the same tracing, wherever they are written.
func SameTracing(a, b *Tracing) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.Pos, y.Pos = Pos{}, Pos{}
	return reflect.DeepEqual(x, y)
}
