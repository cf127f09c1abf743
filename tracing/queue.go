package tracing

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// queue is the span processor between the proxy and the exporter: OnEnd
// puts a finished sampled span into a bounded channel, or drops and counts
// it when the channel is full; one goroutine (run) batches and exports.
// The SDK's BatchSpanProcessor drops the same way but counts only in its
// experimental self-observability metrics, hence this one.
//
// Concurrency: OnEnd is called from any request goroutine and only sends
// on spans without blocking. run owns the batch and the exporter. stop and
// flush are how Shutdown and ForceFlush reach run; done closes when run
// returns.
type queue struct {
	exp          sdktrace.SpanExporter
	spans        chan sdktrace.ReadOnlySpan
	batch        int
	batchTimeout time.Duration
	// stop closes on Shutdown, after stopCtx (the drain's bound) is set.
	stop     chan struct{}
	stopCtx  context.Context
	stopOnce sync.Once
	flush    chan chan struct{}
	done     chan struct{}

	dropFull, dropFailed, exported prometheus.Counter
}

func newQueue(exp sdktrace.SpanExporter, c Config, reg prometheus.Registerer) *queue {
	q := &queue{
		exp:          exp,
		spans:        make(chan sdktrace.ReadOnlySpan, orDefault(c.QueueSize, DefaultQueueSize)),
		batch:        orDefault(c.BatchSize, DefaultBatchSize),
		batchTimeout: c.BatchTimeout,
		stop:         make(chan struct{}),
		flush:        make(chan chan struct{}),
		done:         make(chan struct{}),
	}
	if q.batchTimeout <= 0 {
		q.batchTimeout = DefaultBatchTimeout
	}
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outrigger_tracing_spans_dropped_total",
		Help: "Finished spans not exported: the export queue was full (queue_full) or the collector did not take them (export_failed).",
	}, []string{"reason"})
	exported := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outrigger_tracing_spans_exported_total",
		Help: "Spans the collector accepted.",
	})
	if reg != nil {
		reg.MustRegister(dropped, exported)
	}
	q.dropFull, q.dropFailed, q.exported = dropped.WithLabelValues("queue_full"), dropped.WithLabelValues("export_failed"), exported
	go q.run()
	return q
}

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// OnStart implements sdktrace.SpanProcessor.
func (q *queue) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd implements sdktrace.SpanProcessor: it never blocks.
func (q *queue) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	select {
	case q.spans <- s:
	default:
		q.dropFull.Inc()
	}
}

// run batches the queued spans and exports them until Shutdown.
func (q *queue) run() {
	defer close(q.done)
	buf := make([]sdktrace.ReadOnlySpan, 0, q.batch)
	t := time.NewTimer(q.batchTimeout)
	defer t.Stop()
	send := func(ctx context.Context) {
		if len(buf) == 0 {
			return
		}
		if err := q.exp.ExportSpans(ctx, buf); err != nil {
			q.dropFailed.Add(float64(len(buf)))
		} else {
			q.exported.Add(float64(len(buf)))
		}
		clear(buf)
		buf = buf[:0]
	}
	// drain exports everything queued now.
	drain := func(ctx context.Context) {
		for {
			select {
			case s := <-q.spans:
				if buf = append(buf, s); len(buf) == q.batch {
					send(ctx)
				}
			default:
				send(ctx)
				return
			}
		}
	}
	for {
		select {
		case s := <-q.spans:
			if buf = append(buf, s); len(buf) == q.batch {
				send(context.Background())
			}
		case <-t.C:
			send(context.Background())
			t.Reset(q.batchTimeout)
		case ack := <-q.flush:
			drain(context.Background())
			close(ack)
		case <-q.stop:
			drain(q.stopCtx)
			_ = q.exp.Shutdown(q.stopCtx)
			return
		}
	}
}

// ForceFlush implements sdktrace.SpanProcessor: it exports what is queued.
func (q *queue) ForceFlush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case q.flush <- ack:
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown implements sdktrace.SpanProcessor: it exports what is queued
// (until ctx ends) and stops the exporter.
func (q *queue) Shutdown(ctx context.Context) error {
	q.stopOnce.Do(func() {
		q.stopCtx = ctx
		close(q.stop)
	})
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
