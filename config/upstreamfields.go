package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The fields of the upstream, the target and their blocks (fields.go).
// Where the file and the admin API read a field differently, the table
// says so: a FieldDuration is "30s" to the file and seconds to the API;
// FilePositive, APIZeroNull and FileOnly mark the other differences, and
// a counters block given bare means FileBare's defaults to the file.
// Still custom: the sticky cookie's ttl and the slow start window (a
// duration to both, the API's own words), retry_on, retry_backoff as a
// whole (null, 10 × base_interval), headers, and the nested blocks.

// UpstreamSchema is the upstream's fields.
func UpstreamSchema() *Schema[Upstream] {
	type f = Field[Upstream]
	hashInput := func(name, doc string, check func(string) error, at func(*Upstream) any) f {
		return f{FieldSpec{Name: name, Check: keepValue(check), Doc: doc}, at}
	}
	custom := func(name, doc string) f {
		return f{FieldSpec{Name: name, Type: FieldCustom, Doc: doc}, func(*Upstream) any { return nil }}
	}
	return &Schema[Upstream]{Kind: KindUpstream, New: defaultUpstream, Fields: []f{
		{FieldSpec{Name: "name", Check: keepValue(CheckUpstreamName), Doc: "hostname-like; a service's host names it"},
			func(u *Upstream) any { return &u.Name }},
		{FieldSpec{Name: "algorithm", OneOf: Algorithms(), Doc: "balancing algorithm"}, func(u *Upstream) any { return &u.Algorithm }},
		{FieldSpec{Name: "hash_on", OneOf: HashOnValues(), Doc: "hash input (consistent-hashing)"}, func(u *Upstream) any { return &u.HashOn }},
		{FieldSpec{Name: "hash_fallback", OneOf: HashOnValues(), Doc: "hash input when hash_on gives none"}, func(u *Upstream) any { return &u.HashFallback }},
		hashInput("hash_on_header", "header name (hash_on=header)", CheckToken, func(u *Upstream) any { return &u.HashOnHeader }),
		hashInput("hash_on_cookie", "cookie name (hash_on=cookie)", CheckToken, func(u *Upstream) any { return &u.HashOnCookie }),
		{FieldSpec{Name: "hash_on_cookie_path", Check: keepValue(checkPath), Doc: "cookie path"}, func(u *Upstream) any { return &u.HashOnCookiePath }},
		hashInput("hash_on_query_arg", "query argument (hash_on=query_arg)", checkNonEmpty, func(u *Upstream) any { return &u.HashOnQueryArg }),
		hashInput("hash_on_uri_capture", "regex capture name (hash_on=uri_capture)", checkNonEmpty, func(u *Upstream) any { return &u.HashOnURICapture }),
		{FieldSpec{Name: "slots", Type: FieldInt, Min: MinSlots, Max: MaxSlots, Doc: "ring size (consistent-hashing)"},
			func(u *Upstream) any { return &u.Slots }},
		{FieldSpec{Name: "tags", Type: FieldTags}, func(u *Upstream) any { return &u.Tags }},
		{FieldSpec{Name: "sticky_sessions_cookie", Check: keepValue(CheckToken), Doc: "the sticky-sessions cookie's name (default " + DefaultStickyCookie + ")"},
			func(u *Upstream) any { return &u.StickyCookie }},
		custom("sticky_sessions_cookie_ttl", "its lifetime, a duration (\"1h\", the default; 0: a session cookie)"),
		custom("slow_start", "ramps a new or recovered target's weight up over window"),
		custom("panic", "min_healthy_percent and mode (fail-open, fail-closed)"),
		custom("circuit_breakers", "limits on what is in progress at once (CircuitBreakersSchema)"),
		custom("retry_budget", "retry_ratio, min_retries_per_second and ttl"),
		custom("retry_policy", "retry_on, per_try_timeout, timeout and retry_backoff"),
		custom("healthchecks", "Kong's healthchecks: threshold, active, passive"),
		custom("discovery", "the file's discovery sources"),
		custom("targets", "the file's static targets"),
	}}
}

