package nacos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client/naming_cache"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client/naming_grpc"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/common/http_agent"
	"github.com/nacos-group/nacos-sdk-go/v2/common/logger"
	"github.com/nacos-group/nacos-sdk-go/v2/common/nacos_server"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/util"
)

// Defaults.
const (
	DefaultPort      = 8848
	DefaultNamespace = "public"
	DefaultGroup     = "DEFAULT_GROUP"
	DefaultCluster   = "DEFAULT"
	// grpcPortOffset is the SDK's convention: gRPC port = HTTP port + 1000.
	grpcPortOffset = 1000
)

// ErrPoolClosed is returned for clients asked of a closed Pool.
var ErrPoolClosed = errors.New("nacos: pool closed")

// PoolOption tunes a Pool.
type PoolOption func(*poolOptions)

type poolOptions struct {
	requestTimeout time.Duration
	healthInterval time.Duration
	tempDir        string
	logDir         string
	logLevel       string
}

// WithRequestTimeout bounds each SDK request (subscribe, register,
// deregister; default 5s).
func WithRequestTimeout(d time.Duration) PoolOption {
	return func(o *poolOptions) {
		if d > 0 {
			o.requestTimeout = d
		}
	}
}

// WithHealthInterval sets how often each SDK client's connection state is
// sampled (a local read, no network; default 50ms). The SDK keeps a client
// unhealthy for at least 100ms while it reconnects, so sampling at half that
// sees every reconnect unless the sampler is descheduled that long.
func WithHealthInterval(d time.Duration) PoolOption {
	return func(o *poolOptions) {
		if d > 0 {
			o.healthInterval = d
		}
	}
}

// WithTempDir sets the directory under which each SDK client gets its
// private cache directory, removed when the client closes (default
// os.TempDir()).
func WithTempDir(dir string) PoolOption {
	return func(o *poolOptions) { o.tempDir = dir }
}

// WithSDKLogDir sets where the SDK logs (default
// <os.TempDir()>/outrigger-nacos-sdk). The SDK's logger is process-wide:
// only the first client created in the process sets it up.
func WithSDKLogDir(dir string) PoolOption {
	return func(o *poolOptions) {
		if dir != "" {
			o.logDir = dir
		}
	}
}

// WithSDKLogLevel sets the SDK's log level: "debug", "info", "warn" or
// "error" (default). Like WithSDKLogDir, it applies to the first client
// created in the process only.
func WithSDKLogLevel(level string) PoolOption {
	return func(o *poolOptions) {
		if level != "" {
			o.logLevel = level
		}
	}
}

// Pool owns the SDK clients. Sources on the same (servers, gRPC port,
// namespace, credentials) share one client, reference-counted: it is
// created by the first Run and closed when the last Run returns. Each
// Registrar gets a client of its own for the duration of its Run. A Pool is
// created by the caller (one per process is enough) and passed to NewSource
// and NewRegistrar; it holds no package state.
type Pool struct {
	opts poolOptions

	mu        sync.Mutex
	closed    bool
	shared    map[clientKey]*entry
	dedicated map[*client]struct{}
	created   int

	// sdkMu serializes SDK client creation and shutdown: the SDK keeps a
	// process-wide registry of its RPC clients that it mutates without
	// locking on shutdown.
	sdkMu sync.Mutex
}

// NewPool returns an empty Pool. It creates no client and touches no disk.
func NewPool(opts ...PoolOption) *Pool {
	o := poolOptions{
		requestTimeout: 5 * time.Second,
		healthInterval: 50 * time.Millisecond,
		logDir:         filepath.Join(os.TempDir(), "outrigger-nacos-sdk"),
		logLevel:       "error",
	}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return &Pool{opts: o, shared: map[clientKey]*entry{}, dedicated: map[*client]struct{}{}}
}

// PoolStats describes a Pool's clients.
type PoolStats struct {
	// SharedClients is the number of live shared SDK clients (one per
	// servers, namespace and credentials in use by Sources).
	SharedClients int
	// SharedRefs is the number of Source runs holding them.
	SharedRefs int
	// DedicatedClients is the number of live Registrar clients.
	DedicatedClients int
	// Created counts the SDK clients created since NewPool.
	Created int
}

// Stats reports the Pool's clients.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := PoolStats{DedicatedClients: len(p.dedicated), Created: p.created}
	for _, e := range p.shared {
		st.SharedClients++
		st.SharedRefs += e.refs
	}
	return st
}

