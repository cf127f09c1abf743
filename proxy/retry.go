package proxy

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/outrigger-gw/outrigger/upstream"
)

// The retry policy's share of both request paths (the engine's and
// net/http's): what a failure is retried on, the per-try and overall
// caps, and the backoff between tries.

// retryOnFailure reports whether retry_on covers a failed attempt that
// got no response: a failed connect, a refused stream, or a reset,
// disconnect or timeout.
func retryOnFailure(on *upstream.RetryOn, connectFailed, refused, timeout bool) bool {
	switch {
	case connectFailed:
		return on.ConnectFailure()
	case refused:
		return on.RefusedStream()
	}
	return on.Failure(timeout)
}

// attemptCap is when an attempt started at t0 must have its response
// head: per_try_timeout after t0, and never after the overall deadline
// (zero: none). The zero time means no cap.
func attemptCap(pol *upstream.RetryPolicy, t0, overall time.Time) time.Time {
	at := overall
	if pol.PerTryTimeout > 0 {
		if t := t0.Add(pol.PerTryTimeout); at.IsZero() || t.Before(at) {
			at = t
		}
	}
	return at
}

// defaultPendingWait bounds a wait for a connection when neither the
// attempt nor the transport has a timeout.
const defaultPendingWait = 60 * time.Second

// pendingUntil is how long a request may wait for a connection to hp:
// the attempt's cap, else the connect timeout.
func pendingUntil(hp *hostPool, now, limit time.Time) time.Time {
	if !limit.IsZero() {
		return limit
	}
	d := hp.ps.o.ConnectTimeout
	if d <= 0 {
		d = defaultPendingWait
	}
	return now.Add(d)
}

// retryGrant is the answer of admitRetry.
type retryGrant uint8

const (
	retryGranted    retryGrant = iota
	retryOverloaded            // max_retries are in progress (not counted yet)
	retryDenied                // the budget is spent, or no time is left
)

// admitRetry admits the request's next retry under the upstream's
// max_retries and retry budget, and waits the policy's backoff (ctx ends
// the wait). A retry after a failed connect is outside the budget: the
// attempt reached no upstream, so retrying it adds no load anywhere (as in
// Linkerd, where a failed connection is the balancer's business, not a
// retry). A backoff that would end past the overall deadline denies the
// retry. retrying records that the request holds a retry in the breakers.
func (p *Proxy) admitRetry(ctx context.Context, up *upstream.Upstream, svc string, retrying *bool, retries int, now, overall time.Time, connectFailed bool) retryGrant {
	brk := up.Breakers()
	mt := p.opts.Metrics
	if !*retrying {
		if !brk.AcquireRetry() {
			return retryOverloaded // the caller answers and counts it
		}
		*retrying = true
	}
	if !connectFailed && !brk.AllowRetry(now) {
		if mt != nil {
			mt.Overloaded.WithLabelValues(up.Name(), "retry_budget").Inc()
		}
		return retryDenied
	}
	pol := up.RetryPolicy()
	if d := pol.Backoff(retries, p.rand()); d > 0 {
		if !overall.IsZero() && !now.Add(d).Before(overall) {
			return retryDenied
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return retryDenied
		}
	} else if !overall.IsZero() && !now.Before(overall) {
		return retryDenied
	}
	if mt != nil {
		mt.Retries.WithLabelValues(svc, up.Name()).Inc()
	}
	return retryGranted
}

// rand is the backoff's jitter source.
func (p *Proxy) rand() uint64 {
	if r := p.opts.Rand; r != nil {
		return r()
	}
	return rand.Uint64()
}

// tryCap ends a net/http attempt that has no response head by its cap:
// its request's context is cancelled then. Stopped once the head arrived
// (the response then streams under read_timeout alone); the context is
// released when the response ends (respBody.Close).
type tryCap struct {
	t      *time.Timer
	cancel context.CancelFunc
	fired  atomic.Bool
}

// capRequest returns req under a cap at at (nil, and req itself, when at
// is zero).
func capRequest(req *http.Request, at time.Time) (*http.Request, *tryCap) {
	if at.IsZero() {
		return req, nil
	}
	ctx, cancel := context.WithCancel(req.Context())
	tc := &tryCap{cancel: cancel}
	tc.t = time.AfterFunc(time.Until(at), func() { tc.fired.Store(true); cancel() })
	return req.WithContext(ctx), tc
}

// headed stops the cap: the head arrived.
func (tc *tryCap) headed() {
	if tc != nil {
		tc.t.Stop()
	}
}

// failed stops the cap and releases the attempt's context; it returns the
// attempt's error, errTryTimeout when the cap ended it.
func (tc *tryCap) failed(err error) error {
	if tc == nil {
		return err
	}
	tc.t.Stop()
	tc.cancel()
	if tc.fired.Load() {
		return errTryTimeout
	}
	return err
}

// release frees the attempt's context once its response is done.
func (tc *tryCap) release() {
	if tc != nil {
		tc.t.Stop()
		tc.cancel()
	}
}

// errTryTimeout is an attempt ended by per_try_timeout or the retry
// policy's timeout: a timeout (504 when it is the last).
var errTryTimeout error = tryTimeoutError{}

type tryTimeoutError struct{}

func (tryTimeoutError) Error() string   { return "upstream attempt timed out (retry policy)" }
func (tryTimeoutError) Timeout() bool   { return true }
func (tryTimeoutError) Temporary() bool { return true }

// refusedStream reports whether err is an HTTP/2 REFUSED_STREAM: the
// upstream did not process the request.
func refusedStream(err error) bool {
	var se http2.StreamError
	return errors.As(err, &se) && se.Code == http2.ErrCodeRefusedStream
}
