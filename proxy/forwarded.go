package proxy

import (
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The net/http path's forwarding headers and copy buffers, written to
// allocate as little per request as the standard types allow.

// setForwarded sets the outbound request's forwarding headers as
// httputil's SetXForwarded does (X-Forwarded-For: the inbound values and
// the client's address, joined by ", "; X-Forwarded-Host; X-Forwarded-Proto
// http or https) and Kong's X-Forwarded-Port, X-Real-IP and, when prefix is
// set, X-Forwarded-Prefix. The values share one backing array: vals's
// when it has room for six (the caller's, no allocation), else one
// allocation for all of them instead of one per header. ReverseProxy has
// removed the X-Forwarded-* headers of pr.Out before Rewrite runs.
func setForwarded(pr *httputil.ProxyRequest, ports *portCache, prefix string, vals []string) {
	if cap(vals) < 6 {
		vals = make([]string, 0, 6)
	}
	vals = vals[:0]
	h := pr.Out.Header
	set := func(k, v string) {
		vals = append(vals, v)
		n := len(vals)
		h[k] = vals[n-1 : n : n]
	}
	ip, _, ipErr := net.SplitHostPort(pr.In.RemoteAddr)
	if ipErr == nil {
		xff := ip
		if prior := pr.In.Header["X-Forwarded-For"]; len(prior) > 0 {
			xff = strings.Join(prior, ", ") + ", " + ip
		}
		set("X-Forwarded-For", xff)
	}
	set("X-Forwarded-Host", pr.In.Host)
	if pr.In.TLS == nil {
		set("X-Forwarded-Proto", "http")
	} else {
		set("X-Forwarded-Proto", "https")
	}
	if la, ok := pr.In.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if tcp, ok := la.(*net.TCPAddr); ok {
			set("X-Forwarded-Port", ports.text(tcp.Port))
		}
	}
	if ipErr == nil {
		set("X-Real-Ip", ip)
	}
	if prefix != "" {
		set("X-Forwarded-Prefix", prefix)
	}
}

// portCache keeps the decimal text of the last listener port seen, so
// that X-Forwarded-Port costs no allocation while requests come in on
// one listener. Safe for concurrent use (an atomic pointer to an
// immutable pair).
type portCache struct{ last atomic.Pointer[portText] }

type portText struct {
	port int
	text string
}

func (c *portCache) text(port int) string {
	if p := c.last.Load(); p != nil && p.port == port {
		return p.text
	}
	p := &portText{port: port, text: strconv.Itoa(port)}
	c.last.Store(p)
	return p.text
}

// bufferPool recycles ReverseProxy's copy buffers between requests. Its
// interface trades []byte values; the pool holds *[]byte, and the
// holders travel through a pool of their own, so that neither Get nor
// Put allocates once both pools are warm. Safe for concurrent use.
type bufferPool struct {
	bufs    sync.Pool // *[]byte holding a buffer
	holders sync.Pool // *[]byte holding nil
}

const copyBufferSize = 32 << 10

func newBufferPool() *bufferPool {
	return &bufferPool{bufs: sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}}
}

func (bp *bufferPool) Get() []byte {
	h := bp.bufs.Get().(*[]byte)
	b := *h
	*h = nil
	bp.holders.Put(h)
	return b
}

func (bp *bufferPool) Put(b []byte) {
	h, _ := bp.holders.Get().(*[]byte)
	if h == nil {
		h = new([]byte)
	}
	*h = b
	bp.bufs.Put(h)
}
