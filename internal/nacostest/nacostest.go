// Package nacostest runs an in-process Nacos naming server for tests. It
// speaks the real Nacos 2.x protocol, built on the SDK's own generated gRPC
// stubs (nacos-sdk-go/v2/api/grpc) and its request/response JSON payload
// types, so the unmodified SDK talks to it as to a real server.
//
// Contract:
//
//   - Start listens on 127.0.0.1 only, on two kernel-chosen free ports: the
//     HTTP port (v1 open API) and the gRPC port. By default the gRPC port is
//     independent of the HTTP port, so clients must be given it explicitly
//     (ServerConfig.GrpcPort); WithPortOffset instead picks an HTTP port whose
//     port+1000 is also free (the SDK's default convention), retrying a
//     bounded number of times.
//   - gRPC: the unary Request service answers ServerCheckRequest (with a
//     connection id), HealthCheckRequest, InstanceRequest (register and
//     deregister an ephemeral instance), BatchInstanceRequest,
//     SubscribeServiceRequest (subscribe and unsubscribe; answers the current
//     ServiceInfo), ServiceQueryRequest and ServiceListRequest. The
//     BiRequestStream service registers a connection on its
//     ConnectionSetupRequest, carries NotifySubscriberRequest pushes to the
//     connection's subscriptions on every change of a subscribed service, and
//     accepts the client's acks.
//   - Unary calls are matched to their connection by the peer's ip:port (the
//     SDK sends no connection id header; a real server keys connections by
//     transport too). A call from a peer whose bi-stream is not set up is
//     answered with ErrorResponse code 301 (UN_REGISTER), as Nacos does,
//     which makes the SDK reconnect.
//   - Ephemeral instances belong to the connection that registered them and
//     vanish (with a push) when it closes. As in Nacos 2.x, a connection
//     publishes at most one registration per service: a register replaces
//     the connection's previous one (a batch register replaces it with the
//     batch) and a deregister removes it. Re-sending a registration or a
//     subscription (the SDK's redo) is idempotent.
//   - ServiceInfo carries the plain service name with groupName separate
//     (the SDK keys its cache by groupName@@name), clusters echoing the
//     requested clusters string, and a lastRefTime that strictly increases
//     across all changes and survives Restart (the SDK drops data whose
//     lastRefTime is not newer than its cached copy). As in Nacos, subscribe
//     answers include disabled instances while pushes carry enabled ones
//     only; an empty cluster list means all clusters.
//   - HTTP (v1): POST/PUT/DELETE /nacos/v1/ns/instance for persistent
//     (ephemeral=false) instances (PUT also updates weight, enabled and
//     metadata of ephemeral ones), GET /nacos/v1/ns/instance/list,
//     POST /nacos/v1/auth/users/login and GET /nacos/v1/ns/operator/metrics.
//     Ephemeral registration over HTTP (v1 heartbeats) is refused with 400.
//     With username and password set (WithAuth) the SDK logs in over HTTP at
//     start-up; every naming request must then carry a valid accessToken.
//   - Hooks: DropConnections ends every bi-stream (clients reconnect and
//     redo); Stop closes both ports and every connection (ephemeral
//     instances vanish, persistent ones stay, as on a real restart); Restart
//     serves again on the same ports; SetHealthy, SetEnabled and SetWeight
//     change an instance and push; Instances, Connections, Subscribers,
//     Pushes and Requests inspect the state.
//   - The server is stopped by t.Cleanup. Nothing is shared between Servers;
//     no package state.
package nacostest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	auto "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Names Nacos uses for defaults.
const (
	DefaultNamespace = "public"
	DefaultGroup     = "DEFAULT_GROUP"
	DefaultCluster   = "DEFAULT"
)

const (
	portAttempts    = 50
	restartDeadline = 5 * time.Second
	stopDeadline    = 10 * time.Second
	outQueue        = 1024
	tokenTTLSeconds = 18000
	// cacheMillis is what Nacos reports as ServiceInfo.cacheMillis.
	cacheMillis = 10000
)

// Option tunes a Server.
type Option func(*options)

type options struct {
	username, password string
	portOffset         bool
}

// WithAuth turns authentication on: clients must log in with exactly this
// username and password and present the token on every naming request.
func WithAuth(username, password string) Option {
	return func(o *options) { o.username, o.password = username, password }
}

// WithPortOffset makes the gRPC port the HTTP port + 1000 (the SDK's
// default), so clients need not be told the gRPC port.
func WithPortOffset() Option {
	return func(o *options) { o.portOffset = true }
}

// ServiceKey names a service. Empty Namespace and Group mean "public" and
// "DEFAULT_GROUP".
type ServiceKey struct {
	Namespace, Group, Service string
}

func (k ServiceKey) norm() ServiceKey {
	if k.Namespace == "" {
		k.Namespace = DefaultNamespace
	}
	if k.Group == "" {
		k.Group = DefaultGroup
	}
	return k
}

