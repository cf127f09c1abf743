// Package nacos discovers upstream targets from Nacos 2.x (gRPC naming API,
// server push) and registers the local service as an ephemeral Nacos
// instance.
//
// Clients and the Pool:
//
//   - All SDK clients come from a Pool the caller creates with NewPool and
//     passes to NewSource and NewRegistrar (one Pool per process is
//     enough; there is no package state). Sources on the same servers, gRPC
//     port, namespace and credentials share one SDK client, reference-counted
//     (created by the first Run, closed when the last Run returns; see
//     Pool.Stats). Each Registrar uses an SDK client of its own, because the
//     SDK's redo cache keeps one registration per service per client.
//   - An SDK client here is the SDK's gRPC naming proxy (which carries the
//     SDK's reconnect and redo of registrations and subscriptions) over the
//     SDK's service-info cache, with UpdateCacheWhenEmpty and
//     NotLoadCacheAtStart. The SDK's full naming client is deliberately not
//     used: it also starts, for its HTTP fallback, an unauthenticated UDP
//     push receiver on all interfaces (a random port in 54951..55950) that
//     writes straight into the service cache, and leaks that socket after
//     CloseClient.
//   - Each SDK client gets a private directory under os.TempDir() (see
//     WithTempDir) for the SDK's service cache files, removed when it
//     closes. The SDK's logger is process-wide and set up once, by the
//     first client created in the process: level "error" into
//     <os.TempDir()>/outrigger-nacos-sdk/nacos-sdk.log, rotated at 10MB
//     (WithSDKLogLevel, WithSDKLogDir). Nothing is written to the working
//     directory (the SDK's default).
//   - The SDK (v2.3.5) reads and writes its current connection and status
//     without synchronization while it reconnects (nacos-sdk-go#741, #905,
//     #908). This package calls into the SDK only while the client reports
//     itself connected (subscribe, register, unsubscribe, deregister),
//     which orders its calls after the SDK's reconnect; the SDK's internal
//     races remain.
//   - The environment is not read, except by the SDK itself for its
//     connection labels (nacos_app_conn_labels) and gRPC tuning variables;
//     TLS settings from the environment are ignored (plain gRPC only).
//
// Contract of Source (one per watched service):
//
//   - Run subscribes to the service over gRPC (one subscription per
//     namespace/group/service on the shared client, however many Sources
//     filter it) and never polls the server. A server push (or the SDK's
//     redo after a reconnect) only signals a change: Run then reads the full
//     snapshot from the SDK's cache and emits it when it differs from the
//     last emitted set (or is the first, or follows an Update{Err}).
//     Update.Observed is when the earliest push (or connection change) the
//     emission reflects reached the SDK's callback, or, without one, when
//     the subscribe's answer was read.
//   - A target is an instance that is Healthy, Enabled and has Weight > 0,
//     of one of Clusters (when set) and carrying every Metadata entry (both
//     filtered client-side). Addr is ip:port, Meta a copy of the instance
//     metadata, with the cluster name as "zone" when the metadata has no
//     zone and the cluster is not DEFAULT; Tags nil, Priority
//     discovery.MetaPriority of the metadata (the "priority" key, else 0),
//     Backup discovery.MetaBackup (the "backup" key). Weight is round(w*100) for the float
//     Nacos weight w, at least 1 for any positive w, at most 65535 (so 1.0
//     -> 100, 0.5 -> 50, 1.234 -> 123, 0.001 -> 1). Instances sharing an
//     address collapse into one (the first by cluster, then instance id).
//     Targets are sorted by Addr.
//   - The SDK client's connection state is sampled every 50ms (a local read,
//     WithHealthInterval). When the connection is lost Run emits one
//     Update{Err} wrapping ErrDisconnected and keeps quiet until it is back:
//     the consumer keeps the last set; an outage never yields an empty set.
//     After every reconnect Run subscribes again (idempotent; the SDK's redo
//     does too) and emits the fresh snapshot.
//   - A restarted server, or one that dropped the connections of the
//     instances' owners, answers empty until the owners reconnect and
//     register again. So an empty answer that would replace a non-empty set
//     and comes on a newer connection than that set is held back until the
//     connection is WithReconnectGrace old (default 10s): Run emits one
//     Update{Err} wrapping ErrEmptyAfterReconnect meanwhile, then the empty
//     set if it is still empty. Any non-empty answer is emitted at once.
//     Otherwise an empty answer is authoritative (the last instance left)
//     and is emitted as an empty set.
//   - A failed subscription emits an Update{Err} and is retried with
//     backoff (full jitter, 100ms doubling to 30s by default).
//   - Name is "nacos:<group>@@<service>", plus "@<namespace>" when the
//     namespace is not public.
//
// Contract of Registrar (one per announced instance):
//
//   - Run registers the instance (ip, port, float weight, cluster,
//     metadata, group, namespace) as an ephemeral instance over gRPC once
//     its client is connected (reporting EventRegister with ErrDisconnected
//     while it waits), retrying failures with backoff until it succeeds.
//     Nacos drops ephemeral instances with their connection; after every
//     reconnect the SDK registers the instance again by itself (its redo),
//     so Run needs no polling. Run reports through WithOnEvent
//     (EventRegister, EventDisconnect, EventReconnect, EventDeregister) and
//     never logs.
//   - With a Check, Run probes the local service (a gRPC health check of
//     "host:port[/service]", SERVING passing, over one gRPC channel kept
//     for the whole Run; or GET of a health URL, 2xx passing) before the
//     first registration and then every Check.Interval. The instance is
//     registered with healthy set to the probe's verdict, and registered
//     again (replacing it, and the SDK's redo copy) whenever the verdict
//     changes, so Sources filtering on health drop and regain it; each
//     change is reported as EventProbe, a failed update as EventUpdate
//     (then retried with backoff). Healthy reports the verdict. Without a
//     Check the instance is always registered healthy.
//   - When ctx ends Run deregisters the instance (bounded by the Pool's
//     request timeout, WithRequestTimeout, default 5s; skipped while
//     disconnected since the server already dropped it), closes its client
//     and returns the deregistration error, if any.
//
// Testing: the tests run against internal/nacostest, an in-process server
// speaking the Nacos 2.x gRPC protocol, unless NACOS_ADDR is set; then the
// same tests run against that real server (host:port of its HTTP port;
// gRPC on port+1000), skipping the subtests that need the fake's hooks
// (dropping connections, stopping the server, flipping instance health).
// With Docker:
//
//	docker run -d -p 8848:8848 -p 9848:9848 -e MODE=standalone nacos/nacos-server
//	NACOS_ADDR=127.0.0.1:8848 go test ./discovery/nacos/
//
// Under the race detector the tests that make SDK clients reconnect (or fail
// requests) are skipped: the SDK's own races there fail any test that
// triggers them. Run the package without -race as well to exercise them.
package nacos
