package proxy

import (
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"unsafe"

	"github.com/outrigger-gw/outrigger/proxy/h1"
)

// inbound is what the routing decisions after the router (canary choice,
// hash keys) read from a request, whichever server parsed it: net/http
// (HTTP/2, httpInbound) or the engine (HTTP/1.1, h1Inbound). The strings
// returned may alias the request's buffers: use them before the request
// ends and do not keep them.
type inbound interface {
	// header is the first value of the field name (ASCII
	// case-insensitive), ok false when absent.
	header(name string) (string, bool)
	// cookie is the value of the first cookie name.
	cookie(name string) (string, bool)
	// queryArg is the first value of the query argument name, decoded.
	queryArg(name string) (string, bool)
	// remoteIP is the client's IP address.
	remoteIP() (string, bool)
	// path is the request path, percent-decoded, without the query.
	path() string
}

// httpInbound is an *http.Request as an inbound; being one pointer, it
// converts to the interface without allocating.
type httpInbound struct{ r *http.Request }

func (h httpInbound) header(name string) (string, bool) {
	v := textproto.MIMEHeader(h.r.Header).Values(name)
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}

func (h httpInbound) cookie(name string) (string, bool) {
	c, err := h.r.Cookie(name)
	if err != nil {
		return "", false
	}
	return c.Value, true
}

func (h httpInbound) queryArg(name string) (string, bool) {
	v := h.r.URL.Query()[name]
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}

func (h httpInbound) remoteIP() (string, bool) {
	ip, _, err := net.SplitHostPort(h.r.RemoteAddr)
	return ip, err == nil
}

func (h httpInbound) path() string { return h.r.URL.Path }

// h1Inbound is a request parsed by the engine as an inbound and as the
// router's Headers. Every string it returns aliases the connection's read
// buffer (no copy) unless decoding was needed.
type h1Inbound struct {
	req   *h1.Request
	query []byte // raw query, without '?'
	dpath string // decoded path
	ip    string // the connection's client IP
}

// bstr views b as a string without copying; b must not change while the
// string is in use.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// foldEq reports whether the field name b equals name, ASCII
// case-insensitively.
func foldEq(b []byte, name string) bool {
	if len(b) != len(name) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], name[i]
		if c == d {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// Value implements router.Headers.
func (h *h1Inbound) Value(name string, i int) (string, bool) {
	for _, f := range h.req.Fields {
		if foldEq(f.Name, name) {
			if i == 0 {
				return bstr(f.Value), true
			}
			i--
		}
	}
	return "", false
}

func (h *h1Inbound) header(name string) (string, bool) { return h.Value(name, 0) }

func (h *h1Inbound) remoteIP() (string, bool) { return h.ip, h.ip != "" }

func (h *h1Inbound) path() string { return h.dpath }

// cookie reads the Cookie fields as net/http does: pairs separated by
// ";", names compared exactly, a value's surrounding double quotes
// dropped.
func (h *h1Inbound) cookie(name string) (string, bool) {
	for _, f := range h.req.Fields {
		if !foldEq(f.Name, "Cookie") {
			continue
		}
		line := bstr(f.Value)
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, _ := strings.Cut(part, "=")
			if k != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}

// queryArg reads the raw query as url.ParseQuery does: pairs separated by
// "&", a pair holding ";" skipped, names and values unescaped (only those
// holding '%' or '+' are copied).
func (h *h1Inbound) queryArg(name string) (string, bool) { return h.queryArgAt(name, 0) }

// queryArgAt is the value of the (i+1)th query argument name, as queryArg
// reads it.
func (h *h1Inbound) queryArgAt(name string, i int) (string, bool) {
	q := bstr(h.query)
	for len(q) > 0 {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if pair == "" || strings.IndexByte(pair, ';') >= 0 {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(k, "%+") {
			var err error
			if k, err = url.QueryUnescape(k); err != nil {
				continue
			}
		}
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			var err error
			if v, err = url.QueryUnescape(v); err != nil {
				continue
			}
		}
		if i > 0 {
			i--
			continue
		}
		return v, true
	}
	return "", false
}
