package config

import "time"

// File is a decoded, validated configuration file.
type File struct {
	// Path is the name given to Parse (the path given to Load); it is used
	// in error messages.
	Path      string
	Proxy     Proxy
	Admin     Admin
	Fleet     Fleet
	Log       Log
	Upstreams []Upstream
	Services  []Service
	// Routes holds every route of the file, in file order: the top-level
	// ones and the ones nested in services, whose Service is set to the
	// enclosing service's name.
	Routes []Route
	// Register is the local service to announce; nil when absent.
	Register *Register
	// Tracing is the tracing block; nil when absent (tracing off).
	Tracing *Tracing
	// Certificates are the TLS certificates of the ssl listeners, in file
	// order (ids set).
	Certificates []Certificate
	// Layer holds a declarative document's admin-layer keys (canaries,
	// rollouts, overrides: ParseDeclarative only); nil otherwise.
	Layer *LayerKeys
	// Plugins, Consumers and KeyAuths (consumers' key-auth credentials)
	// are Kong's entities of those names, in file order (ids set; see
	// plugins.go).
	Plugins   []Plugin
	Consumers []Consumer
	KeyAuths  []KeyAuth
	// SNIs are the snis entities (Kong's): those listed in a certificate's
	// snis and the top-level ones, in file order. Each certificate's SNIs
	// holds the names of its own.
	SNIs []SNI
}

