package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Discovery is an upstream's "discovery" block: where its targets come from
// besides the static list. Each source is optional; several may be given.
type Discovery struct {
	Pos Pos
	// Source is the block as written (variables expanded, aliases and
	// merge keys resolved) in plain values, for exporting the
	// configuration (Export) in the shape it was read.
	Source any
	Consul *ConsulDiscovery
	DNSSRV *DNSSRVDiscovery
	Nacos  *NacosDiscovery
	// Kubernetes watches a Service's EndpointSlices.
	Kubernetes *KubernetesDiscovery
	// EmptyGrace is how long an authoritative empty answer (the service is
	// gone) must last before the upstream drops the source's targets.
	EmptyGrace time.Duration
	// InitialFetchTimeout is how long the gateway's readiness waits for the
	// first answer of each of the block's sources (Envoy's
	// initial_fetch_timeout) before reporting ready without it; 0 waits
	// for as long as it takes.
	InitialFetchTimeout time.Duration
}

// ConsulDiscovery watches a Consul service through blocking queries.
type ConsulDiscovery struct {
	Pos Pos
	// Address is host:port; "" means CONSUL_HTTP_ADDR, then 127.0.0.1:8500.
	Address    string
	Scheme     string
	Service    string
	Tags       []string
	Meta       map[string]string
	Datacenter string
	// PassingOnly excludes warning instances (default true); with false
	// they are included with Service.Weights.Warning.
	PassingOnly bool
	// TokenEnv names the environment variable holding the ACL token.
	TokenEnv      string
	WeightMetaKey string
	// ZoneMetaKey names the service or node meta key holding the
	// target's zone; "" means "zone".
	ZoneMetaKey string
}

// KubernetesDiscovery watches the discovery.k8s.io/v1 EndpointSlices of one
// Service through the Kubernetes API.
type KubernetesDiscovery struct {
	Pos Pos
	// Namespace of the Service; "" means the pod's (in a cluster) or the
	// kubeconfig context's, then "default".
	Namespace string
	Service   string
	// Port is the port's name or number (as written).
	Port string
	// LabelSelector further selects the Service's EndpointSlices.
	LabelSelector string
	// Kubeconfig is the path of a kubeconfig file (running outside a
	// cluster); "" means the pod's service account.
	Kubeconfig string
}

// DNSSRVDiscovery resolves a DNS SRV name.
type DNSSRVDiscovery struct {
	Pos  Pos
	Name string
	// Resolver is host:port; "" means the first nameserver of
	// /etc/resolv.conf.
	Resolver       string
	MinTTL, MaxTTL time.Duration
}

// Nacos is where a Nacos cluster is and how to log in; shared by the
// discovery and register blocks.
type Nacos struct {
	// Servers are host:port of the HTTP ports (gRPC on port+1000 unless
	// GRPCPort is set).
	Servers     []string
	GRPCPort    int
	Namespace   string
	Group       string
	UsernameEnv string
	PasswordEnv string
}

// NacosDiscovery watches a Nacos service by subscription (server push).
type NacosDiscovery struct {
	Pos Pos
	Nacos
	Service  string
	Clusters []string
	Metadata map[string]string
}

// NacosRegister registers the local service as an ephemeral instance.
type NacosRegister struct {
	Pos Pos
	Nacos
	Service  string
	IP       string
	Port     int
	Weight   float64
	Cluster  string
	Metadata map[string]string
	// Check, when set, probes the local service; the instance is
	// registered healthy only while the probe passes.
	Check *NacosRegisterCheck
}

// NacosRegisterCheck is a Nacos registration's probe of the local
// service: exactly one of GRPC and HealthURL.
type NacosRegisterCheck struct {
	Pos Pos
	// GRPC is "host:port[/service]", called with
	// grpc.health.v1.Health/Check (SERVING passes).
	GRPC string
	// GRPCUseTLS makes the gRPC probe use TLS (certificate verified
	// unless TLSSkipVerify).
	GRPCUseTLS    bool
	TLSSkipVerify bool
	// HealthURL is probed with GET (2xx passes).
	HealthURL string
	Interval  time.Duration
	Timeout   time.Duration
}

// Register is the top-level "register" block: the local service this
// sidecar announces.
type Register struct {
	Pos    Pos
	Consul *ConsulRegister
	Nacos  *NacosRegister
}

// ConsulRegister registers the local service in Consul.
type ConsulRegister struct {
	Pos        Pos
	Address    string
	Scheme     string
	Datacenter string
	TokenEnv   string
	Service    RegisteredService
	Check      RegisterCheck
	// VerifyInterval is how often the registration is checked and redone
	// when the agent forgot it.
	VerifyInterval time.Duration
}

