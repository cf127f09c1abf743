package proxy

import (
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/outrigger-gw/outrigger/balance"
)

// Hash inputs (Kong's hash_on values).
const (
	HashNone       = "none"
	HashIP         = "ip"
	HashHeader     = "header"
	HashCookie     = "cookie"
	HashPath       = "path"
	HashQueryArg   = "query_arg"
	HashURICapture = "uri_capture"
)

// HashSpec says which part of a request keys the balancer (consistent
// hashing, sticky sessions). It belongs to the upstream; the proxy applies
// it to every request bound there.
type HashSpec struct {
	// On and Fallback are Kong's hash_on and hash_fallback; Fallback is
	// used when On yields nothing (header absent, ...).
	On, Fallback string
	Header       string
	Cookie       string
	CookiePath   string
	QueryArg     string
	URICapture   string
	// CookieTTL, when positive, is the Max-Age of a cookie Outrigger sets
	// (sticky sessions); zero makes a session cookie (consistent hashing on
	// a cookie, as Kong).
	CookieTTL time.Duration
}

// key fills br from r per the spec. When the spec hashes on a cookie the
// request lacks, it invents a session id and returns the Set-Cookie value
// to send with the response.
func (h *HashSpec) key(r *http.Request, rt *Route, br *balance.Request) (setCookie string) {
	return h.keyOf(httpInbound{r}, rt, br)
}

// keyOf is key for any request representation.
func (h *HashSpec) keyOf(r inbound, rt *Route, br *balance.Request) (setCookie string) {
	if h == nil {
		return ""
	}
	v, ok := h.value(h.On, r, rt)
	if !ok && h.On == HashCookie {
		v = strconv.FormatUint(rand.Uint64(), 36) + strconv.FormatUint(rand.Uint64(), 36)
		ok = true
		c := &http.Cookie{Name: h.Cookie, Value: v, Path: h.CookiePath, HttpOnly: true, SameSite: http.SameSiteLaxMode}
		if h.CookieTTL > 0 {
			c.MaxAge = int(h.CookieTTL / time.Second)
		}
		setCookie = c.String()
	}
	if !ok {
		v, ok = h.value(h.Fallback, r, rt)
	}
	if ok {
		br.Key, br.HasKey = balance.HashKey(v), true
	}
	return setCookie
}

func (h *HashSpec) value(on string, r inbound, rt *Route) (string, bool) {
	switch on {
	case HashIP:
		return r.remoteIP()
	case HashHeader:
		return r.header(h.Header)
	case HashCookie:
		v, ok := r.cookie(h.Cookie)
		return v, ok && v != ""
	case HashPath:
		return r.path(), true
	case HashQueryArg:
		v, ok := r.queryArg(h.QueryArg)
		return v, ok && v != ""
	case HashURICapture:
		return uriCapture(rt.Regexps, r.path(), h.URICapture)
	}
	return "", false
}

// uriCapture returns the named group of the first route regex that matches
// path.
func uriCapture(res []*regexp.Regexp, path, name string) (string, bool) {
	for _, re := range res {
		i := re.SubexpIndex(name)
		if i < 0 {
			continue
		}
		m := re.FindStringSubmatch(path)
		if m != nil && m[i] != "" {
			return m[i], true
		}
	}
	return "", false
}