// Proxy is the "proxy" section.
type Proxy struct {
	Pos Pos
	// Listen is the proxy's (first) "host:port" listen address.
	Listen string
	// Zone is the sidecar's own zone: upstreams prefer targets in it
	// (zone-aware routing). Empty means the OUTRIGGER_ZONE environment
	// variable, if set. Taken at start; a reload keeps the running value.
	Zone string
	// Listeners are every proxy listener (Kong's proxy_listen), the first
	// one at Listen. Parse always sets it; see ListenersOrDefault.
	Listeners []Listener
	// SSLVerifyClient is VerifyClientOff (the default), VerifyClientOn
	// (a client certificate signed by SSLClientCertificate is required)
	// or VerifyClientOptional (verified when sent), on every ssl listener.
	SSLVerifyClient string
	// SSLClientCertificate is the path of the PEM CA bundle client
	// certificates are verified against (reloaded when it changes).
	SSLClientCertificate string
	// SSLClientSubjectHeader, when set, names the request header that
	// carries the verified client certificate's subject upstream; a value
	// sent by the client under that name is always removed.
	SSLClientSubjectHeader string
	// SSLPollInterval is how often certificate and CA files are checked
	// for changes.
	SSLPollInterval time.Duration
	// MaxBodySize is the largest request body accepted, in bytes; 0 means
	// unlimited.
	MaxBodySize         int64
	DrainTimeout        time.Duration
	MaxIdleConnsPerHost int
	IdleConnTimeout     time.Duration
	// The client side of the proxy listener (taken when the listener
	// starts; a reload keeps the running values).
	//
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request (Kong's keepalive_timeout); positive.
	IdleTimeout time.Duration
	// HeaderTimeout bounds reading a request's line and headers (nginx's
	// client_header_timeout); positive. A client that has sent part of a
	// request when it expires is answered 408 and disconnected.
	HeaderTimeout time.Duration
	// MaxConnections caps the client connections open at once; 0 means
	// unlimited. At the cap, new connections wait in the kernel's accept
	// backlog until one closes.
	MaxConnections int
	// Engine serves the proxy listener: EngineH1 (Outrigger's own
	// HTTP/1.1 engine, the default) or EngineNetHTTP (Go's net/http
	// server and reverse proxy).
	Engine string
	// H2C serves HTTP/2 with prior knowledge (a connection starting with
	// the HTTP/2 preface) on the plaintext listener; off by default.
	// Engine h1 only. "Upgrade: h2c" is never honoured.
	H2C bool
	// HTTP2MaxConcurrentStreams is the SETTINGS_MAX_CONCURRENT_STREAMS
	// an HTTP/2 client is given (nginx's http2_max_concurrent_streams);
	// streams beyond it are refused. 1..2^31-1.
	HTTP2MaxConcurrentStreams int
	// HTTP2MaxHeaderListSize is the SETTINGS_MAX_HEADER_LIST_SIZE an
	// HTTP/2 client is given, in bytes as HTTP/2 counts them (each
	// field's name and value plus 32); a request over it is answered
	// 431. 1KB..16MB.
	HTTP2MaxHeaderListSize int64
}

// Proxy engines.
const (
	EngineH1      = "h1"
	EngineNetHTTP = "net/http"
)

// Admin is the "admin" section.
type Admin struct {
	Pos Pos
	// Listen is the admin API's "host:port" listen address.
	Listen string
	// Token, when set, is required on every admin request (Authorization:
	// Bearer or Kong-Admin-Token). A non-loopback Listen requires it.
	Token string
	// StateFile persists admin changes (store "file", the default).
	StateFile string
	// Store is "file" (StateFile; in memory when empty) or "consul"
	// (fleet mode: Consul KV, shared by every sidecar using the same key).
	Store string
	// Consul is the fleet-mode KV location.
	Consul AdminConsul
}

// AdminConsul is where fleet mode keeps the admin layer.
type AdminConsul struct {
	Address  string
	Key      string
	TokenEnv string
}

// Log is the "log" section.
type Log struct {
	Pos Pos
	// Level is one of debug, info, warn, error.
	Level string
	// Format is one of auto, json, console.
	Format    string
	AccessLog bool
	// AccessLogSuccessSampleRatio is the share (0..1) of successful
	// requests (status below 400, gRPC OK) that get an access line;
	// failed ones always do. Default 1.
	AccessLogSuccessSampleRatio float64
}

// Upstream is a named set of targets with a load-balancing algorithm. It
// is the one definition of the entity: the file decodes into it, the
// admin layer (package state) stores it as JSON under the tags below, and
// the admin API edits it.
//
// A decoded (file) upstream and an effective one (Resolve) have every
// setting filled in and every block set, except SlowStart and RetryPolicy,
// which are nil for none. An upstream stored in the admin layer may leave
// settings out, and then takes the file's upstream of the same name (or
// the defaults): an empty string or zero Slots, a nil StickyTTL and a nil
// block mean "the file's"; Resolve is the one step that applies that.
type Upstream struct {
	// Meta is the admin layer's bookkeeping; in a file upstream only ID
	// is set: the file's id, a lower-cased UUID, or "" when it gives none
	// (the admin API then derives one from the name, StableID).
	Meta
	Pos Pos `json:"-"`
	// Discovery lists the upstream's discovery sources; nil when absent.
	// Only the file sets it: the admin layer keeps the file's.
	Discovery *Discovery `json:"-"`
	// Name is hostname-like: dot-separated labels of letters, digits, '-'
	// and '_'.
	Name string `json:"name"`
	// Algorithm is one of round-robin, consistent-hashing,
	// least-connections, latency, sticky-sessions, random.
	Algorithm string `json:"algorithm,omitempty"`
	// HashOn and HashFallback are one of none, ip, header, cookie, path,
	// query_arg, uri_capture. The HashOn* fields below hold the name the
	// chosen input is read from; the one needed is always set.
	HashOn           string `json:"hash_on,omitempty"`
	HashFallback     string `json:"hash_fallback,omitempty"`
	HashOnHeader     string `json:"hash_on_header,omitempty"`
	HashOnCookie     string `json:"hash_on_cookie,omitempty"`
	HashOnCookiePath string `json:"hash_on_cookie_path,omitempty"`
	HashOnQueryArg   string `json:"hash_on_query_arg,omitempty"`
	HashOnURICapture string `json:"hash_on_uri_capture,omitempty"`
	// Slots is the size of the consistent-hashing ring.
	Slots        int    `json:"slots,omitempty"`
	StickyCookie string `json:"sticky_sessions_cookie,omitempty"`
	// StickyTTL is the sticky-session cookie's lifetime; 0 means a session
	// cookie (StickyLifetime reads it).
	StickyTTL *Duration `json:"sticky_sessions_cookie_ttl,omitempty"`
	// SlowStart is nil unless the upstream has a slow_start block. In the
	// admin layer a block of zero Window removes the file's.
	SlowStart    *SlowStart    `json:"slow_start,omitempty"`
	Panic        *Panic        `json:"panic,omitempty"`
	Healthchecks *Healthchecks `json:"healthchecks,omitempty"`
	// CircuitBreakers limits what is in progress at once; zero fields
	// are unlimited.
	CircuitBreakers *CircuitBreakers `json:"circuit_breakers,omitempty"`
	// RetryBudget bounds retries to a share of recent requests; on by
	// default.
	RetryBudget *RetryBudget `json:"retry_budget,omitempty"`
	// RetryPolicy is how the upstream's requests are retried; nil when
	// the upstream has no retry_policy block (the built-in behaviour).
	RetryPolicy *RetryPolicy `json:"retry_policy,omitempty"`
	// Targets is the upstream's static targets, possibly none.
	Targets []Target `json:"targets,omitempty"`
	// Tags are checked by CheckTag, distinct; nil when absent.
	Tags []string `json:"tags,omitempty"`
}

// StickyLifetime is the sticky-session cookie's lifetime of an effective
// upstream (0: a session cookie).
func (u *Upstream) StickyLifetime() time.Duration {
	if u.StickyTTL == nil {
		return DefaultStickyTTL
	}
	return time.Duration(*u.StickyTTL)
}

// Target is one backend address of an upstream; the admin layer stores it
// under the tags below.
type Target struct {
	// Meta is the admin layer's bookkeeping; a file target sets only ID,
	// the file's ("" when it gives none; see Upstream).
	Meta
	Pos Pos `json:"-"`
	// Target is the normalised "host:port": host lower-cased, IP addresses
	// in canonical form, IPv6 in brackets.
	Target string `json:"target"`
	// Weight is 0..65535; 0 means the target receives no new requests.
	Weight int `json:"weight"`
	// Tags are checked by CheckTag, distinct; nil when absent.
	Tags []string `json:"tags,omitempty"`
	// Priority is the target's priority level, 0..MaxPriority (lower
	// first); Backup marks a target that takes traffic only when no
	// primary target is healthy.
	Priority int  `json:"priority,omitempty"`
	Backup   bool `json:"backup,omitempty"`
	// Zone is the target's zone for zone-aware routing ("" when unset).
	Zone string `json:"zone,omitempty"`
}

// Service is a backend the routes proxy to. It is also the admin layer's
// persisted service (package state): the json tags are that shape, which
// must stay readable by earlier versions.
type Service struct {
	Pos Pos `json:"-"`
	// Meta's ID is the file's id; "" when it gives none (see Upstream.ID).
	Meta
	Name string `json:"name"`
	// Protocol is http, https, grpc, grpcs or h2c (ServiceProtocols).
	Protocol string `json:"protocol"`
	// Host is an upstream's name, or a host name or IP address (IPv6
	// without brackets).
	Host string `json:"host"`
	Port int    `json:"port"`
	// Path is the path prefix added to proxied requests; "" when unset,
	// otherwise it starts with '/'.
	Path           string `json:"path,omitempty"`
	Retries        int    `json:"retries"`
	ConnectTimeout Millis `json:"connect_timeout"`
	ReadTimeout    Millis `json:"read_timeout"`
	WriteTimeout   Millis `json:"write_timeout"`
	// TLS towards the targets (https and grpcs only), Kong's names.
	// TLSVerify checks the target's certificate; nil means the default,
	// which is to verify (Kong's default is off: Outrigger keeps Go's
	// verifying default so an https target is never trusted silently).
	TLSVerify *bool `json:"tls_verify,omitempty"`
	// TLSVerifyDepth caps the chain above the leaf; nil or 0 means no cap
	// (set, even to 0, only where TLS applies).
	TLSVerifyDepth *int `json:"tls_verify_depth,omitempty"`
	// CACertificates are PEM file paths or inline PEM (Kong takes ids of
	// CA certificate entities instead); the system roots when empty.
	CACertificates []string `json:"ca_certificates,omitempty"`
	// ClientCertificate is presented to targets asking for one; nil for
	// none.
	ClientCertificate *ClientCertificate `json:"client_certificate,omitempty"`
	// GRPCIdempotentMethods are the gRPC methods retried on another target
	// after a trailers-only UNAVAILABLE ("/pkg.Service/Method" or
	// "/pkg.Service/*").
	GRPCIdempotentMethods []string `json:"grpc_idempotent_methods,omitempty"`
	// Tags are checked by CheckTag, distinct; nil when absent.
	Tags []string `json:"tags,omitempty"`
}

// VerifyDepth is the cap on the chain above the leaf; 0 means none.
func (s *Service) VerifyDepth() int {
	if s.TLSVerifyDepth == nil {
		return 0
	}
	return *s.TLSVerifyDepth
}

// Route matches requests and sends them to a service. It is also the
// admin layer's persisted route (package state): the json tags are that
// shape, which must stay readable by earlier versions.
type Route struct {
	Pos Pos `json:"-"`
	// Meta's ID is the file's id; "" when it gives none (see Upstream.ID).
	Meta
	Name string `json:"name"`
	// Service is the service's name; "" for a route without one (Kong
	// answers its requests 503).
	Service string `json:"service"`
	// Paths are prefixes starting with '/', or regular expressions
	// written with a leading '~' (kept in the string).
	Paths []string `json:"paths,omitempty"`
	// Hosts are lower-cased host names, possibly with one wildcard label
	// at either end ("*.example.com", "example.*") and a ":port".
	Hosts []string `json:"hosts,omitempty"`
	// Methods are upper-cased.
	Methods []string `json:"methods,omitempty"`
	// Headers maps lower-cased header names to the values that match.
	Headers       map[string][]string `json:"headers,omitempty"`
	StripPath     bool                `json:"strip_path"`
	PreserveHost  bool                `json:"preserve_host"`
	RegexPriority int                 `json:"regex_priority,omitempty"`
	// PathHandling is how the service path and the request path combine
	// upstream: "v0" (the default) or "v1", as Kong's path_handling. A
	// layer written before it existed holds "" (WithDefaults).
	PathHandling string `json:"path_handling,omitempty"`
	// Protocols are Kong's route protocols: nil or a subset of http and
	// https (every request), or of grpc and grpcs (gRPC over HTTP/2 only).
	Protocols []string `json:"protocols,omitempty"`
	// HTTPSRedirectStatusCode answers a plaintext request to a route whose
	// protocols are [https]: 426 (the default), or a redirect to https
	// (HTTPSRedirectCodes). A layer written before it existed holds 0.
	HTTPSRedirectStatusCode int `json:"https_redirect_status_code,omitempty"`
	// Tags are checked by CheckTag, distinct; nil when absent.
	Tags []string `json:"tags,omitempty"`
}

// WithDefaults is r with the defaults of the settings a layer written
// before they existed leaves zero (path_handling,
// https_redirect_status_code).
func (r Route) WithDefaults() Route {
	if r.PathHandling == "" {
		r.PathHandling = DefaultPathHandling
	}
	if r.HTTPSRedirectStatusCode == 0 {
		r.HTTPSRedirectStatusCode = DefaultHTTPSRedirect
	}
	return r
}

// SlowStart ramps a new or recovered target's weight up over a window.
type SlowStart struct {
	Window           Duration `json:"window"`
	Aggression       float64  `json:"aggression"`
	MinWeightPercent float64  `json:"min_weight_percent"`
}

// CircuitBreakers are an upstream's limits (Envoy's thresholds) on counts
// in progress at once; 0 means unlimited. Over a limit a request is
// answered 503 at once.
type CircuitBreakers struct {
	// MaxRequests bounds the requests in progress to the upstream.
	MaxRequests int `json:"max_requests" yaml:"max_requests"`
	// MaxRetries bounds the retries in progress to the upstream.
	MaxRetries int `json:"max_retries" yaml:"max_retries"`
	// MaxConnections bounds the open connections to the upstream's
	// targets (the HTTP/1.1 engine's pools).
	MaxConnections int `json:"max_connections" yaml:"max_connections"`
	// MaxPendingRequests bounds the requests waiting for a connection
	// while MaxConnections are open; 0: none waits (503 at once).
	MaxPendingRequests int `json:"max_pending_requests" yaml:"max_pending_requests"`
}

// RetryPolicy is an upstream's retry policy (Envoy's retry_policy). In
// JSON (MarshalJSON) durations are seconds and the backoff is nested:
// {"retry_on", "per_try_timeout", "timeout", "retry_backoff":
// {"base_interval", "max_interval"}}.
type RetryPolicy struct {
	// RetryOn lists RetryOnConditions names, HTTP statuses (as decimal
	// strings) and GRPCRetryOnConditions names.
	RetryOn []string
	// PerTryTimeout bounds each attempt, Timeout all of them with the
	// backoff between, both up to the response head; 0: none.
	PerTryTimeout time.Duration
	Timeout       time.Duration
	// BackoffBase and BackoffMax shape the exponential backoff with full
	// jitter between tries.
	BackoffBase time.Duration
	BackoffMax  time.Duration
}

// SuccessRate is success-rate outlier ejection (Envoy's outlier_detection
// success_rate_* settings).
type SuccessRate struct {
	// MinimumHosts is how many targets need RequestVolume requests in an
	// interval for the rates to be compared.
	MinimumHosts int `json:"minimum_hosts"`
	// RequestVolume is the requests a target needs in an interval to be
	// judged.
	RequestVolume int `json:"request_volume"`
	// StdevFactor: a target is ejected when its success rate is under
	// mean − (StdevFactor/1000) × stdev.
	StdevFactor int `json:"stdev_factor"`
	// Interval is how often the rates are compared.
	Interval Seconds `json:"interval"`
}

// RetryBudget bounds an upstream's retries (Linkerd's shape): retries may
// add at most RetryRatio of the requests of the last TTL, plus
// MinRetriesPerSecond.
type RetryBudget struct {
	RetryRatio          float64 `json:"retry_ratio"`
	MinRetriesPerSecond float64 `json:"min_retries_per_second"`
	TTL                 Seconds `json:"ttl"`
}

// Panic is the upstream's panic-mode setting.
type Panic struct {
	// MinHealthyPercent is the share of healthy targets under which the
	// upstream panics; 0 disables panic mode.
	MinHealthyPercent float64 `json:"min_healthy_percent" yaml:"min_healthy_percent"`
	// Mode is fail-open or fail-closed.
	Mode string `json:"mode" yaml:"mode"`
}

// Healthchecks is an upstream's health-checking setup, in Kong's shape.
// In JSON (MarshalJSON) a checker is written only when Enabled, and
// reading one enables it over the defaults; see entity.go.
type Healthchecks struct {
	// Threshold is the percentage of healthy weight under which the
	// upstream is considered unhealthy, 0..100.
	Threshold float64 `json:"threshold,omitempty"`
	Active    Active  `json:"active"`
	Passive   Passive `json:"passive"`
}

// Active is the active (probing) health checker.
type Active struct {
	// Enabled reports whether the upstream has an "active" block. The
	// other fields hold defaults either way.
	Enabled bool `json:"-"`
	// Type is http, https, tcp, grpc or grpcs.
	Type string `json:"type,omitempty"`
	// GRPCService is the service name asked about by grpc and grpcs
	// checks (grpc.health.v1.Health/Check); empty means the whole server.
	GRPCService            string              `json:"grpc_service,omitempty"`
	HTTPPath               string              `json:"http_path,omitempty"`
	Timeout                Seconds             `json:"timeout,omitempty"`
	Concurrency            int                 `json:"concurrency,omitempty"`
	HTTPSVerifyCertificate bool                `json:"https_verify_certificate"`
	HTTPSSNI               string              `json:"https_sni,omitempty"`
	Headers                map[string][]string `json:"headers,omitempty"`
	Healthy                ActiveHealthy       `json:"healthy"`
	Unhealthy              ActiveUnhealthy     `json:"unhealthy"`
}

// ActiveHealthy is when an active checker deems a target healthy. Zero
// Interval or Successes disable the corresponding behaviour.
type ActiveHealthy struct {
	Interval     Seconds `json:"interval,omitempty"`
	Successes    int     `json:"successes,omitempty"`
	HTTPStatuses []int   `json:"http_statuses,omitempty"`
}

// ActiveUnhealthy is when an active checker deems a target unhealthy. Zero
// values disable the corresponding behaviour.
type ActiveUnhealthy struct {
	Interval     Seconds `json:"interval,omitempty"`
	HTTPFailures int     `json:"http_failures,omitempty"`
	TCPFailures  int     `json:"tcp_failures,omitempty"`
	Timeouts     int     `json:"timeouts,omitempty"`
	HTTPStatuses []int   `json:"http_statuses,omitempty"`
}

// Passive is the passive (traffic-observing) health checker.
type Passive struct {
	// Enabled reports whether the upstream has a "passive" block.
	Enabled bool `json:"-"`
	// Type is http, https or tcp.
	Type      string           `json:"type,omitempty"`
	Healthy   PassiveHealthy   `json:"healthy"`
	Unhealthy PassiveUnhealthy `json:"unhealthy"`
	// MaxEjectionPercent caps the share of an upstream's targets that may
	// be ejected at once, 0..100. It and the ejection times are the
	// file's only: the admin layer does not store them (an upstream's
	// healthchecks set there have the defaults).
	MaxEjectionPercent float64       `json:"-"`
	BaseEjectionTime   time.Duration `json:"-"`
	MaxEjectionTime    time.Duration `json:"-"`
	// SuccessRate, when set, also ejects targets whose success rate is an
	// outlier among the upstream's.
	SuccessRate *SuccessRate `json:"success_rate,omitempty"`
}

// PassiveHealthy is when passive checking deems a target healthy again.
type PassiveHealthy struct {
	Successes    int   `json:"successes,omitempty"`
	HTTPStatuses []int `json:"http_statuses,omitempty"`
}

// PassiveUnhealthy is when passive checking deems a target unhealthy.
type PassiveUnhealthy struct {
	HTTPFailures int   `json:"http_failures,omitempty"`
	TCPFailures  int   `json:"tcp_failures,omitempty"`
	Timeouts     int   `json:"timeouts,omitempty"`
	HTTPStatuses []int `json:"http_statuses,omitempty"`
	// GRPCStatuses are the gRPC statuses of proxied calls counted as HTTP
	// failures (default DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
	// UNAVAILABLE).
	GRPCStatuses []int `json:"grpc_statuses,omitempty"`
}

// Default values, as in Kong unless noted.
const (
	DefaultAdminKey            = "outrigger/admin/state"
	DefaultProxyListen         = "127.0.0.1:8000"
	DefaultAdminListen         = "127.0.0.1:8001"
	DefaultDrainTimeout        = 30 * time.Second
	DefaultMaxIdleConnsPerHost = 64
	DefaultIdleConnTimeout     = 90 * time.Second
	DefaultIdleTimeout         = 60 * time.Second
	DefaultHeaderTimeout       = 10 * time.Second
	// DefaultHTTP2MaxConcurrentStreams is nginx's and Kong's
	// http2_max_concurrent_streams.
	DefaultHTTP2MaxConcurrentStreams = 128
	// DefaultHTTP2MaxHeaderListSize is near Envoy's max_request_headers_kb
	// (60 KiB), above the HTTP/1.1 engine's request line and header
	// limits plus HTTP/2's 32 bytes a field.
	DefaultHTTP2MaxHeaderListSize = 64 << 10
	DefaultLogLevel               = "info"
	DefaultLogFormat              = "auto"
	DefaultAlgorithm              = "round-robin"
	DefaultSlots                  = 10000
	DefaultStickyCookie           = "outrigger_sticky"
	DefaultStickyTTL              = time.Hour
	DefaultWeight                 = 100
	DefaultRetries                = 5
	DefaultTimeout                = 60000 * time.Millisecond
	DefaultBaseEjectionTime       = 30 * time.Second
	DefaultMaxEjectionTime        = 300 * time.Second
)

// Default returns a File with every default and no upstreams, services or
// routes. It is what an empty file decodes to (with Path set).
func Default() *File {
	return &File{
		Proxy: Proxy{
			Listen:              DefaultProxyListen,
			Listeners:           []Listener{{Address: DefaultProxyListen}},
			DrainTimeout:        DefaultDrainTimeout,
			MaxIdleConnsPerHost: DefaultMaxIdleConnsPerHost,
			IdleConnTimeout:     DefaultIdleConnTimeout,
			IdleTimeout:         DefaultIdleTimeout,
			HeaderTimeout:       DefaultHeaderTimeout,
			Engine:              EngineH1,
			SSLVerifyClient:     VerifyClientOff,
			SSLPollInterval:     DefaultSSLPollInterval,

			HTTP2MaxConcurrentStreams: DefaultHTTP2MaxConcurrentStreams,
			HTTP2MaxHeaderListSize:    DefaultHTTP2MaxHeaderListSize,
		},
		Admin: Admin{Listen: DefaultAdminListen, Store: "file", Consul: AdminConsul{Key: DefaultAdminKey}},
		Log: Log{
			Level:     DefaultLogLevel,
			Format:    DefaultLogFormat,
			AccessLog: true,

			AccessLogSuccessSampleRatio: 1,
		},
		Upstreams: []Upstream{},
		Services:  []Service{},
		Routes:    []Route{},
	}
}

func defaultUpstream() Upstream {
	return Upstream{
		Algorithm:        DefaultAlgorithm,
		HashOn:           "none",
		HashFallback:     "none",
		HashOnCookiePath: "/",
		Slots:            DefaultSlots,
		StickyCookie:     DefaultStickyCookie,
		StickyTTL:        ptrTo(Duration(DefaultStickyTTL)),
		Panic:            &Panic{Mode: "fail-open"},
		Healthchecks:     ptrTo(defaultHealthchecks()),
		CircuitBreakers:  &CircuitBreakers{},
		RetryBudget:      ptrTo(DefaultRetryBudget()),
	}
}

// DefaultRetryPolicy is a retry_policy block's settings where it is
// silent (Envoy's defaults, and the built-in retry conditions).
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{RetryOn: []string{"connect-failure", "refused-stream", "reset", "unavailable"},
		BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond}
}

