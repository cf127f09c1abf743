package health

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Probe types accepted in ActiveConfig.Type.
const (
	TypeHTTP  = "http"
	TypeHTTPS = "https"
	TypeTCP   = "tcp"
	// TypeGRPC and TypeGRPCS call grpc.health.v1.Health/Check over a
	// plaintext (h2c) or a TLS connection.
	TypeGRPC  = "grpc"
	TypeGRPCS = "grpcs"
)

// httpType reports whether probes of type typ classify HTTP statuses.
func httpType(typ string) bool {
	switch strings.ToLower(typ) {
	case TypeTCP, TypeGRPC, TypeGRPCS:
		return false
	}
	return true
}

// Defaults applied by New to zero-valued fields (Kong for the active
// checker, Envoy for ejection times).
const (
	DefaultTimeout          = time.Second
	DefaultConcurrency      = 10
	DefaultHTTPPath         = "/"
	DefaultBaseEjectionTime = 30 * time.Second
	DefaultMaxEjectionTime  = 300 * time.Second
)

// Config is one upstream's health-checking setup. The caller maps its own
// configuration format into it; New applies the defaults listed with each
// field and Validate reports values New cannot make sense of.
type Config struct {
	Active  ActiveConfig
	Passive PassiveConfig
}

// ActiveConfig describes active probing. With Enabled false no probe is ever
// sent.
type ActiveConfig struct {
	Enabled bool
	// Type is "http" (default when empty), "https", "tcp", "grpc" or
	// "grpcs".
	Type string
	// GRPCService is the service name sent in grpc(s) health checks; empty
	// asks about the server as a whole.
	GRPCService string
	// HTTPPath is the path (and optional query) probed with GET; default
	// "/".
	HTTPPath string
	// Timeout bounds one probe (connect, TLS handshake and response
	// headers); default 1s. It is measured in real time, not on the
	// injected Clock.
	Timeout time.Duration
	// Concurrency caps the probes in flight for the whole checker; default
	// 10.
	Concurrency int
	// HTTPSVerifyCertificate turns certificate verification on for https
	// and grpcs probes.
	HTTPSVerifyCertificate bool
	// HTTPSSNI is the server name sent (and verified) in the TLS handshake.
	// Empty: the host part of Host if set, else none for IP targets.
	HTTPSSNI string
	// Headers are added to every HTTP(S) probe, and sent as request
	// metadata with grpc(s) probes. A "Host" entry is used as the Host
	// header when Host is empty.
	Headers map[string][]string
	// Host is the probe's Host header (the :authority of grpc(s) probes);
	// empty means the target address.
	Host string

	// HealthyInterval is the time between probes of a healthy target;
	// 0 stops probing healthy targets.
	HealthyInterval time.Duration
	// Successes is the number of consecutive successful probes that make
	// an unhealthy target healthy; 0 disables the counter.
	Successes int
	// HealthyStatuses are the probe response statuses counted as success.
	HealthyStatuses []int

	// UnhealthyInterval is the time between probes of an unhealthy target;
	// 0 stops probing unhealthy targets (they then come back only through
	// a manual mark, or through the ejection timer after a passive
	// ejection).
	UnhealthyInterval time.Duration
	// HTTPFailures, TCPFailures and Timeouts are the numbers of
	// consecutive failures of each kind that make a healthy target
	// unhealthy; 0 disables that counter.
	HTTPFailures, TCPFailures, Timeouts int
	// UnhealthyStatuses are the probe response statuses counted as HTTP
	// failures. Statuses in neither list are ignored.
	UnhealthyStatuses []int
}

// PassiveConfig describes passive checking of proxied traffic (Observe).
// With Enabled false Observe does nothing.
type PassiveConfig struct {
	Enabled bool

	// Successes is the number of consecutive successful proxied requests
	// that end a timed passive ejection early (only relevant when traffic
	// still reaches an ejected target, e.g. in panic mode or under a
	// manual healthy mark); 0 disables the counter.
	Successes int
	// HealthyStatuses are the response statuses counted as success.
	HealthyStatuses []int

	// HTTPFailures, TCPFailures and Timeouts are the numbers of
	// consecutive failures of each kind that eject a healthy target; 0
	// disables that counter.
	HTTPFailures, TCPFailures, Timeouts int
	// UnhealthyStatuses are the response statuses counted as HTTP
	// failures. Statuses in neither list are ignored.
	UnhealthyStatuses []int

	// MaxEjectionPercent caps the share of the checker's targets that may
	// be passively ejected at the same time, 0..100. An ejection that would
	// exceed it is refused. 0 means no cap (the caller applies its own
	// default, Envoy uses 10).
	MaxEjectionPercent float64
	// BaseEjectionTime and MaxEjectionTime size timed ejections (used when
	// active probing cannot bring the target back): the target is ejected
	// for BaseEjectionTime × the number of times it has been ejected,
	// capped at MaxEjectionTime. Defaults 30s and 300s; a MaxEjectionTime
	// below BaseEjectionTime is raised to it.
	BaseEjectionTime, MaxEjectionTime time.Duration
	// SuccessRate, when set (and Enabled), also ejects success-rate
	// outliers; it needs a running Checker (Start).
	SuccessRate *SuccessRateConfig
}

