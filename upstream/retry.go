package upstream

import (
	"fmt"
	"strconv"
	"time"
)

// RetryOn is the set of failures an upstream's requests are retried on
// (Envoy's retry_on and x-envoy-retry-grpc-on conditions). The zero value
// retries nothing. It is a value: copy it freely.
type RetryOn struct {
	conds  uint8
	status [10]uint64 // bit s: status s (100..599) is retried
	grpc   uint32     // bit c: grpc-status c is retried
}

// Retry conditions by failure class.
const (
	retryConnect      uint8 = 1 << iota // the connection was never established
	retryRefused                        // HTTP/2 REFUSED_STREAM: not processed
	retryReset                          // no response: reset, disconnect, timeout
	retry5xx                            // any 5xx, and every failure above
	retryGateway                        // 502, 503, 504 and timeouts
	retryRetriable4xx                   // 409
)

// retryConds maps the condition names to their classes.
var retryConds = map[string]uint8{
	"connect-failure": retryConnect,
	"refused-stream":  retryRefused,
	"reset":           retryReset,
	"5xx":             retry5xx,
	"gateway-error":   retryGateway,
	"retriable-4xx":   retryRetriable4xx,
}

// GRPCRetryCodes maps Envoy's x-envoy-retry-grpc-on names to gRPC status
// codes.
var grpcRetryCodes = map[string]int{
	"cancelled":          1,
	"deadline-exceeded":  4,
	"resource-exhausted": 8,
	"internal":           13,
	"unavailable":        14,
}

// DefaultRetryOn is what requests are retried on without a retry
// policy: a failed connect, a refused stream, an exchange that got no
// response; gRPC calls on UNAVAILABLE.
func DefaultRetryOn() RetryOn {
	return RetryOn{conds: retryConnect | retryRefused | retryReset, grpc: 1 << 14}
}

// ParseRetryOn parses retry_on entries: the conditions connect-failure,
// refused-stream, reset, 5xx, gateway-error, retriable-4xx; an HTTP
// status 100..599; a gRPC status name (cancelled, deadline-exceeded,
// resource-exhausted, internal, unavailable).
func ParseRetryOn(names []string) (RetryOn, error) {
	var r RetryOn
	for _, n := range names {
		if c, ok := retryConds[n]; ok {
			r.conds |= c
			continue
		}
		if c, ok := grpcRetryCodes[n]; ok {
			r.grpc |= 1 << c
			continue
		}
		s, err := strconv.Atoi(n)
		if err != nil || s < 100 || s > 599 {
			return RetryOn{}, fmt.Errorf("unknown retry condition %q", n)
		}
		r.status[s/64] |= 1 << (s % 64)
	}
	return r, nil
}

// ConnectFailure reports whether a failed connect is retried.
func (r *RetryOn) ConnectFailure() bool { return r.conds&(retryConnect|retry5xx) != 0 }

// RefusedStream reports whether a stream the upstream refused unprocessed
// is retried.
func (r *RetryOn) RefusedStream() bool { return r.conds&(retryRefused|retry5xx) != 0 }

// Failure reports whether an exchange that got no response is retried:
// a reset or disconnect, or (timeout) no answer in time.
func (r *RetryOn) Failure(timeout bool) bool {
	if timeout && r.conds&retryGateway != 0 {
		return true
	}
	return r.conds&(retryReset|retry5xx) != 0 || (timeout && r.Status(504))
}

// Status reports whether a response with this status is retried.
func (r *RetryOn) Status(s int) bool {
	switch {
	case s < 100 || s > 599:
		return false
	case r.status[s/64]&(1<<(s%64)) != 0:
		return true
	case s >= 500 && r.conds&retry5xx != 0:
		return true
	case (s == 502 || s == 503 || s == 504) && r.conds&retryGateway != 0:
		return true
	case s == 409 && r.conds&retryRetriable4xx != 0:
		return true
	}
	return false
}

// AnyStatus reports whether some response status is retried.
func (r *RetryOn) AnyStatus() bool {
	return r.conds&(retry5xx|retryGateway|retryRetriable4xx) != 0 || r.status != [10]uint64{}
}

// GRPC reports whether a gRPC call that ended with code is retried.
func (r *RetryOn) GRPC(code int) bool { return code > 0 && code < 32 && r.grpc&(1<<code) != 0 }

// RetryPolicy is how an upstream's requests are retried (Envoy's
// retry_policy): on what, how long each try and the whole may take, and
// how long to wait between tries.
type RetryPolicy struct {
	On RetryOn
	// PerTryTimeout bounds each attempt up to the response head; 0: none
	// (read_timeout still applies).
	PerTryTimeout time.Duration
	// Timeout bounds all attempts and the waits between them, up to the
	// response head; 0: none.
	Timeout time.Duration
	// BackoffBase and BackoffMax shape the wait before retry n (from 1):
	// a uniform random share of min(BackoffBase × 2^(n-1), BackoffMax)
	// (exponential backoff with full jitter). A zero BackoffBase waits
	// nothing.
	BackoffBase, BackoffMax time.Duration
}

// Default backoff of a retry policy (Envoy's).
const (
	DefaultBackoffBase = 25 * time.Millisecond
	DefaultBackoffMax  = 10 * DefaultBackoffBase
)

// defaultRetryPolicy is the policy of an upstream without one.
var defaultRetryPolicy = RetryPolicy{On: DefaultRetryOn()}

// Backoff is the wait before retry n (1 for the first retry), with rnd a
// uniformly random 64-bit value.
func (p *RetryPolicy) Backoff(n int, rnd uint64) time.Duration {
	if p.BackoffBase <= 0 || n < 1 {
		return 0
	}
	ceil := p.BackoffMax
	if ceil < p.BackoffBase {
		ceil = p.BackoffBase
	}
	d := p.BackoffBase
	for i := 1; i < n && d < ceil; i++ {
		d *= 2
	}
	d = min(d, ceil)
	// Full jitter: uniform in [0, d].
	return time.Duration(rnd % uint64(d+1))
}

// RetryPolicy returns the upstream's retry policy; never nil.
func (u *Upstream) RetryPolicy() *RetryPolicy {
	if p := u.retry.Load(); p != nil {
		return p
	}
	return &defaultRetryPolicy
}

// SetRetryPolicy replaces the retry policy; nil restores the default.
func (u *Upstream) SetRetryPolicy(p *RetryPolicy) {
	if p != nil {
		c := *p
		p = &c
	}
	u.retry.Store(p)
}
