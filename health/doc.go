// Package health keeps the health state of one upstream's targets, as Kong's
// health checker does, with Envoy-style timed passive ejection.
//
// Contract:
//
//   - One Checker per upstream. Targets are identified by address
//     ("host:port"); the package knows nothing of discovery, balancing or
//     proxying. Healthy(addr) is what the upstream's picker consults; it
//     takes no lock and reports unknown addresses as healthy.
//   - State survives target-set updates: SetTargets diffs by address, keeps
//     everything of addresses still listed (verdict, counters, manual mark,
//     ejection history), starts new addresses healthy and forgets removed
//     ones. A refresh that re-lists an unhealthy target never heals it.
//   - Counters (Kong): every target has, for the active and for the passive
//     checker separately, consecutive counters of successes, HTTP failures,
//     TCP failures and timeouts. A success clears that checker's failure
//     counters; a failure clears its success counter. A threshold of 0
//     disables its counter. A healthy target whose failure counter reaches
//     its threshold turns unhealthy; an unhealthy target whose success
//     counter reaches its threshold turns healthy. Every change of verdict
//     resets all counters of the target.
//   - Active checks probe every ActiveConfig.HealthyInterval while healthy
//     and every UnhealthyInterval while unhealthy (0: no probes in that
//     state), the next probe being planned when the previous one completes
//     (and re-planned when the verdict changes otherwise). A target's first
//     probe waits a random jitter within its interval. At most one probe
//     per target and Concurrency probes per Checker are in flight. HTTP(S)
//     probes GET HTTPPath over a private transport (no keep-alives, no
//     proxy, no redirects): a status in HealthyStatuses is a success, in
//     UnhealthyStatuses an HTTP failure, any other is ignored; a connect,
//     TLS or read error is a TCP failure; exceeding Timeout is a timeout.
//     tcp probes only connect. grpc (plaintext HTTP/2) and grpcs (TLS,
//     with the https verification and SNI settings) probes call
//     grpc.health.v1.Health/Check for GRPCService over one gRPC channel
//     per target, opened by its first probe and kept across probes until
//     the target leaves the set or the run ends (probe headers are sent as
//     metadata): SERVING is a success; any other answer or an error
//     status from the server an HTTP failure; a connection that cannot be
//     established (or breaks) a TCP failure; exceeding Timeout a timeout.
//     A probe waits up to Timeout for the channel to connect, and a
//     channel in reconnect backoff retries at once when probed.
//   - Passive checks count outcomes of proxied requests (Observe) with the
//     passive thresholds and status lists. Reaching a failure threshold
//     ejects the target, unless MaxEjectionPercent would be exceeded: then
//     the ejection is refused, the target stays healthy, its passive
//     counters are reset and a CauseEjectionRefused event is emitted. An
//     ejected target comes back through active successes when active
//     checks can do that (active enabled, UnhealthyInterval > 0, Successes
//     > 0, and for http(s) a non-empty HealthyStatuses), which needs the
//     Checker to be running; otherwise the ejection is timed: BaseEjectionTime × the number
//     of recent ejections, capped at MaxEjectionTime, after which the
//     target is healthy again with fresh counters. The ejection count
//     decays by one per BaseEjectionTime spent healthy. Passive outcomes
//     for an unhealthy target are ignored, except that successes may end a
//     timed ejection early (PassiveConfig.Successes).
//   - Success-rate ejection (PassiveConfig.SuccessRate, Envoy's): while the
//     Checker runs, every Interval the healthy targets with RequestVolume
//     passive outcomes in it are compared when there are MinimumHosts of
//     them; one under mean − StdevFactor/1000 × stdev is ejected as a
//     passive ejection (CauseSuccessRate), lowest rate first, never the last
//     healthy target. Counts are per interval (atomics, no lock in
//     Observe); TargetState.SuccessRate is the last sample.
//   - MaxEjectionPercent allows floor(pct × targets / 100) ejections at
//     once, at least one, and (below 100) never every target (ejectionLimit).
//   - Manual marks (Mark) override the checks until cleared with MarkNone;
//     the checks keep running and counting underneath, and clearing the
//     mark returns to their verdict.
//   - Callbacks: OnEvent gets one Event per state change (verdict flip,
//     mark change, refused ejection), never per probe or request. OnChange
//     is called after the effective health of any target changed. Neither
//     is ever called under a lock of the Checker, never concurrently with
//     another callback of the same Checker, and in the order of the
//     changes; a goroutine that finds delivery under way leaves its own
//     callbacks to the delivering goroutine, so they may run just after the
//     call that caused them returned. Callbacks may call any method except
//     Start and Stop.
//   - Lifecycle: New; SetTargets at any time; Start(ctx) begins probing;
//     Stop (or cancelling ctx) ends probing, waits for probes in flight and
//     disarms ejection timers until the next Start. Passive checks and
//     marks work whether or not the Checker runs.
//
// Locking: a copy-on-write target map read without locks; one mutex per
// target guarding all its state, so Observe (called once per proxied
// request) contends only with reports for the same address; Checker.mu
// only for writers of the target set and for Start/teardown walks. The
// field comments in Checker and target say which lock guards what.
package health