// DefaultConfig returns Kong's defaults for both checkers (both disabled,
// all thresholds and intervals 0) plus Envoy's ejection defaults. It is a
// convenient starting point for callers mapping a configuration file.
func DefaultConfig() Config {
	return Config{
		Active: ActiveConfig{
			Type:                   TypeHTTP,
			HTTPPath:               DefaultHTTPPath,
			Timeout:                DefaultTimeout,
			Concurrency:            DefaultConcurrency,
			HTTPSVerifyCertificate: true,
			HealthyStatuses:        []int{200, 302},
			UnhealthyStatuses:      []int{429, 404, 500, 501, 502, 503, 504, 505},
		},
		Passive: PassiveConfig{
			HealthyStatuses: []int{
				200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
				300, 301, 302, 303, 304, 305, 306, 307, 308,
			},
			UnhealthyStatuses:  []int{429, 500, 503},
			MaxEjectionPercent: 10,
			BaseEjectionTime:   DefaultBaseEjectionTime,
			MaxEjectionTime:    DefaultMaxEjectionTime,
		},
	}
}

// Validate reports every problem in c at once. New does not call it: it
// assumes a validated Config (an unknown Type probes as http).
func (c Config) Validate() error {
	var errs []error
	a := c.Active
	switch strings.ToLower(a.Type) {
	case "", TypeHTTP, TypeHTTPS, TypeTCP, TypeGRPC, TypeGRPCS:
	default:
		errs = append(errs, fmt.Errorf("active.type %q: want http, https, tcp, grpc or grpcs", a.Type))
	}
	if a.HTTPPath != "" && !strings.HasPrefix(a.HTTPPath, "/") {
		errs = append(errs, fmt.Errorf("active.http_path %q: must start with /", a.HTTPPath))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"active.timeout", a.Timeout},
		{"active.healthy.interval", a.HealthyInterval},
		{"active.unhealthy.interval", a.UnhealthyInterval},
		{"passive.base_ejection_time", c.Passive.BaseEjectionTime},
		{"passive.max_ejection_time", c.Passive.MaxEjectionTime},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: negative duration %v", d.name, d.v))
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"active.concurrency", a.Concurrency},
		{"active.healthy.successes", a.Successes},
		{"active.unhealthy.http_failures", a.HTTPFailures},
		{"active.unhealthy.tcp_failures", a.TCPFailures},
		{"active.unhealthy.timeouts", a.Timeouts},
		{"passive.healthy.successes", c.Passive.Successes},
		{"passive.unhealthy.http_failures", c.Passive.HTTPFailures},
		{"passive.unhealthy.tcp_failures", c.Passive.TCPFailures},
		{"passive.unhealthy.timeouts", c.Passive.Timeouts},
	} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("%s: negative value %d", n.name, n.v))
		}
	}
	errs = append(errs, checkStatuses("active", a.HealthyStatuses, a.UnhealthyStatuses)...)
	errs = append(errs, checkStatuses("passive", c.Passive.HealthyStatuses, c.Passive.UnhealthyStatuses)...)
	if p := c.Passive.MaxEjectionPercent; math.IsNaN(p) || p < 0 || p > 100 {
		errs = append(errs, fmt.Errorf("passive.max_ejection_percent %v: want 0..100", p))
	}
	return errors.Join(errs...)
}

func checkStatuses(section string, healthy, unhealthy []int) []error {
	var errs []error
	in := map[int]bool{}
	for _, s := range healthy {
		if s < 100 || s > 999 {
			errs = append(errs, fmt.Errorf("%s.healthy.http_statuses: invalid status %d", section, s))
		}
		in[s] = true
	}
	for _, s := range unhealthy {
		if s < 100 || s > 999 {
			errs = append(errs, fmt.Errorf("%s.unhealthy.http_statuses: invalid status %d", section, s))
		}
		if in[s] {
			errs = append(errs, fmt.Errorf("%s: status %d is listed as both healthy and unhealthy", section, s))
		}
	}
	return errs
}

// statusSet is a bitmap of HTTP statuses 0..1023.
type statusSet [16]uint64

func makeStatusSet(list []int) statusSet {
	var s statusSet
	for _, v := range list {
		if v >= 0 && v < 1024 {
			s[v>>6] |= 1 << (uint(v) & 63)
		}
	}
	return s
}

func (s *statusSet) has(v int) bool {
	return v >= 0 && v < 1024 && s[v>>6]&(1<<(uint(v)&63)) != 0
}

// thresholds is one checker's (active or passive) compiled counting rules.
type thresholds struct {
	successes, httpFailures, tcpFailures, timeouts uint32
	healthy, unhealthy                             statusSet
}

func makeThresholds(successes, httpF, tcpF, timeouts int, healthy, unhealthy []int) thresholds {
	return thresholds{
		successes:    clampCount(successes),
		httpFailures: clampCount(httpF),
		tcpFailures:  clampCount(tcpF),
		timeouts:     clampCount(timeouts),
		healthy:      makeStatusSet(healthy),
		unhealthy:    makeStatusSet(unhealthy),
	}
}

func clampCount(n int) uint32 {
	switch {
	case n <= 0:
		return 0
	case n > 1<<30:
		return 1 << 30
	}
	return uint32(n)
}
