package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httputil"
	"reflect"
	"testing"
)

// TestSetForwarded: the forwarding headers are httputil's SetXForwarded's
// (the same values, computed side by side) plus Kong's X-Forwarded-Port,
// X-Real-IP and X-Forwarded-Prefix.
func TestSetForwarded(t *testing.T) {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8443}
	for _, tc := range []struct {
		desc   string
		remote string
		xff    []string
		tls    bool
		prefix string
	}{
		{desc: "plain", remote: "10.0.0.7:5555"},
		{desc: "prior X-Forwarded-For, several lines", remote: "10.0.0.7:5555", xff: []string{"1.1.1.1, 2.2.2.2", "3.3.3.3"}},
		{desc: "TLS and a prefix", remote: "[::1]:5555", tls: true, prefix: "/api"},
		{desc: "remote address without port", remote: "pipe", xff: []string{"1.1.1.1"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			in, _ := http.NewRequestWithContext(context.WithValue(context.Background(), http.LocalAddrContextKey, local), http.MethodGet, "http://svc.test/x", nil)
			in.RemoteAddr, in.Host = tc.remote, "svc.test:8443"
			if tc.xff != nil {
				in.Header["X-Forwarded-For"] = tc.xff
			}
			if tc.tls {
				in.TLS = &tls.ConnectionState{}
			}
			want := &httputil.ProxyRequest{In: in, Out: in.Clone(in.Context())}
			delete(want.Out.Header, "X-Forwarded-For")
			want.Out.Header["X-Forwarded-For"] = in.Header["X-Forwarded-For"]
			want.SetXForwarded()
			want.Out.Header.Set("X-Forwarded-Port", "8443")
			if ip, _, err := net.SplitHostPort(tc.remote); err == nil {
				want.Out.Header.Set("X-Real-Ip", ip)
			}
			if tc.prefix != "" {
				want.Out.Header.Set("X-Forwarded-Prefix", tc.prefix)
			}

			got := &httputil.ProxyRequest{In: in, Out: in.Clone(in.Context())}
			delete(got.Out.Header, "X-Forwarded-For")
			var ports portCache
			setForwarded(got, &ports, tc.prefix, nil)
			if !reflect.DeepEqual(got.Out.Header, want.Out.Header) {
				t.Fatalf("headers\n got %v\nwant %v", got.Out.Header, want.Out.Header)
			}
			// Each value is its own slice: appending to one header does
			// not write into the next one's value.
			got.Out.Header.Add("X-Forwarded-Host", "extra")
			if got.Out.Header.Get("X-Forwarded-Proto") != want.Out.Header.Get("X-Forwarded-Proto") {
				t.Fatalf("an Add overwrote a neighbour: %v", got.Out.Header)
			}
		})
	}
}

// TestBufferPool: a buffer put back is handed out again whole (the
// allocations it saves show in BenchmarkH2GET's allocs/op; sync.Pool
// drops items at random under the race detector, so they are not
// asserted here).
func TestBufferPool(t *testing.T) {
	bp := newBufferPool()
	b := bp.Get()
	if len(b) != copyBufferSize {
		t.Fatalf("len %d", len(b))
	}
	b[0] = 'x'
	bp.Put(b)
	for range 3 {
		g := bp.Get()
		if len(g) != copyBufferSize {
			t.Fatalf("len %d", len(g))
		}
		bp.Put(g)
	}
}
