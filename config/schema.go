package config

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/outrigger-gw/outrigger/balance"
)

// The ranges and enums of the entities' fields, stated once. The file's
// decoder, the admin API's decoders and its OpenAPI document all read
// them from here, so what one accepts the others accept and document.

// Integer ranges (inclusive), as in Kong unless noted.
const (
	// MinSlots and MaxSlots bound an upstream's consistent-hashing ring.
	MinSlots = balance.MinSlots
	MaxSlots = balance.MaxSlots
	// MaxPriority bounds a target's priority (the range of a DNS SRV
	// priority).
	MaxPriority = 65535
	// MaxWeight bounds a target's weight (0 drains it).
	MaxWeight = 65535
	// MaxPort bounds every port; MinPort is the lowest a service or a
	// target may use.
	MinPort = 1
	MaxPort = 65535
	// MaxRetries bounds a service's retries.
	MaxRetries = 32767
	// MinTimeoutMs and MaxTimeoutMs bound a service's connect, read and
	// write timeouts, in milliseconds.
	MinTimeoutMs = 1
	MaxTimeoutMs = 2147483646
	// MaxTLSVerifyDepth bounds a service's tls_verify_depth.
	MaxTLSVerifyDepth = 64
	// MaxCounter bounds the health checks' success and failure counters.
	MaxCounter = 255
	// MaxSeconds bounds the health checks' intervals and timeout, in
	// seconds.
	MaxSeconds = 65535
	// MinConcurrency and MaxConcurrency bound the active checker's
	// concurrency.
	MinConcurrency = 1
	MaxConcurrency = 1<<31 - 1
	// MinRegexPriority and MaxRegexPriority bound a route's
	// regex_priority.
	MinRegexPriority = -1 << 31
	MaxRegexPriority = 1<<31 - 1
	// MinHTTPStatus and MaxHTTPStatus bound the checks' HTTP statuses.
	MinHTTPStatus = 100
	MaxHTTPStatus = 999
	// MaxGRPCStatus bounds the passive checks' gRPC statuses.
	MaxGRPCStatus = 16
	// MaxGRPCServiceLen bounds an active check's grpc_service, in bytes.
	MaxGRPCServiceLen = 255
	// MaxPercent bounds every percentage (thresholds, shares, canary
	// percents).
	MaxPercent = 100
	// MaxTagLen bounds a tag, in characters.
	MaxTagLen = 128
	// MaxBreakerLimit bounds a circuit breaker's limit (0 is unlimited).
	MaxBreakerLimit = 1<<31 - 1
	// MaxRetryRatio bounds a retry budget's retry_ratio.
	MaxRetryRatio = 1000
	// MaxMinRetriesPerSecond bounds a retry budget's
	// min_retries_per_second.
	MaxMinRetriesPerSecond = 100000
	// MinRetryBudgetTTL and MaxRetryBudgetTTL bound a retry budget's ttl.
	MinRetryBudgetTTL = time.Second
	MaxRetryBudgetTTL = 10 * time.Minute
	// MinRetryStatus and MaxRetryStatus bound the statuses of retry_on.
	MinRetryStatus = 100
	MaxRetryStatus = 599
	// MaxRetryTimeout bounds a retry policy's timeouts and backoff
	// intervals.
	MaxRetryTimeout = 24 * time.Hour
	// MinSuccessRateHosts bounds success_rate.minimum_hosts (Envoy needs
	// at least two rates to compare); MaxSuccessRateCount bounds its
	// counts and stdev_factor.
	MinSuccessRateHosts = 2
	MaxSuccessRateCount = 1<<31 - 1
	// MinSuccessRateInterval and MaxSuccessRateInterval bound
	// success_rate.interval.
	MinSuccessRateInterval = 100 * time.Millisecond
	MaxSuccessRateInterval = time.Hour
	// MaxTracingQueueSize and MaxTracingBatchSize bound the tracing
	// block's queue_size and batch_size (both from 1).
	MaxTracingQueueSize = 1 << 20
	MaxTracingBatchSize = 1 << 16
	// MinConsulPassingWeight and MaxConsulWeight bound a registered
	// service's Consul weights (passing from 1, warning from 0), as the
	// Consul agent does.
	MinConsulPassingWeight = 1
	MaxConsulWeight        = 65535
	// MaxNacosWeight bounds a Nacos instance's weight (Nacos's range).
	MaxNacosWeight = 10000
	// The bounds of a rollout: max_error_rate_increase (a fraction),
	// max_p99_ratio, min_requests, and how long a step holds.
	MaxErrorRateIncrease = 1
	MinP99Ratio          = 1
	MaxP99Ratio          = 1000
	MaxMinRequests       = 1<<31 - 1
	MinRolloutInterval   = time.Second
	MaxRolloutInterval   = 24 * time.Hour
	// MaxAggression bounds an upstream's slow_start.aggression (which
	// must also be greater than 0).
	MaxAggression = 1e9
	// MaxIdleConnsPerHost bounds proxy.max_idle_conns_per_host.
	MaxIdleConnsPerHost = 100000
	// MaxConnections bounds proxy.max_connections (0 is unlimited).
	MaxConnections = 1 << 24
	// MaxExactInteger bounds timestamps (created_at, updated_at) and
	// version numbers: the largest integer a JSON number holds exactly.
	MaxExactInteger = 1 << 53
)

