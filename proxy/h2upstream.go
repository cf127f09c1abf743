package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// Upstream protocols (a service's protocol, Kong's names).
const (
	ProtoHTTP  = "http"
	ProtoHTTPS = "https"
	ProtoH2C   = "h2c"
	ProtoGRPC  = "grpc"
	ProtoGRPCS = "grpcs"
)

// NeedsHTTP2 reports whether a protocol speaks HTTP/2 to its targets
// (and so only through the net/http path).
func NeedsHTTP2(protocol string) bool {
	return protocol == ProtoH2C || protocol == ProtoGRPC || protocol == ProtoGRPCS
}

// HTTP/2 upstream pools: an http2.Transport keeps one set of connections
// per target address. A connection carries as many concurrent streams as
// the target's SETTINGS_MAX_CONCURRENT_STREAMS allows; beyond that the
// transport opens another connection to the same target (a stream never
// waits for a slot). A connection without traffic is pinged after
// h2PingAfter and closed when the ping is not answered in h2PingTimeout,
// so a dead target's connection is found and replaced without waiting for
// a request to time out. Connections idle longer than IdleConnTimeout are
// closed.
const (
	h2PingAfter   = 30 * time.Second
	h2PingTimeout = 15 * time.Second
)

// newH2Transport returns the HTTP/2 transport of o: prior knowledge over
// plaintext for ProtoH2C and ProtoGRPC, TLS with ALPN h2 for ProtoGRPCS.
func newH2Transport(o TransportOptions, d *net.Dialer, tlsBase *tls.Config) *http2.Transport {
	t := &http2.Transport{
		ReadIdleTimeout:    h2PingAfter,
		PingTimeout:        h2PingTimeout,
		IdleConnTimeout:    o.IdleConnTimeout,
		DisableCompression: true,
	}
	if o.Protocol == ProtoGRPCS {
		t.DialTLSContext = func(ctx context.Context, _, addr string, _ *tls.Config) (net.Conn, error) {
			tc, err := dialTLS(ctx, d, addr, tlsBase, []string{"h2"})
			if err != nil {
				return nil, err
			}
			if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
				_ = tc.Close()
				return nil, errors.New("upstream " + addr + " did not negotiate h2 by ALPN")
			}
			return tc, nil
		}
		return t
	}
	t.AllowHTTP = true
	t.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, &ConnectError{Addr: addr, Err: err}
		}
		return c, nil
	}
	return t
}

// hostOnly strips the port of a Host value.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
}

// errStreamIdle is the cause of a stream cancelled by its streamTimer.
var errStreamIdle = &streamIdleError{}

type streamIdleError struct{}

func (*streamIdleError) Error() string {
	return "upstream stream idle longer than the read/write timeout"
}
func (*streamIdleError) Timeout() bool   { return true }
func (*streamIdleError) Temporary() bool { return true }

// streamTimer is Kong's read_timeout and write_timeout for one HTTP/2
// stream: it cancels the stream when neither a read from the target nor a
// write to it happened for that long (the longest gap between two
// successive operations). A zero d never fires. Safe for concurrent use:
// request and response bodies move in different goroutines.
//
// A touch only records when it happened (one clock read and an atomic
// store, no lock and no timer update per read or write); when the timer
// goes off it compares the gap since the last touch with d and sets
// itself again for the rest when the gap is shorter, so the stream is cut
// d after its last operation, as with a timer reset on every touch.
type streamTimer struct {
	d      time.Duration
	cancel context.CancelFunc
	fired  atomic.Bool // the timer cut the stream
	clk    monoClock
	last   atomic.Int64 // the last touch, on clk's scale
	mu     sync.Mutex   // guards t and stopped
	t      *time.Timer  // nil when d is 0
	// stopped: the stream ended; the timer does nothing more.
	stopped bool
}

// attemptRequest returns the request of one attempt with its own context:
// bounded by deadline (when set) and, with an HTTP/2 upstream, by the
// service's read and write timeouts per stream (the streamTimer, which
// the body of the attempt touches). The timer must be stopped when the
// attempt ends (respBody.Close).
func attemptRequest(req *http.Request, tr *Transport, deadline time.Time, hasBody bool, body io.ReadCloser) (*http.Request, *streamTimer) {
	ctx, cancel := context.WithCancel(req.Context())
	if !deadline.IsZero() {
		var dcancel context.CancelFunc
		ctx, dcancel = context.WithDeadline(ctx, deadline)
		parent := cancel
		cancel = func() { dcancel(); parent() }
	}
	st := &streamTimer{cancel: cancel}
	if tr != nil && tr.h2 != nil {
		st.d = max(tr.readTimeout, tr.writeTimeout)
	}
	areq := req.WithContext(ctx)
	if st.d > 0 {
		st.clk = newMonoClock()
		st.mu.Lock()
		st.t = time.AfterFunc(st.d, st.expire)
		st.mu.Unlock()
		if hasBody {
			areq.Body = timedBody{ReadCloser: body, st: st}
		}
	}
	return areq, st
}

// touch restarts the gap.
func (st *streamTimer) touch() {
	if st.d > 0 {
		st.last.Store(st.clk.now())
	}
}

// expire runs when the timer goes off: it cuts the stream when the gap
// since the last touch reached d, else sets the timer for the rest.
func (st *streamTimer) expire() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.stopped {
		return
	}
	if gap := time.Duration(st.clk.now() - st.last.Load()); gap < st.d {
		st.t.Reset(st.d - gap)
		return
	}
	st.fired.Store(true)
	st.cancel()
}

// stop ends the timer and the attempt's context.
func (st *streamTimer) stop() {
	st.mu.Lock()
	st.stopped = true
	if st.t != nil {
		st.t.Stop()
	}
	st.mu.Unlock()
	st.cancel()
}

// wrap makes reads of a response body touch the timer; a read failing
// because the timer cut the stream fails with errStreamIdle.
func (st *streamTimer) wrap(rc io.ReadCloser) io.ReadCloser {
	if st.d <= 0 {
		return rc
	}
	return timedBody{ReadCloser: rc, st: st}
}

// timedBody touches a streamTimer on every read.
type timedBody struct {
	io.ReadCloser
	st *streamTimer
}

func (b timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.st.touch()
	}
	if err != nil && err != io.EOF && b.st.fired.Load() {
		err = errStreamIdle
	}
	return n, err
}
