// Package consul discovers upstream targets from Consul's health endpoint and
// registers the local service with the Consul agent.
//
// Contract of Source (one per watched service):
//
//   - Run issues blocking queries against /v1/health/service/<service>
//     (stale reads allowed, so any server answers), with every configured tag
//     as its own ?tag= filter (AND) and Meta matched client-side (every key
//     present with the exact value).
//   - Health: PassingOnly keeps instances whose every check (node and service
//     checks) is passing; otherwise passing and warning instances are kept.
//     Critical instances are never emitted, and neither are instances in node
//     or service maintenance (checks "_node_maintenance" and
//     "_service_maintenance:<id>"), whatever their other checks say.
//   - Each kept instance becomes one discovery.Target: Addr is
//     Service.Address (Node.Address when empty) joined with Service.Port;
//     Tags and Meta are copies of the service's, with the zone of
//     ZoneMetaKey (service meta first, then node meta) as "zone", and the
//     node meta's "zone" and "region" added where the service meta has none
//     (discovery.WithLocality); Priority is discovery.MetaPriority of the
//     service meta (the "priority" key, else 0) and Backup
//     discovery.MetaBackup (the "backup" key). Weight is the integer in
//     Service.Meta[WeightMetaKey] when that key is configured and parses,
//     else Service.Weights.Passing for passing instances and
//     Service.Weights.Warning for warning ones; it is clamped to 0..65535.
//     Instances sharing an address collapse into one target (the first by
//     node name, then service ID). Targets are sorted by Addr.
//   - Emissions are full sets. A set is emitted on the first success, after
//     any failure, and whenever it differs from the last emitted set; wakeups
//     of the blocking query that do not change the set emit nothing.
//   - Every failed query emits an Update with Err (the consumer keeps its
//     last set); never an empty set. Retries back off exponentially with full
//     jitter (100ms doubling to 30s by default). After a failure the wait
//     index is reset to 0, so the first answer after an outage (or after the
//     agent lost its state) is fresh and is emitted.
//   - Prompt recovery: when a query got no HTTP answer at all (refused,
//     reset, timed out) or a 5xx, the backoff also ends as soon as the
//     agent is back: a reachability probe (GET /v1/status/leader every
//     DefaultProbeInterval, 250ms, no token, 1s timeout) answers 200 with a
//     leader after the agent was seen down (no answer, an error status or
//     no leader). An agent that answers the probe all along (a 5xx with
//     another cause) does not cut the backoff short, nor does a 4xx. The
//     probe runs only while someone waits on it, and is shared by every
//     Source and Registrar built with the same Probes (WithProbes) that
//     talk to the same agent (scheme and address); without WithProbes each
//     has its own.
//   - Index rules (Consul's blocking query guidance): an index that goes
//     backwards resets the wait index to 0; an answer carrying index 0
//     makes the next wait index 1, so 0 is never sent twice in a row;
//     blocking answers that come back early (before WaitTime/2) without
//     index progress count as consecutive spins, each delayed with the same
//     backoff as errors (non-blocking index-0 queries neither count nor
//     clear spins); and a token bucket (burst 5, then one query per 200ms,
//     by default) caps the rate of queries that follow an answer without
//     effect (the index moved, the emitted set did not).
//   - Freshness: an answer is emitted as soon as it arrives, never held
//     back, and an answer that changed the set is followed by the next
//     blocking query at once, so a burst of changes is coalesced by Consul
//     itself (each answer carries the newest state, and the last answer
//     is the last state) and the query rate is bounded by the registry's
//     own change rate. Update.Observed is when the answer arrived.
//   - The HTTP client's timeout is the wait time plus wait/16 (Consul's own
//     jitter) plus 10s, so a blocking query is never cut short by the client.
//
// Contract of Registrar (one per announced service instance):
//
//   - Run registers the service (with at most one check: HTTP, TCP, GRPC or
//     TTL; a GRPC check is the agent's own grpc.health.v1.Health/Check call
//     to "host:port[/service]", passing on SERVING) with the local agent, retrying with backoff until it succeeds, then
//     verifies every WithVerifyInterval (default 10s) that the agent still knows
//     the service ID and re-registers it when the agent answers 404 (the
//     agent restarted without state, or someone deregistered it).
//   - After a registration, verification or TTL update that got no answer
//     (or a 5xx), the next verification (or registration attempt) happens
//     as soon as the agent's reachability probe sees it back (as for
//     Source), not when the backoff or the verify interval runs out: an
//     agent that restarted without state gets the service back within
//     about the probe interval.
//   - When Check.LocalHealthURL is set, the local service is probed with a
//     GET (2xx = healthy) every TTL/3 for TTL checks, else every
//     Check.Interval (default 10s). Healthy reports the last probe's verdict
//     (false before the first probe; always true without LocalHealthURL).
//     For TTL checks Run reports each verdict to the agent with UpdateTTL
//     (pass/fail and the probe's output); without LocalHealthURL a TTL check
//     is passed every TTL/3 for as long as Run runs.
//   - Run never logs: it reports through the OnEvent callback of
//     WithOnEvent (event kind and error; nil error means success).
//   - When ctx ends Run deregisters the service (5s timeout) and returns the
//     deregistration error, if any (an unknown service counts as success).
//
// Both read no environment except through the lookup given with
// WithLookupEnv (default os.LookupEnv), and only for CONSUL_HTTP_ADDR when
// Address is empty (then 127.0.0.1:8500). The token is exactly the
// configured one: CONSUL_HTTP_TOKEN and friends, which the Consul client
// library would otherwise pick up, are overridden, and so are namespace and
// partition variables. No HTTP proxy is used.
package consul
