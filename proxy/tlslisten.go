package proxy

import (
	"crypto/tls"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

// TLS termination on the engine's listeners.
//
// A listener with ListenerOptions.TLS hands every accepted connection to
// crypto/tls on the connection's own goroutine (the accept loop never
// waits for a handshake), bounded by HeaderTimeout (DefaultHandshakeTimeout
// when that is 0). A handshake that fails closes the connection. After
// it, a connection that negotiated "h2" with ALPN is served by the HTTP/2
// server with the net/http handler (as h2c is), any other by the engine
// over the *tls.Conn. Requests carry X-Forwarded-Proto: https, and, with
// ServerOptions.ClientSubjectHeader, the verified client certificate's
// subject.

// ListenerOptions configure one listener the engine serves.
type ListenerOptions struct {
	// TLS, when set, terminates TLS with this configuration (typically
	// one whose GetConfigForClient reads the certificates in force); its
	// NextProtos decide whether h2 is offered.
	TLS *tls.Config
	// H2C serves HTTP/2 with prior knowledge on this plaintext listener
	// (see ServerOptions.H2C); ignored with TLS.
	H2C bool
}

// DefaultHandshakeTimeout bounds a TLS handshake when HeaderTimeout is 0.
const DefaultHandshakeTimeout = 10 * time.Second

// serveTLS runs the handshake on c's connection and serves h2 when ALPN
// chose it. It reports whether the engine serves HTTP/1.1 on c.nc (now
// the *tls.Conn).
func (c *client) serveTLS(cfg *tls.Config) bool {
	s := c.s
	tc := tls.Server(c.nc, cfg)
	to := s.o.HeaderTimeout
	if to <= 0 {
		to = DefaultHandshakeTimeout
	}
	_ = tc.SetDeadline(time.Now().Add(to))
	if err := tc.Handshake(); err != nil {
		return false
	}
	_ = tc.SetDeadline(time.Time{})
	// Close and Shutdown now close the TLS connection (sending
	// close_notify); the raw one is closed by serveConn as well.
	s.mu.Lock()
	c.nc = tc
	s.mu.Unlock()
	cs := tc.ConnectionState()
	if cs.NegotiatedProtocol == http2.NextProtoTLS {
		s.serveH2(c, tc, nil)
		return false
	}
	c.tls = true
	if s.o.ClientSubjectHeader != "" {
		c.subject = verifiedSubject(&cs)
	}
	return true
}

// verifiedSubject is the subject of the verified client certificate
// (RFC 4514, control characters replaced by '?' so that it is always a
// valid field value), or "" when the client sent none (or it was not
// verified).
func verifiedSubject(cs *tls.ConnectionState) string {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ""
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, cs.VerifiedChains[0][0].Subject.String())
}

// h2Handler is the handler of HTTP/2 connections: the Proxy, behind one
// that sets (or removes) the client subject field when
// ClientSubjectHeader is set.
func (s *Server) h2Handler() http.Handler {
	h := s.o.ClientSubjectHeader
	if h == "" {
		return s.p
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del(h)
		if r.TLS != nil {
			if sub := verifiedSubject(r.TLS); sub != "" {
				r.Header.Set(h, sub)
			}
		}
		s.p.ServeHTTP(w, r)
	})
}
