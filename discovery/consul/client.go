package consul

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// DefaultAddress is the agent address used when neither Address nor
// CONSUL_HTTP_ADDR is set.
const DefaultAddress = "127.0.0.1:8500"

// Option tunes a Source or a Registrar. Options that do not apply to the
// value being built are ignored.
type Option func(*options)

type options struct {
	lookupEnv      func(string) (string, bool)
	transport      http.RoundTripper
	onEvent        func(kind string, err error)
	verifyInterval time.Duration
	backoffMin     time.Duration
	backoffMax     time.Duration
	limitEvery     time.Duration
	limitBurst     int
	probes         *Probes // nil: a probe of the value's own
}

func defaultOptions() options {
	return options{
		lookupEnv:      os.LookupEnv,
		verifyInterval: 10 * time.Second,
		backoffMin:     100 * time.Millisecond,
		backoffMax:     30 * time.Second,
		limitEvery:     200 * time.Millisecond,
		limitBurst:     5,
	}
}

func buildOptions(opts []Option) options {
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// WithLookupEnv replaces os.LookupEnv for reading CONSUL_HTTP_ADDR.
func WithLookupEnv(lookup func(string) (string, bool)) Option {
	return func(o *options) {
		if lookup != nil {
			o.lookupEnv = lookup
		}
	}
}

// WithTransport sets the HTTP transport used to reach Consul (for TLS
// settings, say). The default is a clone of http.DefaultTransport without
// proxy.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.transport = rt }
}

// WithOnEvent sets the Registrar's event callback: kind is one of the
// Event constants, err is nil on success. It is called from Run's goroutine.
func WithOnEvent(fn func(kind string, err error)) Option {
	return func(o *options) { o.onEvent = fn }
}

// WithVerifyInterval sets how often the Registrar checks that the agent
// still knows the service (default 10s).
func WithVerifyInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.verifyInterval = d
		}
	}
}

// WithBackoff sets the retry backoff after failures: full jitter over an
// interval starting at min and doubling up to max (defaults 100ms, 30s).
// After a failure to reach the agent at all, the wait also ends as soon as
// the agent's reachability probe succeeds (see Probes).
func WithBackoff(min, max time.Duration) Option {
	return func(o *options) {
		if min > 0 && max >= min {
			o.backoffMin, o.backoffMax = min, max
		}
	}
}

// WithRateLimit sets the Source's rate limit on queries that follow an
// answer without effect (the index moved, the set did not): a token bucket
// of burst queries refilled with one token every `every` (defaults 200ms,
// 5). Queries after an answer that changed the set are never limited. every
// <= 0 disables the limit.
func WithRateLimit(every time.Duration, burst int) Option {
	return func(o *options) {
		if burst < 1 {
			burst = 1
		}
		o.limitEvery, o.limitBurst = every, burst
	}
}

// resolveAddress applies the Address default chain.
func resolveAddress(addr string, lookup func(string) (string, bool)) string {
	if addr != "" {
		return addr
	}
	if v, ok := lookup(api.HTTPAddrEnvName); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return DefaultAddress
}

func checkScheme(scheme string) (string, error) {
	switch scheme {
	case "":
		return "http", nil
	case "http", "https":
		return scheme, nil
	}
	return "", fmt.Errorf("consul: scheme %q: want http or https", scheme)
}

// newClient builds an api.Client whose HTTP traffic carries exactly token
// (none when empty) and no namespace or partition taken from the process
// environment.
func newClient(addr, scheme, token, dc string, timeout time.Duration, o *options) (*api.Client, error) {
	rt := o.transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil
		t.MaxIdleConnsPerHost = 4
		rt = t
	}
	hc := &http.Client{
		Transport: pinnedTransport{base: rt, token: token},
		Timeout:   timeout,
	}
	c, err := api.NewClient(&api.Config{
		Address:    addr,
		Scheme:     scheme,
		Datacenter: dc,
		Token:      token,
		HttpClient: hc,
	})
	if err != nil {
		return nil, fmt.Errorf("consul: client for %s: %w", addr, err)
	}
	return c, nil
}

// pinnedTransport makes every request carry exactly the configured token and
// strips namespace/partition parameters, which the api package fills from the
// environment when the configuration leaves them empty.
type pinnedTransport struct {
	base  http.RoundTripper
	token string
}

func (p pinnedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	if p.token == "" {
		r.Header.Del("X-Consul-Token")
	} else {
		r.Header.Set("X-Consul-Token", p.token)
	}
	if q := r.URL.Query(); q.Has("ns") || q.Has("partition") {
		q.Del("ns")
		q.Del("partition")
		r.URL.RawQuery = q.Encode()
	}
	return p.base.RoundTrip(r)
}

// isNotFound tells whether err is Consul's answer 404.
func isNotFound(err error) bool {
	var se api.StatusError
	if errors.As(err, &se) {
		return se.Code == http.StatusNotFound
	}
	var sp *api.StatusError
	if errors.As(err, &sp) && sp != nil {
		return sp.Code == http.StatusNotFound
	}
	return false
}

// joinHostPort joins host and port, leaving host alone when it already
// carries brackets.
func joinHostPort(host string, port int) string {
	return net.JoinHostPort(strings.Trim(host, "[]"), fmt.Sprint(port))
}
