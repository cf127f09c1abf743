package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// TransportOptions are the knobs that make two services need different
// connection pools. Services with equal options share one pool.
type TransportOptions struct {
	ConnectTimeout      time.Duration
	ReadTimeout         time.Duration
	WriteTimeout        time.Duration
	MaxIdleConnsPerHost int
	IdleConnTimeout     time.Duration
	// Protocol is the service's protocol: ProtoHTTP, ProtoHTTPS (HTTP/1.1
	// or HTTP/2 by ALPN), ProtoH2C and ProtoGRPC (HTTP/2 with prior
	// knowledge over plaintext), ProtoGRPCS (HTTP/2 over TLS); "" is
	// ProtoHTTP.
	Protocol string
	// TLS applies to ProtoHTTPS and ProtoGRPCS.
	TLS TLSOptions
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
	// h2, when set, carries every request (ProtoH2C, ProtoGRPC,
	// ProtoGRPCS): one HTTP/2 connection pool per target.
	h2 *http2.Transport
	// readTimeout and writeTimeout, with h2: the connection is
	// multiplexed, so Kong's read_timeout and write_timeout apply per
	// stream (see streamTimer), never to the connection.
	readTimeout, writeTimeout time.Duration
	// err is why the options do not build (bad TLS material); every
	// request fails with it.
	err error
}

// RoundTrip sends one request on the protocol's pool.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch {
	case t.err != nil:
		return nil, t.err
	case t.h2 != nil:
		return t.h2.RoundTrip(req)
	}
	return t.Transport.RoundTrip(req)
}

// HTTP2 reports whether every request goes upstream over HTTP/2.
func (t *Transport) HTTP2() bool { return t.h2 != nil }

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
	tlsBase, tlsErr := o.TLS.Config()
	if tlsErr != nil {
		tlsBase = &tls.Config{}
	}
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
		// The client's Accept-Encoding is forwarded as is; never add our own.
		DisableCompression: true,
	}
	if o.Protocol == ProtoHTTPS {
		t.DialTLSContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dialTLS(ctx, d, addr, tlsBase, []string{"h2", "http/1.1"})
		}
	}
	tr := &Transport{Transport: t, pools: newConnPools(o, tlsBase), err: tlsErr}
	if o.Protocol == ProtoH2C || o.Protocol == ProtoGRPC || o.Protocol == ProtoGRPCS {
		tr.h2 = newH2Transport(o, d, tlsBase)
		tr.readTimeout, tr.writeTimeout = o.ReadTimeout, o.WriteTimeout
	}
	ts.m[o] = tr
	return tr
}

// CloseIdle closes idle connections of every pool.
func (ts *Transports) CloseIdle() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, t := range ts.m {
		t.CloseIdleConnections()
		if t.h2 != nil {
			t.h2.CloseIdleConnections()
		}
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
