package config

import (
	"fmt"
	"strconv"
)

// The upstream's, the target's and the circuit breakers' fields
// (fields.go). The other blocks of an upstream (slow_start, panic,
// retry_budget, retry_policy, healthchecks) are custom fields: the file
// writes their durations as "30s" where the admin API takes seconds, and
// an absent healthy or unhealthy block means different defaults to each.

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

// RetryBudgetSchema is the retry_budget block's fields; ttl is custom
// (the file writes a duration, the admin API seconds).
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
		{FieldSpec{Name: "ttl", Type: FieldCustom, Doc: fmt.Sprintf("seconds of the window (default %g)", d.TTL.Float())},
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
// passive are custom (ActiveSchema; the passive checker's counters mean
// other defaults to the file and to the admin API).
func HealthchecksSchema() *Schema[Healthchecks] {
	type f = Field[Healthchecks]
	return &Schema[Healthchecks]{Kind: "healthchecks", New: defaultHealthchecks, Fields: []f{
		{FieldSpec{Name: "threshold", Type: FieldFloat, Min: 0, Max: MaxPercent, Doc: "percent of healthy weight under which the upstream fails"},
			func(h *Healthchecks) any { return &h.Threshold }},
		{FieldSpec{Name: "active", Type: FieldCustom}, func(*Healthchecks) any { return nil }},
		{FieldSpec{Name: "passive", Type: FieldCustom}, func(*Healthchecks) any { return nil }},
	}}
}

// ActiveSchema is an active checker's fields; its timeout (the file
// takes a positive number of seconds, the API 0 for the default), headers
// and counter blocks are custom.
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
		custom("timeout", "seconds"),
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

// SuccessRateSchema is a success_rate block's fields; interval is custom
// (a duration in the file, seconds in the API).
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
		{FieldSpec{Name: "interval", Type: FieldCustom, Doc: fmt.Sprintf("seconds between evaluations (default %g)", d.Interval.Float())},
			func(s *SuccessRate) any { return &s.Interval }},
	}}
}