// TargetSchema is a target's fields.
func TargetSchema() *Schema[Target] {
	type f = Field[Target]
	return &Schema[Target]{Kind: KindTarget, New: func() Target { return Target{Weight: DefaultWeight} }, Fields: []f{
		{FieldSpec{Name: "target", Type: FieldCustom, Doc: "host:port (port 8000 when omitted)"}, func(t *Target) any { return &t.Target }},
		{FieldSpec{Name: "weight", Type: FieldInt, Min: 0, Max: MaxWeight, Doc: "default " + strconv.Itoa(DefaultWeight) + "; 0 drains"}, func(t *Target) any { return &t.Weight }},
		{FieldSpec{Name: "tags", Type: FieldTags}, func(t *Target) any { return &t.Tags }},
		{FieldSpec{Name: "priority", Type: FieldInt, Min: 0, Max: MaxPriority, Doc: "priority level, default 0; lower levels first, overflowing by health"}, func(t *Target) any { return &t.Priority }},
		{FieldSpec{Name: "backup", Type: FieldBool, Doc: "default false; takes traffic only when no primary target is healthy"},
			func(t *Target) any { return &t.Backup }},
		{FieldSpec{Name: "zone", Check: keepValue(CheckTag), Doc: "the target's zone, for zone-aware routing"}, func(t *Target) any { return &t.Zone }},
	}}
}

// SlowStartSchema is the slow_start block's fields; window is custom (a
// duration in both, but the admin API takes 0 and refuses it itself).
func SlowStartSchema() *Schema[SlowStart] {
	type f = Field[SlowStart]
	return &Schema[SlowStart]{Kind: "slow_start", New: func() SlowStart { return SlowStart{Aggression: 1, MinWeightPercent: 10} }, Fields: []f{
		{FieldSpec{Name: "window", Type: FieldCustom, Doc: "a positive duration (\"30s\")"}, func(s *SlowStart) any { return &s.Window }},
		{FieldSpec{Name: "aggression", Type: FieldFloat, Min: 0, Max: MaxAggression, Doc: "ramp curve exponent, > 0 (default 1)"},
			func(s *SlowStart) any { return &s.Aggression }},
		{FieldSpec{Name: "min_weight_percent", Type: FieldFloat, Min: 0, Max: MaxPercent, Doc: "weight at the start of the ramp (default 10)"},
			func(s *SlowStart) any { return &s.MinWeightPercent }},
	}}
}

// PanicSchema is the panic block's fields.
func PanicSchema() *Schema[Panic] {
	type f = Field[Panic]
	return &Schema[Panic]{Kind: "panic", New: func() Panic { return *defaultUpstream().Panic }, Fields: []f{
		{FieldSpec{Name: "min_healthy_percent", Type: FieldFloat, Min: 0, Max: MaxPercent,
			Doc: "healthy share under which the upstream panics (0: never)"}, func(p *Panic) any { return &p.MinHealthyPercent }},
		{FieldSpec{Name: "mode", OneOf: PanicModes(), Doc: "what a panicking upstream does"}, func(p *Panic) any { return &p.Mode }},
	}}
}

// RetryBudgetSchema is the retry_budget block's fields.
func RetryBudgetSchema() *Schema[RetryBudget] {
	type f = Field[RetryBudget]
	d := DefaultRetryBudget()
	return &Schema[RetryBudget]{Kind: "retry_budget", New: DefaultRetryBudget, Fields: []f{
		{FieldSpec{Name: "retry_ratio", Type: FieldFloat, Min: 0, Max: MaxRetryRatio,
			Doc: fmt.Sprintf("share of the requests of the last ttl retries may add (default %g)", d.RetryRatio)},
			func(b *RetryBudget) any { return &b.RetryRatio }},
		{FieldSpec{Name: "min_retries_per_second", Type: FieldFloat, Min: 0, Max: MaxMinRetriesPerSecond,
			Doc: fmt.Sprintf("retries per second allowed on top (default %g)", d.MinRetriesPerSecond)},
			func(b *RetryBudget) any { return &b.MinRetriesPerSecond }},
		{FieldSpec{Name: "ttl", Type: FieldDuration, Min: int64(MinRetryBudgetTTL), Max: int64(MaxRetryBudgetTTL),
			Doc: fmt.Sprintf("seconds of the window (default %g)", d.TTL.Float())},
			func(b *RetryBudget) any { return &b.TTL }},
	}}
}