// Instance is an instance as the server holds it.
type Instance struct {
	IP        string
	Port      int
	Weight    float64
	Healthy   bool
	Enabled   bool
	Ephemeral bool
	Cluster   string
	Metadata  map[string]string
	// ConnectionID owns an ephemeral instance; "" for persistent ones.
	ConnectionID string
}

// Addr is "ip:port".
func (i Instance) Addr() string { return net.JoinHostPort(i.IP, strconv.Itoa(i.Port)) }

// Server is a running (or stopped) fake Nacos server.
type Server struct {
	tb       testing.TB
	opts     options
	httpPort int
	grpcPort int

	life sync.Mutex // serializes Stop and Restart

	mu       sync.Mutex
	running  bool
	gsrv     *grpc.Server
	hsrv     *http.Server
	serving  sync.WaitGroup // Serve goroutines of the current run
	streams  int            // live bi-stream handlers
	streamsC *sync.Cond     // signalled when streams drops
	conns    map[string]*conn
	byPeer   map[string]*conn
	pending  map[string]string // peer -> connection id from ServerCheck
	services map[ServiceKey]*service
	clock    int64 // last lastRefTime handed out (ms)
	seq      uint64
	tokens   map[string]bool
	pushes   int
	acks     int
	requests map[string]int // unary requests by payload type
}

// Start runs a server and registers its Stop with t.Cleanup.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s := &Server{
		tb:       tb,
		conns:    map[string]*conn{},
		byPeer:   map[string]*conn{},
		pending:  map[string]string{},
		services: map[ServiceKey]*service{},
		tokens:   map[string]bool{},
		requests: map[string]int{},
	}
	s.streamsC = sync.NewCond(&s.mu)
	for _, o := range opts {
		if o != nil {
			o(&s.opts)
		}
	}
	hl, gl, err := s.listenFresh()
	if err != nil {
		tb.Fatalf("nacostest: %v", err)
	}
	s.httpPort = hl.Addr().(*net.TCPAddr).Port
	s.grpcPort = gl.Addr().(*net.TCPAddr).Port
	s.serve(hl, gl)
	tb.Cleanup(s.Stop)
	return s
}

// listenFresh picks the two ports.
func (s *Server) listenFresh() (net.Listener, net.Listener, error) {
	var lastErr error
	for range portAttempts {
		hl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		hp := hl.Addr().(*net.TCPAddr).Port
		addr := "127.0.0.1:0"
		if s.opts.portOffset {
			if hp+1000 > 65535 {
				hl.Close()
				lastErr = fmt.Errorf("http port %d: port+1000 out of range", hp)
				continue
			}
			addr = "127.0.0.1:" + strconv.Itoa(hp+1000)
		}
		gl, err := net.Listen("tcp", addr)
		if err != nil {
			hl.Close()
			lastErr = err
			continue
		}
		return hl, gl, nil
	}
	return nil, nil, fmt.Errorf("no free port pair after %d attempts: %v", portAttempts, lastErr)
}

func (s *Server) serve(hl, gl net.Listener) {
	gs := grpc.NewServer(
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             5 * time.Second,
			PermitWithoutStream: true,
		}),
	)
	auto.RegisterRequestServer(gs, unaryHandler{s: s})
	auto.RegisterBiRequestStreamServer(gs, streamHandler{s: s})
	hs := &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 10 * time.Second}

	s.mu.Lock()
	s.gsrv, s.hsrv, s.running = gs, hs, true
	s.mu.Unlock()
	s.serving.Add(2)
	go func() {
		defer s.serving.Done()
		_ = gs.Serve(gl)
	}()
	go func() {
		defer s.serving.Done()
		_ = hs.Serve(hl)
	}()
}

// HTTPAddr is the HTTP API's "127.0.0.1:port".
func (s *Server) HTTPAddr() string { return "127.0.0.1:" + strconv.Itoa(s.httpPort) }

// HTTPPort is the HTTP API's port.
func (s *Server) HTTPPort() int { return s.httpPort }

// GRPCPort is the gRPC port (HTTPPort()+1000 with WithPortOffset).
func (s *Server) GRPCPort() int { return s.grpcPort }

// Running tells whether the server is serving.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// Stop closes both ports and every connection, as a crashed or stopped
// server would: ephemeral instances vanish, persistent ones stay. Stopping
// a stopped server does nothing.
func (s *Server) Stop() {
	s.life.Lock()
	defer s.life.Unlock()
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return
	}
	// From here on new streams end at once and unary calls fail, so no
	// client reconnects while the ports close.
	s.running = false
	gs, hs := s.gsrv, s.hsrv
	s.mu.Unlock()

	_ = hs.Close()
	gs.Stop() // closes the listener and every transport at once
	s.serving.Wait()

	// Wait (bounded) for every stream handler to have cleaned up.
	deadline := time.Now().Add(stopDeadline)
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.streams > 0 && time.Now().Before(deadline) {
		waitCond(s.streamsC, 50*time.Millisecond)
	}
	if s.streams > 0 {
		s.tb.Errorf("nacostest: %d stream handlers still running %s after Stop", s.streams, stopDeadline)
	}
	// Whatever the handlers did not clean up, Stop does.
	for _, c := range s.conns {
		s.dropConnLocked(c)
	}
	clear(s.pending)
}