// Bound is the inclusive range of one field the admin API takes: Kind is
// the entity (KindUpstream, ..., or "rollout", "healthchecks", the
// nested blocks' names), Path the field's dotted path in it.
type Bound struct {
	Kind, Path string
	Min, Max   float64
}

// Bounds lists the ranges above by the fields that use them, for the
// admin API's OpenAPI document and its test: those of the entities with a
// field table (fields.go) from it, the others' as the decoders read the
// constants themselves.
func Bounds() []Bound {
	out := slices.Concat(schemaBounds(ServiceSchema()), schemaBounds(RouteSchema()), schemaBounds(UpstreamSchema()), schemaBounds(TargetSchema()))
	for _, b := range slices.Concat(schemaBounds(SlowStartSchema()), schemaBounds(CircuitBreakersSchema()), schemaBounds(PanicSchema()),
		schemaBounds(RetryBudgetSchema())) {
		out = append(out, Bound{KindUpstream, b.Kind + "." + b.Path, b.Min, b.Max})
	}
	out = append(out, schemaBounds(HealthchecksSchema())...)
	for _, b := range schemaBounds(ActiveSchema()) {
		out = append(out, Bound{"healthchecks", "active." + b.Path, b.Min, b.Max})
	}
	return append(out, []Bound{
		{"healthchecks", "active.timeout", 0, MaxSeconds},
		{"rollout", "max_error_rate_increase", 0, MaxErrorRateIncrease},
		{"rollout", "max_p99_ratio", MinP99Ratio, MaxP99Ratio},
		{"rollout", "min_requests", 0, MaxMinRequests},
	}...)
}

// RetryOnConditions are retry_on's failure classes (Envoy's retry_on
// names); retry_on also takes HTTP statuses and GRPCRetryOnConditions.
func RetryOnConditions() []string {
	return []string{"connect-failure", "refused-stream", "reset", "5xx", "gateway-error", "retriable-4xx"}
}