// CircuitBreakersSchema is the circuit_breakers block's fields.
func CircuitBreakersSchema() *Schema[CircuitBreakers] {
	type f = Field[CircuitBreakers]
	limit := func(name, doc string, at func(*CircuitBreakers) any) f {
		return f{FieldSpec{Name: name, Type: FieldInt, Min: 0, Max: MaxBreakerLimit, Doc: doc}, at}
	}
	return &Schema[CircuitBreakers]{Kind: "circuit_breakers", New: func() CircuitBreakers { return CircuitBreakers{} }, Fields: []f{
		limit("max_requests", "requests in progress to the upstream; over it a request is answered 503 with x-outrigger-overloaded: true; 0: unlimited",
			func(c *CircuitBreakers) any { return &c.MaxRequests }),
		limit("max_retries", "retries in progress to the upstream; 0: unlimited", func(c *CircuitBreakers) any { return &c.MaxRetries }),
		limit("max_connections", "open connections to the upstream's targets (HTTP/1.1 upstreams); 0: unlimited",
			func(c *CircuitBreakers) any { return &c.MaxConnections }),
		limit("max_pending_requests", "requests that may wait for a connection while max_connections are open; 0: none waits",
			func(c *CircuitBreakers) any { return &c.MaxPendingRequests }),
	}}
}

// HealthchecksSchema is the healthchecks block's fields; active and
// passive are custom (ActiveSchema, PassiveSchema: each turns its checker
// on).
func HealthchecksSchema() *Schema[Healthchecks] {
	type f = Field[Healthchecks]
	return &Schema[Healthchecks]{Kind: "healthchecks", New: defaultHealthchecks, Fields: []f{
		{FieldSpec{Name: "threshold", Type: FieldFloat, Min: 0, Max: MaxPercent, Doc: "percent of healthy weight under which the upstream fails"},
			func(h *Healthchecks) any { return &h.Threshold }},
		{FieldSpec{Name: "active", Type: FieldCustom}, func(*Healthchecks) any { return nil }},
		{FieldSpec{Name: "passive", Type: FieldCustom}, func(*Healthchecks) any { return nil }},
	}}
}

// ActiveSchema is an active checker's fields; its timeout is a positive
// number of seconds to the file, where the API takes 0 (and null) for the
// default; headers and the counter blocks (ActiveHealthySchema,
// ActiveUnhealthySchema) are custom.
func ActiveSchema() *Schema[Active] {
	type f = Field[Active]
	custom := func(name, doc string) f {
		return f{FieldSpec{Name: name, Type: FieldCustom, Doc: doc}, func(*Active) any { return nil }}
	}
	return &Schema[Active]{Kind: "active", New: func() Active { return defaultHealthchecks().Active }, Fields: []f{
		{FieldSpec{Name: "type", OneOf: ActiveCheckTypes(), Doc: "probe: http(s) GET, tcp connect, or grpc(s) grpc.health.v1.Health/Check"},
			func(a *Active) any { return &a.Type }},
		{FieldSpec{Name: "grpc_service", Check: keepValue(CheckGRPCService), Doc: "grpc(s) only: the service name asked about; empty or null is the whole server"},
			func(a *Active) any { return &a.GRPCService }},
		{FieldSpec{Name: "http_path", Check: keepValue(checkPath), Doc: "probe path"}, func(a *Active) any { return &a.HTTPPath }},
		{FieldSpec{Name: "timeout", Type: FieldSeconds, Max: MaxSeconds * int64(time.Second), FilePositive: true, APIZeroNull: true, Doc: "seconds"},
			func(a *Active) any { return &a.Timeout }},
		{FieldSpec{Name: "concurrency", Type: FieldInt, Min: MinConcurrency, Max: MaxConcurrency}, func(a *Active) any { return &a.Concurrency }},
		{FieldSpec{Name: "https_verify_certificate", Type: FieldBool, Doc: "https and grpcs"}, func(a *Active) any { return &a.HTTPSVerifyCertificate }},
		{FieldSpec{Name: "https_sni", Check: keepValue(checkServerName), Doc: "https and grpcs"}, func(a *Active) any { return &a.HTTPSSNI }},
		custom("headers", "header name → values"),
		custom("healthy", ""),
		custom("unhealthy", ""),
	}}
}

// checkServerName checks a TLS server name (empty: none).
func checkServerName(s string) error {
	if s != "" && !ValidHostname(s) {
		return fmt.Errorf("%s is not a valid server name", quote(s))
	}
	return nil
}

