package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/admin"
	"github.com/outrigger-gw/outrigger/certs"
	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/proxy"
)

// TLS on the proxy listeners: the certificates of the effective
// configuration (file + admin layer) live in a certs.Store, prepared with
// the rest of a plan and committed with it; every ssl listener's
// tls.Config reads the store's set in force at each handshake, so a new
// certificate (admin API, reload, a changed file) applies to the next
// handshake and no connection is dropped.

// newCertStore returns the gateway's certificate store, its reload
// counter registered.
func newCertStore(reg prometheus.Registerer, log zerolog.Logger) *certs.Store {
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "outrigger", Name: "tls_certificate_reloads_total",
		Help: "Reloads of certificate and client CA files by result: ok (a changed file was loaded), " +
			"error (it did not load; the previous certificate stays in force, see the error log).",
	}, []string{"result"})
	reloads.WithLabelValues("ok")
	reloads.WithLabelValues("error")
	reg.MustRegister(reloads)
	return certs.NewStore(certs.StoreOptions{Log: log, Reloads: reloads})
}

// prepareCerts loads cfg's certificates (and client CA bundle) without
// putting them in force.
func (g *Gateway) prepareCerts(cfg *config.File) (*certs.Loaded, error) {
	srcs := make([]certs.Source, 0, len(cfg.Certificates))
	for i := range cfg.Certificates {
		srcs = append(srcs, cfg.Certificates[i].Source())
	}
	l, err := g.certs.Prepare(srcs, cfg.Proxy.SSLClientCertificate)
	if err == nil {
		return l, nil
	}
	var dup *certs.DuplicateSNIError
	if errors.As(err, &dup) {
		return nil, &admin.Error{Status: http.StatusBadRequest, Code: 2, Name: "schema violation", Message: "schema violation (snis: " + dup.Error() + ")",
			Fields: map[string]string{"snis": dup.Error()}}
	}
	var bad *certs.EntryError
	if errors.As(err, &bad) {
		for i := range cfg.Certificates {
			if c := &cfg.Certificates[i]; c.ID == bad.ID && !c.Pos.IsZero() {
				return nil, cfg.Errorf(c.Pos, "certificate: %v", bad.Err)
			}
		}
		return nil, &admin.Error{Status: http.StatusBadRequest, Code: 2, Name: "schema violation", Message: "schema violation (cert: " + bad.Err.Error() + ")",
			Fields: map[string]string{"cert": bad.Err.Error()}}
	}
	return nil, fmt.Errorf("%s: certificates: %w", cfg.Path, err)
}

// ReloadCertificates reads every certificate and CA file again (SIGHUP);
// one that does not load keeps its previous content in force.
func (g *Gateway) ReloadCertificates() { g.certs.Reload() }

// listenerTLS is an ssl listener's TLS configuration: TLS 1.2 and later
// with Go's default suites, ALPN h2 (with the http2 flag) and http/1.1,
// the certificate chosen by SNI from the store in force, and client
// certificates verified per ssl_verify_client against the CA bundle in
// force.
func (g *Gateway) listenerTLS(l config.Listener, p config.Proxy) *tls.Config {
	protos := []string{"http/1.1"}
	if l.HTTP2 {
		protos = []string{"h2", "http/1.1"}
	}
	store := g.certs
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: protos,
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return store.Set().Certificate(h)
		},
	}
	var auth tls.ClientAuthType
	switch p.SSLVerifyClient {
	case config.VerifyClientOn:
		auth = tls.RequireAndVerifyClientCert
	case config.VerifyClientOptional:
		auth = tls.VerifyClientCertIfGiven
	default:
		return base
	}
	// The configuration per CA pool in force, built again when the pool
	// changes.
	type perPool struct {
		pool *x509.CertPool
		cfg  *tls.Config
	}
	var cur atomic.Pointer[perPool]
	out := base.Clone()
	out.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		pool := store.ClientCAs()
		if c := cur.Load(); c != nil && c.pool == pool {
			return c.cfg, nil
		}
		c := base.Clone()
		c.ClientAuth, c.ClientCAs = auth, pool
		cur.Store(&perPool{pool: pool, cfg: c})
		return c, nil
	}
	return out
}

// proxyServers returns the server of the proxy listeners and one serve
// function per listener (lns[i] is listener ls[i]). The engine serves
// every listener with the same server (max_connections counts them
// together); net/http wraps each listener on its own.
func (g *Gateway) proxyServers(p config.Proxy, ls []config.Listener, lns []net.Listener, errLog *log.Logger) (server, []func() error) {
	var serves []func() error
	if p.Engine == config.EngineNetHTTP {
		var h http.Handler = g.proxy
		if name := p.SSLClientSubjectHeader; name != "" {
			h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.Header.Del(name)
				g.proxy.ServeHTTP(w, r)
			})
		}
		s, _ := proxyServer(p, h, nil, errLog)
		for _, ln := range lns {
			wrapped := newClientListener(ln, p.MaxConnections)
			serves = append(serves, func() error { return s.Serve(wrapped) })
		}
		return s, serves
	}
	s := g.proxy.NewServer(proxy.ServerOptions{
		IdleTimeout:         p.IdleTimeout,
		HeaderTimeout:       p.HeaderTimeout,
		MaxConnections:      p.MaxConnections,
		ClientSubjectHeader: p.SSLClientSubjectHeader,
		H2: proxy.H2Options{
			MaxConcurrentStreams: uint32(p.HTTP2MaxConcurrentStreams),
			MaxHeaderListSize:    uint32(p.HTTP2MaxHeaderListSize),
		},
		ErrorLog: errLog,
	})
	for i, ln := range lns {
		l := ls[i]
		lo := proxy.ListenerOptions{H2C: l.HTTP2 && !l.SSL}
		if l.SSL {
			lo.TLS = g.listenerTLS(l, p)
		}
		serves = append(serves, func() error { return s.ServeListener(ln, lo) })
	}
	return s, serves
}
