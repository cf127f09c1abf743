package main

// The gRPC section: unary calls from a small bounded grpc-go load client
// (CONNECTIONS client connections, STREAMS calls in flight on each) to
// Outrigger (h2c listener, service protocol grpc), nginx (grpc_pass) and
// HAProxy (h2 frontend, h2 servers), each in front of the same two grpc-go
// origins, and directly to one origin.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/outrigger-gw/outrigger/internal/grpctest"
)

// grpcMethod is the origins' unary method: it answers size bytes.
const grpcMethod = "/bench.Echo/Call"

// serveGRPC serves the gRPC origin on addr.
func serveGRPC(addr string, size int) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest: grpc origin:", err)
		os.Exit(1)
	}
	body := []byte(strings.Repeat("x", size))
	srv := grpc.NewServer(grpc.ForceServerCodec(grpctest.RawCodec{}))
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "bench.Echo",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Call", Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			return &body, nil
		}}},
	}, nil)
	_ = srv.Serve(ln)
}

// grpcDial opens one client connection to addr (plaintext HTTP/2).
func grpcDial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(grpctest.RawCodec{})))
}

// waitGRPC waits until a unary call through addr succeeds.
func waitGRPC(addr string, deadline time.Duration) error {
	cc, err := grpcDial(addr)
	if err != nil {
		return err
	}
	defer cc.Close()
	end := time.Now().Add(deadline)
	var last error = errors.New("no attempt")
	for time.Now().Before(end) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		in, out := []byte("ping"), []byte(nil)
		last = cc.Invoke(ctx, grpcMethod, &in, &out)
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer a unary call within %s: %v", addr, deadline, last)
}