// Close closes every client still open. Sources and Registrars should have
// returned from Run first; their clients would be closed under them.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	var entries []*entry
	for k, e := range p.shared {
		entries = append(entries, e)
		delete(p.shared, k)
	}
	var cs []*client
	for c := range p.dedicated {
		cs = append(cs, c)
		delete(p.dedicated, c)
	}
	p.mu.Unlock()
	for _, e := range entries {
		<-e.ready
		if e.c != nil {
			cs = append(cs, e.c)
		}
	}
	for _, c := range cs {
		p.closeClient(c)
	}
	return nil
}

// clientKey identifies a shareable client.
type clientKey struct {
	servers   string // normalized, sorted "host:port" list
	grpcPort  int
	namespace string
	username  string
	password  string
}

// connConfig is what a client needs to reach the servers.
type connConfig struct {
	Servers            []string
	GRPCPort           int
	Namespace          string
	Username, Password string
}

// key validates the connection settings and returns the client key.
func (cc connConfig) key() (clientKey, error) {
	if len(cc.Servers) == 0 {
		return clientKey{}, errors.New("no servers")
	}
	if cc.GRPCPort < 0 || cc.GRPCPort > 65535 {
		return clientKey{}, fmt.Errorf("grpc port %d out of 1..65535", cc.GRPCPort)
	}
	var servers []string
	for _, s := range cc.Servers {
		host, port, err := splitServer(s)
		if err != nil {
			return clientKey{}, err
		}
		if cc.GRPCPort == 0 && port+grpcPortOffset > 65535 {
			return clientKey{}, fmt.Errorf("server %q: gRPC port %d (port+%d) out of range; set GRPCPort", s, port+grpcPortOffset, grpcPortOffset)
		}
		servers = append(servers, net.JoinHostPort(host, strconv.Itoa(port)))
	}
	slices.Sort(servers)
	servers = slices.Compact(servers)
	ns := cc.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	return clientKey{
		servers:   strings.Join(servers, ","),
		grpcPort:  cc.GRPCPort,
		namespace: ns,
		username:  cc.Username,
		password:  cc.Password,
	}, nil
}

// splitServer parses "host[:port]" (port default 8848).
func splitServer(s string) (string, int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", 0, errors.New("empty server address")
	}
	if strings.Contains(s, "://") {
		return "", 0, fmt.Errorf("server %q: want host:port without scheme", s)
	}
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		// No port (a bare host or IPv6 address).
		host, p = strings.Trim(s, "[]"), strconv.Itoa(DefaultPort)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("server %q: bad port", s)
	}
	if host == "" {
		return "", 0, fmt.Errorf("server %q: empty host", s)
	}
	return host, port, nil
}

// serverConfigs turns the key into the SDK's server list.
func (k clientKey) serverConfigs() []constant.ServerConfig {
	var out []constant.ServerConfig
	for _, s := range strings.Split(k.servers, ",") {
		host, port, _ := splitServer(s)
		grpc := k.grpcPort
		if grpc == 0 {
			grpc = port + grpcPortOffset
		}
		out = append(out, constant.ServerConfig{
			Scheme:      "http",
			ContextPath: "/nacos",
			IpAddr:      host,
			Port:        uint64(port),
			GrpcPort:    uint64(grpc),
		})
	}
	return out
}

// entry is a shared client with its reference count.
type entry struct {
	key   clientKey
	refs  int
	ready chan struct{} // closed once c or err is set
	c     *client
	err   error
}

// lease is a Source's hold on a shared client.
type lease struct {
	p *Pool
	e *entry
}

func (l *lease) client() *client { return l.e.c }

// acquire returns the shared client for k, creating it if needed.
func (p *Pool) acquire(ctx context.Context, k clientKey) (*lease, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	e := p.shared[k]
	creator := e == nil
	if creator {
		e = &entry{key: k, ready: make(chan struct{})}
		p.shared[k] = e
	}
	e.refs++
	p.mu.Unlock()

	if creator {
		c, err := p.newClient(k)
		p.mu.Lock()
		e.c, e.err = c, err
		if err != nil && p.shared[k] == e {
			// Later acquires start over.
			delete(p.shared, k)
		}
		close(e.ready)
		p.mu.Unlock()
	}
	l := &lease{p: p, e: e}
	select {
	case <-e.ready:
	case <-ctx.Done():
		l.release()
		return nil, ctx.Err()
	}
	if e.err != nil {
		l.release()
		return nil, e.err
	}
	return l, nil
}