// waitCond waits on c (whose lock is held) for at most d.
func waitCond(c *sync.Cond, d time.Duration) {
	t := time.AfterFunc(d, func() {
		c.L.Lock()
		c.Broadcast()
		c.L.Unlock()
	})
	c.Wait()
	t.Stop()
}

// Restart stops the server if it runs and serves again on the same ports
// (keeping persistent instances and the lastRefTime clock). Like t.Fatal it
// must be called from the test's goroutine.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	s.life.Lock()
	defer s.life.Unlock()
	deadline := time.Now().Add(restartDeadline)
	var hl, gl net.Listener
	var err error
	for {
		hl, gl, err = s.listenSame()
		if err == nil || time.Now().After(deadline) || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.tb.Fatalf("nacostest: restart on ports %d/%d: %v", s.httpPort, s.grpcPort, err)
	}
	s.serve(hl, gl)
}

func (s *Server) listenSame() (net.Listener, net.Listener, error) {
	hl, err := net.Listen("tcp", s.HTTPAddr())
	if err != nil {
		return nil, nil, err
	}
	gl, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(s.grpcPort))
	if err != nil {
		hl.Close()
		return nil, nil, err
	}
	return hl, gl, nil
}

// DropConnections ends every client's bi-stream, as a server does when it
// unregisters connections: the ephemeral instances of those connections
// vanish (subscribers on other connections get pushes) and the clients
// reconnect and redo their registrations and subscriptions. It returns the
// number of connections dropped.
func (s *Server) DropConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.conns {
		c.close()
		n++
	}
	return n
}

// Connections is the number of set-up connections.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// ConnectionIDs lists the set-up connections' ids, sorted.
func (s *Server) ConnectionIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.conns))
	for id := range s.conns {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Subscribers is the number of connections subscribed to the service.
func (s *Server) Subscribers(k ServiceKey) int {
	k = k.norm()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.conns {
		if _, ok := c.subs[k]; ok {
			n++
		}
	}
	return n
}

// Pushes is the number of NotifySubscriberRequests sent, and Acks the
// number of client responses received on the streams.
func (s *Server) Pushes() (pushes, acks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pushes, s.acks
}

// Requests is the number of unary requests of the payload type (e.g.
// "SubscribeServiceRequest") served so far.
func (s *Server) Requests(typ string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[typ]
}

// Instances lists the service's instances (enabled or not), sorted by
// address then cluster.
func (s *Server) Instances(namespace, group, service string) []Instance {
	k := ServiceKey{namespace, group, service}.norm()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Instance
	for _, in := range s.instancesLocked(k) {
		out = append(out, in.export())
	}
	return out
}

// SetHealthy sets the health of every instance of the service at addr
// ("ip:port") and pushes the change.
func (s *Server) SetHealthy(k ServiceKey, addr string, healthy bool) error {
	return s.modify(k, addr, func(in *inst) { in.healthy = healthy })
}

// SetEnabled enables or disables the instances at addr and pushes.
func (s *Server) SetEnabled(k ServiceKey, addr string, enabled bool) error {
	return s.modify(k, addr, func(in *inst) { in.enabled = enabled })
}

// SetWeight sets the weight of the instances at addr and pushes.
func (s *Server) SetWeight(k ServiceKey, addr string, weight float64) error {
	return s.modify(k, addr, func(in *inst) { in.weight = weight })
}

func (s *Server) modify(k ServiceKey, addr string, f func(*inst)) error {
	k = k.norm()
	host, port, err := splitAddr(addr)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	found := false
	for _, in := range s.instancesLocked(k) {
		if in.ip == host && in.port == port {
			f(in)
			found = true
		}
	}
	if !found {
		return fmt.Errorf("nacostest: no instance %s in %s/%s@@%s", addr, k.Namespace, k.Group, k.Service)
	}
	s.touchLocked(k)
	return nil
}

func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("nacostest: address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("nacostest: address %q: bad port", addr)
	}
	return host, port, nil
}

// groupedName is Nacos's "group@@service".
func groupedName(group, service string) string { return group + "@@" + service }

// splitGroupedName splits "group@@service"; a plain name takes group.
func splitGroupedName(name, group string) (string, string) {
	if g, n, ok := strings.Cut(name, "@@"); ok {
		return g, n
	}
	return group, name
}
