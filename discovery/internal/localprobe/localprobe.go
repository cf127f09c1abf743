// Package localprobe probes the local service a registrar announces.
//
// Contract:
//
//   - A Prober checks one endpoint: a health URL (GET, no redirects, no
//     keep-alives, no proxy; a 2xx status passes) or a gRPC health check
//     (grpc.health.v1.Health/Check of a service name, "" for the whole
//     server; SERVING passes), given as "host:port[/service]".
//   - A gRPC Prober keeps one channel across probes (opened lazily by the
//     first) until Close. A probe waits up to its timeout for the channel
//     to connect; a channel in reconnect backoff retries at once when
//     probed.
//   - Probe returns nil when the endpoint passed, else an error saying
//     what failed. Probers are safe for concurrent use; there is no
//     package state.
package localprobe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Spec is what to probe: exactly one of URL and GRPC.
type Spec struct {
	// URL is an http:// or https:// health URL.
	URL string
	// GRPC is "host:port" or "host:port/service".
	GRPC string
	// GRPCUseTLS makes the gRPC probe use TLS.
	GRPCUseTLS bool
	// TLSSkipVerify turns certificate verification off (https URLs and
	// TLS gRPC).
	TLSSkipVerify bool
}

// Set reports whether s names an endpoint.
func (s Spec) Set() bool { return s.URL != "" || s.GRPC != "" }

// Prober probes one endpoint.
type Prober struct {
	desc string
	// URL probes.
	url    string
	client *http.Client
	// gRPC probes. cc is immutable after New.
	cc      *grpc.ClientConn
	service string
}

// New returns a Prober for spec.
func New(spec Spec) (*Prober, error) {
	tlsConf := &tls.Config{InsecureSkipVerify: spec.TLSSkipVerify}
	switch {
	case spec.URL != "" && spec.GRPC != "":
		return nil, errors.New("localprobe: both a URL and a gRPC endpoint")
	case spec.URL != "":
		return &Prober{
			desc: "GET " + spec.URL,
			url:  spec.URL,
			client: &http.Client{
				Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, TLSClientConfig: tlsConf},
				CheckRedirect: func(*http.Request, []*http.Request) error {
					return http.ErrUseLastResponse
				},
			},
		}, nil
	case spec.GRPC != "":
		addr, svc, _ := strings.Cut(spec.GRPC, "/")
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("localprobe: grpc %q: %w", spec.GRPC, err)
		}
		creds := insecure.NewCredentials()
		if spec.GRPCUseTLS {
			creds = credentials.NewTLS(tlsConf)
		}
		cc, err := grpc.NewClient("passthrough:///"+addr,
			grpc.WithTransportCredentials(creds),
			grpc.WithUserAgent("outrigger-registrar"),
			grpc.WithDisableServiceConfig(),
			grpc.WithDisableRetry(),
			grpc.WithNoProxy())
		if err != nil {
			return nil, fmt.Errorf("localprobe: grpc %q: %w", spec.GRPC, err)
		}
		return &Prober{desc: "grpc " + spec.GRPC, cc: cc, service: svc}, nil
	}
	return nil, errors.New("localprobe: nothing to probe")
}

// String describes the endpoint, e.g. "GET http://127.0.0.1:8080/health"
// or "grpc 127.0.0.1:9090/pkg.Echo".
func (p *Prober) String() string { return p.desc }

// Probe checks the endpoint once within ctx.
func (p *Prober) Probe(ctx context.Context) error {
	if p.cc != nil {
		return p.probeGRPC(ctx)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", p.desc, err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", p.desc, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s: %s", p.desc, resp.Status)
	}
	return nil
}

func (p *Prober) probeGRPC(ctx context.Context) error {
	if p.cc.GetState() == connectivity.TransientFailure {
		p.cc.ResetConnectBackoff()
	}
	resp, err := healthpb.NewHealthClient(p.cc).Check(ctx, &healthpb.HealthCheckRequest{Service: p.service}, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("%s: %w", p.desc, err)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%s: %s", p.desc, s)
	}
	return nil
}

// Close releases the gRPC channel, if any.
func (p *Prober) Close() {
	if p.cc != nil {
		_ = p.cc.Close()
	}
	if p.client != nil {
		p.client.CloseIdleConnections()
	}
}
