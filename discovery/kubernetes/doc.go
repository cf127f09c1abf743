// Package kubernetes discovers upstream targets from the discovery.k8s.io/v1
// EndpointSlices of a Kubernetes Service, through client-go informers.
//
// Clients and the Pool:
//
//   - All API clients and informers come from a Pool the caller creates with
//     NewPool and passes to NewSource (one Pool per process; there is no
//     package state). One client per set of credentials; one informer per
//     (credentials, namespace, service, label selector), reference-counted:
//     started by the first Source's Run that needs it, stopped when the last
//     one returns (Pool.Stats). Sources that differ only in their port share
//     an informer.
//   - The client knows discovery.k8s.io/v1 EndpointSlices and nothing else:
//     its scheme registers that kind, its list and the meta types only, as
//     the package's own types (types.go: the fields of k8s.io/api's
//     discovery/v1 the watcher reads, under their JSON names). Neither
//     client-go's clientset (its scheme registers every API group) nor
//     k8s.io/api is linked in: k8s.io/api/discovery/v1 imports core/v1,
//     whose initialisation keeps the generated code of every core type.
//     It asks for JSON.
//   - Credentials: with SourceConfig.Kubeconfig, that file's current
//     context (its namespace is the default one). Otherwise the pod's
//     service account, as client-go's in-cluster configuration:
//     https://KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT, the token,
//     ca.crt and namespace files under DefaultServiceAccountDir (the token
//     file is re-read as the kubelet rotates it). Without either Run
//     reports ErrNotInCluster.
//   - client-go's own logging (klog) is discarded for these informers:
//     every failure reaches the Sources' updates instead.
//
// Contract of Source (one per upstream block):
//
//   - The informer lists, then watches, the EndpointSlices labelled
//     kubernetes.io/service-name=<service> (plus the label selector) in one
//     namespace: the gateway never lists more than that service's slices.
//     The watch resumes from the last resourceVersion after it ends or
//     breaks; a 410 Gone (the version was compacted) makes the informer
//     list again. Every event wakes the Source, which then reads the whole
//     store and emits the full set when it differs from the last one it
//     emitted (or is the first, or follows an Update{Err}). Nothing is
//     polled. Update.Observed is when the earliest event the emission
//     reflects reached the informer's handler.
//   - Nothing is emitted before the first list has been delivered: a
//     consumer's readiness waits for it. After it, an empty set (no slice,
//     or no endpoint on the port) is an authoritative empty answer.
//   - Merging: slices of address type IPv4 or IPv6 (FQDN slices are
//     skipped, as kube-proxy does) that carry the configured port (TCP; by
//     name, or by number: the endpoint port, i.e. the Service's
//     targetPort). Each endpoint's first address is its address. An
//     address listed twice (in two slices while one replaces the other)
//     keeps its best condition. Targets are sorted by Addr.
//   - Conditions, as kube-proxy reads them: ready (nil means true) gets
//     traffic, weight 100 (Weight); serving (nil means true) and
//     terminating (nil means false) gets weight 0 while any endpoint is
//     ready, and weight 100 when none is (kube-proxy's fallback to
//     terminating endpoints, so in-flight work finishes and nothing is
//     dropped while a rollout replaces the last pods); anything else stays
//     listed at weight 0 (draining: no new requests, the ones in flight
//     finish). Meta "condition" is "ready", "terminating" (and serving) or
//     "not-ready".
//   - Meta also carries "zone", "nodeName", "hints.forZones" and
//     "hints.forNodes" (comma-separated) and "pod" (the target reference's
//     name when it is a Pod), when set. Tags are nil, Priority 0.
//   - Failures: a list or watch that fails emits one Update{Err} per
//     distinct failure until a request succeeds (the consumer keeps the
//     last set; an outage never yields an empty set). An unreachable or
//     overloaded API server (no answer, 429, 5xx) is retried with the
//     Pool's backoff (full jitter, 100ms doubling to 5s; WithBackoff); once
//     a request succeeds again the current set is emitted. A denial
//     (ErrForbidden) names the verb and the resource to grant, and is
//     retried by client-go's own backoff (up to 30s).
//   - Name is "kubernetes:[<namespace>/]<service>:<port>", the namespace
//     as configured.
//
// Testing: the tests run a real kube-apiserver over a real etcd
// (internal/kubetest; `make kube-apiserver` builds it).
package kubernetes