// RegisteredService describes the local service.
type RegisteredService struct {
	Name, ID, Address string
	Port              int
	Tags              []string
	Meta              map[string]string
	WeightPassing     int
	WeightWarning     int
}

// RegisterCheck is the registration's health check: exactly one of HTTP,
// TCP, GRPC or TTL (or none).
type RegisterCheck struct {
	HTTP string
	TCP  string
	// GRPC is "host:port[/service]": Consul calls
	// grpc.health.v1.Health/Check (SERVING passes), over TLS with
	// GRPCUseTLS.
	GRPC       string
	GRPCUseTLS bool
	// TLSSkipVerify turns certificate verification off for https and
	// TLS gRPC checks.
	TLSSkipVerify bool
	TTL           time.Duration
	Interval      time.Duration
	Timeout       time.Duration
	// DeregisterCriticalServiceAfter removes a service whose check stays
	// critical that long.
	DeregisterCriticalServiceAfter time.Duration
	// HealthURL is what Outrigger probes to pass a TTL check (and what its
	// readiness endpoint reflects).
	HealthURL string
}

// Defaults of the discovery blocks.
const (
	DefaultEmptyGrace = 5 * time.Second
	// DefaultInitialFetchTimeout is Envoy's default for the same setting.
	DefaultInitialFetchTimeout = 15 * time.Second
	DefaultDNSMinTTL           = time.Second
	DefaultDNSMaxTTL           = 60 * time.Second
	DefaultVerifyInterval      = 10 * time.Second
)

func (d *decoder) discovery(n *yaml.Node) *Discovery {
	ds := &Discovery{Pos: pos(deref(n)), EmptyGrace: DefaultEmptyGrace, InitialFetchTimeout: DefaultInitialFetchTimeout}
	ds.Source = d.plain(n, 0)
	d.mapping(n, "discovery", "discovery", []field{
		{"consul", func(v *yaml.Node) { ds.Consul = d.consulDiscovery(v) }},
		{"dns_srv", func(v *yaml.Node) { ds.DNSSRV = d.dnsSRV(v) }},
		{"nacos", func(v *yaml.Node) { ds.Nacos = d.nacosDiscovery(v) }},
		{"kubernetes", func(v *yaml.Node) { ds.Kubernetes = d.kubernetesDiscovery(v) }},
		{"empty_grace", d.durationField(&ds.EmptyGrace, "empty_grace", false)},
		{"initial_fetch_timeout", d.durationField(&ds.InitialFetchTimeout, "initial_fetch_timeout", false)},
	})
	return ds
}

// stringMap decodes a mapping of string to string (Consul meta).
func (d *decoder) stringMap(label string, dst *map[string]string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		n = deref(n)
		out := map[string]string{}
		*dst = out
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "%s: expected a mapping of string to string, got %s", label, describe(n))
			return
		}
		for _, p := range d.pairs(n, 0) {
			if s, ok := d.text(p.val, p.key.Value); ok {
				out[p.key.Value] = s
			}
		}
	}
}

func (d *decoder) strings(label string, dst *[]string) func(*yaml.Node) {
	return func(n *yaml.Node) {
		out := []string{}
		d.stringList(n, label, false, func(s string, _ *yaml.Node) { out = append(out, s) })
		*dst = out
	}
}

// AdminTokenRequired is why an admin listener off loopback without a token
// is refused.
const AdminTokenRequired = "the admin API on a non-loopback address needs admin.token (Outrigger refuses to expose it unauthenticated)"

// IsLoopbackListen reports whether a listen address binds loopback only
// (an admin API anywhere else needs a token).
func IsLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (d *decoder) consulAddress(dst *string) func(*yaml.Node) {
	return d.strField(dst, "address", checkHostPort)
}

func (d *decoder) consulDiscovery(n *yaml.Node) *ConsulDiscovery {
	c := &ConsulDiscovery{Pos: pos(deref(n)), PassingOnly: true, Scheme: "http"}
	seen := d.mapping(n, "consul", "discovery.consul", []field{
		{"address", d.consulAddress(&c.Address)},
		{"scheme", d.enumField(&c.Scheme, "scheme", "http", "https")},
		{"service", d.strField(&c.Service, "service", checkNonEmpty)},
		{"tags", d.strings("tags", &c.Tags)},
		{"meta", d.stringMap("meta", &c.Meta)},
		{"datacenter", d.strField(&c.Datacenter, "datacenter", nil)},
		{"passing_only", d.boolField(&c.PassingOnly, "passing_only")},
		{"token_env", d.strField(&c.TokenEnv, "token_env", checkNonEmpty)},
		{"weight_meta_key", d.strField(&c.WeightMetaKey, "weight_meta_key", checkNonEmpty)},
		{"zone_meta_key", d.strField(&c.ZoneMetaKey, "zone_meta_key", checkNonEmpty)},
	})
	if seen != nil {
		if _, ok := seen["service"]; !ok {
			d.errorAt(c.Pos, "consul: service is required")
		}
	}
	return c
}