// SuccessRateSchema is a success_rate block's fields.
func SuccessRateSchema() *Schema[SuccessRate] {
	type f = Field[SuccessRate]
	d := DefaultSuccessRate()
	return &Schema[SuccessRate]{Kind: "success_rate", New: DefaultSuccessRate, Fields: []f{
		{FieldSpec{Name: "minimum_hosts", Type: FieldInt, Min: MinSuccessRateHosts, Max: MaxSuccessRateCount,
			Doc: fmt.Sprintf("targets with request_volume needed to compare rates (default %d)", d.MinimumHosts)},
			func(s *SuccessRate) any { return &s.MinimumHosts }},
		{FieldSpec{Name: "request_volume", Type: FieldInt, Min: 1, Max: MaxSuccessRateCount,
			Doc: fmt.Sprintf("outcomes a target needs in an interval to be judged (default %d)", d.RequestVolume)},
			func(s *SuccessRate) any { return &s.RequestVolume }},
		{FieldSpec{Name: "stdev_factor", Type: FieldInt, Min: 1, Max: MaxSuccessRateCount,
			Doc: fmt.Sprintf("ejected under mean - stdev_factor/1000 x stdev (default %d)", d.StdevFactor)},
			func(s *SuccessRate) any { return &s.StdevFactor }},
		{FieldSpec{Name: "interval", Type: FieldDuration, Min: int64(MinSuccessRateInterval), Max: int64(MaxSuccessRateInterval),
			Doc: fmt.Sprintf("seconds between evaluations (default %g)", d.Interval.Float())},
			func(s *SuccessRate) any { return &s.Interval }},
	}}
}

// counter, seconds and statuses are the fields of the counters blocks.
func counter[T any](name, doc string, at func(*T) *int) Field[T] {
	return Field[T]{FieldSpec{Name: name, Type: FieldInt, Min: 0, Max: MaxCounter, Doc: doc}, func(t *T) any { return at(t) }}
}

func probeInterval[T any](at func(*T) *Seconds) Field[T] {
	return Field[T]{FieldSpec{Name: "interval", Type: FieldSeconds, Max: MaxSeconds * int64(time.Second), Doc: "seconds between probes; 0 disables"},
		func(t *T) any { return at(t) }}
}

func httpStatuses[T any](at func(*T) *[]int) Field[T] {
	return Field[T]{FieldSpec{Name: "http_statuses", Type: FieldInts, Min: MinHTTPStatus, Max: MaxHTTPStatus, Doc: "HTTP statuses"},
		func(t *T) any { return at(t) }}
}

// ActiveHealthySchema is an active checker's healthy block.
func ActiveHealthySchema() *Schema[ActiveHealthy] {
	type T = ActiveHealthy
	return &Schema[T]{Kind: "healthy", New: func() T { return defaultHealthchecks().Active.Healthy },
		FileBare: func(h *T) { h.Interval, h.Successes = Seconds(time.Second), 2 },
		Fields: []Field[T]{
			probeInterval(func(h *T) *Seconds { return &h.Interval }),
			counter("successes", "successes that make a target healthy", func(h *T) *int { return &h.Successes }),
			httpStatuses(func(h *T) *[]int { return &h.HTTPStatuses }),
		}}
}

// ActiveUnhealthySchema is an active checker's unhealthy block.
func ActiveUnhealthySchema() *Schema[ActiveUnhealthy] {
	type T = ActiveUnhealthy
	return &Schema[T]{Kind: "unhealthy", New: func() T { return defaultHealthchecks().Active.Unhealthy },
		FileBare: func(h *T) { h.Interval, h.HTTPFailures, h.TCPFailures, h.Timeouts = Seconds(time.Second), 5, 2, 3 },
		Fields: []Field[T]{
			probeInterval(func(h *T) *Seconds { return &h.Interval }),
			counter("http_failures", "", func(h *T) *int { return &h.HTTPFailures }),
			counter("tcp_failures", "", func(h *T) *int { return &h.TCPFailures }),
			counter("timeouts", "", func(h *T) *int { return &h.Timeouts }),
			httpStatuses(func(h *T) *[]int { return &h.HTTPStatuses }),
		}}
}

// PassiveSchema is the passive checker's fields; the counter blocks
// (PassiveHealthySchema, PassiveUnhealthySchema) and success_rate
// (SuccessRateSchema) are custom. The ejection settings are the file's
// only. The API's null type is empty (the default once resolved).
func PassiveSchema() *Schema[Passive] {
	type T = Passive
	custom := func(name string) Field[T] {
		return Field[T]{FieldSpec{Name: name, Type: FieldCustom}, func(*T) any { return nil }}
	}
	ejection := func(name string, at func(*T) *time.Duration) Field[T] {
		return Field[T]{FieldSpec{Name: name, Type: FieldDuration, FilePositive: true, FileOnly: true}, func(p *T) any { return at(p) }}
	}
	return &Schema[T]{Kind: "passive", New: func() T { return defaultHealthchecks().Passive }, Fields: []Field[T]{
		{FieldSpec{Name: "type", OneOf: PassiveCheckTypes(), APIZeroNull: true}, func(p *T) any { return &p.Type }},
		custom("healthy"),
		custom("unhealthy"),
		{FieldSpec{Name: "max_ejection_percent", Type: FieldFloat, Min: 0, Max: MaxPercent, FileOnly: true},
			func(p *T) any { return &p.MaxEjectionPercent }},
		ejection("base_ejection_time", func(p *T) *time.Duration { return &p.BaseEjectionTime }),
		ejection("max_ejection_time", func(p *T) *time.Duration { return &p.MaxEjectionTime }),
		custom("success_rate"),
	}}
}

