package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
)

// TLSOptions are a service's TLS settings towards its targets (Kong's
// tls_verify, tls_verify_depth, ca_certificates and client_certificate).
// The PEM material is held by value, so equal settings compare equal and
// services share one pool. The zero value encrypts without verifying, as
// Kong does by default.
type TLSOptions struct {
	// Verify checks the target's certificate chain and name (the SNI
	// name, see below) against CA, or the system roots when CA is empty.
	Verify bool
	// VerifyDepth, when positive, caps the chain: a chain is accepted when
	// it has at most VerifyDepth certificates above the leaf (nginx's
	// proxy_ssl_verify_depth).
	VerifyDepth int
	// CA is PEM: the trusted roots for Verify.
	CA string
	// ClientCert and ClientKey are PEM: the certificate presented to
	// targets that ask for one (mutual TLS).
	ClientCert, ClientKey string
}

// Config builds the tls.Config of o (without ServerName, set per
// connection).
func (o TLSOptions) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CA != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(o.CA)) {
			return nil, errors.New("ca_certificates: no PEM certificate found")
		}
		cfg.RootCAs = pool
	}
	if o.ClientCert != "" || o.ClientKey != "" {
		cert, err := tls.X509KeyPair([]byte(o.ClientCert), []byte(o.ClientKey))
		if err != nil {
			return nil, fmt.Errorf("client_certificate: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if !o.Verify {
		cfg.InsecureSkipVerify = true //nolint:gosec // Kong's default: tls_verify false
		return cfg, nil
	}
	if depth := o.VerifyDepth; depth > 0 {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			for _, ch := range cs.VerifiedChains {
				if len(ch)-1 <= depth {
					return nil
				}
			}
			return fmt.Errorf("certificate chain longer than tls_verify_depth %d", depth)
		}
	}
	return cfg, nil
}

type sniKey struct{}

// withSNI makes the TLS connections dialled for ctx (the first request of
// a new pooled connection) present name instead of the target's host.
func withSNI(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, sniKey{}, name)
}

// serverName is the name a TLS connection to addr presents and verifies:
// the request's choice (withSNI), else the target's host. An IP address
// is verified against the certificate's IP addresses and sent no SNI.
func serverName(ctx context.Context, addr string) string {
	if n, _ := ctx.Value(sniKey{}).(string); n != "" {
		return n
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// dialTLS opens a TLS connection to addr from base, offering protos by
// ALPN. A TCP failure is a *ConnectError (always safe to retry); a
// handshake failure is not (the target was reached).
func dialTLS(ctx context.Context, d *net.Dialer, addr string, base *tls.Config, protos []string) (*tls.Conn, error) {
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &ConnectError{Addr: addr, Err: err}
	}
	cfg := base.Clone()
	cfg.ServerName = serverName(ctx, addr)
	cfg.NextProtos = protos
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	return tc, nil
}
