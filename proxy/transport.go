package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// TransportOptions are the knobs that make two services need different
// connection pools. Services with equal options share one pool.
type TransportOptions struct {
	ConnectTimeout      time.Duration
	ReadTimeout         time.Duration
	WriteTimeout        time.Duration
	MaxIdleConnsPerHost int
	IdleConnTimeout     time.Duration
	InsecureSkipVerify  bool
}

// Transports hands out one *Transport per distinct TransportOptions so
// keep-alive pools are shared between services and survive reloads.
type Transports struct {
	mu sync.Mutex // guards m
	m  map[TransportOptions]*Transport
}

// Transport is a service's way upstream: the net/http transport (used
// by the HTTP/2 server's handler) and the engine's connection pools, with
// the same options.
type Transport struct {
	*http.Transport
	pools *connPools
}

// NewTransports returns an empty pool set.
func NewTransports() *Transports {
	return &Transports{m: map[TransportOptions]*Transport{}}
}

// Get returns the transport for o, creating it on first use.
func (ts *Transports) Get(o TransportOptions) *Transport {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t, ok := ts.m[o]; ok {
		return t
	}
	d := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, &ConnectError{Addr: addr, Err: err}
			}
			if o.ReadTimeout <= 0 && o.WriteTimeout <= 0 {
				return c, nil
			}
			return &deadlineConn{Conn: c, rt: o.ReadTimeout, wt: o.WriteTimeout}, nil
		},
		MaxIdleConns:          0, // bounded per host below
		MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
		IdleConnTimeout:       o.IdleConnTimeout,
		TLSHandshakeTimeout:   o.ConnectTimeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: o.InsecureSkipVerify}, //nolint:gosec // per-service opt-in
		// The client's Accept-Encoding is forwarded as is; never add our own.
		DisableCompression: true,
	}
	tr := &Transport{Transport: t, pools: newConnPools(o)}
	ts.m[o] = tr
	return tr
}

// CloseIdle closes idle connections of every pool.
func (ts *Transports) CloseIdle() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, t := range ts.m {
		t.CloseIdleConnections()
		t.pools.closeIdle()
	}
}

// ConnectError marks a failure to establish a connection: the request never
// left, so it is always safe to retry elsewhere.
type ConnectError struct {
	Addr string
	Err  error
}

func (e *ConnectError) Error() string { return "connect " + e.Addr + ": " + e.Err.Error() }
func (e *ConnectError) Unwrap() error { return e.Err }

// deadlineConn enforces Kong's read_timeout and write_timeout: the longest
// gap between two successive reads or writes on the upstream connection. A
// write also pushes the read deadline out, so a connection that sat idle in
// the pool does not inherit a stale deadline for its next response.
type deadlineConn struct {
	net.Conn
	rt, wt time.Duration
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	if c.rt > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.rt))
	}
	return c.Conn.Read(b)
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	now := time.Now()
	if c.wt > 0 {
		_ = c.Conn.SetWriteDeadline(now.Add(c.wt))
	}
	if c.rt > 0 {
		_ = c.Conn.SetReadDeadline(now.Add(c.rt))
	}
	return c.Conn.Write(b)
}

// isTimeout reports whether err is a timeout of any kind.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