// GRPCRetryOnConditions are the gRPC statuses retry_on may name (Envoy's
// x-envoy-retry-grpc-on names).
func GRPCRetryOnConditions() []string {
	return []string{"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}
}

// CheckRetryOn checks one retry_on entry: a condition, an HTTP status
// MinRetryStatus..MaxRetryStatus, or a gRPC status name.
func CheckRetryOn(s string) error {
	if slices.Contains(RetryOnConditions(), s) || slices.Contains(GRPCRetryOnConditions(), s) {
		return nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= MinRetryStatus && n <= MaxRetryStatus && strconv.Itoa(n) == s {
		return nil
	}
	return fmt.Errorf("unknown condition %s (expected one of %s, an HTTP status %d-%d, or one of %s)", quote(s),
		strings.Join(RetryOnConditions(), ", "), MinRetryStatus, MaxRetryStatus, strings.Join(GRPCRetryOnConditions(), ", "))
}

// Algorithms are an upstream's balancing algorithms, as Kong names them.
func Algorithms() []string {
	return []string{"round-robin", "consistent-hashing", "least-connections", "latency", "sticky-sessions", "random"}
}

// HashOnValues are the inputs hash_on and hash_fallback may name.
func HashOnValues() []string {
	return []string{"none", "ip", "header", "cookie", "path", "query_arg", "uri_capture"}
}

// PassiveCheckTypes are the types of passive health checks.
func PassiveCheckTypes() []string { return []string{"http", "https", "tcp"} }

// ActiveCheckTypes are the probe types of active checks: Kong's, and gRPC
// health checks.
func ActiveCheckTypes() []string { return append(PassiveCheckTypes(), "grpc", "grpcs") }

// PanicModes are the values of an upstream's panic mode.
func PanicModes() []string { return []string{"fail-open", "fail-closed"} }

// ServiceURL is a service's url shorthand, split and checked.
type ServiceURL struct {
	Protocol, Host, Path string
	Port                 int
}

// URLError is a service url that does not parse as a URL at all.
type URLError struct {
	URL string
	Err error
}

func (e *URLError) Error() string { return fmt.Sprintf("invalid URL %s: %v", quote(e.URL), e.Err) }

func (e *URLError) Unwrap() error { return e.Err }

// ParseServiceURL checks and splits a service's url shorthand,
// scheme://host[:port][/path]; the port defaults from the scheme. Its
// errors but a *URLError do not repeat the URL.
func ParseServiceURL(s string) (ServiceURL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return ServiceURL{}, &URLError{URL: s, Err: err}
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case !slices.Contains(ServiceProtocols(), scheme):
		return ServiceURL{}, errors.New("scheme must be one of " + strings.Join(ServiceProtocols(), ", "))
	case u.Opaque != "" || u.Host == "":
		return ServiceURL{}, errors.New("missing host (expected http://host:port/path)")
	case u.User != nil:
		return ServiceURL{}, errors.New("user information is not supported")
	case u.RawQuery != "" || u.ForceQuery:
		return ServiceURL{}, errors.New("a query string is not supported")
	case u.Fragment != "":
		return ServiceURL{}, errors.New("a fragment is not supported")
	}
	out := ServiceURL{Protocol: scheme, Port: DefaultPort(scheme)}
	if out.Host, err = NormalizeServiceHost(u.Hostname()); err != nil {
		return ServiceURL{}, err
	}
	if p := u.Port(); p != "" {
		if out.Port, err = ParsePort(p, MinPort); err != nil {
			return ServiceURL{}, err
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return ServiceURL{}, errors.New("empty port")
	}
	if path := u.EscapedPath(); path != "" {
		if err := checkPath(path); err != nil {
			return ServiceURL{}, err
		}
		out.Path = path
	}
	return out, nil
}

// RegexError is a route path's regular expression that does not compile.
type RegexError struct {
	Expr string
	Err  error
}

func (e *RegexError) Error() string {
	return fmt.Sprintf("invalid regular expression %s: %v", quote(e.Expr), e.Err)
}

func (e *RegexError) Unwrap() error { return e.Err }

// CheckRoutePath checks a route path: a prefix starting with '/', or a
// regular expression after '~' that Go's regexp compiles (a *RegexError
// otherwise).
func CheckRoutePath(s string) error {
	if re, ok := strings.CutPrefix(s, "~"); ok {
		if re == "" {
			return errors.New("empty regular expression after '~'")
		}
		if _, err := regexp.Compile(re); err != nil {
			return &RegexError{Expr: re, Err: err}
		}
		return nil
	}
	if err := checkPath(s); err != nil {
		return fmt.Errorf("%v (or '~' for a regular expression)", err)
	}
	return nil
}

// CheckTag checks a tag as Kong does: 1 to MaxTagLen characters, each a
// printable ASCII character other than ',' and '/' (or a printable
// non-ASCII one); spaces and control characters are refused.
func CheckTag(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if !utf8.ValidString(s) {
		return errors.New("invalid tag: not valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > MaxTagLen {
		return fmt.Errorf("invalid tag: %d characters, at most %d", n, MaxTagLen)
	}
	for _, c := range s {
		if c == ',' || c == '/' {
			return fmt.Errorf("invalid tag %q: ',' and '/' are not allowed", s)
		}
		if c < 0x21 || c == 0x7f || (c > 0x7f && (!unicode.IsPrint(c) || unicode.IsSpace(c))) {
			return fmt.Errorf("invalid tag %q: printable characters only (no spaces or control characters)", s)
		}
	}
	return nil
}

// DefaultHTTPSRedirect is a route's https_redirect_status_code when none
// is given (Kong's).
const DefaultHTTPSRedirect = 426

// HTTPSRedirectCodes are the values of a route's
// https_redirect_status_code, as Kong's: 426 refuses a plaintext request
// to an https-only route, the others redirect it to https.
func HTTPSRedirectCodes() []int { return []int{426, 301, 302, 307, 308} }

// CheckHTTPSRedirect checks an https_redirect_status_code.
func CheckHTTPSRedirect(code int) error {
	if !slices.Contains(HTTPSRedirectCodes(), code) {
		return fmt.Errorf("expected one of 426, 301, 302, 307, 308, got %d", code)
	}
	return nil
}

// KongField is a field of a Kong entity that Outrigger does not implement:
// a file or an admin request may carry it at Kong's default (or null, or
// an empty list), so whole Kong entities (a decK dump, Kong Manager's
// requests) are taken as they are; any other value is refused with Why.
type KongField struct {
	Name string
	// Default is the one value accepted besides null and [], as written
	// (a YAML or form scalar's text, a JSON value's fmt.Sprint); "" when
	// only null is.
	Default string
	// Why says what Outrigger does not do.
	Why string
}

// Refusal is the reason a KongField set to another value is refused.
func (k KongField) Refusal() string {
	if k.Default == "" {
		return "not supported by outrigger (leave it null): " + k.Why
	}
	return "not supported by outrigger (only " + k.Default + "): " + k.Why
}

// Accepts reports whether text, a scalar's text, is the default.
func (k KongField) Accepts(text string) bool { return k.Default != "" && text == k.Default }

// Entity kinds of the declarative schema, as KongFields and MetaFields
// name them.
const (
	KindUpstream = "upstream"
	KindTarget   = "target"
	KindService  = "service"
	KindRoute    = "route"
	KindPlugin   = "plugin"
	KindConsumer = "consumer"
	KindKeyAuth  = "keyauth_credential"
)

// KongFields are the Kong fields of kind (KindUpstream, ...) accepted only
// at their default. The file's decoder and the admin API both read them
// from here.
func KongFields(kind string) []KongField {
	switch kind {
	case KindService:
		return []KongField{
			{"enabled", "true", "a service cannot be disabled (delete it, or its routes)"},
		}
	case KindRoute:
		stream := "stream (TCP/TLS) routing is not implemented"
		buffering := "requests and responses are always streamed through, not buffered"
		return []KongField{
			{"request_buffering", "true", buffering},
			{"response_buffering", "true", buffering},
			{"snis", "", stream},
			{"sources", "", stream},
			{"destinations", "", stream},
		}
	case KindPlugin:
		return []KongField{
			{"ordering", "", "plugins run in Kong's static priority order"},
			{"consumer_group", "", "consumer groups are not implemented"},
		}
	case KindKeyAuth:
		return []KongField{{"ttl", "", "credentials do not expire"}}
	case KindUpstream:
		fallback := "the fallback hash reads the same hash_on_* input as hash_on"
		return []KongField{
			{"host_header", "", "the Host sent upstream is the service's (or the client's, with preserve_host)"},
			{"client_certificate", "", "set client_certificate on the service"},
			{"use_srv_name", "false", "the Host of a DNS SRV target is never its SRV name"},
			{"sticky_sessions_cookie_path", "/", "the sticky-session cookie's path is always /"},
			{"hash_fallback_header", "", fallback},
			{"hash_fallback_query_arg", "", fallback},
			{"hash_fallback_uri_capture", "", fallback},
		}
	}
	return nil
}

// MetaFields are the bookkeeping fields every entity of kind may carry (a
// decK dump or an admin answer sent back): id (a UUID, kept), created_at
// and updated_at (Unix seconds; the layer sets its own), ws_id (Kong's
// workspace id; Outrigger has one workspace). Targets also name their
// upstream.
func MetaFields(kind string) []string {
	out := []string{"id", "created_at", "updated_at", "ws_id"}
	if kind == KindTarget {
		out = append(out, "upstream")
	}
	return out
}

// DeclarativeFormats are the _format_version values a declarative file
// may give (Kong's 1.1, 2.1 and 3.0: the entities Outrigger implements
// read the same in each).
func DeclarativeFormats() []string { return []string{"1.1", "2.1", "3.0"} }

// NullableFields are the optional fields of an entity (named as the
// file's decoder names its mappings: "service", "route", "upstream",
// "target", "healthchecks.active") that may be written null, meaning not
// set: Kong's answers and decK's files write unset fields so, and the
// admin API takes null as "the default" for every field.
func NullableFields(ctx string) []string {
	switch ctx {
	case KindService:
		return ServiceSchema().NullableFields()
	case KindRoute:
		return RouteSchema().NullableFields()
	case KindUpstream:
		return []string{"hash_on_header", "hash_on_cookie", "hash_on_query_arg", "hash_on_uri_capture", "tags"}
	case KindTarget:
		return []string{"tags", "zone"}
	case "healthchecks.active":
		return []string{"https_sni", "grpc_service", "headers"}
	}
	return nil
}
