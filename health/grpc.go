package health

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// grpcSetup is the part of a prober used by grpc and grpcs probes.
// Immutable after newGRPCSetup.
type grpcSetup struct {
	service   string
	creds     credentials.TransportCredentials
	authority string
	md        metadata.MD // probe headers as request metadata; nil if none
}

func newGRPCSetup(a ActiveConfig, opts Options, secure bool, host string, header http.Header) *grpcSetup {
	g := &grpcSetup{service: a.GRPCService, authority: host}
	if secure {
		var tlsConf *tls.Config
		if opts.TLSConfig != nil {
			tlsConf = opts.TLSConfig.Clone()
		} else {
			tlsConf = &tls.Config{}
		}
		tlsConf.InsecureSkipVerify = !a.HTTPSVerifyCertificate
		switch {
		case a.HTTPSSNI != "":
			tlsConf.ServerName = a.HTTPSSNI
		case host != "":
			tlsConf.ServerName = hostOnly(host)
		}
		g.creds = credentials.NewTLS(tlsConf)
	} else {
		g.creds = insecure.NewCredentials()
	}
	for k, vs := range header {
		if k == "User-Agent" {
			continue // sent as the channel's user agent
		}
		if g.md == nil {
			g.md = metadata.MD{}
		}
		g.md.Append(k, vs...)
	}
	return g
}

// grpcConn is one target's gRPC channel, opened at its first probe and
// kept across probes until the target leaves the set or probing stops.
type grpcConn struct {
	cc *grpc.ClientConn

	// mu guards attempt. attempt is cancelled when a connection attempt
	// (dial or TLS handshake) fails, and then replaced, so that a probe
	// waiting for the channel learns about the failure at once.
	mu          sync.Mutex
	attempt     context.Context
	failAttempt context.CancelCauseFunc
}

// newGRPCConn opens (lazily: nothing is dialled before the first RPC) the
// channel to addr.
func (p *prober) newGRPCConn(addr string) (*grpcConn, error) {
	g := &grpcConn{}
	g.attempt, g.failAttempt = context.WithCancelCause(context.Background())
	dial := p.dial
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(&signalCreds{TransportCredentials: p.grpc.creds, g: g}),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			conn, err := dial(ctx, "tcp", a)
			if err != nil {
				g.failed(err)
			}
			return conn, err
		}),
		grpc.WithUserAgent(p.header.Get("User-Agent")),
		grpc.WithDisableServiceConfig(),
		grpc.WithDisableRetry(),
		grpc.WithNoProxy(),
		// A connection attempt is bounded like a probe; between probes the
		// channel reconnects with gRPC's default backoff, and a probe finding
		// it in backoff makes it retry at once.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: p.timeout}),
	}
	if p.grpc.authority != "" {
		dopts = append(dopts, grpc.WithAuthority(p.grpc.authority))
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, dopts...)
	if err != nil {
		return nil, err
	}
	g.cc = cc
	return g, nil
}

// failed records a failed connection attempt.
func (g *grpcConn) failed(err error) {
	g.mu.Lock()
	g.failAttempt(err)
	g.attempt, g.failAttempt = context.WithCancelCause(context.Background())
	g.mu.Unlock()
}

func (g *grpcConn) currentAttempt() context.Context {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.attempt
}

func (g *grpcConn) close() {
	g.mu.Lock()
	g.failAttempt(net.ErrClosed)
	g.mu.Unlock()
	_ = g.cc.Close()
}

// signalCreds reports failed handshakes to its grpcConn.
type signalCreds struct {
	credentials.TransportCredentials
	g *grpcConn
}

func (s *signalCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := s.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		s.g.failed(err)
	}
	return conn, info, err
}

func (s *signalCreds) Clone() credentials.TransportCredentials {
	return &signalCreds{TransportCredentials: s.TransportCredentials.Clone(), g: s.g}
}

// errConnect cancels a probe whose channel failed to connect.
var errConnect = errors.New("health: grpc connection attempt failed")

// checkGRPC calls grpc.health.v1.Health/Check on g once and classifies the
// outcome: SERVING is a success; any other answer (NOT_SERVING,
// SERVICE_UNKNOWN, UNKNOWN) or an error status from the server (e.g.
// NotFound for an unknown service, Unimplemented without a health service)
// an HTTP failure; a connection that cannot be established (refused,
// reset, TLS handshake failure) or breaks (Unavailable) a TCP failure;
// exceeding Timeout a timeout. ok is false when ctx was cancelled.
func (p *prober) checkGRPC(ctx context.Context, g *grpcConn) (k kind, ok bool) {
	pctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	// The probe waits for the channel to be ready (within Timeout) rather
	// than failing on a stale connection error, and ends early when the
	// connection attempt it waits for fails.
	rctx, rcancel := context.WithCancelCause(pctx)
	defer rcancel(nil)
	stop := context.AfterFunc(g.currentAttempt(), func() { rcancel(errConnect) })
	defer stop()
	if st := g.cc.GetState(); st == connectivity.TransientFailure {
		// Still failing (gRPC keeps the channel in TRANSIENT_FAILURE until
		// it is ready again): retry now, the dial and handshake report
		// their failures.
		g.cc.ResetConnectBackoff()
	} else if st != connectivity.Ready {
		// A fresh attempt: its failure shows as a state change (this also
		// covers a connection closed before the server's HTTP/2 preface).
		go func(st connectivity.State) {
			for g.cc.WaitForStateChange(rctx, st) {
				if st = g.cc.GetState(); st == connectivity.TransientFailure {
					rcancel(errConnect)
					return
				}
			}
		}(st)
	}
	callCtx := context.Context(rctx)
	if p.grpc.md != nil {
		callCtx = metadata.NewOutgoingContext(rctx, p.grpc.md)
	}
	resp, err := healthpb.NewHealthClient(g.cc).Check(callCtx,
		&healthpb.HealthCheckRequest{Service: p.grpc.service}, grpc.WaitForReady(true))
	switch {
	case err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING:
		return kindSuccess, true
	case err == nil:
		return kindHTTPFailure, true
	case ctx.Err() != nil:
		return kindIgnore, false
	case errors.Is(context.Cause(rctx), errConnect):
		return kindTCPFailure, true
	}
	switch status.Code(err) {
	case codes.DeadlineExceeded:
		if pctx.Err() != nil && g.cc.GetState() == connectivity.TransientFailure {
			return kindTCPFailure, true // still failing to connect
		}
		return kindTimeout, true
	case codes.Unavailable, codes.Canceled:
		return kindTCPFailure, true
	}
	return kindHTTPFailure, true
}
