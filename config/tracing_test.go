package config

import (
	"reflect"
	"testing"
	"time"
)

func TestTracingBlock(t *testing.T) {
	f, err := Parse("t.yaml", []byte(`tracing:
  endpoint: http://127.0.0.1:4317
  protocol: grpc
  headers:
    Authorization: Bearer ${OTLP_TOKEN}
  sample_ratio: 0.25
  propagators: [tracecontext, b3, b3multi]
  service_name: edge
  queue_size: 100
  batch_size: 10
  batch_timeout: 2s
  export_timeout: 3s
log:
  access_log_success_sample_ratio: 0.1
`), envOf(map[string]string{"OTLP_TOKEN": "s3cret"}))
	if err != nil {
		t.Fatal(err)
	}
	want := &Tracing{Pos: Pos{2, 3}, Enabled: true, Endpoint: "http://127.0.0.1:4317", Protocol: "grpc", SampleRatio: 0.25,
		Headers:     map[string]string{"Authorization": "Bearer s3cret"},
		Propagators: []string{"tracecontext", "b3", "b3multi"}, ServiceName: "edge", QueueSize: 100, BatchSize: 10,
		BatchTimeout: 2 * time.Second, ExportTimeout: 3 * time.Second}
	if !reflect.DeepEqual(f.Tracing, want) {
		t.Errorf("tracing = %+v\nwant %+v", f.Tracing, want)
	}
	if f.Log.AccessLogSuccessSampleRatio != 0.1 {
		t.Errorf("access_log_success_sample_ratio = %v", f.Log.AccessLogSuccessSampleRatio)
	}

	f, err = Parse("t.yaml", []byte("tracing:\n  endpoint: https://otel.example:4318/custom/traces\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr := f.Tracing; tr.Protocol != "http/protobuf" || tr.SampleRatio != 1 || !reflect.DeepEqual(tr.Propagators, []string{"tracecontext"}) ||
		tr.QueueSize != 2048 || tr.BatchSize != 512 || !tr.Enabled {
		t.Errorf("defaults: %+v", tr)
	}
	if f, err = Parse("t.yaml", []byte("tracing:\n  enabled: false\n"), nil); err != nil || f.Tracing.Enabled {
		t.Errorf("enabled: false without endpoint: %v %+v", err, f)
	}
}

func TestTracingErrors(t *testing.T) {
	for _, tc := range []struct {
		desc, src string
		want      []wantErr
	}{
		{"no endpoint", "tracing:\n  sample_ratio: 0.5\n", []wantErr{{2, 3, "tracing: endpoint is required"}}},
		{"endpoint scheme", "tracing:\n  endpoint: grpc://h:4317\n", []wantErr{{2, 13, "endpoint: must be an http:// or https:// URL"}}},
		{"endpoint host", "tracing:\n  endpoint: http://\n", []wantErr{{2, 13, "endpoint: missing host"}}},
		{"ratio range", "tracing:\n  endpoint: http://h:1\n  sample_ratio: 1.5\n", []wantErr{{3, 17, "sample_ratio"}}},
		{"protocol", "tracing:\n  endpoint: http://h:1\n  protocol: zipkin\n", []wantErr{{3, 13, "protocol"}}},
		{"propagator", "tracing:\n  endpoint: http://h:1\n  propagators: [tracecontext, jaeger]\n", []wantErr{{3, 31, `unknown propagator "jaeger"`}}},
		{"propagator twice", "tracing:\n  endpoint: http://h:1\n  propagators: [b3, b3]\n", []wantErr{{3, 21, `"b3" is listed twice`}}},
		{"no propagator", "tracing:\n  endpoint: http://h:1\n  propagators: []\n", []wantErr{{3, 16, "at least one propagator"}}},
		{"batch over queue", "tracing:\n  endpoint: http://h:1\n  queue_size: 10\n  batch_size: 20\n", []wantErr{{4, 15, "batch_size: 20 is larger than queue_size 10"}}},
		{"queue range", "tracing:\n  endpoint: http://h:1\n  queue_size: 0\n", []wantErr{{3, 15, "queue_size"}}},
		{"unknown key", "tracing:\n  endpoint: http://h:1\n  exporter: otlp\n", []wantErr{{3, 3, `unknown field "exporter" in tracing`}}},
		{"log ratio", "log:\n  access_log_success_sample_ratio: -0.1\n", []wantErr{{2, 36, "access_log_success_sample_ratio"}}},
	} {
		t.Run(tc.desc, func(t *testing.T) { checkErrors(t, tc.src, nil, tc.want) })
	}
}

func TestSameTracing(t *testing.T) {
	a := &Tracing{Pos: Pos{1, 1}, Endpoint: "http://a:1", Propagators: []string{"b3"}}
	b := &Tracing{Pos: Pos{5, 3}, Endpoint: "http://a:1", Propagators: []string{"b3"}}
	if !SameTracing(a, b) || !SameTracing(nil, nil) || SameTracing(a, nil) {
		t.Error("equal blocks differ")
	}
	b.Propagators = []string{"tracecontext"}
	if SameTracing(a, b) {
		t.Error("different propagators are the same")
	}
}