func (d *decoder) kubernetesDiscovery(n *yaml.Node) *KubernetesDiscovery {
	k := &KubernetesDiscovery{Pos: pos(deref(n))}
	seen := d.mapping(n, "kubernetes", "discovery.kubernetes", []field{
		{"namespace", d.strField(&k.Namespace, "namespace", checkDNSLabel(validation.IsDNS1123Label))},
		{"service", d.strField(&k.Service, "service", checkDNSLabel(validation.IsDNS1035Label))},
		{"port", func(v *yaml.Node) {
			s, ok := d.text(v, "port")
			if !ok {
				return
			}
			if err := checkKubePort(s); err != nil {
				d.errorf(deref(v), "port: %v", err)
				return
			}
			k.Port = s
		}},
		{"label_selector", d.strField(&k.LabelSelector, "label_selector", func(s string) error {
			if _, err := labels.Parse(s); err != nil || strings.TrimSpace(s) == "" {
				return fmt.Errorf("%s is not a label selector (e.g. \"track=stable,tier!=cache\")", quote(s))
			}
			return nil
		})},
		{"kubeconfig", d.strField(&k.Kubeconfig, "kubeconfig", checkNonEmpty)},
	})
	d.required(seen, k.Pos, "kubernetes", "service", "port")
	return k
}

// checkDNSLabel adapts a Kubernetes name validation.
func checkDNSLabel(is func(string) []string) func(string) error {
	return func(s string) error {
		if errs := is(s); len(errs) > 0 {
			return fmt.Errorf("%s: %s", quote(s), strings.Join(errs, "; "))
		}
		return nil
	}
}

// checkKubePort accepts a port number or a Kubernetes port name.
func checkKubePort(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n < MinPort || n > MaxPort {
			return fmt.Errorf("%d is not a port (%d..%d)", n, MinPort, MaxPort)
		}
		return nil
	}
	if errs := validation.IsValidPortName(s); len(errs) > 0 {
		return fmt.Errorf("%s is neither a port number nor a port name: %s", quote(s), strings.Join(errs, "; "))
	}
	return nil
}

func (d *decoder) dnsSRV(n *yaml.Node) *DNSSRVDiscovery {
	s := &DNSSRVDiscovery{Pos: pos(deref(n)), MinTTL: DefaultDNSMinTTL, MaxTTL: DefaultDNSMaxTTL}
	seen := d.mapping(n, "dns_srv", "discovery.dns_srv", []field{
		{"name", d.strField(&s.Name, "name", checkNonEmpty)},
		{"resolver", d.strField(&s.Resolver, "resolver", checkHostPort)},
		{"min_ttl", d.durationField(&s.MinTTL, "min_ttl", true)},
		{"max_ttl", d.durationField(&s.MaxTTL, "max_ttl", true)},
	})
	if seen != nil {
		if _, ok := seen["name"]; !ok {
			d.errorAt(s.Pos, "dns_srv: name is required")
		}
		if s.MaxTTL < s.MinTTL {
			if e, ok := seen["max_ttl"]; ok {
				d.errorf(deref(e.val), "max_ttl: must be at least min_ttl (%s)", s.MinTTL)
			} else {
				d.errorAt(s.Pos, "dns_srv: min_ttl %s is above the default max_ttl %s", s.MinTTL, s.MaxTTL)
			}
		}
	}
	return s
}

func (d *decoder) register(n *yaml.Node) *Register {
	r := &Register{Pos: pos(deref(n))}
	d.mapping(n, "register", "register", []field{
		{"consul", func(v *yaml.Node) { r.Consul = d.consulRegister(v) }},
		{"nacos", func(v *yaml.Node) { r.Nacos = d.nacosRegister(v) }},
	})
	return r
}