// DefaultSuccessRate is a success_rate block's settings where it is
// silent (Envoy's).
func DefaultSuccessRate() SuccessRate {
	return SuccessRate{MinimumHosts: 5, RequestVolume: 100, StdevFactor: 1900, Interval: Seconds(10 * time.Second)}
}

// DefaultRetryBudget is the retry budget of an upstream that sets none.
func DefaultRetryBudget() RetryBudget {
	return RetryBudget{RetryRatio: 0.2, MinRetriesPerSecond: 10, TTL: Seconds(10 * time.Second)}
}

func defaultHealthchecks() Healthchecks {
	return Healthchecks{
		Active: Active{
			Type:                   "http",
			HTTPPath:               "/",
			Timeout:                Seconds(time.Second),
			Concurrency:            10,
			HTTPSVerifyCertificate: true,
			Healthy: ActiveHealthy{
				HTTPStatuses: []int{200, 302},
			},
			Unhealthy: ActiveUnhealthy{
				HTTPStatuses: []int{429, 404, 500, 501, 502, 503, 504, 505},
			},
		},
		Passive: Passive{
			Type: "http",
			Healthy: PassiveHealthy{
				HTTPStatuses: []int{
					200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
					300, 301, 302, 303, 304, 305, 306, 307, 308,
				},
			},
			Unhealthy: PassiveUnhealthy{
				HTTPStatuses: []int{429, 500, 503},
				GRPCStatuses: []int{4, 8, 14},
			},
			MaxEjectionPercent: 100,
			BaseEjectionTime:   DefaultBaseEjectionTime,
			MaxEjectionTime:    DefaultMaxEjectionTime,
		},
	}
}