// PassiveHealthySchema is the passive checker's healthy block.
func PassiveHealthySchema() *Schema[PassiveHealthy] {
	type T = PassiveHealthy
	return &Schema[T]{Kind: "healthy", New: func() T { return defaultHealthchecks().Passive.Healthy },
		FileBare: func(h *T) { h.Successes = 5 },
		Fields: []Field[T]{
			counter("successes", "", func(h *T) *int { return &h.Successes }),
			httpStatuses(func(h *T) *[]int { return &h.HTTPStatuses }),
		}}
}

// PassiveUnhealthySchema is the passive checker's unhealthy block.
func PassiveUnhealthySchema() *Schema[PassiveUnhealthy] {
	type T = PassiveUnhealthy
	return &Schema[T]{Kind: "unhealthy", New: func() T { return defaultHealthchecks().Passive.Unhealthy },
		FileBare: func(h *T) { h.HTTPFailures, h.TCPFailures, h.Timeouts = 5, 2, 7 },
		Fields: []Field[T]{
			counter("http_failures", "", func(h *T) *int { return &h.HTTPFailures }),
			counter("tcp_failures", "", func(h *T) *int { return &h.TCPFailures }),
			counter("timeouts", "", func(h *T) *int { return &h.Timeouts }),
			httpStatuses(func(h *T) *[]int { return &h.HTTPStatuses }),
			{FieldSpec{Name: "grpc_statuses", Type: FieldInts, Min: 0, Max: MaxGRPCStatus,
				Doc: "gRPC statuses counted as failures (default " + joinInts(defaultHealthchecks().Passive.Unhealthy.GRPCStatuses) + ")"},
				func(h *T) any { return &h.GRPCStatuses }},
		}}
}

// RetryPolicySchema is the retry_policy block's fields; retry_on (the
// file drops repeated conditions, the API refuses them) and
// retry_backoff (RetryBackoffSchema) are custom. Its timeouts are
// positive to the file, where the API takes 0 for none.
func RetryPolicySchema() *Schema[RetryPolicy] {
	type T = RetryPolicy
	return &Schema[T]{Kind: "retry_policy", New: DefaultRetryPolicy, Fields: []Field[T]{
		{FieldSpec{Name: "retry_on", Type: FieldCustom}, func(*T) any { return nil }},
		retryDuration("per_try_timeout", "seconds each attempt may take up to the response head; 0: none", func(r *T) *time.Duration { return &r.PerTryTimeout }),
		retryDuration("timeout", "seconds all attempts may take up to the response head; 0: none", func(r *T) *time.Duration { return &r.Timeout }),
		{FieldSpec{Name: "retry_backoff", Type: FieldCustom}, func(*T) any { return nil }},
	}}
}

// RetryBackoffSchema is a retry_policy's retry_backoff block; a
// base_interval given without max_interval makes it 10 × base_interval
// (Envoy's default), in both decoders.
func RetryBackoffSchema() *Schema[RetryPolicy] {
	type T = RetryPolicy
	return &Schema[T]{Kind: "retry_backoff", New: DefaultRetryPolicy, Fields: []Field[T]{
		retryDuration("base_interval", fmt.Sprintf("seconds (default %g)", DefaultRetryPolicy().BackoffBase.Seconds()),
			func(r *T) *time.Duration { return &r.BackoffBase }),
		retryDuration("max_interval", "seconds, at least base_interval (default 10 x base_interval)", func(r *T) *time.Duration { return &r.BackoffMax }),
	}}
}

func retryDuration(name, doc string, at func(*RetryPolicy) *time.Duration) Field[RetryPolicy] {
	return Field[RetryPolicy]{FieldSpec{Name: name, Type: FieldDuration, Max: int64(MaxRetryTimeout), FilePositive: true, Doc: doc},
		func(r *RetryPolicy) any { return at(r) }}
}

// joinInts is "4, 8, 14".
func joinInts(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ", ")
}
