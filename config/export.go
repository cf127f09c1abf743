package config

import (
	"bytes"
	"time"

	"go.yaml.in/yaml/v3"
)

// Export writes the entities of f as a Kong declarative document
// (_format_version "3.0"): upstreams with their targets nested, services
// with their routes nested, routes without a service at the top level,
// then certificates, plugins (scoped by name), consumers with their
// key-auth credentials, then the admin layer's keys (File.Layer). Every setting ParseDeclarative reads is written, so
// parsing the result gives f's entities back, and exporting those gives
// the same bytes. IDs are written as the entities hold them: the caller
// fills in derived ones first. Fields at their zero value that the
// decoder defaults otherwise are written out; optional ones are left out.
func Export(f *File) ([]byte, error) {
	doc := exportDoc{FormatVersion: "3.0"}
	for i := range f.Upstreams {
		doc.Upstreams = append(doc.Upstreams, exportUpstream(&f.Upstreams[i]))
	}
	nested := map[string][]exRoute{}
	for i := range f.Routes {
		r := &f.Routes[i]
		if r.Service == "" {
			doc.Routes = append(doc.Routes, exportRoute(r))
			continue
		}
		nested[r.Service] = append(nested[r.Service], exportRoute(r))
	}
	for i := range f.Services {
		s := exportService(&f.Services[i])
		s.Routes = nested[f.Services[i].Name]
		doc.Services = append(doc.Services, s)
	}
	for i := range f.Certificates {
		c := &f.Certificates[i]
		ec := exCertificate{ID: c.ID, Cert: c.Cert, Key: c.Key, CertAlt: c.CertAlt, KeyAlt: c.KeyAlt,
			CertFile: c.CertFile, KeyFile: c.KeyFile, CertAltFile: c.CertAltFile, KeyAltFile: c.KeyAltFile,
			Tags: c.Tags, Default: c.Default}
		// decK's layout: a certificate's SNIs nested as entities (name,
		// id, tags), a plain name when the rest is the default.
		for _, name := range c.SNIs {
			var sni any = name
			for j := range f.SNIs {
				if s := &f.SNIs[j]; s.Name == name && s.Certificate == c.ID && (len(s.Tags) > 0 || s.ID != StableID("sni", name)) {
					sni = exSNI{Name: name, Tags: s.Tags}
					if s.ID != StableID("sni", name) {
						sni = exSNI{Name: name, ID: s.ID, Tags: s.Tags}
					}
				}
			}
			ec.SNIs = append(ec.SNIs, sni)
		}
		doc.Certificates = append(doc.Certificates, ec)
	}
	for i := range f.Plugins {
		p := &f.Plugins[i]
		doc.Plugins = append(doc.Plugins, exPlugin{ID: p.ID, Name: p.Name, InstanceName: p.InstanceName, Config: p.Config,
			Enabled: p.Enabled, Protocols: p.Protocols, Tags: p.Tags, Service: p.Service, Route: p.Route, Consumer: p.Consumer})
	}
	for i := range f.Consumers {
		c := &f.Consumers[i]
		ec := exConsumer{ID: c.ID, Username: c.Username, CustomID: c.CustomID, Tags: c.Tags}
		for _, k := range f.KeyAuths {
			if k.Consumer == c.Key() {
				ec.KeyAuths = append(ec.KeyAuths, exKeyAuth{ID: k.ID, Key: k.Key, Tags: k.Tags})
			}
		}
		doc.Consumers = append(doc.Consumers, ec)
	}
	if l := f.Layer; l != nil {
		values := func(items []LayerItem) []map[string]any {
			var out []map[string]any
			for _, it := range items {
				out = append(out, it.Value)
			}
			return out
		}
		doc.Canaries, doc.Rollouts, doc.Overrides = values(l.Canaries), values(l.Rollouts), values(l.Overrides)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type exportDoc struct {
	FormatVersion string          `yaml:"_format_version"`
	Upstreams     []exUpstream    `yaml:"upstreams,omitempty"`
	Services      []exService     `yaml:"services,omitempty"`
	Routes        []exRoute       `yaml:"routes,omitempty"`
	Certificates  []exCertificate `yaml:"certificates,omitempty"`
	Plugins       []exPlugin      `yaml:"plugins,omitempty"`
	Consumers     []exConsumer    `yaml:"consumers,omitempty"`
	// The admin layer's keys (File.Layer).
	Canaries  []map[string]any `yaml:"canaries,omitempty"`
	Rollouts  []map[string]any `yaml:"rollouts,omitempty"`
	Overrides []map[string]any `yaml:"overrides,omitempty"`
}

type exPlugin struct {
	ID           string         `yaml:"id,omitempty"`
	Name         string         `yaml:"name"`
	InstanceName string         `yaml:"instance_name,omitempty"`
	Service      string         `yaml:"service,omitempty"`
	Route        string         `yaml:"route,omitempty"`
	Consumer     string         `yaml:"consumer,omitempty"`
	Config       map[string]any `yaml:"config,omitempty"`
	Enabled      bool           `yaml:"enabled"`
	Protocols    []string       `yaml:"protocols,omitempty"`
	Tags         []string       `yaml:"tags,omitempty"`
}

type exConsumer struct {
	ID       string      `yaml:"id,omitempty"`
	Username string      `yaml:"username,omitempty"`
	CustomID string      `yaml:"custom_id,omitempty"`
	Tags     []string    `yaml:"tags,omitempty"`
	KeyAuths []exKeyAuth `yaml:"keyauth_credentials,omitempty"`
}

type exKeyAuth struct {
	ID   string   `yaml:"id,omitempty"`
	Key  string   `yaml:"key"`
	Tags []string `yaml:"tags,omitempty"`
}

type exUpstream struct {
	ID               string          `yaml:"id,omitempty"`
	Name             string          `yaml:"name"`
	Algorithm        string          `yaml:"algorithm"`
	HashOn           string          `yaml:"hash_on"`
	HashFallback     string          `yaml:"hash_fallback"`
	HashOnHeader     string          `yaml:"hash_on_header,omitempty"`
	HashOnCookie     string          `yaml:"hash_on_cookie,omitempty"`
	HashOnCookiePath string          `yaml:"hash_on_cookie_path"`
	HashOnQueryArg   string          `yaml:"hash_on_query_arg,omitempty"`
	HashOnURICapture string          `yaml:"hash_on_uri_capture,omitempty"`
	Slots            int             `yaml:"slots"`
	StickyCookie     string          `yaml:"sticky_sessions_cookie"`
	StickyTTL        string          `yaml:"sticky_sessions_cookie_ttl"`
	SlowStart        *exSlowStart    `yaml:"slow_start,omitempty"`
	Panic            Panic           `yaml:"panic"`
	CircuitBreakers  CircuitBreakers `yaml:"circuit_breakers"`
	RetryBudget      exRetryBudget   `yaml:"retry_budget"`
	RetryPolicy      *exRetryPolicy  `yaml:"retry_policy,omitempty"`
	Healthchecks     exHealthchecks  `yaml:"healthchecks"`
	Discovery        any             `yaml:"discovery,omitempty"`
	Tags             []string        `yaml:"tags,omitempty"`
	Targets          []exTarget      `yaml:"targets,omitempty"`
}

type exSlowStart struct {
	Window           string  `yaml:"window"`
	Aggression       float64 `yaml:"aggression"`
	MinWeightPercent float64 `yaml:"min_weight_percent"`
}

type exRetryPolicy struct {
	RetryOn       []string  `yaml:"retry_on"`
	PerTryTimeout string    `yaml:"per_try_timeout,omitempty"`
	Timeout       string    `yaml:"timeout,omitempty"`
	RetryBackoff  exBackoff `yaml:"retry_backoff"`
}

type exBackoff struct {
	BaseInterval string `yaml:"base_interval"`
	MaxInterval  string `yaml:"max_interval"`
}

type exSuccessRate struct {
	MinimumHosts  int    `yaml:"minimum_hosts"`
	RequestVolume int    `yaml:"request_volume"`
	StdevFactor   int    `yaml:"stdev_factor"`
	Interval      string `yaml:"interval"`
}

type exRetryBudget struct {
	RetryRatio          float64 `yaml:"retry_ratio"`
	MinRetriesPerSecond float64 `yaml:"min_retries_per_second"`
	TTL                 string  `yaml:"ttl"`
}

type exHealthchecks struct {
	Threshold float64    `yaml:"threshold"`
	Active    *exActive  `yaml:"active,omitempty"`
	Passive   *exPassive `yaml:"passive,omitempty"`
}

type exActive struct {
	Type                   string              `yaml:"type"`
	GRPCService            string              `yaml:"grpc_service,omitempty"`
	HTTPPath               string              `yaml:"http_path"`
	Timeout                float64             `yaml:"timeout"`
	Concurrency            int                 `yaml:"concurrency"`
	HTTPSVerifyCertificate bool                `yaml:"https_verify_certificate"`
	HTTPSSNI               string              `yaml:"https_sni,omitempty"`
	Headers                map[string][]string `yaml:"headers,omitempty"`
	Healthy                exCounters          `yaml:"healthy"`
	Unhealthy              exCounters          `yaml:"unhealthy"`
}

type exPassive struct {
	Type               string         `yaml:"type"`
	Healthy            exCounters     `yaml:"healthy"`
	Unhealthy          exCounters     `yaml:"unhealthy"`
	MaxEjectionPercent float64        `yaml:"max_ejection_percent"`
	BaseEjectionTime   string         `yaml:"base_ejection_time"`
	MaxEjectionTime    string         `yaml:"max_ejection_time"`
	SuccessRate        *exSuccessRate `yaml:"success_rate,omitempty"`
}

// exCounters is a healthy or unhealthy block; the counters a block lacks
// stay nil.
type exCounters struct {
	Interval     *float64 `yaml:"interval,omitempty"`
	Successes    *int     `yaml:"successes,omitempty"`
	HTTPFailures *int     `yaml:"http_failures,omitempty"`
	TCPFailures  *int     `yaml:"tcp_failures,omitempty"`
	Timeouts     *int     `yaml:"timeouts,omitempty"`
	HTTPStatuses []int    `yaml:"http_statuses"`
	GRPCStatuses []int    `yaml:"grpc_statuses,omitempty"`
}

type exTarget struct {
	ID       string   `yaml:"id,omitempty"`
	Target   string   `yaml:"target"`
	Weight   int      `yaml:"weight"`
	Priority int      `yaml:"priority,omitempty"`
	Backup   bool     `yaml:"backup,omitempty"`
	Zone     string   `yaml:"zone,omitempty"`
	Tags     []string `yaml:"tags,omitempty"`
}

type exService struct {
	ID                    string        `yaml:"id,omitempty"`
	Name                  string        `yaml:"name,omitempty"`
	Protocol              string        `yaml:"protocol"`
	Host                  string        `yaml:"host"`
	Port                  int           `yaml:"port"`
	Path                  string        `yaml:"path,omitempty"`
	Retries               int           `yaml:"retries"`
	ConnectTimeout        int64         `yaml:"connect_timeout"`
	ReadTimeout           int64         `yaml:"read_timeout"`
	WriteTimeout          int64         `yaml:"write_timeout"`
	TLSVerify             *bool         `yaml:"tls_verify,omitempty"`
	TLSVerifyDepth        int           `yaml:"tls_verify_depth,omitempty"`
	CACertificates        []string      `yaml:"ca_certificates,omitempty"`
	ClientCertificate     *exClientCert `yaml:"client_certificate,omitempty"`
	GRPCIdempotentMethods []string      `yaml:"grpc_idempotent_methods,omitempty"`
	Tags                  []string      `yaml:"tags,omitempty"`
	Routes                []exRoute     `yaml:"routes,omitempty"`
}

type exClientCert struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

type exRoute struct {
	ID            string              `yaml:"id,omitempty"`
	Name          string              `yaml:"name,omitempty"`
	Protocols     []string            `yaml:"protocols,omitempty"`
	Methods       []string            `yaml:"methods,omitempty"`
	Hosts         []string            `yaml:"hosts,omitempty"`
	Paths         []string            `yaml:"paths,omitempty"`
	Headers       map[string][]string `yaml:"headers,omitempty"`
	StripPath     bool                `yaml:"strip_path"`
	PreserveHost  bool                `yaml:"preserve_host"`
	RegexPriority int                 `yaml:"regex_priority"`
	PathHandling  string              `yaml:"path_handling"`
	HTTPSRedirect int                 `yaml:"https_redirect_status_code"`
	Tags          []string            `yaml:"tags,omitempty"`
}

type exCertificate struct {
	ID          string   `yaml:"id,omitempty"`
	Cert        string   `yaml:"cert,omitempty"`
	Key         string   `yaml:"key,omitempty"`
	CertAlt     string   `yaml:"cert_alt,omitempty"`
	KeyAlt      string   `yaml:"key_alt,omitempty"`
	CertFile    string   `yaml:"cert_file,omitempty"`
	KeyFile     string   `yaml:"key_file,omitempty"`
	CertAltFile string   `yaml:"cert_alt_file,omitempty"`
	KeyAltFile  string   `yaml:"key_alt_file,omitempty"`
	SNIs        []any    `yaml:"snis,omitempty"`
	Tags        []string `yaml:"tags,omitempty"`
	Default     bool     `yaml:"default,omitempty"`
}

type exSNI struct {
	Name string   `yaml:"name"`
	ID   string   `yaml:"id,omitempty"`
	Tags []string `yaml:"tags,omitempty"`
}

func durText(d time.Duration) string { return d.String() }

func exportUpstream(u *Upstream) exUpstream {
	out := exUpstream{
		ID: u.ID, Name: u.Name, Algorithm: u.Algorithm, HashOn: u.HashOn, HashFallback: u.HashFallback,
		HashOnHeader: u.HashOnHeader, HashOnCookie: u.HashOnCookie, HashOnCookiePath: u.HashOnCookiePath,
		HashOnQueryArg: u.HashOnQueryArg, HashOnURICapture: u.HashOnURICapture, Slots: u.Slots,
		StickyCookie: u.StickyCookie, StickyTTL: durText(u.StickyLifetime()),
		Panic: *u.Panic, CircuitBreakers: *u.CircuitBreakers,
		RetryBudget: exRetryBudget{RetryRatio: u.RetryBudget.RetryRatio, MinRetriesPerSecond: u.RetryBudget.MinRetriesPerSecond,
			TTL: durText(time.Duration(u.RetryBudget.TTL))},
		Tags: u.Tags,
	}
	if rp := u.RetryPolicy; rp != nil {
		out.RetryPolicy = &exRetryPolicy{RetryOn: rp.RetryOn, RetryBackoff: exBackoff{BaseInterval: durText(rp.BackoffBase), MaxInterval: durText(rp.BackoffMax)}}
		if out.RetryPolicy.RetryOn == nil {
			out.RetryPolicy.RetryOn = []string{}
		}
		if rp.PerTryTimeout > 0 {
			out.RetryPolicy.PerTryTimeout = durText(rp.PerTryTimeout)
		}
		if rp.Timeout > 0 {
			out.RetryPolicy.Timeout = durText(rp.Timeout)
		}
	}
	if s := u.SlowStart; s != nil {
		out.SlowStart = &exSlowStart{Window: durText(time.Duration(s.Window)), Aggression: s.Aggression, MinWeightPercent: s.MinWeightPercent}
	}
	if u.Discovery != nil {
		out.Discovery = u.Discovery.Source
	}
	h := u.Healthchecks
	out.Healthchecks.Threshold = h.Threshold
	if a := h.Active; a.Enabled {
		out.Healthchecks.Active = &exActive{
			Type: a.Type, GRPCService: a.GRPCService, HTTPPath: a.HTTPPath, Timeout: a.Timeout.Float(),
			Concurrency: a.Concurrency, HTTPSVerifyCertificate: a.HTTPSVerifyCertificate, HTTPSSNI: a.HTTPSSNI, Headers: a.Headers,
			Healthy: exCounters{Interval: ptrTo(a.Healthy.Interval.Float()), Successes: ptrTo(a.Healthy.Successes),
				HTTPStatuses: a.Healthy.HTTPStatuses},
			Unhealthy: exCounters{Interval: ptrTo(a.Unhealthy.Interval.Float()), HTTPFailures: ptrTo(a.Unhealthy.HTTPFailures),
				TCPFailures: ptrTo(a.Unhealthy.TCPFailures), Timeouts: ptrTo(a.Unhealthy.Timeouts), HTTPStatuses: a.Unhealthy.HTTPStatuses},
		}
	}
	if p := h.Passive; p.Enabled {
		out.Healthchecks.Passive = &exPassive{
			Type:    p.Type,
			Healthy: exCounters{Successes: ptrTo(p.Healthy.Successes), HTTPStatuses: p.Healthy.HTTPStatuses},
			Unhealthy: exCounters{HTTPFailures: ptrTo(p.Unhealthy.HTTPFailures), TCPFailures: ptrTo(p.Unhealthy.TCPFailures),
				Timeouts: ptrTo(p.Unhealthy.Timeouts), HTTPStatuses: p.Unhealthy.HTTPStatuses, GRPCStatuses: p.Unhealthy.GRPCStatuses},
			MaxEjectionPercent: p.MaxEjectionPercent, BaseEjectionTime: durText(p.BaseEjectionTime), MaxEjectionTime: durText(p.MaxEjectionTime),
		}
		if sr := p.SuccessRate; sr != nil {
			out.Healthchecks.Passive.SuccessRate = &exSuccessRate{MinimumHosts: sr.MinimumHosts, RequestVolume: sr.RequestVolume,
				StdevFactor: sr.StdevFactor, Interval: durText(time.Duration(sr.Interval))}
		}
	}
	for _, t := range u.Targets {
		out.Targets = append(out.Targets, exTarget{ID: t.ID, Target: t.Target, Weight: t.Weight, Priority: t.Priority,
			Backup: t.Backup, Zone: t.Zone, Tags: t.Tags})
	}
	return out
}

func ptrTo[T any](v T) *T { return &v }

func exportService(s *Service) exService {
	out := exService{
		ID: s.ID, Name: s.Name, Protocol: s.Protocol, Host: s.Host, Port: s.Port, Path: s.Path, Retries: s.Retries,
		ConnectTimeout: s.ConnectTimeout.D().Milliseconds(), ReadTimeout: s.ReadTimeout.D().Milliseconds(), WriteTimeout: s.WriteTimeout.D().Milliseconds(),
		TLSVerify: s.TLSVerify, TLSVerifyDepth: s.VerifyDepth(), CACertificates: s.CACertificates,
		GRPCIdempotentMethods: s.GRPCIdempotentMethods, Tags: s.Tags,
	}
	if c := s.ClientCertificate; c != nil {
		out.ClientCertificate = &exClientCert{CertFile: c.CertFile, KeyFile: c.KeyFile}
	}
	if out.Name == out.ID {
		out.Name = "" // unnamed: keyed by its id
	}
	return out
}

func exportRoute(r *Route) exRoute {
	out := exRoute{
		ID: r.ID, Name: r.Name, Protocols: r.Protocols, Methods: r.Methods, Hosts: r.Hosts, Paths: r.Paths, Headers: r.Headers,
		StripPath: r.StripPath, PreserveHost: r.PreserveHost, RegexPriority: r.RegexPriority, PathHandling: r.PathHandling,
		HTTPSRedirect: r.HTTPSRedirectStatusCode, Tags: r.Tags,
	}
	if out.Name == out.ID {
		out.Name = ""
	}
	return out
}