func (d *decoder) consulRegister(n *yaml.Node) *ConsulRegister {
	c := &ConsulRegister{Pos: pos(deref(n)), Scheme: "http", VerifyInterval: DefaultVerifyInterval}
	c.Service.WeightPassing, c.Service.WeightWarning = 1, 1
	seen := d.mapping(n, "consul", "register.consul", []field{
		{"address", d.consulAddress(&c.Address)},
		{"scheme", d.enumField(&c.Scheme, "scheme", "http", "https")},
		{"datacenter", d.strField(&c.Datacenter, "datacenter", nil)},
		{"token_env", d.strField(&c.TokenEnv, "token_env", checkNonEmpty)},
		{"verify_interval", d.durationField(&c.VerifyInterval, "verify_interval", true)},
		{"service", func(v *yaml.Node) { d.registeredService(v, &c.Service) }},
		{"check", func(v *yaml.Node) { d.registerCheck(v, &c.Check) }},
	})
	if seen != nil {
		if _, ok := seen["service"]; !ok {
			d.errorAt(c.Pos, "consul: service is required")
		}
	}
	return c
}

func (d *decoder) registeredService(n *yaml.Node, s *RegisteredService) {
	at := pos(deref(n))
	seen := d.mapping(n, "service", "register.consul.service", []field{
		{"name", d.strField(&s.Name, "name", checkNonEmpty)},
		{"id", d.strField(&s.ID, "id", checkNonEmpty)},
		{"address", d.strField(&s.Address, "address", nil)},
		{"port", d.intField(&s.Port, "port", MinPort, MaxPort)},
		{"tags", d.strings("tags", &s.Tags)},
		{"meta", d.stringMap("meta", &s.Meta)},
		{"weights", func(v *yaml.Node) {
			d.mapping(v, "weights", "register.consul.service.weights", []field{
				{"passing", d.intField(&s.WeightPassing, "passing", MinConsulPassingWeight, MaxConsulWeight)},
				{"warning", d.intField(&s.WeightWarning, "warning", 0, MaxConsulWeight)},
			})
		}},
	})
	if seen != nil {
		for _, k := range []string{"name", "port"} {
			if _, ok := seen[k]; !ok {
				d.errorAt(at, "service: %s is required", k)
			}
		}
	}
}

func (d *decoder) registerCheck(n *yaml.Node, c *RegisterCheck) {
	at := pos(deref(n))
	c.Interval, c.Timeout = 10*time.Second, 5*time.Second
	seen := d.mapping(n, "check", "register.consul.check", []field{
		{"http", d.strField(&c.HTTP, "http", checkNonEmpty)},
		{"tcp", d.strField(&c.TCP, "tcp", checkHostPort)},
		{"grpc", d.strField(&c.GRPC, "grpc", CheckGRPCTarget)},
		{"grpc_use_tls", d.boolField(&c.GRPCUseTLS, "grpc_use_tls")},
		{"tls_skip_verify", d.boolField(&c.TLSSkipVerify, "tls_skip_verify")},
		{"ttl", d.durationField(&c.TTL, "ttl", true)},
		{"interval", d.durationField(&c.Interval, "interval", true)},
		{"timeout", d.durationField(&c.Timeout, "timeout", true)},
		{"deregister_critical_service_after", d.durationField(&c.DeregisterCriticalServiceAfter, "deregister_critical_service_after", false)},
		{"health_url", d.strField(&c.HealthURL, "health_url", checkNonEmpty)},
	})
	if seen == nil {
		return
	}
	kinds := 0
	for _, k := range []string{"http", "tcp", "grpc", "ttl"} {
		if _, ok := seen[k]; ok {
			kinds++
		}
	}
	if kinds > 1 {
		d.errorAt(at, "check: give exactly one of http, tcp, grpc or ttl")
	}
	if e, ok := seen["grpc_use_tls"]; ok {
		if _, grpc := seen["grpc"]; !grpc {
			d.errorf(deref(e.key), "grpc_use_tls: only used by a grpc check")
		}
	}
	if _, ok := seen["ttl"]; ok {
		if _, ok := seen["health_url"]; !ok {
			d.errorAt(at, "check: a ttl check needs health_url (Outrigger passes the check while it answers 2xx)")
		}
	}
}

// nacosFields are the connection keys shared by both nacos blocks.
func (d *decoder) nacosFields(n *Nacos) []field {
	return []field{
		{"servers", func(v *yaml.Node) {
			n.Servers = []string{}
			d.stringList(v, "servers", true, func(s string, item *yaml.Node) {
				if _, err := normalizeHostPort(s, 1, false); err != nil {
					d.errorf(item, "servers: %v", err)
					return
				}
				n.Servers = append(n.Servers, s)
			})
		}},
		{"grpc_port", d.intField(&n.GRPCPort, "grpc_port", MinPort, MaxPort)},
		{"namespace", d.strField(&n.Namespace, "namespace", nil)},
		{"group", d.strField(&n.Group, "group", checkNonEmpty)},
		{"username_env", d.strField(&n.UsernameEnv, "username_env", checkNonEmpty)},
		{"password_env", d.strField(&n.PasswordEnv, "password_env", checkNonEmpty)},
	}
}