// release drops the hold; the last one closes the client.
func (l *lease) release() {
	p, e := l.p, l.e
	p.mu.Lock()
	e.refs--
	last := e.refs == 0
	if last && p.shared[e.key] == e {
		delete(p.shared, e.key)
	}
	p.mu.Unlock()
	if !last {
		return
	}
	// The creator holds a reference until creation is done, so ready is
	// closed by now.
	<-e.ready
	if e.c != nil {
		p.closeClient(e.c)
	}
}

// acquireDedicated creates a client that only the caller uses.
func (p *Pool) acquireDedicated(k clientKey) (*client, error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, ErrPoolClosed
	}
	c, err := p.newClient(k)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.closeClient(c)
		return nil, ErrPoolClosed
	}
	p.dedicated[c] = struct{}{}
	p.mu.Unlock()
	return c, nil
}

func (p *Pool) releaseDedicated(c *client) {
	p.mu.Lock()
	delete(p.dedicated, c)
	p.mu.Unlock()
	p.closeClient(c)
}

// newClient creates and starts an SDK naming client: a gRPC naming proxy
// (with the SDK's redo of registrations and subscriptions on reconnect)
// over a service-info cache. It does not wait for the connection: when no
// server answers, the SDK keeps reconnecting in the background.
func (p *Pool) newClient(k clientKey) (*client, error) {
	p.sdkMu.Lock()
	defer p.sdkMu.Unlock()

	// The client's own directory holds its service cache files.
	dir, err := os.MkdirTemp(p.opts.tempDir, "outrigger-nacos-")
	if err != nil {
		return nil, fmt.Errorf("nacos: client directory: %w", err)
	}
	cc := constant.ClientConfig{
		NamespaceId:          k.namespace,
		TimeoutMs:            uint64(p.opts.requestTimeout.Milliseconds()),
		BeatInterval:         5000,
		UpdateThreadNum:      1,
		NotLoadCacheAtStart:  true,
		UpdateCacheWhenEmpty: true,
		DisableUseSnapShot:   true,
		Username:             k.username,
		Password:             k.password,
		AppName:              "outrigger",
		CacheDir:             dir,
		LogDir:               p.opts.logDir,
		LogLevel:             p.opts.logLevel,
		LogRollingConfig:     &constant.ClientLogRollingConfig{MaxSize: 10, MaxBackups: 2, MaxAge: 7},
		// Appointed: the SDK must not take TLS settings from the
		// environment.
		TLSCfg: constant.TLSConfig{Appointed: true},
	}
	// The SDK's logger is process-wide and initialized once (the first
	// call wins); without this the SDK would log at debug level to stderr.
	// It lives in a stable directory, not in a client's: it outlives the
	// client that set it up.
	if err := logger.InitLogger(logger.BuildLoggerConfig(cc)); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("nacos: sdk logger: %w", err)
	}
	// The SDK memoizes the local IP in an unsynchronized variable read by
	// every request; compute it before any SDK goroutine starts.
	_ = util.LocalIP()

	ctx, cancel := context.WithCancel(context.Background())
	holder := naming_cache.NewServiceInfoHolder(cc.NamespaceId, cc.CacheDir, cc.UpdateCacheWhenEmpty, cc.NotLoadCacheAtStart)
	servers := k.serverConfigs()
	srv, err := nacos_server.NewNacosServer(ctx, servers, cc, &http_agent.HttpAgent{TlsConfig: cc.TLSCfg},
		cc.TimeoutMs, "", map[string][]string{"Request-Module": {"Naming"}})
	if err != nil {
		cancel()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("nacos: %w", err)
	}
	proxy, err := naming_grpc.NewNamingGrpcProxy(ctx, cc, srv, holder)
	if err != nil {
		cancel()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("nacos: %w", err)
	}
	c := &client{
		key:      k,
		dir:      dir,
		cancel:   cancel,
		holder:   holder,
		proxy:    proxy,
		interval: p.opts.healthInterval,
		watchers: map[*watcher]struct{}{},
		subs:     map[string]int{},
		done:     make(chan struct{}),
	}
	c.sample(time.Now())
	go c.monitor(ctx)

	p.mu.Lock()
	p.created++
	p.mu.Unlock()
	return c, nil
}

func (p *Pool) closeClient(c *client) {
	p.sdkMu.Lock()
	defer p.sdkMu.Unlock()
	c.close()
}

// connState is a client's connection as last sampled.
type connState struct {
	connected bool
	// since is when the current state was first seen.
	since time.Time
	// epoch counts connections: it grows by one each time the client is
	// seen connected after not being connected (the first connection is 1).
	epoch uint64
}

