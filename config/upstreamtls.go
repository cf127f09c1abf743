package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Service protocols (Kong's names).
const (
	ProtocolHTTP  = "http"
	ProtocolHTTPS = "https"
	ProtocolGRPC  = "grpc"
	ProtocolGRPCS = "grpcs"
	ProtocolH2C   = "h2c"
)

// ServiceProtocols are the accepted service protocols.
func ServiceProtocols() []string {
	return []string{ProtocolHTTP, ProtocolHTTPS, ProtocolGRPC, ProtocolGRPCS, ProtocolH2C}
}

// RouteProtocols are the accepted route protocols.
func RouteProtocols() []string {
	return []string{ProtocolHTTP, ProtocolHTTPS, ProtocolGRPC, ProtocolGRPCS}
}

// TLSProtocol reports whether a service protocol speaks TLS to targets.
func TLSProtocol(p string) bool { return p == ProtocolHTTPS || p == ProtocolGRPCS }

// DefaultPort is a protocol's port when none is given.
func DefaultPort(protocol string) int {
	if TLSProtocol(protocol) {
		return 443
	}
	return 80
}

// CheckRouteProtocols refuses a list mixing HTTP and gRPC protocols, as
// Kong (the two sets are mutually exclusive).
func CheckRouteProtocols(ps []string) error {
	var h, g bool
	for _, p := range ps {
		switch p {
		case ProtocolHTTP, ProtocolHTTPS:
			h = true
		case ProtocolGRPC, ProtocolGRPCS:
			g = true
		default:
			return fmt.Errorf("%s is not one of %s", quote(p), strings.Join(RouteProtocols(), ", "))
		}
	}
	if h && g {
		return errors.New("http/https and grpc/grpcs are mutually exclusive (use one route per family)")
	}
	return nil
}

// CheckGRPCMethod checks an entry of grpc_idempotent_methods:
// "/package.Service/Method" or "/package.Service/*".
func CheckGRPCMethod(m string) error {
	rest, ok := strings.CutPrefix(m, "/")
	svc, method, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || svc == "" || method == "" || strings.ContainsAny(method, "/ ") || strings.ContainsAny(svc, " ") {
		return fmt.Errorf("%s: expected /package.Service/Method or /package.Service/*", quote(m))
	}
	return nil
}

// ClientCertificate is the certificate a service presents to targets that
// ask for one (mutual TLS); both are PEM file paths.
type ClientCertificate struct {
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

// ServiceTLS is a service's TLS material, loaded.
type ServiceTLS struct {
	// CA is the PEM of every ca_certificates entry ("" for the system
	// roots).
	CA string
	// Cert and Key are the client certificate's PEM ("" for none).
	Cert, Key string
}

// LoadServiceTLS reads and checks the TLS material of a service: each
// ca_certificates entry is inline PEM (it starts with "-----BEGIN") or the
// path of a PEM file; client_certificate names PEM files. The files are
// read on every load (start, reload, admin change), so rotated
// certificates are picked up by a reload.
func LoadServiceTLS(s *Service) (ServiceTLS, error) {
	var out ServiceTLS
	var ca strings.Builder
	for _, e := range s.CACertificates {
		if IsUUID(e) {
			return out, fmt.Errorf("ca_certificates: %s is a Kong ca_certificates entity id; outrigger takes PEM file paths or inline PEM instead", e)
		}
		pem, err := pemOf(e)
		if err != nil {
			return out, fmt.Errorf("ca_certificates: %v", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return out, fmt.Errorf("ca_certificates: %s holds no PEM certificate", describePEM(e))
		}
		ca.Write(pem)
		ca.WriteByte('\n')
	}
	out.CA = ca.String()
	if c := s.ClientCertificate; c != nil {
		cert, err := os.ReadFile(c.CertFile)
		if err != nil {
			return out, fmt.Errorf("client_certificate: cert_file: %v", err)
		}
		key, err := os.ReadFile(c.KeyFile)
		if err != nil {
			return out, fmt.Errorf("client_certificate: key_file: %v", err)
		}
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			return out, fmt.Errorf("client_certificate: %v", err)
		}
		out.Cert, out.Key = string(cert), string(key)
	}
	return out, nil
}

func pemOf(e string) ([]byte, error) {
	if strings.HasPrefix(strings.TrimSpace(e), "-----BEGIN") {
		return []byte(e), nil
	}
	b, err := os.ReadFile(e)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func describePEM(e string) string {
	if strings.HasPrefix(strings.TrimSpace(e), "-----BEGIN") {
		return "inline PEM"
	}
	return e
}