// loadGRPC runs a closed loop of unary calls: sh.conns client connections
// with sh.streams callers each, until d has passed or maxReq calls were
// made.
func loadGRPC(addr string, sh h2Shape, d time.Duration, maxReq int) (run, error) {
	ccs := make([]*grpc.ClientConn, sh.conns)
	for i := range ccs {
		cc, err := grpcDial(addr)
		if err != nil {
			return run{}, err
		}
		defer cc.Close()
		ccs[i] = cc
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var (
		mu    sync.Mutex
		lat   []time.Duration
		errs  int
		count int
		first error
	)
	start := time.Now()
	var wg sync.WaitGroup
	for _, cc := range ccs {
		for range sh.streams {
			wg.Go(func() {
				local := make([]time.Duration, 0, 1<<14)
				localErr := 0
				var localFirst error
				in := []byte("ping")
				for ctx.Err() == nil {
					mu.Lock()
					if count >= maxReq {
						mu.Unlock()
						break
					}
					count++
					mu.Unlock()
					var out []byte
					t0 := time.Now()
					if err := cc.Invoke(ctx, grpcMethod, &in, &out); err != nil {
						if ctx.Err() == nil {
							localErr++
							localFirst = cmpOr(localFirst, err)
						}
						continue
					}
					local = append(local, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, local...)
				errs += localErr
				first = cmpOr(first, localFirst)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	r := run{reqs: len(lat), errs: errs, elapsed: time.Since(start)}
	if len(lat) == 0 {
		return r, fmt.Errorf("no call succeeded: %v", first)
	}
	slices.Sort(lat)
	r.p50, r.p99 = lat[(len(lat)-1)/2], lat[int(float64(len(lat)-1)*.99)]
	return r, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// benchGRPC runs the gRPC section: its own origins and proxy processes,
// stopped at its end.
func benchGRPC(o benchOpts, tmp string) error {
	if len(o.grpc) == 0 {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var origins []string
	for range 2 {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		be := exec.Command(self, "-serve-grpc", addr, "-size", fmt.Sprint(o.size))
		if err := be.Start(); err != nil {
			return err
		}
		defer func() { _ = be.Process.Kill(); _ = be.Wait() }()
		if err := waitGRPC(addr, 10*time.Second); err != nil {
			return err
		}
		origins = append(origins, addr)
	}
	targets := []*target{{name: "direct", url: origins[0]}}
	for i, bin := range strings.Split(o.outrigger, ",") {
		name := "outrigger"
		if i > 0 {
			name += ":" + filepath.Base(bin)
		}
		og, err := startOutriggerGRPC(name, bin, filepath.Join(tmp, "grpc-"+fmt.Sprint(i)), origins)
		if err != nil {
			return err
		}
		defer og.stop()
		targets = append(targets, og.t)
	}
	for _, pr := range startPeers([]peer{
		{"nginx", "nginx-light", func(path string) (*proc, error) {
			return startNginxGRPC(path, filepath.Join(tmp, "nginx-grpc"), origins)
		}},
		{"haproxy", "haproxy", func(path string) (*proc, error) {
			return startHAProxyGRPC(path, filepath.Join(tmp, "haproxy-grpc.cfg"), origins)
		}},
	}, "gRPC") {
		defer pr.stop()
		targets = append(targets, pr.t)
	}
	fmt.Printf("\ngRPC unary calls (grpc-go client, %d-byte answers), h2c to the same two grpc-go origins, %s per run, %d rounds (medians); req/s are calls/s\n",
		o.size, o.d, o.rounds)
	for _, t := range targets {
		if _, err := measureWith(t, func() (run, error) { return loadGRPC(t.url, h2Shape{2, 4}, o.d/5, o.maxReq) }); err != nil {
			return fmt.Errorf("%s (gRPC warm-up): %w", t.name, err)
		}
		t.rssIdle, t.anonIdle = treeRSS(t.pid), treeMem(t.pid, "RssAnon:")
	}
	for _, sh := range o.grpc {
		rs := map[string][]run{}
		for range o.rounds {
			for _, t := range targets {
				r, err := measureWith(t, func() (run, error) { return loadGRPC(t.url, sh, o.d, o.maxReq) })
				if err != nil {
					return fmt.Errorf("%s (gRPC %s): %w", t.name, sh, err)
				}
				rs[t.name] = append(rs[t.name], r)
			}
		}
		med := map[string]run{}
		for name, r := range rs {
			med[name] = median(r)
		}
		report(fmt.Sprintf("gRPC: %d connections x %d calls in flight", sh.conns, sh.streams), targets, med)
	}
	return nil
}

// startOutriggerGRPC starts Outrigger with an h2c listener in front of
// the gRPC origins (service protocol grpc).
func startOutriggerGRPC(name, bin, dir string, origins []string) (*proc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	proxyAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "outrigger-grpc.yaml")
	err = os.WriteFile(cfg, fmt.Appendf(nil, `proxy: {listen: %q, h2c: true}
admin: {listen: %q}
log: {level: warn, access_log: false}
upstreams:
  - name: bench
    targets: [{target: %q}, {target: %q}]
services:
  - name: bench
    protocol: grpc
    host: bench
    routes: [{name: bench, paths: [/bench.Echo/], strip_path: false, protocols: [grpc]}]
`, proxyAddr, adminAddr, origins[0], origins[1]), 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", cfg)
	cmd.Stderr = os.Stderr
	return startAndWaitFor(name, cmd, proxyAddr, waitGRPC)
}

// startNginxGRPC starts nginx with an HTTP/2 prior-knowledge listener
// (nginx 1.22's "listen ... http2" without ssl) and grpc_pass to the
// origins over kept-alive connections.
func startNginxGRPC(path, dir string, origins []string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cf, err := writeNginxConf(dir, fmt.Sprintf(`  upstream grpcbackend { server %[1]s; server %[2]s; keepalive 128; keepalive_requests 100000000; }
  server {
    listen %[3]s http2;
    keepalive_requests 100000000;
    location / { grpc_pass grpc://grpcbackend; }
  }
`, origins[0], origins[1], addr))
	if err != nil {
		return nil, err
	}
	return startAndWaitFor("nginx", exec.Command(path, "-p", dir, "-c", cf), addr, waitGRPC)
}

// startHAProxyGRPC starts HAProxy with an h2 frontend and h2 servers.
func startHAProxyGRPC(path, cf string, origins []string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`global
  nbthread 2
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind %s proto h2
  default_backend be
backend be
  balance roundrobin
  http-reuse always
  server s1 %s proto h2
  server s2 %s proto h2
`, addr, origins[0], origins[1])
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	return startAndWaitFor("haproxy", exec.Command(path, "-f", cf, "-db"), addr, waitGRPC)
}