// client is one SDK naming client.
type client struct {
	key      clientKey
	dir      string
	cancel   context.CancelFunc
	holder   *naming_cache.ServiceInfoHolder
	proxy    *naming_grpc.NamingGrpcProxy
	interval time.Duration
	done     chan struct{}
	once     sync.Once

	mu       sync.Mutex
	st       connState
	watchers map[*watcher]struct{}

	subMu sync.Mutex     // serializes subscribe and unsubscribe
	subs  map[string]int // grouped service name -> watchers
}

// watcher is woken (non-blocking, coalesced) on every change of its
// service in the cache and every change of the connection state.
//
// Concurrency: mu guards since; the other fields are set before the
// watcher is shared.
type watcher struct {
	group, service string // "" for a connection-state watcher
	notify         chan struct{}
	cb             *func([]model.Instance, error)
	wrapper        *naming_cache.SubscribeCallbackFuncWrapper

	mu    sync.Mutex
	since time.Time // arrival of the earliest wake-up not taken yet
}

// take returns when the earliest wake-up not taken yet arrived (zero when
// none) and marks every one so far as taken.
func (w *watcher) take() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.since
	w.since = time.Time{}
	return t
}

func (w *watcher) wake() {
	now := time.Now()
	w.mu.Lock()
	if w.since.IsZero() {
		w.since = now
	}
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (c *client) state() connState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

// sample reads the SDK's connection state (a local read).
func (c *client) sample(now time.Time) {
	up := c.proxy.ServerHealthy()
	c.mu.Lock()
	defer c.mu.Unlock()
	if up == c.st.connected && !c.st.since.IsZero() {
		return
	}
	c.st.connected = up
	c.st.since = now
	if up {
		c.st.epoch++
	}
	for w := range c.watchers {
		w.wake()
	}
}

func (c *client) monitor(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c.sample(now)
		}
	}
}

// close shuts the SDK client down (the server then drops the connection
// and any ephemeral instance it registered) and removes its directory.
func (c *client) close() {
	c.once.Do(func() {
		c.proxy.CloseClient()
		c.cancel()
		<-c.done
		os.RemoveAll(c.dir)
	})
}

// watchState adds a watcher woken on connection changes only.
func (c *client) watchState() *watcher {
	w := &watcher{notify: make(chan struct{}, 1)}
	c.mu.Lock()
	c.watchers[w] = struct{}{}
	c.mu.Unlock()
	return w
}

// watchService adds a watcher woken on connection changes and on every
// change of the service in the SDK's cache. It does not subscribe.
func (c *client) watchService(group, service string) *watcher {
	w := &watcher{group: group, service: service, notify: make(chan struct{}, 1)}
	cb := func([]model.Instance, error) { w.wake() }
	w.cb = &cb
	w.wrapper = naming_cache.NewSubscribeCallbackFuncWrapper(naming_cache.NewClusterSelector(nil), w.cb)
	c.holder.RegisterCallback(util.GetGroupName(service, group), "", w.wrapper)
	c.subMu.Lock()
	c.subs[util.GetGroupName(service, group)]++
	c.subMu.Unlock()
	c.mu.Lock()
	c.watchers[w] = struct{}{}
	c.mu.Unlock()
	return w
}

// unwatch removes the watcher; the last watcher of a service unsubscribes.
func (c *client) unwatch(w *watcher) {
	c.mu.Lock()
	delete(c.watchers, w)
	c.mu.Unlock()
	if w.service == "" {
		return
	}
	grouped := util.GetGroupName(w.service, w.group)
	c.holder.DeregisterCallback(grouped, "", w.wrapper)
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.subs[grouped]--
	if c.subs[grouped] > 0 {
		return
	}
	delete(c.subs, grouped)
	// Best effort, and only while connected: the SDK's request path races
	// with its own reconnect (nacos-sdk-go#905). Disconnected, the server
	// has forgotten the subscription with the connection; the SDK's redo
	// may subscribe it again after a reconnect, which is harmless (nobody
	// is called back) and ends when the client closes.
	if c.state().connected {
		_ = c.proxy.Unsubscribe(w.service, w.group, "")
	}
	c.holder.StopUpdateIfContain(grouped, "")
}

// subscribe (re)subscribes the watcher's service and stores the answer in
// the cache, which wakes the service's watchers if it changed. Subscribing
// is idempotent; the SDK redoes it after every reconnect.
func (c *client) subscribe(w *watcher) error {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	svc, err := c.proxy.Subscribe(w.service, w.group, "")
	if err != nil {
		return err
	}
	c.holder.ProcessService(&svc)
	return nil
}

// snapshot reads the service from the cache.
func (c *client) snapshot(group, service string) (model.Service, bool) {
	return c.holder.GetServiceInfo(service, group, "")
}