// DefaultService returns a service with every default filled in but the
// port, which depends on the protocol (for entities created outside the
// file, by the admin API).
func DefaultService() Service { return defaultService() }

func defaultService() Service {
	return Service{
		Protocol:       "http",
		Retries:        DefaultRetries,
		ConnectTimeout: Millis(DefaultTimeout),
		ReadTimeout:    Millis(DefaultTimeout),
		WriteTimeout:   Millis(DefaultTimeout),
	}
}

func defaultRoute() Route {
	return Route{StripPath: true, PathHandling: DefaultPathHandling, HTTPSRedirectStatusCode: DefaultHTTPSRedirect}
}

// Upstream returns the upstream named name.
func (f *File) Upstream(name string) (*Upstream, bool) {
	for i := range f.Upstreams {
		if f.Upstreams[i].Name == name {
			return &f.Upstreams[i], true
		}
	}
	return nil, false
}

// Service returns the service named name.
func (f *File) Service(name string) (*Service, bool) {
	for i := range f.Services {
		if f.Services[i].Name == name {
			return &f.Services[i], true
		}
	}
	return nil, false
}

// DefaultUpstream returns an upstream with every default filled in (for
// entities created outside the file, by the admin API).
func DefaultUpstream() Upstream { return defaultUpstream() }