// required reports missing keys of a decoded block at its position.
func (d *decoder) required(seen map[string]entry, at Pos, block string, keys ...string) {
	if seen == nil {
		return
	}
	for _, k := range keys {
		if _, ok := seen[k]; !ok {
			d.errorAt(at, "%s: %s is required", block, k)
		}
	}
}

func (d *decoder) nacosDiscovery(n *yaml.Node) *NacosDiscovery {
	c := &NacosDiscovery{Pos: pos(deref(n)), Nacos: Nacos{Group: "DEFAULT_GROUP"}}
	fields := append(d.nacosFields(&c.Nacos),
		field{"service", d.strField(&c.Service, "service", checkNonEmpty)},
		field{"clusters", d.strings("clusters", &c.Clusters)},
		field{"metadata", d.stringMap("metadata", &c.Metadata)},
	)
	d.required(d.mapping(n, "nacos", "discovery.nacos", fields), c.Pos, "nacos", "servers", "service")
	return c
}

func (d *decoder) nacosRegister(n *yaml.Node) *NacosRegister {
	c := &NacosRegister{Pos: pos(deref(n)), Nacos: Nacos{Group: "DEFAULT_GROUP"}, Weight: 1, Cluster: "DEFAULT"}
	fields := append(d.nacosFields(&c.Nacos),
		field{"service", d.strField(&c.Service, "service", checkNonEmpty)},
		field{"ip", d.strField(&c.IP, "ip", checkNonEmpty)},
		field{"port", d.intField(&c.Port, "port", MinPort, MaxPort)},
		field{"weight", d.numberField(&c.Weight, "weight", 0, MaxNacosWeight)},
		field{"cluster", d.strField(&c.Cluster, "cluster", checkNonEmpty)},
		field{"metadata", d.stringMap("metadata", &c.Metadata)},
		field{"check", func(v *yaml.Node) { c.Check = d.nacosRegisterCheck(v) }},
	)
	seen := d.mapping(n, "nacos", "register.nacos", fields)
	d.required(seen, c.Pos, "nacos", "servers", "service", "ip", "port")
	if e, ok := seen["weight"]; ok && e.ok && c.Weight <= 0 {
		// The SDK would register 0 as its default weight 1, the opposite of
		// what 0 means elsewhere (drain).
		d.errorf(deref(e.val), "weight: must be greater than 0 (stop the sidecar, or set an admin weight override of 0, to drain)")
	}
	return c
}

func (d *decoder) nacosRegisterCheck(n *yaml.Node) *NacosRegisterCheck {
	c := &NacosRegisterCheck{Pos: pos(deref(n)), Interval: 10 * time.Second, Timeout: 5 * time.Second}
	seen := d.mapping(n, "check", "register.nacos.check", []field{
		{"grpc", d.strField(&c.GRPC, "grpc", CheckGRPCTarget)},
		{"grpc_use_tls", d.boolField(&c.GRPCUseTLS, "grpc_use_tls")},
		{"tls_skip_verify", d.boolField(&c.TLSSkipVerify, "tls_skip_verify")},
		{"health_url", d.strField(&c.HealthURL, "health_url", checkHealthURL)},
		{"interval", d.durationField(&c.Interval, "interval", true)},
		{"timeout", d.durationField(&c.Timeout, "timeout", true)},
	})
	if seen == nil {
		return c
	}
	_, grpc := seen["grpc"]
	_, hasURL := seen["health_url"]
	if grpc == hasURL {
		d.errorAt(c.Pos, "check: give exactly one of grpc or health_url")
	}
	if e, ok := seen["grpc_use_tls"]; ok && !grpc {
		d.errorf(deref(e.key), "grpc_use_tls: only used by a grpc check")
	}
	return c
}

// CheckGRPCTarget checks a gRPC health check target, "host:port" or
// "host:port/service".
func CheckGRPCTarget(s string) error {
	addr, svc, _ := strings.Cut(s, "/")
	if _, err := normalizeHostPort(addr, 1, false); err != nil {
		return err
	}
	if err := CheckGRPCService(svc); err != nil {
		return fmt.Errorf("service %w", err)
	}
	return nil
}

// checkHealthURL accepts an absolute http or https URL.
func checkHealthURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: want an http:// or https:// URL", quote(s))
	}
	return nil
}
